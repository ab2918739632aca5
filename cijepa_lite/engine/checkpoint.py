"""Checkpoint files that survive anything: atomic per-step files, sha256 manifests, validated loading.

A checkpoint is `step-00001234.pt` (a dict loadable with `torch.load(weights_only=True)`) plus
`step-00001234.json`, its manifest. A checkpoint with a fencing token (a campaign session's, meta "writer")
is `step-00001234-<tag>.pt` (`writer_tag`) and its manifest records the token, so two writers that share
a folder unknowingly (Drive's sync delay) never produce one name and a resume can pass over one's files.
The .pt is hashed while it is written to a temporary name and the manifest is in place before the .pt
is renamed to its own, so a visible .pt always has its manifest: no instant of a kill leaves a newest
checkpoint that the next start must refuse. A .pt without a manifest (written by an older kit) is never
trusted and is passed over like an absent file.
Nothing is ever overwritten in place: each file is written to a temporary name, fsynced and renamed.
What a checkpoint holds (its keys) is the run directory's business (rundir.py); this module only
knows files, so `load_latest` takes the content check as an argument.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import pickle
import re
import shutil
import time
import warnings
from pathlib import Path
from typing import Callable

import torch

from ..files import clean_temp, copy_atomic, write_atomic

_NAME = re.compile(r"^step-(\d{8})(?:-([0-9a-f]{8}))?\.pt$")


def writer_tag(writer: str | None) -> str:
    """The 8 hex digits a fencing token (a campaign session's, meta "writer") adds to its checkpoints' names, so
    two writers of one run directory never produce the same file name; "" without a token."""
    return hashlib.sha256(writer.encode()).hexdigest()[:8] if writer else ""


def checkpoint_name(step: int, tag: str = "") -> str:
    """The file name of the checkpoint at `step` (`step-00001234.pt`; `step-00001234-<tag>.pt` with a writer tag)."""
    return f"step-{int(step):08d}" + (f"-{tag}" if tag else "") + ".pt"


def step_and_tag(pt: Path) -> tuple[int, str]:
    """A checkpoint file's step and writer tag ("" for none), from its name (-1 for another name)."""
    m = _NAME.match(pt.name)
    return (int(m.group(1)), m.group(2) or "") if m else (-1, "")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _manifest_of(pt: Path) -> Path:
    return pt.with_suffix(".json")


class NoValidCheckpoint(RuntimeError):
    """Checkpoints exist but none validates: the run must not silently start again from step 0."""


class DiskFull(OSError):
    """A checkpoint did not fit: names the folder, the bytes needed and the bytes free."""


class _Hashing:
    """A write-only file wrapper that hashes and counts what passes through it."""

    def __init__(self, f):
        self.f, self.h, self.bytes = f, hashlib.sha256(), 0

    def write(self, data) -> int:
        self.h.update(data)
        self.bytes += len(data)
        return self.f.write(data)

    def flush(self) -> None:
        self.f.flush()


def _state_bytes(state: dict) -> int:
    """Bytes of the tensors in a (nested) state: about the size of its checkpoint file."""
    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size()
    if isinstance(state, dict):
        return sum(_state_bytes(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return sum(_state_bytes(v) for v in state)
    return 0


def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def disk_full(directory: Path, needed: int) -> DiskFull:
    """The one-line error for `needed` bytes that do not fit in `directory`."""
    free = shutil.disk_usage(directory).free
    return DiskFull(errno.ENOSPC, f"disk full: {directory} needs {gib(needed)} for a checkpoint and has "
                                  f"{gib(free)} free; free space there or point the run elsewhere")


def save(state: dict, directory: str | Path, keep: int) -> Path:
    """Write `state` (it has a "step") as that step's checkpoint in `directory`, then prune to the newest `keep`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    writer = state.get("meta", {}).get("writer")
    pt = directory / checkpoint_name(state["step"], writer_tag(writer))
    sink = {}

    def write(f) -> None:
        sink["f"] = _Hashing(f)
        torch.save(state, sink["f"])

    def manifest_first() -> None:
        manifest = {"file": pt.name, "step": int(state["step"]), "bytes": sink["f"].bytes,
                    "sha256": sink["f"].h.hexdigest(), "written": time.time(),
                    **({"writer": writer} if writer else {})}
        write_atomic(_manifest_of(pt), lambda f: f.write(json.dumps(manifest, indent=1).encode()))

    try:
        write_atomic(pt, write, before_rename=manifest_first)
    except (OSError, RuntimeError) as e:  # torch.save hides ENOSPC inside "RuntimeError: ... unexpected pos"
        needed = _state_bytes(state)
        if (isinstance(e, OSError) and e.errno == errno.ENOSPC) or shutil.disk_usage(directory).free < needed:
            raise disk_full(directory, needed) from e
        raise
    prune(directory, keep, tag=writer_tag(writer))
    return pt


def candidates(directory: str | Path) -> list[Path]:
    """Checkpoint files in `directory`, newest step first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted((p for p in directory.iterdir() if _NAME.match(p.name)), key=lambda p: p.name, reverse=True)


def prune(directory: Path, keep: int, truncate: bool = False, tag: str | None = None) -> None:
    """Delete all but the newest `keep` checkpoints of writer `tag` (keep >= 1: the newest is never deleted), and
    other writers' checkpoints older than the oldest of those kept (a rival's newer ones are never deleted).

    Args:
        truncate: empty each file before deleting it. On Google Drive's mount a deleted file goes to
            Drive's trash and keeps counting against the quota for 30 days; an emptied one weighs nothing.
        tag: the writer tag whose checkpoints count (None: the newest checkpoint's).
    """
    found = candidates(directory)
    tag = step_and_tag(found[0])[1] if tag is None and found else tag
    own = [p for p in found if step_and_tag(p)[1] == tag]
    cutoff = step_and_tag(own[max(keep, 1) - 1])[0] if len(own) >= max(keep, 1) else -1
    for old in [p for p in found if p in own[max(keep, 1):] or (p not in own and step_and_tag(p)[0] < cutoff)]:
        if truncate:
            os.truncate(old, 0)
        old.unlink(missing_ok=True)
        _manifest_of(old).unlink(missing_ok=True)


def clean(directory: Path) -> list[Path]:
    """Remove what killed writes left: temporary files, and manifests whose checkpoint never appeared."""
    removed = clean_temp(directory)
    if directory.is_dir():
        for manifest in directory.glob("step-*.json"):
            if not manifest.with_suffix(".pt").exists():
                manifest.unlink(missing_ok=True)
                removed.append(manifest)
    return removed


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


def manifest_sha256(pt: Path) -> str | None:
    """The sha256 that `pt`'s manifest records (None without a readable manifest): a cheap identity of the file."""
    try:
        return json.loads(_manifest_of(pt).read_text())["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def load_named(directories: list[Path], name: str, sha256: str) -> tuple[dict, Path]:
    """The checkpoint file `name` whose manifest records `sha256`, from the first of `directories` holding it.

    Loaded memory-mapped: the processes of a node that load it share its pages. FileNotFoundError or
    ValueError (one line) when no directory holds that file.
    """
    found = [d / name for d in directories if (d / name).exists()]
    if not found:
        raise FileNotFoundError(f"no {name} in {' or '.join(map(str, directories))}")
    same = [p for p in found if manifest_sha256(p) == sha256]
    if not same:
        raise ValueError(f"{found[0]} is not the same file (its manifest's sha256 differs)")
    return torch.load(same[0], map_location="cpu", weights_only=True, mmap=True), same[0]


def manifest_writer(pt: Path) -> str | None:
    """The fencing token `pt`'s manifest records (None without one)."""
    try:
        return json.loads(_manifest_of(pt).read_text()).get("writer")
    except (OSError, ValueError, AttributeError):
        return None


def load_latest(directories: list[Path], problem: Callable[[object], str | None],
                passed_over: frozenset = frozenset()) -> tuple[dict | None, Path | None]:
    """The newest checkpoint across `directories` (e.g. a run dir and its Drive mirror) that validates.

    Args:
        problem: the content check: None for a sound loaded object, else why it is not.
        passed_over: fencing tokens whose checkpoints are not resumed (sessions that yielded the run to a rival).
    Rejected files are named in a warning each. If checkpoints exist but none is valid this raises
    rather than silently starting the run again from step 0.
    """
    found = sorted((p for d in directories if d for p in candidates(d)), key=lambda p: p.name, reverse=True)
    found = [p for p in found if not passed_over or manifest_writer(p) not in passed_over]
    rejected = []
    for pt in found:
        if not _manifest_of(pt).exists():
            warnings.warn(f"ignoring checkpoint {pt}: no manifest (an interrupted write or an older kit)",
                          stacklevel=2)
            continue
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
        raise NoValidCheckpoint("no valid checkpoint among: " + "; ".join(rejected)
                           + ". Move them away to start the run again from step 0.")
    return None, None


def checkpoint_bytes(pt: Path) -> int:
    """Bytes of a checkpoint and its manifest on disk."""
    return pt.stat().st_size + _manifest_of(pt).stat().st_size


def copy_checkpoint(pt: Path, directory: Path, keep: int, truncate: bool = False) -> None:
    """Copy a checkpoint into `directory` (manifest first, each atomically), then prune to the newest `keep`."""
    directory.mkdir(parents=True, exist_ok=True)
    for src in (_manifest_of(pt), pt):
        copy_atomic(src, directory / src.name)
    prune(directory, keep, truncate, tag=step_and_tag(pt)[1])
