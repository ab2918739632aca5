"""The write-up's linear probe (SPEC 7): recipe, schedule, transforms, teacher pooling, per-depth heads, seeds."""
import pytest
import torch
from torch.utils.data import Subset

from cijepa_lite import evaluate
from cijepa_lite.config import get_config
from cijepa_lite.data.sources import Digits, probe_train_transform, probe_val_transform
from cijepa_lite.engine import load_encoders
from cijepa_lite.engine.train import train
from cijepa_lite.eval import features, probe
from cijepa_lite.eval.probe import Heads, ProbeRecipe, epoch_batches, fit_heads, linear_probe, probe_lr
from cijepa_lite.evaluate import evaluate_run
from cijepa_lite.method.encoder import VisionTransformer


def small_digits(split, img_size, n_train=200, n_val=96):
    """A slice of the digits (keeps the probe tests to seconds); sources need a `classes` list."""
    subset = Subset(Digits(split, img_size), range(n_train if split == "train" else n_val))
    subset.classes = Digits.classes
    return subset


@pytest.fixture(autouse=True)
def fewer_digits(monkeypatch):
    monkeypatch.setattr(evaluate, "open_source", lambda dataset, split, size, data_dir=None: small_digits(split, size))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny run after 3 steps: its EMA teacher differs from its student."""
    run = tmp_path_factory.mktemp("run")
    cfg = get_config("tiny", batch_size=16, base_batch=16, epochs=1, log_every=1, ckpt_minutes=1e9)
    train(cfg, run, max_steps=3, source=Subset(Digits("train"), range(64)), progress=False)
    return run


class SpyAdamW(torch.optim.AdamW):
    """AdamW that records its hyperparameters at every step."""

    instances = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen = []
        SpyAdamW.instances.append(self)

    def step(self, closure=None):
        g = self.param_groups[0]
        self.seen.append((g["lr"], g["weight_decay"]))
        return super().step(closure)


def test_recipe_defaults_are_the_writeups():
    r = ProbeRecipe()
    assert (r.epochs, r.lr, r.weight_decay, r.batch_size, r.val_batch_size) == (10, 3e-3, 0.0, 256, 256)


def test_lr_decays_linearly_per_step_from_peak_to_zero():
    r, total = ProbeRecipe(), 50
    lrs = [probe_lr(r, s, total) for s in range(total + 1)]
    assert lrs[0] == 3e-3 and lrs[-1] == 0.0 and lrs[total // 2] == pytest.approx(1.5e-3)
    assert all(a > b for a, b in zip(lrs, lrs[1:]))


@pytest.mark.slow
def test_probe_trains_adamw_on_teacher_patch_means_with_the_recipe_transforms(run_dir, monkeypatch):
    """AdamW (lr 3e-3 decayed per step to 0, wd 0), probe transforms, mean of the TEACHER's last-block tokens."""
    SpyAdamW.instances.clear()
    monkeypatch.setattr(torch.optim, "AdamW", SpyAdamW)
    used, transforms = [], []
    real_pooled, real_loader = probe.pooled, features.loader
    monkeypatch.setattr(probe, "pooled", lambda enc, x, d: used.append(enc) or real_pooled(enc, x, d))
    recording_loader = lambda src, t, *a, **k: transforms.append(t) or real_loader(src, t, *a, **k)  # noqa: E731
    monkeypatch.setattr(probe, "loader", recording_loader)  # the train split's
    monkeypatch.setattr(features, "loader", recording_loader)  # the val split's (through extract)
    record = evaluate_run(run_dir, probe="recipe", recipe=ProbeRecipe(epochs=2, batch_size=64), progress=False,
                          device=torch.device("cpu"))

    (opt,) = SpyAdamW.instances
    steps = 2 * -(-200 // 64)  # the last partial batch of an epoch is kept
    assert len(opt.seen) == steps == record["probe"]["steps"]
    assert opt.seen[0] == (3e-3, 0.0) and opt.seen[-1][0] == pytest.approx(3e-3 / steps)
    assert record["probe"]["final_lr"] == 0.0
    assert [repr(t) for t in transforms] == [repr(probe_train_transform(32)), repr(probe_val_transform(32))]

    encoders, _ = load_encoders(run_dir)
    teacher, student = encoders["teacher"].state_dict(), encoders["student"].state_dict()
    key = "blocks.5.mlp.fc2.weight"
    assert not torch.equal(teacher[key], student[key])  # else the check below would prove nothing
    assert used and all(torch.equal(e.state_dict()[key], teacher[key]) for e in used)
    assert set(record["per_depth"]) == set() and 0 <= record["top1"] <= 100
    assert record["probe"] | {"name": "recipe", "encoder": "teacher"} == record["probe"]


def test_per_depth_heads_learn_exactly_what_separate_heads_learn(tiny_cfg):
    """One pass for K depths = K separate probes: same init per depth, same gradients, same result."""
    enc = features.prepare_encoder(VisionTransformer(tiny_cfg), torch.device("cpu"))
    source = small_digits("train", 32, n_train=96)
    recipe = ProbeRecipe(epochs=2, batch_size=32)
    batches = [b for e in range(2) for b in epoch_batches(len(source), 32, 7, e)]
    all_depths, last = tiny_cfg.collected_depths, (tiny_cfg.depth - 1,)
    fitted = {}
    for depths in (all_depths, last):
        heads = Heads(depths, tiny_cfg.embed_dim, 10, seed=7)
        data = features.loader(source, probe_train_transform(32), batches, torch.device("cpu"))
        fitted[depths] = (heads, fit_heads(heads, enc, data, depths, recipe, 3, progress=False))
    (many, acc_many), (one, acc_one) = fitted[all_depths], fitted[last]
    assert many.weight.shape == (len(all_depths), 10, tiny_cfg.embed_dim) and len(acc_many) == len(all_depths)
    torch.testing.assert_close(many.weight[-1], one.weight[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(many.bias[-1], one.bias[0], rtol=1e-5, atol=1e-6)
    assert acc_many[-1] == acc_one[0]
    assert not torch.allclose(many.weight[0], many.weight[-1])  # heads are independent


@pytest.mark.slow
def test_per_depth_probe_returns_one_accuracy_per_block(run_dir):
    record = evaluate_run(run_dir, probe="recipe", per_depth=True, recipe=ProbeRecipe(epochs=1), progress=False)
    cfg = get_config("tiny")
    assert list(record["per_depth"]) == [f"d{d}" for d in range(cfg.depth)]  # every block, not only D
    assert all(0 <= v <= 100 for v in record["per_depth"].values())
    assert record["top1"] == record["per_depth"][f"d{cfg.depth - 1}"]


def test_data_order_and_augmentation_seeds_derive_from_the_seed():
    a0, a1, b0 = epoch_batches(100, 32, 0, 0), epoch_batches(100, 32, 0, 1), epoch_batches(100, 32, 1, 0)
    assert [len(b) for b in a0] == [32, 32, 32, 4]
    assert sorted(i for b in a0 for i, _ in b) == list(range(100))
    assert a0 == epoch_batches(100, 32, 0, 0)
    assert [i for b in a0 for i, _ in b] != [i for b in a1 for i, _ in b]
    assert [i for b in a0 for i, _ in b] != [i for b in b0 for i, _ in b]
    assert len({s for b in a0 + a1 for _, s in b}) == 200  # every sample view has its own seed


def test_the_probe_is_reproducible_and_seed_dependent(tiny_cfg):
    enc = VisionTransformer(tiny_cfg)
    train_src, val_src = small_digits("train", 32, n_train=64), small_digits("val", 32, n_val=32)
    recipe = ProbeRecipe(epochs=1, batch_size=16)
    run = lambda seed: linear_probe(enc, train_src, val_src, 32, depths=(5,), recipe=recipe, seed=seed,  # noqa: E731
                                    progress=False)
    a, b, c = run(0), run(0), run(1)
    assert a["top1"] == b["top1"] and a["train_top1"] == b["train_top1"]
    assert (a["top1"], a["train_top1"]) != (c["top1"], c["train_top1"])
