"""Checkpoint files that survive anything: atomic per-step files, sha256 manifests, validated loading.

A checkpoint is `step-00001234.pt` (a dict loadable with `torch.load(weights_only=True)`) plus
`step-00001234.json`, its manifest, written last: a .pt without a valid manifest is never trusted.
Nothing is ever overwritten in place: each file is written to a temporary name, fsynced and renamed.
What a checkpoint holds (its keys) is the run directory's business (rundir.py); this module only
knows files, so `load_latest` takes the content check as an argument.
"""
from __future__ import annotations

import hashlib
import json
import pickle
import re
import time
import warnings
from pathlib import Path
from typing import Callable

import torch

from ..files import copy_atomic, write_atomic

_NAME = re.compile(r"^step-(\d{8})\.pt$")


def checkpoint_name(step: int) -> str:
    """The file name of the checkpoint at `step`."""
    return f"step-{int(step):08d}.pt"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _manifest_of(pt: Path) -> Path:
    return pt.with_suffix(".json")


def save(state: dict, directory: str | Path, keep: int) -> Path:
    """Write `state` (it has a "step") as that step's checkpoint in `directory`, then prune to the newest `keep`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    pt = directory / checkpoint_name(state["step"])
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
    """None if `pt` matches its manifest, else the reason it does not (cheap checks first)."""
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


def load_latest(directories: list[Path], problem: Callable[[object], str | None]) -> tuple[dict | None, Path | None]:
    """The newest checkpoint across `directories` (e.g. a run dir and its Drive mirror) that validates.

    Args:
        problem: the content check: None for a sound loaded object, else why it is not.
    Rejected files are named in a warning each. If checkpoints exist but none is valid this raises
    rather than silently starting the run again from step 0.
    """
    found = sorted((p for d in directories if d for p in candidates(d)), key=lambda p: p.name, reverse=True)
    rejected = []
    for pt in found:
        reason = validate(pt)
        if reason is None:
            try:
                state = torch.load(pt, map_location="cpu", weights_only=True)
                reason = problem(state)
            except (RuntimeError, ValueError, OSError, EOFError, KeyError, pickle.UnpicklingError) as e:  # torch.load's
                reason = f"cannot be loaded: {e}"
            if reason is None:
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
        copy_atomic(src, directory / src.name)
    prune(directory, keep)
