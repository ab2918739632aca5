"""A loader worker killed (SIGKILL: the OOM killer; SIGBUS: a small /dev/shm) or hung (stuck reading an image,
caught by the loader's timeout): the run stops at its last whole step with a checkpoint and one line saying what to do, and the
same command resumes it bitwise."""
import signal

import pytest
from test_train import compare_runs

from cijepa_lite.engine import checkpoint

pytestmark = pytest.mark.slow  # real processes
STEPS = 8  # more than the batches a worker prefetches (4) after the fault at step 1


def command(run) -> list[str]:
    return ["pretrain", "--preset", "tiny", "--out", str(run), "--steps", str(STEPS), "--no-progress", "batch_size=16",
            "base_batch=16", "log_every=1", "ckpt_minutes=1e9", "num_workers=1", "knn_every_epochs=none"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, server):
    root = tmp_path_factory.mktemp("reference")
    assert server.run(command(root / "run"), root / "log") == 0
    return root / "run"


@pytest.mark.parametrize("signum, says", [
    (signal.SIGKILL, "was killed by SIGKILL (the out-of-memory killer, or someone)"),
    (signal.SIGBUS, "was killed by SIGBUS, a bus error: most often /dev/shm too small for the batches in flight ("),
    (None, "no batch from the loader workers in 10 s: a worker hangs"),
], ids=["SIGKILL", "SIGBUS", "hang"])
def test_a_dead_or_hung_loader_worker_stops_at_a_checkpoint_in_one_line_and_the_rerun_is_bitwise_equal(
        tmp_path, server, reference, signum, says):
    run, log = tmp_path / "run", tmp_path / "log"
    fault = ({"worker_signal_after": [1, int(signum)]} if signum else {"hang_after": 3 * 16}) | {
        "env": {"CIJEPA_LOADER_TIMEOUT_S": "10"}}
    assert server.run(command(run), log, fault) == 1, log.read_text()
    newest = checkpoint.candidates(run / "checkpoints")
    assert len(newest) == 1, log.read_text()
    step = int(newest[0].stem.split("-")[1])
    assert 2 <= step < STEPS  # the steps with batches the worker had made, then a stop
    errors = [line for line in log.read_text().splitlines() if "error:" in line]
    assert len(errors) == 1 and "Traceback" not in log.read_text(), log.read_text()
    last = errors[0]
    assert ("error: a loader worker" if signum else "error: no batch") in last, last
    assert says in last and "num_workers=0" in last and f"checkpoint {newest[0]} at step {step}; then rerun" in last
    assert server.run(command(run), log) == 0, log.read_text()
    assert compare_runs(reference, run) == []
