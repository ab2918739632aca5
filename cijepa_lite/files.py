"""Files written whole or not at all: a temporary sibling, fsynced, then renamed over the target."""
from __future__ import annotations

import json
import os
import shutil
import threading
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
