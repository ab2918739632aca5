"""Files written whole or not at all: a temporary sibling, fsynced, then renamed over the target."""
from __future__ import annotations

import json
import os
import secrets
import shutil
from pathlib import Path


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


_TMP_PREFIX = ".tmp-"


def write_atomic(path: Path, write, before_rename=None) -> None:
    """Call write(file) on a temporary sibling, fsync it, then rename it to `path`.

    Args:
        before_rename: called after the fsync and before the rename (e.g. to write a manifest first).
    """
    # a unique name (random, created exclusively): two writers (sessions on one Drive folder, ranks) never share it
    tmp = path.with_name(f"{_TMP_PREFIX}{path.name}-{secrets.token_hex(8)}")
    try:
        with open(tmp, "xb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if before_rename is not None:
            before_rename()
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)


def clean_temp(directory: str | Path) -> list[Path]:
    """Remove the temporary files a killed write left in `directory` (call only while no one else writes there)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    stale = [p for p in directory.iterdir() if p.name.startswith(_TMP_PREFIX) and p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def save_figure(fig, path: str | Path, dpi: int) -> Path:
    """Save a matplotlib figure at `path` atomically (its format from the suffix; parent folders are made)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda f: fig.savefig(f, format=path.suffix.lstrip(".") or "png", dpi=dpi))
    return path


def copy_atomic(src: Path, dst: Path) -> None:
    """Copy the file `src` to `dst` through a temporary sibling (never a half-written `dst`)."""
    with open(src, "rb") as f_in:
        write_atomic(Path(dst), lambda f_out: shutil.copyfileobj(f_in, f_out, 1 << 22))


def write_json(path: str | Path, value) -> Path:
    """`value` as indented JSON at `path`, atomically (parent folders are made)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(value, indent=1).encode()
    write_atomic(path, lambda f: f.write(text))
    return path
