"""nbval runs the notebooks in smoke mode with their work and "Drive" folders in a temporary directory.

The kernels import this checkout (as `pip install -e .` would): the repository root goes on their PYTHONPATH.
Every cell must finish within nbval's per-cell timeout (pyproject: --nbval-cell-timeout=60), and every cell
that calls `colab.show(` must have displayed a PNG: checked here on the outputs nbval has just collected,
so each notebook is executed once.

The notebooks' runs, data and "Drive" go to a temporary folder that is removed at the end of the session; their
figures (PNG) are first copied to FIGURES ($TMPDIR/cijepa-lite-notebook-figures, replaced by each session), and
the terminal summary names it. The notebook runs are slow tests (the fast tier, -m "not slow", skips them).
"""
import os
import shutil
import tempfile
from pathlib import Path

import pytest

ROOT = str(Path(__file__).resolve().parents[1])
PLOTTING_CALL = "colab.show("  # a notebook cell that draws a figure shows it through this helper
FIGURES = Path(tempfile.gettempdir()) / "cijepa-lite-notebook-figures"
_WORK: list[Path] = []  # the session's temporary notebook folder, once created


def pytest_configure(config):
    root = Path(tempfile.mkdtemp(prefix="cijepa-notebooks-"))
    _WORK.append(root)
    os.environ.setdefault("CIJEPA_SMOKE", "1")
    os.environ.setdefault("CIJEPA_WORKDIR", str(root / "work"))
    os.environ.setdefault("CIJEPA_STORAGE", str(root / "drive"))
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)


def pytest_collection_modifyitems(config, items):
    """Every notebook cell nbval runs is a slow test (a kernel, data preparation and a training run)."""
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.slow)


def keep_figures(root: Path, figures: Path = FIGURES) -> int:
    """Copy every PNG under `root` into `figures` (emptied first), keeping its path below `root`; returns how many."""
    shutil.rmtree(figures, ignore_errors=True)
    pngs = sorted(root.rglob("*.png"))
    for png in pngs:
        target = figures / png.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(png, target)
    return len(pngs)


def pytest_terminal_summary(terminalreporter):
    """Keep the notebooks' figures in FIGURES, say so, and remove the session's temporary notebook folder."""
    for root in _WORK:
        if any(root.rglob("*.png")):
            n = keep_figures(root)
            terminalreporter.write_line(f"notebook figures ({n} PNG, smoke mode): {FIGURES}")
        shutil.rmtree(root, ignore_errors=True)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """After nbval ran a cell that calls colab.show(...), fail unless the cell displayed an image/png."""
    result = yield
    cell = getattr(item, "cell", None)
    if cell is not None and PLOTTING_CALL in cell.source:
        shown = [o for o in item.test_outputs or [] if "image/png" in o.get("data", {})]
        assert shown, f"{item.name}: the cell calls {PLOTTING_CALL}...) but displayed no image/png output"
    return result
