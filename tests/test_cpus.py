"""The CPU thread choice (cpus.py): the CPUs other work leaves free, never more than torch's own default."""
import pytest
import torch

from cijepa_lite import colab, cpus
from cijepa_lite.cli import main


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


def test_the_command_line_and_the_notebooks_print_the_busy_line_at_start(monkeypatch, capsys, threads):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(cpus, "usable_cpus", lambda: [0, 1])
    monkeypatch.setattr(cpus, "busy_cpus", lambda cpus, interval=0.5: 1.0)
    torch.set_num_threads(2)
    assert main(["probe", "--run", "/nonexistent/run"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("note: busy machine: other processes keep 1.0 of 2 CPUs busy; using 1 torch thread")
    assert err[1].startswith("error: ") and len(err) == 2
    torch.set_num_threads(2)
    assert colab.status().splitlines()[1].startswith("busy machine: ")
    torch.set_num_threads(2)
    main(["config"])  # commands that do not compute choose nothing
    assert torch.get_num_threads() == 2 and "busy" not in capsys.readouterr().err
