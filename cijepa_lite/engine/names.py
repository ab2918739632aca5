"""The one place that turns a user's run name into a folder, here and in the mirror.

A run name is a single path component: 1 to `MAX_LEN` characters from `A-Z a-z 0-9 . _ -`, starting
with a letter or a digit (so never `.`, `..`, a hidden file or something that reads as an option).
Every table row id (`R-A.-B05`), the picker's custom names (`custom-D1-11-rows2-a0.30-b0.90`) and a
campaign's entries (`R-A05-B08-s1`) are such names. Anything else is refused in one line naming it.
"""
from __future__ import annotations

import re
from pathlib import Path

MAX_LEN = 64
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
ALLOWED = "letters, digits, '.', '_' and '-', starting with a letter or digit"


def check_run_name(name: object, what: str = "run name") -> str:
    """`name` if it is a safe single-component run name, else ValueError naming it and the rule."""
    if not isinstance(name, str):
        raise ValueError(f"{what} {name!r}: must be a string of {ALLOWED}")
    if not name:
        raise ValueError(f"{what} is empty: give 1-{MAX_LEN} characters ({ALLOWED})")
    if len(name) > MAX_LEN:
        raise ValueError(f"{what} {name[:20]!r}... is {len(name)} characters long: at most {MAX_LEN}")
    if not _NAME.fullmatch(name):
        raise ValueError(f"{what} {name!r}: use only {ALLOWED} (one folder name, no '/', no '..')")
    return name


def run_paths(name: str, root: str | Path, mirror_root: str | Path | None = None) -> tuple[Path, Path | None]:
    """The run folder `root/name` and its mirror `mirror_root/name` (None without a mirror root).

    Raises ValueError for an unsafe name, or when the two folders would be one (the mirror root is the
    run root): a mirror must be a second copy.
    """
    check_run_name(name)
    run = Path(root).expanduser().resolve() / name
    mirror = Path(mirror_root).expanduser().resolve() / name if mirror_root is not None else None
    if mirror is not None and (mirror == run or mirror.is_relative_to(run) or run.is_relative_to(mirror)):
        raise ValueError(f"run folder {run} and its mirror {mirror} overlap: the mirror root must be another folder")
    return run, mirror
