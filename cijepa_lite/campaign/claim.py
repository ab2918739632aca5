"""Which session trains an entry: a claim file per session, a settle delay, and the lower (time, session) wins.

On one filesystem the run directory's lock (engine/lock.py: O_EXCL plus heartbeat) already admits one
writer. Two Colab machines sharing a Drive folder do not share a filesystem: each writes to its own VM's
cache of the mount, Drive syncs it later (seconds to minutes, docs/campaign.md), and Drive accepts two files
of the same name in one folder, so an O_EXCL create succeeds on both. So a session claims an entry by
writing its *own* file `claims/<entry>/<session>.json` (names never collide across machines) holding its
session id, host, pid, claim time and a heartbeat it rewrites every `HEARTBEAT_S`; then it waits
`settle_s` for rivals' files to arrive and re-reads: among live claims the lowest (claim time, session id)
wins and every other session deletes its file and moves on. The winner re-reads once more just before its
first write into the run directory (`still_ours`), and again before every checkpoint: the claim is train()'s
fence. Its session id is a fencing token written into every checkpoint (meta "writer", its file name's tag)
and metrics row ("writer"), so a rival claim that Drive shows only after training began (whatever the delay)
makes the session yield at its next checkpoint without writing it (`record_yield`; `campaign --status` names
who yielded to whom), and what each session wrote stays its own: a later resume passes over the checkpoints
of every session that yielded (`passed_over`) and keeps the metrics rows of the resumed lineage only.
A claim is dead when its process is gone (same host) or its heartbeat is older than `STALE_S` (another host).
"""
from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from pathlib import Path

import psutil

from ..engine.lock import process_started, same_process
from ..files import write_json

CLAIMS_DIR = "claims"
HEARTBEAT_S = 30.0  # the holder rewrites its claim this often
STALE_S = 600.0  # a claim from another host not rewritten this long (as its holder's clock says) is dead
DRIVE_SETTLE_S = 120.0  # wait this long for a rival's claim to arrive through Drive's sync (docs/campaign.md)
LOCAL_SETTLE_S = 2.0  # on one filesystem rivals' files are visible at once; the run lock guards the rest


def yield_file(root: str | Path, entry: str) -> Path:
    """Where the last session that yielded `entry` to a late-visible earlier claim says so."""
    return Path(root) / CLAIMS_DIR / f"{entry}.yielded.json"


def read_yield(root: str | Path, entry: str) -> dict | None:
    """The record of the last session that yielded `entry` (record_yield), or None when there is none or it is
    damaged (then no session is passed over, as before any yield)."""
    try:
        record = json.loads(yield_file(root, entry).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def default_settle_s(root: str | Path) -> float:
    """The settle delay for a campaign folder: long on a Google Drive mount, short on a local disk."""
    return DRIVE_SETTLE_S if str(Path(root).expanduser().resolve()).startswith("/content/drive") else LOCAL_SETTLE_S


def session_id() -> str:
    """This process's id in claims: start time (ns), host and pid, safe as a file name."""
    host = re.sub(r"[^A-Za-z0-9.-]+", "-", socket.gethostname())[:40] or "host"
    return f"{time.time_ns()}-{host}-{os.getpid()}"


def _alive(record: dict, now: float) -> bool:
    """Whether a claim's holder may still be running (same host: its process; other host: a fresh heartbeat)."""
    if record.get("host") == socket.gethostname():
        try:
            return same_process(record)
        except (KeyError, TypeError):
            return False
    return now - float(record.get("heartbeat", 0.0)) < STALE_S


def live_claims(root: Path, entry: str) -> list[dict]:
    """The live claims on `entry`, best first (lowest claim time, then session id); dead ones are removed."""
    folder = Path(root) / CLAIMS_DIR / entry
    found, now = [], time.time()
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):  # being written, or torn by a kill: the next read decides
            continue
        if _alive(record, now):
            found.append(record)
        else:
            path.unlink(missing_ok=True)
    return sorted(found, key=lambda r: (r["claimed"], r["session"]))


class Claim:
    """This session's claim on one entry; `acquire()` says whether it won (use as a context manager)."""

    def __init__(self, root: str | Path, entry: str, session: str, settle_s: float):
        self.root, self.entry, self.settle_s = Path(root), entry, settle_s
        self.path = self.root / CLAIMS_DIR / entry / f"{session}.json"
        self.record = {"session": session, "entry": entry, "host": socket.gethostname(), "pid": os.getpid(),
                       "process_start": psutil.Process().create_time(), "started": process_started(os.getpid()),
                       "claimed": time.time(),
                       "heartbeat": time.time()}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> bool:
        """Write the claim, wait `settle_s`, re-read: True if this session won, else the claim is withdrawn."""
        if live_claims(self.root, self.entry):  # someone already holds it: no need to wait
            return False
        write_json(self.path, self.record)
        self._thread = threading.Thread(target=self._beat, name="claim-heartbeat", daemon=True)
        self._thread.start()
        time.sleep(self.settle_s)
        if self.still_ours():
            return True
        self.release()
        return False

    @property
    def token(self) -> str:
        """The fencing token this session writes into every checkpoint and metrics row of the entry."""
        return self.record["session"]

    def record_yield(self, step: int) -> None:
        """Note that this session yielded the entry at `step` to `winner()` (read by `campaign --status`)."""
        best = self.winner()
        write_json(yield_file(self.root, self.entry), {"session": self.token, "step": step, "time": time.time(),
                                                       "yielded_to": best and best["session"],
                                                       "all": sorted(self.passed_over() | {self.token})})

    def passed_over(self) -> frozenset:
        """The fencing tokens of every session that yielded this entry: a resume never follows their checkpoints."""
        return frozenset((read_yield(self.root, self.entry) or {}).get("all", []))

    def winner(self) -> dict | None:
        """The live claim that holds the entry now (the lowest (time, session)), or None."""
        claims = live_claims(self.root, self.entry)
        return claims[0] if claims else None

    def still_ours(self) -> bool:
        """Re-read the claims: True while this session's is the lowest live one (call before the first write)."""
        best = self.winner()
        return best is not None and best["session"] == self.record["session"]

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                write_json(self.path, {**self.record, "heartbeat": time.time()})
            except OSError:  # a dropped Drive mount: the next beat retries
                continue

    def release(self) -> None:
        """Stop the heartbeat and withdraw the claim."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> "Claim":
        return self

    def __exit__(self, *exc) -> None:
        self.release()
