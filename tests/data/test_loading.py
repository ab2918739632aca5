import os

import pytest

from cijepa_lite.data.loading import MAX_PREFETCH, auto_workers, prefetch_factor, usable_cpus


def test_auto_workers_leave_one_cpu_for_the_main_process_and_a_set_value_wins(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(12)), raising=False)
    assert usable_cpus() == 12
    assert auto_workers(None) == 11
    assert auto_workers(None, processes_per_node=4) == 2  # each of 4 ranks gets 3 CPUs, one for itself
    assert auto_workers(3) == 3 and auto_workers(0) == 0
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert auto_workers(None) == 0  # one CPU: load in the main process


def test_prefetch_is_sized_to_shared_memory_and_warns_when_it_is_small():
    batch = 256 * 3 * 224 * 224  # 38.5 MB of uint8 images
    assert prefetch_factor(batch, 0) is None
    assert prefetch_factor(batch, 8, free=64 * 2**30) == MAX_PREFETCH
    assert prefetch_factor(batch, 8, free=int(1.5 * 2**30)) == 2  # fills at most half of /dev/shm
    with pytest.warns(UserWarning, match="shm-size"):
        assert prefetch_factor(batch, 8, free=64 * 2**20) == 1  # Docker's default 64 MB


def test_worker_counts_are_bounded_by_the_cpus_in_one_line_for_pretrain_and_bench(tmp_path, capsys):
    from cijepa_lite.cli import main

    bound = 2 * usable_cpus()
    assert auto_workers(bound) == bound
    with pytest.raises(ValueError, match=rf"num_workers=100000: at most {bound} loader processes on this machine"):
        auto_workers(100000)
    assert main(["pretrain", "--preset", "tiny", "--out", str(tmp_path / "run"), "--steps", "1", "--no-progress",
                 "num_workers=100000"]) == 1
    assert main(["bench", "--preset", "tiny", "--workers", "-1"]) == 1  # refused before any timing
    err = capsys.readouterr().err.splitlines()
    assert [line.split(":")[0:2] for line in err if line.startswith("error")] == [
        ["error", " num_workers=100000"], ["error", " --workers=-1"]], err
    assert not list((tmp_path / "run").glob("checkpoints/*.pt"))
