"""Ctrl-C, Colab's interrupt button and SIGTERM become "checkpoint now, then stop".

While a run trains, `StopRequest` replaces the SIGINT and SIGTERM handlers (main thread only) with
one that records the signal; the loop finishes the step in flight, writes a checkpoint and raises
`RunInterrupted`. A second Ctrl-C raises KeyboardInterrupt at once (no checkpoint) for a run that
must die now. The previous handlers come back when the run ends.
"""
from __future__ import annotations

import signal
import threading

EXIT_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}  # the shell's 128 + signal number


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by a signal after its checkpoint was written; shown as one line in a notebook."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum

    @property
    def exit_status(self) -> int:
        return EXIT_STATUS.get(self.signum, 1)

    def _render_traceback_(self) -> list[str]:  # IPython shows these lines instead of a traceback
        return [f"RunInterrupted: {self.args[0]}"]


class StopRequest:
    """Records SIGINT / SIGTERM while active (a context manager); `signum` is the first one received."""

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        if self.signum == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt("second interrupt: stopping without a checkpoint")
        self.signum = self.signum or signum

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for s in EXIT_STATUS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""
