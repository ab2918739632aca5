"""SIGKILL at 20 instants spanning checkpoint writes (the very first included) and mirror copies: every rerun
of the same command completes and ends bitwise equal to the uninterrupted run."""
import random

import pytest
from forkkit import Server
from test_train import compare_runs

from cijepa_lite.engine import RunDir, checkpoint

pytestmark = pytest.mark.slow  # real processes (see pyproject: the fast tier is -m "not slow")

STEPS = 3


def command(run, drive) -> list[str]:
    return ["pretrain", "--preset", "tiny", "--out", str(run), "--steps", str(STEPS), "--no-progress",
            "batch_size=16", "base_batch=16", "log_every=1", "ckpt_minutes=0", "keep_checkpoints=2",
            "knn_every_epochs=none", f"mirror_dir={drive}"]


@pytest.fixture(scope="module")
def server():
    with Server() as s:
        yield s


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, server):
    """The run without a kill, and how many file events (fsyncs, renames) it makes."""
    root = tmp_path_factory.mktemp("uninterrupted")
    events = root / "events"
    assert server.run(command(root / "run", root / "drive"), root / "log", {"kill_at": 0, "events": str(events)}) == 0
    return root / "run", int(events.read_text())


def test_sigkill_at_20_file_events_then_the_same_command_ends_bitwise_equal(tmp_path, server, uninterrupted):
    reference, total = uninterrupted
    assert total >= 30  # lock, config, 3 checkpoints with manifests, their mirror copies
    instants = sorted({1, 2, 3, 4, 5, 6, *random.Random(11).sample(range(7, total + 1), 14)})  # the first ckpt's too
    assert len(instants) == 20
    failed = []
    for n in instants:
        run, drive, log = tmp_path / f"run{n}", tmp_path / f"drive{n}", tmp_path / f"log{n}"
        status = server.run(command(run, drive), log, {"kill_at": n, "events": str(tmp_path / f"events{n}")})
        assert status == -9, f"event {n} of {total}: {log.read_text()}"
        if server.run(command(run, drive), log) != 0:
            failed.append(f"event {n}: the rerun failed: {log.read_text()[-500:]}")
            continue
        diffs = compare_runs(reference, run)
        mirrored = checkpoint.candidates(RunDir(drive).checkpoint_dir)
        if diffs or not mirrored or checkpoint.validate(mirrored[0]) is not None:
            failed.append(f"event {n}: differs in {diffs[:3]}, mirror holds {[p.name for p in mirrored]}")
    assert failed == []
