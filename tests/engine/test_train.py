"""The engine: exact resume, health checks, config guard, accumulation (CPU, tiny model, 64 digits)."""
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
from torch.utils.data import Subset

from cijepa_lite.config import get_config
from cijepa_lite.data import sampler
from cijepa_lite.data.sources import Digits
from cijepa_lite.engine import RunDir, checkpoint, read_metrics, train
from cijepa_lite.method.model import CIJEPA

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # every test here trains whole (short) runs


@pytest.fixture(scope="module")
def source():
    return Subset(Digits("train"), range(64))


def small(**overrides):
    """tiny on 64 images: batch 16 -> 4 steps per epoch, 3 epochs = 12 steps."""
    base = dict(batch_size=16, base_batch=16, epochs=3, log_every=1, ckpt_minutes=1e9, keep_checkpoints=20)
    return get_config("tiny", **{**base, **overrides})


def final_state(run_dir) -> dict:
    """The newest checkpoint of a run as a dict of its fields (step, config, student, teacher, ...)."""
    return vars(RunDir(run_dir).latest())


def differences(a: dict, b: dict, prefix="") -> list[str]:
    """Names of the tensors (nested) that are not bitwise equal."""
    out = []
    for key in sorted(set(a) | set(b), key=str):
        x, y = a.get(key), b.get(key)
        name = f"{prefix}{key}"
        if isinstance(x, dict) and isinstance(y, dict):
            out += differences(x, y, name + ".")
        elif isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor):
            if x.shape != y.shape or not torch.equal(x, y):
                out.append(name)
        elif isinstance(x, list) and isinstance(y, list):
            out += differences(dict(enumerate(x)), dict(enumerate(y)), name + ".")
        elif x != y:
            out.append(name)
    return out


def compare_runs(a, b) -> list[str]:
    sa, sb = final_state(a), final_state(b)
    diffs = [d for part in ("student", "teacher", "predictors", "optimizer")
             for d in differences(sa[part], sb[part], part + ".")]
    la = [r["loss"] for r in read_metrics(a)]
    lb = [r["loss"] for r in read_metrics(b)]
    return diffs + ([] if la == lb else ["loss sequence"])


@pytest.fixture(scope="module")
def reference(tmp_path_factory, source):
    run = tmp_path_factory.mktemp("reference")
    summary = train(small(), run, max_steps=10, source=source, progress=False)
    assert summary["step"] == 10
    return run


@pytest.mark.parametrize("k", [6, 8], ids=["mid-epoch", "epoch-boundary"])
def test_stop_and_rerun_is_bitwise_equal_to_one_run(tmp_path, source, reference, k):
    first = train(small(), tmp_path, max_steps=k, source=source, progress=False)
    assert first["step"] == k and first["checkpoint"].endswith(checkpoint.checkpoint_name(k))
    assert first["stopped"] == "steps"
    second = train(small(), tmp_path, max_steps=10, source=source, progress=False)
    assert second["start_step"] == k and second["step"] == 10
    assert compare_runs(reference, tmp_path) == []
    assert [r["step"] for r in read_metrics(tmp_path)] == list(range(1, 11))


def test_the_summary_says_why_the_run_stopped(tmp_path, source):
    assert train(small(), tmp_path, time_budget_s=0.0, source=source, progress=False)["stopped"] == "time budget"
    assert train(small(epochs=1), tmp_path / "b", source=source, progress=False)["stopped"] == "done"
    assert train(small(epochs=1), tmp_path / "b", source=source, progress=False)["stopped"] == "done"  # nothing left


def test_negative_control_an_epoch_restarting_resume_is_detected(tmp_path, source, reference, monkeypatch):
    """Resuming like upstream I-JEPA (data order from the start of the epoch) must fail the comparison."""
    train(small(), tmp_path, max_steps=6, source=source, progress=False)
    original = sampler.StepBatches.__iter__

    def epoch_restart(self):
        self.start = self.start - self.start % self.steps_per_epoch
        yield from original(self)

    monkeypatch.setattr(sampler.StepBatches, "__iter__", epoch_restart)
    train(small(), tmp_path, max_steps=10, source=source, progress=False)
    diffs = compare_runs(reference, tmp_path)
    assert "loss sequence" in diffs and any(d.startswith("student.") for d in diffs)


