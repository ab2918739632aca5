"""The CPU thread choice (cpus.py): torch's own count whatever the load (the same weights on an idle or busy machine);
asked for, the CPUs other work leaves free, never more than torch's own default."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cijepa_lite import colab, cpus
from cijepa_lite.cli import main
from cijepa_lite.engine import RunDir

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("usable, busy, default, expected", [
    (2, 0.0, 2, 2),  # idle: torch's default
    (2, 0.4, 2, 2),  # a little background load is not worth a thread
    (2, 1.0, 2, 1),  # one busy process on 2 CPUs: 1 thread
    (2, 3.7, 2, 1),  # more load than CPUs: still 1
    (8, 2.6, 8, 5),
    (8, 0.0, 4, 4),  # never more than the default (e.g. OMP settings, physical cores)
])
def test_threads_are_the_free_cpus_at_least_one_at_most_the_default(usable, busy, default, expected):
    assert cpus.threads_for(usable, busy, default) == expected


@pytest.fixture
def threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_a_busy_machine_gets_fewer_threads_and_one_line_saying_so(monkeypatch, threads):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(cpus, "usable_cpus", lambda: [0, 1])
    torch.set_num_threads(2)
    monkeypatch.setattr(cpus, "busy_cpus", lambda cpus, interval=0.5: 0.2)
    assert cpus.fit_threads() is None and torch.get_num_threads() == 2  # idle: nothing changes, nothing said
    monkeypatch.setattr(cpus, "busy_cpus", lambda cpus, interval=0.5: 1.1)
    note = cpus.fit_threads()
    assert torch.get_num_threads() == 1
    assert note == ("busy machine: other processes keep 1.1 of 2 CPUs busy; using 1 torch thread instead of 2 "
                    "(steps are slower than on an idle machine)")
    torch.set_num_threads(2)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # chosen by the user (or torchrun): left alone
    assert cpus.fit_threads() is None and torch.get_num_threads() == 2


def test_the_busy_machine_choice_only_when_asked_and_a_bad_threads_value_is_one_line(monkeypatch, capsys, threads):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(cpus, "usable_cpus", lambda: [0, 1])
    monkeypatch.setattr(cpus, "busy_cpus", lambda cpus, interval=0.5: 1.0)
    torch.set_num_threads(2)
    assert main(["probe", "--run", "/nonexistent/run"]) == 1  # by default the load changes nothing
    assert torch.get_num_threads() == 2 and "busy" not in capsys.readouterr().err
    assert len(colab.status().splitlines()) == 1 and torch.get_num_threads() == 2
    assert main(["probe", "--threads", "fit", "--run", "/nonexistent/run"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("note: busy machine: other processes keep 1.0 of 2 CPUs busy; using 1 torch thread")
    assert err[1].startswith("error: ") and len(err) == 2
    torch.set_num_threads(2)
    assert colab.status(threads="fit").splitlines()[1].startswith("busy machine: ")
    assert main(["probe", "--threads", "1", "--run", "/nonexistent/run"]) == 1 and torch.get_num_threads() == 1
    capsys.readouterr()
    assert main(["probe", "--threads", "3", "--run", "/nonexistent/run"]) == 1
    assert capsys.readouterr().err == ("error: --threads '3': give 'fit' or a whole number from 1 to 2 "
                                       "(the usable CPUs)\n")
    torch.set_num_threads(2)
    main(["config"])  # commands that do not compute choose nothing
    assert torch.get_num_threads() == 2 and "busy" not in capsys.readouterr().err


@pytest.mark.slow  # real processes
def test_the_same_command_on_an_idle_and_on_a_loaded_machine_gives_bitwise_equal_weights(tmp_path):
    env = {**{k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}, "PYTHONPATH": str(ROOT)}

    def pretrain(out: Path) -> dict:
        subprocess.run([sys.executable, "-m", "cijepa_lite", "pretrain", "--preset", "tiny", "--out", str(out),
                        "--steps", "2", "--no-progress", "batch_size=16", "base_batch=16", "ckpt_minutes=1e9"],
                       env=env, cwd=ROOT, check=True, capture_output=True)
        return RunDir(out).latest()

    idle = pretrain(tmp_path / "idle")
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in cpus.usable_cpus()]
    try:
        loaded = pretrain(tmp_path / "loaded")  # every CPU has a busy process beside the run
        assert all(p.poll() is None for p in busy)
    finally:
        for p in busy:
            p.kill()
            p.wait()
    assert idle.meta["torch_threads"] == loaded.meta["torch_threads"]
    for part in ("student", "teacher", "predictors"):
        a, b = getattr(idle, part), getattr(loaded, part)
        assert [k for k in a if not torch.equal(a[k], b[k])] == []
