"""Where the kit is installed from: the one place for its version and repository (a fork changes REPOSITORY).

Every notebook's first code cell installs `cijepa-lite @ git+REPOSITORY@vVERSION` in Colab; the cell cannot
import the kit (it is not installed yet), so its text is written from here by `python -m cijepa_lite release`
(which also points the README's Colab links at REPOSITORY) and tests/test_release.py checks that every
notebook agrees. pyproject.toml reads VERSION from here. The release steps: docs/release.md.
"""
from __future__ import annotations

import re
from pathlib import Path

from .files import write_atomic

VERSION = "0.2.0"  # the package version; the notebooks pin the git tag v{VERSION}
REPOSITORY = "https://github.com/cijepa-lite/cijepa-lite"  # the kit's home on GitHub: a fork puts its own here

INSTALL_COMMENT = "# Colab: install the kit at its release tag"  # how a notebook's install cell starts
_COLAB_LINK = re.compile(r"https://colab\.research\.google\.com/github/[^/\s]+/[^/\s]+/blob/")


def tag() -> str:
    """The git tag the notebooks install (created by the release step, docs/release.md)."""
    return f"v{VERSION}"


def install_cell() -> str:
    """The source of every notebook's install cell: the kit at its tag, keeping Colab's torch, torchvision and
    ipywidgets (pip's constraints file pins what Colab has, so nothing of it is reinstalled)."""
    spec = f"cijepa-lite @ git+{REPOSITORY}@{tag()}"
    return (f"{INSTALL_COMMENT}, keeping Colab's own torch, torchvision and ipywidgets "
            "(elsewhere: `pip install -e .` once).\n"
            "import sys; \"google.colab\" in sys.modules and get_ipython().system(\"pip freeze | grep -iE "
            f"'^(torch|torchvision|ipywidgets)==' > /tmp/keep.txt && pip install -q -c /tmp/keep.txt '{spec}'\")")


def colab_link() -> str:
    """The start of a README "Open in Colab" link to a notebook of REPOSITORY."""
    owner_name = REPOSITORY.removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{owner_name}/blob/"


def sync(root: str | Path, write: bool = True) -> list[Path]:
    """Rewrite every notebook's install cell and the README's Colab links from VERSION and REPOSITORY.

    Args:
        root: the repository root (holding notebooks/ and README.md).
        write: False only lists what differs.
    Returns:
        the files that differed (and were rewritten when `write`).
    """
    import nbformat

    root, changed = Path(root), []
    for path in sorted((root / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        cells = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith(INSTALL_COMMENT)]
        if not cells:
            raise ValueError(f"{path}: no install cell (a code cell starting with {INSTALL_COMMENT!r}); "
                             "copy one from notebooks/01_data.ipynb")
        if any(c.source != install_cell() for c in cells):
            changed.append(path)
            for c in cells:
                c.source = install_cell()
            if write:
                raw = nbformat.writes(nb).rstrip("\n").encode() + b"\n"  # as nbformat.write ends it
                write_atomic(path, lambda f: f.write(raw))  # a kill never leaves half a notebook
    readme = root / "README.md"
    text = readme.read_text()
    if _COLAB_LINK.sub(colab_link(), text) != text:
        changed.append(readme)
        if write:
            linked = _COLAB_LINK.sub(colab_link(), text).encode()
            write_atomic(readme, lambda f: f.write(linked))
    return changed
