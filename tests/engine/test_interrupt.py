"""Ctrl-C, the notebook's interrupt button and SIGTERM: a checkpoint at the current step, a one-line stop,
and a rerun that ends bitwise equal to the uninterrupted run."""
import random
import signal
import traceback

import pytest
from forkkit import install_fault
from test_train import compare_runs

from cijepa_lite.config import get_config, parse_overrides
from cijepa_lite.engine import Engine, RunDir, checkpoint, read_metrics, train
from cijepa_lite.engine.interrupt import RunInterrupted

STEPS = 6
OVERRIDES = ["batch_size=16", "base_batch=16", "log_every=2", "ckpt_minutes=1e9", "knn_every_epochs=none"]


def command(out) -> list[str]:
    return ["pretrain", "--preset", "tiny", "--out", str(out), "--steps", str(STEPS), "--no-progress", *OVERRIDES]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, server):
    """The same command, uninterrupted, in the same kind of process (CPU results depend on the thread count)."""
    run = tmp_path_factory.mktemp("uninterrupted")
    assert server.run(command(run), run.parent / "uninterrupted.log") == 0
    return run


@pytest.mark.slow
@pytest.mark.parametrize("signum,status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_a_signal_at_a_random_step_checkpoints_it_and_the_rerun_is_bitwise_equal(tmp_path, uninterrupted, server,
                                                                                  signum, status):
    at = random.Random(signum).randrange(0, STEPS - 2)  # 0-based step after which the signal arrives
    run, err = tmp_path / "run", tmp_path / "stderr"
    assert server.run(command(run), err, {"signal_after": [at, int(signum)]}) == status, err.read_text()
    lines = err.read_text().strip().splitlines()
    name = signal.Signals(signum).name
    stopped_at = run / 'checkpoints' / checkpoint.checkpoint_name(at + 1)
    assert lines == [f"starting {run} fresh: no checkpoint there",
                     f"stopped: {name} at step {at + 1}: checkpoint {stopped_at}; rerun the same command to resume"]
    assert RunDir(run).latest().step == at + 1  # not a log step (log_every=2) for one of the two draws
    assert server.run(command(run), err) == 0, err.read_text()
    assert err.read_text().splitlines()[0] == f"resuming {run} at step {at + 1} from {stopped_at} (local disk)"
    assert compare_runs(uninterrupted, run) == []
    assert [r["step"] for r in read_metrics(run)] == [2, 4, 6]


def test_train_in_a_notebook_stops_with_a_checkpoint_and_a_one_line_error(tmp_path, monkeypatch):
    """The notebook's interrupt button is SIGINT to the kernel: train() raises RunInterrupted, shown as one line."""
    monkeypatch.setattr(Engine, "step", Engine.step)  # restored after the test
    install_fault({"signal_after": [2, signal.SIGINT]})
    cfg = get_config("tiny", **parse_overrides(OVERRIDES))
    with pytest.raises(RunInterrupted) as caught:
        train(cfg, tmp_path, max_steps=STEPS, progress=False)
    frames = [f.name for f in traceback.extract_tb(caught.value.__traceback__)]
    assert caught.value.exit_status == 130 and frames[1:] == ["train"]  # no frame that holds the model
    assert caught.value._render_traceback_() == [f"RunInterrupted: {caught.value.args[0]}"]
    assert RunDir(tmp_path).latest().step == 3
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the kernel's handler is back
    assert not (tmp_path / "run.lock").exists()


@pytest.mark.slow  # a whole (short) run
def test_a_stop_on_a_periodic_save_step_writes_that_checkpoint_once(tmp_path, monkeypatch):
    monkeypatch.setattr(Engine, "step", Engine.step)  # restored after the test
    install_fault({"signal_after": [1, signal.SIGINT]})
    saved, original = [], RunDir.save
    monkeypatch.setattr(RunDir, "save", lambda self, step, *args: saved.append(step) or original(self, step, *args))
    cfg = get_config("tiny", batch_size=16, base_batch=16, log_every=1, ckpt_minutes=0, knn_every_epochs=None)
    with pytest.raises(RunInterrupted):  # ckpt_minutes=0: a periodic save at every log step, the stop's one too
        train(cfg, tmp_path, max_steps=STEPS, progress=False)
    assert saved == [1, 2]


@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"])
def test_a_signal_while_setting_up_ends_cleanly_in_one_line_with_nothing_half_written(tmp_path, server, signum, status):
    run, log = tmp_path / "run", tmp_path / "log"
    argv = ["pretrain", "--preset", "tiny", "--out", str(run), "--steps", "2", "--no-progress", "batch_size=16",
            "base_batch=16", "knn_every_epochs=none", f"mirror_dir={tmp_path / 'drive'}"]
    assert server.run(argv, log, {"setup_signal": int(signum)}) == status, log.read_text()
    text = log.read_text()
    assert [line for line in text.splitlines() if line.startswith("stopped:")] == [
        f"stopped: {signum.name} before the first step (while setting up): nothing trained, nothing half-written; "
        "rerun the same command to start"] and "Traceback" not in text, text
    left = sorted(p.name for p in tmp_path.rglob("*") if p.is_file() and p != log)
    assert left == [], left  # no checkpoint, no temporary file, the locks released
    assert server.run(argv, log) == 0, log.read_text()
