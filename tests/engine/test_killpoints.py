"""SIGKILL at 20 instants spanning checkpoint writes (the very first included) and mirror copies, and at every
rewrite of the metrics log: every rerun of the same command completes and ends bitwise equal to the uninterrupted
run."""
import random
import shutil

import pytest
from test_train import compare_runs

from cijepa_lite.engine import RunDir, checkpoint, read_metrics

pytestmark = pytest.mark.slow  # real processes (see pyproject: the fast tier is -m "not slow")

STEPS = 3


def command(run, drive, steps: int = STEPS) -> list[str]:
    return ["pretrain", "--preset", "tiny", "--out", str(run), "--steps", str(steps), "--no-progress",
            "batch_size=16", "base_batch=16", "log_every=1", "ckpt_minutes=0", "keep_checkpoints=2",
            "knn_every_epochs=none", f"mirror_dir={drive}"]


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


def test_sigkill_at_every_rewrite_of_the_metrics_log_loses_no_row(tmp_path, server, uninterrupted):
    """The resume cuts metrics.jsonl back to its checkpoint (a rewrite), the mirror copies it: kills at each."""
    reference, _ = uninterrupted
    first = tmp_path / "first"
    assert server.run(command(first / "run", first / "drive", STEPS - 1), tmp_path / "log") == 0
    count = {"kill_at": 0, "only": "metrics.jsonl", "events": str(tmp_path / "events")}
    shutil.copytree(first, tmp_path / "count")
    assert server.run(command(tmp_path / "count/run", tmp_path / "count/drive"), tmp_path / "log", count) == 0
    total = int((tmp_path / "events").read_text())
    assert total >= 6  # the rewrite (fsync, rename) and the mirror's copy of it
    failed = []
    for n in range(1, total + 1):
        root = tmp_path / f"k{n}"
        shutil.copytree(first, root)
        run, drive, log = root / "run", root / "drive", root / "log"
        assert server.run(command(run, drive), log, {**count, "kill_at": n}) == -9, log.read_text()
        kept = [[r["step"] for r in read_metrics(where)] for where in (run, drive)]
        if any(steps not in ([1, 2], [1, 2, 3]) for steps in kept):
            failed.append(f"event {n}: the logs after the kill hold steps {kept}")
        if server.run(command(run, drive), log) != 0 or compare_runs(reference, run):
            failed.append(f"event {n}: the rerun failed or differs: {log.read_text()[-300:]}")
    assert failed == []
