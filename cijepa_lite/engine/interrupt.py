"""Ctrl-C, Colab's interrupt button and SIGTERM become "checkpoint now, then stop".

While a run trains, `StopRequest` replaces the SIGINT and SIGTERM handlers (main thread only) with
one that records the signal; the loop finishes the step in flight, writes a checkpoint and raises
`RunInterrupted`. A second Ctrl-C raises KeyboardInterrupt at once (no checkpoint) for a run that
must die now. The previous handlers come back when the run ends.

Before the loop (locking, opening data, building the model) `SetupStop` ends the run at once instead: nothing
is trained yet, every file is written atomically (files.py), so there is nothing to save and nothing half-written.
Under torchrun the agent forwards the signal to every rank; a rank blocked in a collective runs its handler only
when the collective returns (or fails, as its peer stops), so after a signal any error of set-up is that stop.

With several processes the signal of any rank is agreed at the next step (Engine.step), so every
rank checkpoints the same step and exits with the same status. After SIGTERM the kit has
SIGTERM_GRACE_S (torchrun's and SLURM's default 30 s before SIGKILL, less a margin) for the step in
flight, the checkpoint and the mirror's copy; the mirror's flush gets only what is left.
"""
from __future__ import annotations

import signal
import threading
import time

EXIT_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}  # the shell's 128 + signal number
MIRROR_MISSING = 3  # the run ended or stopped, but the mirror holds no copy of its newest checkpoint
SIGTERM_GRACE_S = 25.0  # torchrun and SLURM send SIGKILL 30 s after SIGTERM
SIGINT_FLUSH_S = 120.0  # after Ctrl-C nobody kills the process: the mirror gets this long to finish its copy


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by a signal after its checkpoint was written; shown as one line in a notebook."""

    def __init__(self, message: str, signum: int, mirror_missing: bool = False, quiet: bool = False):
        super().__init__(message)
        self.signum, self.mirror_missing = signum, mirror_missing
        self.quiet = quiet  # another rank (rank 0) prints the same line

    @property
    def exit_status(self) -> int:
        return MIRROR_MISSING if self.mirror_missing else EXIT_STATUS.get(self.signum, 1)

    def _render_traceback_(self) -> list[str]:  # IPython shows these lines instead of a traceback
        return [f"RunInterrupted: {self.args[0]}"]


class StopRequest:
    """Records SIGINT / SIGTERM while active (a context manager); `signum` is the first one received."""

    def __init__(self):
        self.signum: int | None = None
        self.at: float | None = None  # time.monotonic() of the first signal
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        if self.signum == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt("second interrupt: stopping without a checkpoint")
        if not self.signum:
            self.signum, self.at = signum, time.monotonic()

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for s in EXIT_STATUS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()

    def agreed(self, signum: int) -> None:
        """Record the signal the ranks agreed on (another rank's) as this rank's own, from now."""
        if signum and not self.signum:
            self.signum, self.at = signum, time.monotonic()

    def flush_budget_s(self) -> float:
        """How long the mirror may still take after this stop: what is left of SIGTERM's grace, or SIGINT_FLUSH_S."""
        if self.signum != signal.SIGTERM:
            return SIGINT_FLUSH_S
        return max(0.0, SIGTERM_GRACE_S - (time.monotonic() - self.at))

    @staticmethod
    def name_of(signum: int) -> str:
        return signal.Signals(signum).name if signum else ""


class SetupStop(StopRequest):
    """While a run sets up (a context manager, main thread only): SIGINT / SIGTERM raise RunInterrupted at once
    (exit 130 / 143, one line); the loop's StopRequest takes over from its first step."""

    def __init__(self, quiet: bool = False):
        super().__init__()
        self.quiet = quiet  # another rank (rank 0) says it

    def _handle(self, signum, frame) -> None:
        self.signum = signum
        raise self._stopped()

    def _stopped(self) -> RunInterrupted:
        return RunInterrupted(f"{self.name_of(self.signum)} before the first step (while setting up): nothing "
                              "trained, nothing half-written; rerun the same command to start", self.signum,
                              quiet=self.quiet)

    def __exit__(self, exc_type, exc, tb) -> None:
        """After this rank's signal, any error is that stop: under torchrun every rank gets the signal, and a rank
        that was waiting in a collective sees it fail when a peer stops (before or after its own handler ran)."""
        super().__exit__()
        if self.signum and exc is not None and not isinstance(exc, RunInterrupted):
            raise self._stopped() from None