def test_sigkill_and_rerun_with_the_same_command_is_bitwise_equal(tmp_path):
    """A separate process is SIGKILLed mid-run (checkpointing every step); the same command resumes."""
    cmd = [sys.executable, "-m", "cijepa_lite", "pretrain", "--preset", "tiny", "--steps", "10", "--no-progress",
           "batch_size=16", "base_batch=16", "log_every=1", "ckpt_minutes=0", "keep_checkpoints=2"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    whole = tmp_path / "whole"
    subprocess.run(cmd[:4] + ["--out", str(whole)] + cmd[4:], cwd=ROOT, env=env, check=True, capture_output=True,
                   timeout=600)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(cmd[:4] + ["--out", str(killed)] + cmd[4:], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = RunDir(killed).metrics_file
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 5:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    killed_at = len(read_metrics(killed))
    rerun = subprocess.run(cmd[:4] + ["--out", str(killed)] + cmd[4:], cwd=ROOT, env=env, check=True,
                           capture_output=True, text=True, timeout=600)
    summary = json.loads(rerun.stdout)
    assert 0 < summary["start_step"] <= killed_at < 10 and summary["step"] == 10
    assert compare_runs(whole, killed) == []


def test_non_finite_loss_skips_the_update_and_a_run_of_them_stops(tmp_path, source, monkeypatch):
    train(small(), tmp_path, max_steps=3, source=source, progress=False)
    before = final_state(tmp_path)
    original = CIJEPA.forward

    def poisoned(self, *args, **kwargs):
        loss, stats = original(self, *args, **kwargs)
        return loss * float("nan"), stats

    monkeypatch.setattr(CIJEPA, "forward", poisoned)
    with pytest.warns(UserWarning, match="non-finite loss in 1 of the steps") as warned:
        train(small(), tmp_path, max_steps=4, source=source, progress=False)
    assert warned[0].filename == __file__  # it points at the call of train(), not inside the kit
    after = final_state(tmp_path)
    assert after["step"] == 4
    assert read_metrics(tmp_path)[-1]["loss"] is None  # an interval with every step skipped: unknown, never 0.0
    changed = [d for p in ("student", "teacher", "predictors") for d in differences(before[p], after[p], p + ".")]
    changed += differences(before["optimizer"]["state"], after["optimizer"]["state"], "optimizer.")  # moments, steps
    assert changed == []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(RuntimeError, match="3 consecutive steps.*max_skipped_steps=2"):
            train(small(max_skipped_steps=2), tmp_path, max_steps=9, source=source, progress=False,
                  allow_config_change=True)


def test_resume_with_a_different_config_is_refused_naming_fields(tmp_path, source):
    train(small(), tmp_path, max_steps=2, source=source, progress=False)
    with pytest.raises(ValueError, match=r"all_to_last_weight: checkpoint 0.5 vs now 0.7.*epochs: checkpoint 3 vs now 4"):
        train(small(all_to_last_weight=0.7, epochs=4), tmp_path, max_steps=3, source=source, progress=False)
    # runtime fields may change freely, and the saved config is what the run continues with
    out = train(small(log_every=2, num_workers=0), tmp_path, max_steps=3, source=source, progress=False)
    assert out["step"] == 3 and final_state(tmp_path)["config"].log_every == 2
    out = train(small(epochs=4), tmp_path, max_steps=4, source=source, progress=False, allow_config_change=True)
    assert out["total_steps"] == 16


def test_metrics_log_rows_and_depths(tmp_path, source):
    seen = []
    train(small(log_every=2), tmp_path, max_steps=4, source=source, progress=False, on_log=seen.append)
    rows = read_metrics(tmp_path)
    assert [r["step"] for r in rows] == [2, 4] and seen == rows
    r = rows[-1]
    cfg = small()
    assert set(r["targets"]) == {f"d{b}" for b in cfg.collected_depths}
    assert set(r["rows"]) <= set(r["targets"]) and "d5" in r["rows"]  # d_last is sampled every step
    assert 0 < r["teacher_std"] < 1 and 1 <= r["rankme"] <= 16 and r["images_per_s"] > 0
    assert r["lr"] > 0 and cfg.ema_start <= r["momentum"] < 1 and r["skipped"] == 0
    assert json.loads(RunDir(tmp_path).config_file.read_text())["batch_size"] == 16


def test_bf16_training_steps_run_on_cpu(tmp_path, source):
    out = train(small(precision="bf16"), tmp_path, max_steps=2, source=source, progress=False)
    assert out["step"] == 2 and torch.isfinite(torch.tensor(out["last"]["loss"]))


def test_a_lost_local_disk_resumes_from_the_drive_mirror(tmp_path, source, reference):
    """Colab: local disk is gone after a disconnect; the run continues from the mirrored checkpoint."""
    import shutil

    run, drive = tmp_path / "local", tmp_path / "drive"
    train(small(mirror_dir=str(drive)), run, max_steps=6, source=source, progress=False)
    mirrored = RunDir(drive)
    assert [p.name for p in checkpoint.candidates(mirrored.checkpoint_dir)] == [checkpoint.checkpoint_name(6)]
    assert checkpoint.validate(mirrored.checkpoint_dir / checkpoint.checkpoint_name(6)) is None
    assert mirrored.metrics_file.exists() and mirrored.config_file.exists()
    shutil.rmtree(run)
    out = train(small(mirror_dir=str(drive)), run, max_steps=10, source=source, progress=False)
    assert out["start_step"] == 6 and out["step"] == 10
    assert compare_runs(reference, run) == []  # metrics.jsonl came back from Drive and continued
    assert len(checkpoint.candidates(mirrored.checkpoint_dir)) <= 2
    # TensorBoard's event files were on the lost disk: the resume rewrote steps 1-6 from the mirrored metrics.jsonl
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(RunDir(run).tensorboard_dir))
    events.Reload()
    logged, rows = events.Scalars("train/loss"), read_metrics(run)
    assert [e.step for e in logged] == [r["step"] for r in rows] == list(range(1, 11))
    assert [e.value for e in logged] == pytest.approx([r["loss"] for r in rows], rel=1e-6)
    assert [e.step for e in events.Scalars("perf/memory_gib")] == [7, 8, 9, 10]  # not in a metrics row
