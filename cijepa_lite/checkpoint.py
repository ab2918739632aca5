"""Checkpoints that survive anything: atomic per-step files, sha256 manifests, validated loading.

A checkpoint is `step-00001234.pt` (a dict loadable with `torch.load(weights_only=True)`) plus
`step-00001234.json`, its manifest, written last: a .pt without a valid manifest is never trusted.
Nothing is ever overwritten in place: each file is written to a temporary name, fsynced and renamed.
`load_latest` returns the newest checkpoint that validates, warning about each one it rejects.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import shutil
import threading
import time
import warnings
from pathlib import Path

import torch

REQUIRED = ("step", "config", "student", "teacher", "predictors", "optimizer")
_NAME = re.compile(r"^step-(\d{8})\.pt$")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some filesystems (e.g. FUSE mounts) do not open directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: Path, write) -> None:
    """Call write(file) on a temporary sibling, fsync it, then rename it to `path`."""
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}-{threading.get_ident()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _manifest_of(pt: Path) -> Path:
    return pt.with_suffix(".json")


def _non_finite(state: dict) -> list[str]:
    return [f"{part}.{k}" for part in ("student", "teacher", "predictors") for k, v in state[part].items()
            if v.is_floating_point() and not torch.isfinite(v).all()]


def save(state: dict, directory: str | Path, keep: int) -> Path:
    """Write `state` as this step's checkpoint in `directory`, then prune to the newest `keep`.

    Refuses (ValueError) a state with non-finite weights: such a checkpoint is never written.
    """
    bad = _non_finite(state)
    if bad:
        raise ValueError(f"refusing to write a checkpoint at step {state['step']}: non-finite weights in {bad[:3]}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    pt = directory / f"step-{int(state['step']):08d}.pt"
    write_atomic(pt, lambda f: torch.save(state, f))
    manifest = {"file": pt.name, "step": int(state["step"]), "bytes": pt.stat().st_size, "sha256": sha256(pt),
                "written": time.time()}
    write_atomic(_manifest_of(pt), lambda f: f.write(json.dumps(manifest, indent=1).encode()))
    prune(directory, keep)
    return pt


def candidates(directory: str | Path) -> list[Path]:
    """Checkpoint files in `directory`, newest step first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted((p for p in directory.iterdir() if _NAME.match(p.name)), key=lambda p: p.name, reverse=True)


def prune(directory: Path, keep: int) -> None:
    for old in candidates(directory)[keep:]:
        _manifest_of(old).unlink(missing_ok=True)
        old.unlink(missing_ok=True)


def validate(pt: Path) -> str | None:
    """None if `pt` is a sound checkpoint, else the reason it is not (cheap checks first)."""
    manifest_path = _manifest_of(pt)
    if not manifest_path.exists():
        return "no manifest (an interrupted write?)"
    try:
        manifest = json.loads(manifest_path.read_text())
        expected_bytes, expected_sha = int(manifest["bytes"]), manifest["sha256"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"unreadable manifest {manifest_path.name}: {e}"
    size = pt.stat().st_size
    if size != expected_bytes:
        return f"size {size} bytes, manifest says {expected_bytes} (truncated?)"
    if sha256(pt) != expected_sha:
        return "sha256 differs from the manifest (corrupted)"
    return None


def read(pt: Path) -> dict:
    """torch.load a validated checkpoint with weights_only=True and check its contents."""
    state = torch.load(pt, map_location="cpu", weights_only=True)
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise ValueError(f"checkpoint {pt} lacks keys {missing}")
    bad = _non_finite(state)
    if bad:
        raise ValueError(f"checkpoint {pt} has non-finite weights in {bad[:3]}")
    return state


def load_latest(*directories: str | Path) -> tuple[dict | None, Path | None]:
    """The newest valid checkpoint across `directories` (e.g. the run dir and its Drive mirror).

    Rejected files are named in a warning each. If checkpoints exist but none is valid this raises
    rather than silently starting the run again from step 0.
    """
    found = sorted((p for d in directories if d for p in candidates(d)), key=lambda p: p.name, reverse=True)
    rejected = []
    for pt in found:
        reason = validate(pt)
        state = None
        if reason is None:
            try:
                state = read(pt)
            except (RuntimeError, ValueError, OSError, EOFError, KeyError, pickle.UnpicklingError) as e:  # torch.load's
                reason = f"cannot be loaded: {e}"
        if state is not None:
            return state, pt
        warnings.warn(f"skipping checkpoint {pt}: {reason}", stacklevel=2)
        rejected.append(f"{pt} ({reason})")
    if rejected:
        raise RuntimeError("no valid checkpoint among: " + "; ".join(rejected)
                           + ". Move them away to start the run again from step 0.")
    return None, None


def copy_checkpoint(pt: Path, directory: Path, keep: int) -> None:
    """Copy a checkpoint and its manifest into `directory` atomically (manifest last), then prune."""
    directory.mkdir(parents=True, exist_ok=True)
    for src in (pt, _manifest_of(pt)):
        with open(src, "rb") as f_in:
            write_atomic(directory / src.name, lambda f_out: shutil.copyfileobj(f_in, f_out, 1 << 22))
    prune(directory, keep)


class Mirror:
    """Copies checkpoints (and extra files) to a second directory in a background thread.

    A failed copy is retried with back-off and then reported with a warning; training never waits
    for it, except `close()` at the end of a run, which gives the last copy time to finish.
    """

    def __init__(self, directory: str | Path, keep: int, retries: int = 3, backoff_s: float = 5.0):
        self.directory, self.keep, self.retries, self.backoff_s = Path(directory), keep, retries, backoff_s
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
                copy_checkpoint(pt, self.directory / "checkpoints", self.keep)
                for path in extra:
                    with open(path, "rb") as f_in:
                        write_atomic(self.directory / path.name, lambda f_out: shutil.copyfileobj(f_in, f_out))
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
