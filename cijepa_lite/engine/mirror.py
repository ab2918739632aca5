"""A second copy of every checkpoint (e.g. on Google Drive), made in a background thread.

Space: before a copy the mirror is pruned to its newest `keep - 1` checkpoints (never fewer than
one), so it never holds more than `keep` (`keep + 1` when keep is 1) and always keeps its newest
complete copy; the free space is checked first (`shutil.disk_usage`). Old copies are emptied before
they are deleted: Google Drive moves files deleted through its mount to its trash, where they count
against the quota for 30 days; an emptied file is 0 bytes there. Every failure is recorded with
the mirror's path and the reason (`failures`, `status()`), for the run summary and the metrics. A mirror that
keeps failing is warned about once (its first failure after a success); after each failed copy the next ones wait
a doubling pause (`pause_s`, at most MAX_PAUSE_S; the last copy at `close()` is always tried) and `summary()` gives
one line for the end of the run.
"""
from __future__ import annotations

import errno
import shutil
import threading
import time
import warnings
from pathlib import Path

from ..files import copy_atomic
from . import checkpoint


MAX_PAUSE_S = 1800.0  # the longest wait between tries of a mirror that keeps failing


class NoRoom(OSError):
    """Not enough free space on the mirror for the next copy (not retried: space does not appear in seconds)."""


class Mirror:
    """Copies checkpoints into `checkpoint_dir` (and extra files into `directory`) in a background thread.

    A failed copy is retried with back-off and then reported with a warning; training never waits
    for it, except `close()` at the end of a run, which gives the last copy time to finish.
    """

    def __init__(self, directory: str | Path, checkpoint_dir: str | Path, keep: int, retries: int = 3,
                 backoff_s: float = 5.0, unavailable: str | None = None):
        """Args: unavailable: why the mirror is not written this run (e.g. its lock could not be taken): every
        checkpoint is then reported as not copied, and nothing is written there."""
        self.directory, self.checkpoint_dir = Path(directory), Path(checkpoint_dir)
        self.keep, self.retries, self.backoff_s = keep, retries, backoff_s
        self._pending: tuple[Path, list[Path]] | None = None
        self._wake = threading.Condition()
        self._closed = False
        self.failures: list[str] = [f"mirror {self.directory}: {unavailable}"] if unavailable else []
        self.unavailable = unavailable
        self.pause_s = 60.0  # the first wait after a failed copy; doubled after each further one
        self._streak, self._resume_at = 0, 0.0  # failed copies in a row; time.monotonic() of the next try
        try:
            newest = checkpoint.candidates(self.checkpoint_dir)
        except OSError:  # a dropped mount: the first copy reports it
            newest = []
        self.copied: str | None = newest[0].name if newest else None  # the mirror's newest checkpoint, by name
        self._thread = threading.Thread(target=self._run, name="checkpoint-mirror", daemon=True)
        self._thread.start()

    def submit(self, pt: Path, extra: list[Path] = ()) -> None:
        """Queue `pt` (replacing any checkpoint still waiting) and `extra` files such as metrics.jsonl."""
        with self._wake:
            self._pending = (pt, list(extra))
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._pending is None and not self._closed:
                    self._wake.wait()
                if self._pending is None:
                    return
                pt, extra = self._pending
                self._pending = None
            self._copy_with_retries(pt, extra)

    def _superseded(self) -> bool:
        with self._wake:
            return self._pending is not None

    def _fail(self, pt: Path, reason: str) -> None:
        message = f"mirror {self.directory}: {pt.name} not copied: {reason}"
        self.failures.append(message)
        if self._streak == 0:  # once, not at every checkpoint of a run whose mirror stays down
            warnings.warn(f"{message} (further failures are counted, retried with back-off and summed up at the "
                          "end of the run)", stacklevel=2)
        self._streak += 1
        self._resume_at = time.monotonic() + min(MAX_PAUSE_S, self.pause_s * 2 ** (self._streak - 1))

    def _copy_once(self, pt: Path, extra: list[Path]) -> None:
        """Prune, check the free space, copy; OSError on a failed copy (the older copy stays)."""
        checkpoint.prune(self.checkpoint_dir, self.keep - 1, truncate=True,  # keeps >= 1: the newest complete copy
                         tag=checkpoint.step_and_tag(pt)[1])  # of this writer (a rival's are its own to prune)
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        needed = checkpoint.checkpoint_bytes(pt) + sum(p.stat().st_size for p in extra if p.exists())
        free = shutil.disk_usage(self.checkpoint_dir).free
        if free < needed:
            raise NoRoom(f"needs {checkpoint.gib(needed)}, {checkpoint.gib(free)} free (Drive's trash counts "
                          "against the quota: empty it)")
        checkpoint.copy_checkpoint(pt, self.checkpoint_dir, self.keep, truncate=True)
        for path in extra:
            if path.exists():
                copy_atomic(path, self.directory / path.name)

    def _copy_with_retries(self, pt: Path, extra: list[Path]) -> None:
        if self.unavailable:
            return self._fail(pt, self.unavailable)
        if time.monotonic() < self._resume_at:
            return self._fail(pt, f"skipped: the last {self._streak} copies failed (the next try waits "
                                  f"{self._resume_at - time.monotonic():.0f} s more)")
        for attempt in range(1, self.retries + 1):
            if self._superseded():  # a newer checkpoint is waiting: copy that one instead
                return
            if not pt.exists():
                return self._fail(pt, "pruned locally before it could be copied (keep_checkpoints too small?)")
            try:
                self._copy_once(pt, extra)
                self.copied, self._streak, self._resume_at = pt.name, 0, 0.0
                return
            except NoRoom as e:
                return self._fail(pt, str(e))
            except OSError as e:  # e.g. ENOSPC, errno 107 when Drive's mount drops, EROFS (not retried: it stays)
                if e.errno == errno.EROFS or attempt == self.retries:
                    return self._fail(pt, f"failed {attempt} times: {e.strerror or e}")
                time.sleep(self.backoff_s * attempt)

    def status(self) -> str:
        """One line for a notebook: the newest copy and the failures."""
        line = f"mirror {self.directory}: newest copy {self.copied or 'none yet'}"
        if self.failures:
            line += f"; {len(self.failures)} failed, last: {self.failures[-1]}"
        return line

    def summary(self) -> str | None:
        """One line on the copies that failed this run (None if none did)."""
        if not self.failures:
            return None
        first, last = self.failures[0], self.failures[-1]
        return f"{len(self.failures)} mirror copies failed this run; first: {first}" + (
            f"; last: {last}" if last != first else "")

    def close(self, timeout_s: float = 600.0) -> bool:
        """Let the queued copy finish (at most `timeout_s`, tried even during a back-off); False if still running."""
        with self._wake:
            self._closed, self._resume_at = True, 0.0
            self._wake.notify()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            self.failures.append(f"mirror {self.directory}: the last copy did not finish within {timeout_s:.0f} s")
            return False
        return True
