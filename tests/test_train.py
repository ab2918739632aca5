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

from cijepa_lite import checkpoint, sampler
from cijepa_lite.config import get_config
from cijepa_lite.data import Digits
from cijepa_lite.model import CIJEPA
from cijepa_lite.monitors import read_metrics
from cijepa_lite.train import saved_config, train

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def source():
    return Subset(Digits("train"), range(64))


def small(**overrides):
    """tiny on 64 images: batch 16 -> 4 steps per epoch, 3 epochs = 12 steps."""
    base = dict(batch_size=16, base_batch=16, epochs=3, log_every=1, ckpt_minutes=1e9, keep_checkpoints=20)
    return get_config("tiny", **{**base, **overrides})


def final_state(run_dir):
    state, _ = checkpoint.load_latest(Path(run_dir) / "checkpoints")
    return state


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
    la = [r["loss"] for r in read_metrics(Path(a) / "metrics.jsonl")]
    lb = [r["loss"] for r in read_metrics(Path(b) / "metrics.jsonl")]
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
    assert first["step"] == k and first["checkpoint"].endswith(f"step-{k:08d}.pt")
    second = train(small(), tmp_path, max_steps=10, source=source, progress=False)
    assert second["start_step"] == k and second["step"] == 10
    assert compare_runs(reference, tmp_path) == []
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == list(range(1, 11))


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
    metrics = killed / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 5:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    killed_at = len(read_metrics(metrics))
    rerun = subprocess.run(cmd[:4] + ["--out", str(killed)] + cmd[4:], cwd=ROOT, env=env, check=True,
                           capture_output=True, text=True, timeout=600)
    summary = json.loads(rerun.stdout)
    assert 0 < summary["start_step"] <= killed_at < 10 and summary["step"] == 10
    assert compare_runs(whole, killed) == []


def test_every_sample_is_seen_once_per_epoch_across_a_resume():
    n, batch = 70, 16  # 4 steps per epoch; 6 samples dropped per epoch
    for k in (1, 2, 3):
        before = [i for b in sampler.StepBatches(n, batch, 0, 0, k) for i, _ in b]
        after = [i for b in sampler.StepBatches(n, batch, 0, k, 4) for i, _ in b]
        assert len(before + after) == len(set(before + after)) == 64
    whole = list(sampler.StepBatches(n, batch, 0, 0, 8))
    halves = [list(sampler.StepBatches(n, batch, 0, 0, 8, rank=r, world=2)) for r in range(2)]
    for step in range(8):  # two ranks see exactly one rank's batch, with the same augmentation seeds
        assert halves[0][step] + halves[1][step] == whole[step]
    epochs = [{i for b in whole[e * 4:(e + 1) * 4] for i, _ in b} for e in range(2)]
    assert epochs[0] != epochs[1]  # a new order each epoch


def test_non_finite_loss_skips_the_update_and_a_run_of_them_stops(tmp_path, source, monkeypatch):
    train(small(), tmp_path, max_steps=3, source=source, progress=False)
    before = final_state(tmp_path)
    original = CIJEPA.forward

    def poisoned(self, *args, **kwargs):
        loss, stats = original(self, *args, **kwargs)
        return loss * float("nan"), stats

    monkeypatch.setattr(CIJEPA, "forward", poisoned)
    with pytest.warns(UserWarning, match="non-finite loss in 1 of the steps"):
        train(small(), tmp_path, max_steps=4, source=source, progress=False)
    after = final_state(tmp_path)
    assert after["step"] == 4
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
    assert out["step"] == 3 and saved_config(tmp_path).log_every == 2
    out = train(small(epochs=4), tmp_path, max_steps=4, source=source, progress=False, allow_config_change=True)
    assert out["total_steps"] == 16


