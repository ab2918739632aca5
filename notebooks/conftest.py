"""nbval runs the notebooks in smoke mode with their work and "Drive" folders in a temporary directory.

The kernels import this checkout (as `pip install -e .` would): the repository root goes on their PYTHONPATH.
Every cell must finish within nbval's per-cell timeout (pyproject: --nbval-cell-timeout=60), and every cell
that calls `colab.show(` must have displayed a PNG: checked here on the outputs nbval has just collected,
so each notebook is executed once.
"""
import os
import tempfile
from pathlib import Path

import pytest

ROOT = str(Path(__file__).resolve().parents[1])
PLOTTING_CALL = "colab.show("  # a notebook cell that draws a figure shows it through this helper


def pytest_configure(config):
    root = tempfile.mkdtemp(prefix="cijepa-notebooks-")
    os.environ.setdefault("CIJEPA_SMOKE", "1")
    os.environ.setdefault("CIJEPA_WORKDIR", os.path.join(root, "work"))
    os.environ.setdefault("CIJEPA_STORAGE", os.path.join(root, "drive"))
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """After nbval ran a cell that calls colab.show(...), fail unless the cell displayed an image/png."""
    result = yield
    cell = getattr(item, "cell", None)
    if cell is not None and PLOTTING_CALL in cell.source:
        shown = [o for o in item.test_outputs or [] if "image/png" in o.get("data", {})]
        assert shown, f"{item.name}: the cell calls {PLOTTING_CALL}...) but displayed no image/png output"
    return result
