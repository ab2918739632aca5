"""The README's two commands and .ci/run: CI runs exactly the README's test command, and fails when no test ran."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    return (ROOT / "README.md").read_text().split("```bash\n")[1].split("```")[0].splitlines()


def test_readme_starts_with_the_demo_and_ci_runs_its_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    command = ci.split("TEST_COMMAND='")[1].split("'")[0]
    demo, tests = readme_commands()[:2]
    assert "python -m cijepa_lite demo" in demo
    assert tests.startswith(command + " ")


@pytest.mark.slow
def test_ci_fails_when_no_test_is_selected(tmp_path):
    """The test command's pip step is a no-op stand-in here: the check is about pytest's exit status 5, and the
    real step would install this checkout into whatever environment runs the tests."""
    (tmp_path / "pip").write_text("#!/bin/sh\nexit 0\n")
    (tmp_path / "pip").chmod(0o755)
    env = {**os.environ, "CIJEPA_CI_REUSE_ENV": "1", "PYTEST_ADDOPTS": "-k no_test_is_named_like_this",
           "PATH": f"{tmp_path}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    out = subprocess.run(["bash", ".ci/run"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 1, out.stdout[-2000:] + out.stderr[-2000:]
    assert "no tests" in out.stderr and "deselected" in out.stdout


def test_readme_layout_names_every_package_and_front_module():
    layout = (ROOT / "README.md").read_text().split("## Layout")[1].split("```")[1]
    package = ROOT / "cijepa_lite"
    rooms = [p.name for p in package.iterdir() if (p / "__init__.py").exists()]
    front = [p.name for p in package.glob("*.py") if not p.name.startswith("__")]
    missing = [name for name in rooms + front if name not in layout]
    assert sorted(rooms) == ["campaign", "data", "engine", "eval", "method"] and missing == []  # campaign/: a front room
