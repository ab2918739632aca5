"""nbval runs the notebooks in smoke mode with their work and "Drive" folders in a temporary directory."""
import os
import tempfile


def pytest_configure(config):
    root = tempfile.mkdtemp(prefix="cijepa-notebooks-")
    os.environ.setdefault("CIJEPA_SMOKE", "1")
    os.environ.setdefault("CIJEPA_WORKDIR", os.path.join(root, "work"))
    os.environ.setdefault("CIJEPA_STORAGE", os.path.join(root, "drive"))
