"""One writer per directory: an exclusive lock file held for the life of a run.

The lock is a file created with O_CREAT | O_EXCL (atomic on local disks and on Google Drive's FUSE
mount, where fcntl.flock is not dependable) holding {pid, host, process start time (wall clock, and since
boot: `process_started`), lock time}. A thread refreshes its modification time every `HEARTBEAT_S`.
A lock whose holder is gone is taken over with a warning: on the same host when its process no longer
exists (or the pid now belongs to a process started later); from another host (a Colab VM that was
recycled) when its heartbeat is older than `STALE_S`. A live holder is refused with a `LockBusy` naming
its pid, host and start time.
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import psutil

HEARTBEAT_S = 30.0  # the holder touches the lock this often
STALE_S = 180.0  # a lock from another host untouched this long belongs to a dead run
_YEAR_3000 = 32503680000.0  # a lock time past this is a damaged file
_TORN_S = 10.0  # an unreadable lock older than this was torn by a kill between create and write


_HELD: set[Path] = set()  # lock files this process holds now (one left by an earlier run of it is stale)


class LockBusy(RuntimeError):
    """The directory is locked by a live process."""


_PROC = Path("/proc/self/stat").exists()  # Linux: a process's start time since boot is in /proc/<pid>/stat
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if _PROC else 100


def _process_start(pid: int) -> float | None:
    """psutil's create_time (wall clock; what the lock file shows a person), or None when `pid` is gone."""
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def process_started(pid: int) -> float | None:
    """When process `pid` started, to tell it from a later process with the same pid (None when it is gone).

    On Linux: seconds since boot, from /proc/<pid>/stat, which the wall clock does not move. psutil's
    create_time adds the boot time, which the kernel reports as the wall clock minus the uptime in whole seconds:
    it moves when the wall clock is stepped or slewed against the uptime (a VM's clock, after a pause, say). On
    the build machine a live holder then looked like a reused pid, its lock was taken over, and two campaign
    sessions trained one run. Elsewhere: psutil's create_time.
    """
    if not _PROC:
        return _process_start(pid)
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[19]) / _CLOCK_TICKS  # field 22, starttime, counted from the state (field 3)
    except (OSError, IndexError, ValueError):
        return None


def same_process(record: dict) -> bool:
    """Whether the process `record` names (its "pid", and "started" from process_started, or else the older
    "process_start" from create_time) is still the one running under that pid on this host."""
    if record.get("started") is not None:
        now = process_started(record["pid"])
        return now is not None and abs(now - record["started"]) <= 1.0
    now = _process_start(record["pid"])
    return now is not None and (record.get("process_start") is None or abs(now - record["process_start"]) <= 1.0)


def _when(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


class DirLock:
    """An exclusive lock on a directory through the lock file `path` (use as a context manager)."""

    def __init__(self, path: str | Path, what: str = "run directory"):
        self.path, self.what = Path(path), what
        self.record = {"pid": os.getpid(), "host": socket.gethostname(), "process_start": _process_start(os.getpid()),
                       "started": process_started(os.getpid()), "locked": time.time()}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> "DirLock":
        """Take the lock (a stale one is taken over with a warning); LockBusy if a live process holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):  # a takeover races at most a couple of others
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._take_over_if_stale()
                continue
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(self.record))
                f.flush()
                os.fsync(f.fileno())
            if self._holder() == self.record:
                _HELD.add(self.path.absolute())
                self._thread = threading.Thread(target=self._beat, name="lock-heartbeat", daemon=True)
                self._thread.start()
                return self
        raise LockBusy(f"could not lock {self.what} {self.path.parent}: {self.path} keeps changing hands")

    def _holder(self) -> dict | None:
        """The lock file's record, or None when it is unreadable or malformed (a torn or hand-edited file)."""
        try:
            value = json.loads(self.path.read_text())
        except (OSError, ValueError, RecursionError):  # RecursionError: deeply nested JSON
            return None
        valid = (isinstance(value, dict) and type(value.get("pid")) is int and value["pid"] > 0
                 and isinstance(value.get("host"), str) and isinstance(value.get("locked"), (int, float))
                 and 0 <= value["locked"] < _YEAR_3000
                 and isinstance(value.get("process_start"), (int, float, type(None)))
                 and isinstance(value.get("started"), (int, float, type(None))))
        return value if valid else None

    def _take_over_if_stale(self) -> None:
        """Remove the existing lock file if its holder is gone, else raise LockBusy naming the holder."""
        holder = self._holder()
        try:
            age = time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return  # released meanwhile
        why = self._stale_reason(holder, age)
        if why is None:
            raise LockBusy(f"{self.what} {self.path.parent} is in use by process {holder['pid']} on "
                           f"{holder['host']} since {_when(holder['locked'])}; stop that run first "
                           f"(or remove {self.path} if it is certainly dead)")
        warnings.warn(f"taking over the lock of {self.what} {self.path.parent}: {why}", stacklevel=3)
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def _stale_reason(self, holder: dict | None, age: float) -> str | None:
        if holder is None:
            if age > _TORN_S:
                return f"an unreadable lock file {self.path} (a run killed while locking, or a damaged file)"
            raise LockBusy(f"{self.what} {self.path.parent} is being locked by another process right now "
                           f"(or its lock file {self.path} is damaged: remove it if no run uses the folder)")
        pid, host = holder["pid"], holder["host"]
        if host == self.record["host"]:
            if _process_start(pid) is None:
                return f"process {pid} that locked it at {_when(holder['locked'])} is gone"
            if not same_process(holder):
                return f"process {pid} that locked it is gone (the pid was reused)"
            if pid == os.getpid() and self.path.absolute() not in _HELD:
                return "an earlier run in this process could not remove it (e.g. a read-only mirror)"
            return None
        if age > STALE_S:
            return f"host {host} (process {pid}) has not touched it for {age:.0f} s"
        return None

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                os.utime(self.path)
            except OSError:  # a dropped Drive mount: the next beat retries
                continue

    def release(self) -> None:
        """Stop the heartbeat and remove the lock file if it is still ours; never raises (a finished run stays
        finished): a lock file that cannot be removed (read-only or dropped mount) is left with a warning, and
        the next run takes it over as its holder is gone."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
            _HELD.discard(self.path.absolute())
            try:
                if self._holder() == self.record:
                    self.path.unlink(missing_ok=True)
            except OSError as e:
                warnings.warn(f"could not remove the lock {self.path} of {self.what} {self.path.parent} "
                              f"({e.strerror or e}); the next run takes it over", stacklevel=2)

    def __enter__(self) -> "DirLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