def test_gradient_accumulation_matches_one_pass(tmp_path, source):
    train(small(), tmp_path / "one", max_steps=3, source=source, progress=False)
    out = train(small(micro_batch_size=4), tmp_path / "four", max_steps=3, source=source, progress=False)
    assert out["micro_batch"] == 4
    a, b = final_state(tmp_path / "one"), final_state(tmp_path / "four")
    for part in ("student", "teacher", "predictors"):
        for key in a[part]:
            torch.testing.assert_close(a[part][key], b[part][key], rtol=1e-4, atol=1e-5, msg=f"{part}.{key}")


def test_metrics_log_rows_and_depths(tmp_path, source):
    seen = []
    train(small(log_every=2), tmp_path, max_steps=4, source=source, progress=False, on_log=seen.append)
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in rows] == [2, 4] and seen == rows
    r = rows[-1]
    cfg = small()
    assert set(r["targets"]) == {f"d{b}" for b in cfg.collected_depths}
    assert set(r["rows"]) <= set(r["targets"]) and "d5" in r["rows"]  # d_last is sampled every step
    assert 0 < r["teacher_std"] < 1 and 1 <= r["rankme"] <= 16 and r["images_per_s"] > 0
    assert r["lr"] > 0 and cfg.ema_start <= r["momentum"] < 1 and r["skipped"] == 0
    assert json.loads((tmp_path / "config.json").read_text())["batch_size"] == 16


def test_bf16_training_steps_run_on_cpu(tmp_path, source):
    out = train(small(precision="bf16"), tmp_path, max_steps=2, source=source, progress=False)
    assert out["step"] == 2 and torch.isfinite(torch.tensor(out["last"]["loss"]))


def test_a_lost_local_disk_resumes_from_the_drive_mirror(tmp_path, source, reference):
    """Colab: local disk is gone after a disconnect; the run continues from the mirrored checkpoint."""
    import shutil

    run, drive = tmp_path / "local", tmp_path / "drive"
    train(small(mirror_dir=str(drive)), run, max_steps=6, source=source, progress=False)
    assert checkpoint.validate(drive / "checkpoints" / "step-00000006.pt") is None
    assert (drive / "metrics.jsonl").exists() and (drive / "config.json").exists()
    shutil.rmtree(run)
    out = train(small(mirror_dir=str(drive)), run, max_steps=10, source=source, progress=False)
    assert out["start_step"] == 6 and out["step"] == 10
    assert compare_runs(reference, run) == []  # metrics.jsonl came back from Drive and continued
    assert len(checkpoint.candidates(drive / "checkpoints")) <= 2


class _NoSyncOptimizer:
    """Stands in for fused AdamW (which has no meta kernel); checks the skip flag stays a device tensor."""

    def __init__(self, optimizer):
        self.param_groups, self.found_inf = optimizer.param_groups, None

    def step(self):
        assert isinstance(self.found_inf, torch.Tensor) and self.found_inf.device.type == "meta"

    def zero_grad(self, set_to_none=True):
        pass


def test_a_step_never_reads_device_values_back():
    """On the meta device reading a value (item, bool, tolist, nonzero) raises; a mode also flags the
    hidden syncs that meta cannot see: indexing with a Python list and torch.tensor onto the device."""
    from torch.overrides import TorchFunctionMode

    from cijepa_lite.bench import make_engine
    from cijepa_lite.distributed import Dist

    flagged = []

    class FlagHiddenSyncs(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func is torch.Tensor.__getitem__ and args[0].device.type == "meta" and isinstance(args[1], list):
                flagged.append("list index")
            if func is torch.tensor and str(kwargs.get("device", "cpu")) != "cpu":
                flagged.append("torch.tensor(device=...)")
            return func(*args, **kwargs)

    cfg = small(batch_size=4, micro_batch_size=2)  # two micro-batches
    loop, acc = make_engine(cfg, Dist(0, 1, torch.device("meta")), Path("unused"))
    loop.optimizer = _NoSyncOptimizer(loop.optimizer)
    images = torch.empty(4, 3, cfg.img_size, cfg.img_size, device="meta")
    with FlagHiddenSyncs():
        for step in range(2):
            loop.step(step, images, acc)
    assert flagged == []
    assert acc.loss.device.type == "meta"
