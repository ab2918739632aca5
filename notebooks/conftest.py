"""nbval runs the notebooks in smoke mode with their work and "Drive" folders in a temporary directory.

The kernels import this checkout (as `pip install -e .` would): the repository root goes on their PYTHONPATH.
"""
import os
import tempfile
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[1])


def pytest_configure(config):
    root = tempfile.mkdtemp(prefix="cijepa-notebooks-")
    os.environ.setdefault("CIJEPA_SMOKE", "1")
    os.environ.setdefault("CIJEPA_WORKDIR", os.path.join(root, "work"))
    os.environ.setdefault("CIJEPA_STORAGE", os.path.join(root, "drive"))
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
