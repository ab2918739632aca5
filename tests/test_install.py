"""A new user's first hour: the README's first command installs the package (importable from any folder, with
requirements.txt's dependencies), and no command run with its defaults changes what git tracks."""
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from cijepa_lite import release
from cijepa_lite.cli import main

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # a pip install, whole (short) runs of every command


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def clean_clone(dst: Path) -> Path:
    """A fresh git repository holding this checkout's files as they are now (tracked and new, not ignored)."""
    for name in git("ls-files", "-co", "--exclude-standard", "-z", cwd=ROOT).split("\0"):
        if name and (ROOT / name).is_file():
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dst / name)
    git("init", "-q", cwd=dst)
    git("add", "-A", cwd=dst)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "clone", cwd=dst)
    assert git("status", "--porcelain", cwd=dst) == ""
    return dst


def test_the_readme_install_command_makes_the_package_importable_from_any_folder(tmp_path):
    """The README's first command (`pip install -q -e .`) in a new virtual environment, which sees this one's
    packages (torch etc.) through a .pth file instead of downloading them; then import it from another folder."""
    first = (ROOT / "README.md").read_text().split("```bash\n")[1].splitlines()[0]
    assert first.startswith("pip install -q -e . && python -m cijepa_lite demo")
    clone = clean_clone(tmp_path / "clone")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "outer.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-build-isolation",
                    "-e", "."], cwd=clone, env=env, check=True, timeout=600)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    probe = ("import json, runpy, sys, importlib.metadata as m, cijepa_lite; from cijepa_lite import load_encoder; "
             "print(json.dumps([cijepa_lite.__file__, m.version('cijepa-lite'), m.requires('cijepa-lite')])); "
             "sys.argv = ['cijepa_lite', 'config', '--preset', 'tiny']; runpy.run_module('cijepa_lite', run_name='__main__')")
    out = subprocess.run([python, "-c", probe], cwd=elsewhere, env=env, capture_output=True, text=True)  # python -m
    assert out.returncode == 0 and "run_id = 'tiny'" in out.stdout, out.stderr[-2000:]
    where, version, requires = json.loads(out.stdout.splitlines()[0])
    assert Path(where).parent == clone / "cijepa_lite" and version == release.VERSION
    declared = [line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    extras = [r for r in map(Requirement, requires) if r.marker and "extra" in str(r.marker)]  # pip install ...[wandb]
    assert [str(r) for r in extras] == ['wandb>=0.17; extra == "wandb"']
    core = [str(r) for r in map(Requirement, requires) if r not in extras]
    assert sorted(core) == sorted(str(Requirement(r)) for r in declared if r)
    assert git("status", "--porcelain", cwd=clone) == ""  # the install's build files are ignored


def test_every_command_with_its_defaults_leaves_git_status_clean(tmp_path, monkeypatch, capsys):
    """pretrain, probe, table, inspect, export and config with their defaults (and the README's own examples), in a
    clean clone: every file they write lands under runs/ (ignored); the committed results/ are only read."""
    from test_cli import small_digits

    from cijepa_lite import evaluate

    clone = clean_clone(tmp_path / "clone")
    monkeypatch.chdir(clone)
    monkeypatch.setattr(evaluate, "open_source", small_digits)  # the probe on 160 + 80 digits: seconds
    committed = sorted(p.name for p in (clone / "results" / "runs").glob("*.json"))
    commands = [["pretrain", "--preset", "tiny", "--out", "runs/tiny", "--steps", "2", "--no-progress",
                 "batch_size=16", "base_batch=16"],
                ["probe", "--run", "runs/tiny", "--no-progress"],
                ["table"], ["table", "--runs", "runs/tiny"], ["table", "--figures", "runs/figures", "--runs", "runs"],
                ["inspect", "--run", "runs/tiny", "--n-images", "2"],
                ["export", "--run", "runs/tiny", "--out", "runs/export/tiny"],
                ["config"]]
    for args in commands:
        assert main(args) == 0, (args, capsys.readouterr().err)
    printed = capsys.readouterr().out
    assert git("status", "--porcelain", cwd=clone) == ""
    written = {p.relative_to(clone).parts[:2] for p in (clone / "runs").rglob("*") if p.is_file()}
    assert {("runs", "tiny"), ("runs", "results"), ("runs", "figures"), ("runs", "export")} <= written
    assert (clone / "runs" / "tiny" / "figures" / "inspect.png").is_file() and "wrote runs/results/runs/" in printed
    assert sorted(p.name for p in (clone / "results" / "runs").glob("*.json")) == committed
    (record,) = json.loads((clone / "runs" / "export" / "tiny" / "results.json").read_text())  # export read runs/
    assert record["run_id"] == "tiny" and record["pretrain"]["step"] == 2
