"""The engine of one process: the optimizer step never waits for the device; accumulation equals one pass."""
import pytest
import torch
from torch.utils.data import Subset

from cijepa_lite.config import get_config
from cijepa_lite.data.sources import Digits
from cijepa_lite.engine import Engine, RunDir, train
from cijepa_lite.engine.distributed import Dist


def small(**overrides):
    base = dict(batch_size=16, base_batch=16, epochs=3, log_every=1, ckpt_minutes=1e9, keep_checkpoints=20)
    return get_config("tiny", **{**base, **overrides})


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
    engine = Engine(cfg, Dist(0, 1, torch.device("meta")), total_steps=10)
    engine.optimizer = _NoSyncOptimizer(engine.optimizer)
    images = torch.empty(4, 3, cfg.img_size, cfg.img_size, device="meta")
    with FlagHiddenSyncs():
        for step in range(2):
            engine.step(step, images)
    assert flagged == []
    assert engine.interval.loss.device.type == "meta"


@pytest.mark.slow  # a whole (short) run
def test_gradient_accumulation_matches_one_pass(tmp_path):
    source = Subset(Digits("train"), range(64))
    train(small(), tmp_path / "one", max_steps=3, source=source, progress=False)
    out = train(small(micro_batch_size=4), tmp_path / "four", max_steps=3, source=source, progress=False)
    assert out["micro_batch"] == 4
    a, b = RunDir(tmp_path / "one").latest(), RunDir(tmp_path / "four").latest()
    for part in ("student", "teacher", "predictors"):
        for key, value in getattr(a, part).items():
            torch.testing.assert_close(value, getattr(b, part)[key], rtol=1e-4, atol=1e-5, msg=f"{part}.{key}")


def test_loader_batches_are_uint8_and_the_step_normalises_them_on_the_device_like_the_float_path():
    """A step on the loader's uint8 batch == a step on the same batch through the old ToTensor + Normalize path."""
    from torchvision import transforms as T

    from cijepa_lite.data.sources import IMAGENET_MEAN, IMAGENET_STD

    cfg = get_config("tiny", batch_size=8, num_workers=0)
    cpu = Dist(rank=0, world=1, device=torch.device("cpu"))
    source = Digits("train", size=cfg.img_size)
    fresh, old = Engine(cfg, cpu, total_steps=10), Engine(cfg, cpu, total_steps=10)
    images, _ = next(iter(fresh.loader(source, 0, 1)))
    assert images.dtype == torch.uint8 and images.shape == (8, 3, cfg.img_size, cfg.img_size)
    to_float = T.Compose([T.ToPILImage(), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    floats = torch.stack([to_float(x) for x in images])  # what the workers used to hand over
    assert torch.equal(fresh.step(0, images), old.step(0, floats))
    for p, q in zip(fresh.model.parameters(), old.model.parameters()):
        assert torch.equal(p, q)
