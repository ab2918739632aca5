"""An out-of-memory error inside a step halves the micro-batch and redoes the step from the same state."""
import pytest
import torch
from torch.utils.data import Subset

from cijepa_lite.config import get_config
from cijepa_lite.data.sources import Digits
from cijepa_lite.engine import RunDir, read_metrics, train
from cijepa_lite.engine.memory import smaller_micro_batch
from cijepa_lite.method.model import CIJEPA


def test_smaller_micro_batch_halves_to_a_divisor():
    assert smaller_micro_batch(16, 16) == 8 and smaller_micro_batch(12, 12) == 6 and smaller_micro_batch(12, 6) == 3
    assert smaller_micro_batch(10, 5) == 2 and smaller_micro_batch(16, 1) is None


def test_a_simulated_oom_halves_the_micro_batch_and_the_update_matches_the_unsplit_one(tmp_path, monkeypatch):
    source = Subset(Digits("train"), range(64))
    cfg = get_config("tiny", batch_size=16, base_batch=16, epochs=1, log_every=1, ckpt_minutes=1e9,
                     knn_every_epochs=None)
    train(cfg, tmp_path / "whole", max_steps=2, source=source, progress=False)
    original, calls = CIJEPA.forward, []

    def limited(self, images, *args, **kwargs):  # a fake allocator limit: more than 8 images do not fit
        calls.append(images.shape[0])
        if images.shape[0] > 8:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return original(self, images, *args, **kwargs)

    monkeypatch.setattr(CIJEPA, "forward", limited)
    with pytest.warns(UserWarning, match="out of memory at step 0 with micro-batch 16: redoing the step with 8"):
        out = train(cfg, tmp_path / "split", max_steps=2, source=source, progress=False)
    assert out["step"] == 2 and calls == [16, 8, 8, 8, 8]  # one failed pass, then two halves per step
    rows = read_metrics(tmp_path / "split")
    assert [(r["micro_batch"], r["oom_halvings"]) for r in rows] == [(8, 1), (8, 1)]
    whole, split = RunDir(tmp_path / "whole").latest(), RunDir(tmp_path / "split").latest()
    for part in ("student", "teacher", "predictors"):
        a, b = getattr(whole, part), getattr(split, part)
        worst = max((a[k] - b[k]).abs().max().item() for k in a if a[k].is_floating_point())
        assert worst <= 1e-6, f"{part} differs by {worst}"


def test_out_of_memory_at_a_micro_batch_of_1_stops_the_run_with_run_failed(tmp_path, monkeypatch):
    from cijepa_lite.engine import RunFailed

    def never_fits(self, images, *args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(CIJEPA, "forward", never_fits)
    cfg = get_config("tiny", batch_size=4, base_batch=4, epochs=1, ckpt_minutes=1e9, knn_every_epochs=None)
    with pytest.warns(UserWarning, match="redoing the step with 1"), \
            pytest.raises(RunFailed, match="out of memory at step 0 even with a micro-batch of 1"):
        train(cfg, tmp_path, max_steps=1, source=Subset(Digits("train"), range(8)), progress=False)
