"""A second copy of every checkpoint (e.g. on Google Drive), made in a background thread."""
from __future__ import annotations

import threading
import time
import warnings
from pathlib import Path

from ..files import copy_atomic
from . import checkpoint


class Mirror:
    """Copies checkpoints into `checkpoint_dir` (and extra files into `directory`) in a background thread.

    A failed copy is retried with back-off and then reported with a warning; training never waits
    for it, except `close()` at the end of a run, which gives the last copy time to finish.
    """

    def __init__(self, directory: str | Path, checkpoint_dir: str | Path, keep: int, retries: int = 3,
                 backoff_s: float = 5.0):
        self.directory, self.checkpoint_dir = Path(directory), Path(checkpoint_dir)
        self.keep, self.retries, self.backoff_s = keep, retries, backoff_s
        self._pending: tuple[Path, list[Path]] | None = None
        self._wake = threading.Condition()
        self._closed = False
        self.failures: list[str] = []
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

    def _copy_with_retries(self, pt: Path, extra: list[Path]) -> None:
        for attempt in range(1, self.retries + 1):
            try:
                checkpoint.copy_checkpoint(pt, self.checkpoint_dir, self.keep)
                for path in extra:
                    copy_atomic(path, self.directory / path.name)
                return
            except OSError as e:  # e.g. errno 107 when Google Drive's mount drops
                if attempt == self.retries:
                    self.failures.append(f"{pt.name}: {e}")
                    warnings.warn(f"mirroring {pt.name} to {self.directory} failed {attempt} times: {e}")
                else:
                    time.sleep(self.backoff_s * attempt)

    def close(self, timeout_s: float = 600.0) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join(timeout_s)
