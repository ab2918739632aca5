import pytest
import torch
import torch.nn.functional as F

from cijepa_lite import rng
from cijepa_lite.config import PRESETS, get_config, with_supervision
from cijepa_lite.method.masks import MaskSampler
from cijepa_lite.method.model import CIJEPA

# Trainable parameters (student + predictors; the teacher is frozen), pinned per preset.
# ViT-B/16 encoder: 85,645,056. A predictor: 10,942,464 + L heads of 295,680 (Linear 384->768).
PARAMS = {
    "L200": 96_883_968, "L300": 96_883_968, "R-A.-B05": 99_840_768, "R-A.-B08": 99_840_768,
    "R-U": 241_797_888, "R-A05-B05": 241_797_888, "R-A08-B08": 241_797_888, "R-A05-B08": 241_797_888,
    "R-B05": 241_797_888, "R-B08": 241_797_888, "R-A05-B10": 241_797_888, "R-A05-B08-12": 259_541_760,
    "tiny": 493_760,
}


def count(module):
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


@pytest.mark.parametrize("rid", sorted(PRESETS))
def test_trainable_parameters_are_pinned(rid):
    with torch.device("meta"):
        model = CIJEPA(PRESETS[rid])
    assert count(model) == PARAMS[rid]
    assert count(model.teacher) == 0


@pytest.mark.parametrize("rid,built", [("R-A.-B08", ["d11"]), ("L200", ["d11"]),
                                      ("R-A05-B08", [f"d{i}" for i in range(1, 12)]),
                                      ("R-A05-B08-12", [f"d{i}" for i in range(12)])])
def test_only_predictors_that_can_be_sampled_are_built(rid, built):
    with torch.device("meta"):
        model = CIJEPA(PRESETS[rid])
    assert sorted(model.predictors.keys(), key=lambda k: int(k[1:])) == built


def test_teacher_starts_as_a_copy_and_init_is_seeded(tiny_cfg):
    a, b = CIJEPA(tiny_cfg), CIJEPA(tiny_cfg)
    c = CIJEPA(get_config("tiny", seed=1))
    for (n, p), q in zip(a.student.named_parameters(), a.teacher.parameters()):
        assert torch.equal(p, q), n
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.student.blocks[0].attn.qkv.weight, c.student.blocks[0].attn.qkv.weight)
    # [IJ] init: trunc-normal std 0.02 (cut at +-2 absolute, as I-JEPA's), zero bias, LayerNorm 1/0
    for w in (a.student.blocks[0].mlp.fc1.weight, a.student.patch_embed.proj.weight, a.predictors["d3"].heads.weight):
        assert abs(w.std().item() - 0.02) < 0.001 and abs(w.mean().item()) < 0.001
    assert torch.all(a.student.blocks[0].attn.qkv.bias == 0)
    assert torch.all(a.student.blocks[0].norm1.weight == 1)


def batch(cfg, b=4, step=0):
    g = rng.generator(cfg.seed, rng.MASKS, step)
    images = torch.randn(b, 3, cfg.img_size, cfg.img_size, generator=g)
    context, targets = MaskSampler(cfg)(b, g)
    return images, context, targets


def test_ijepa_special_case_equals_an_independent_ijepa_loss(tiny_cfg):
    """D = {d_last}, no intermediate rows, beta = 1: the loss is I-JEPA's (MSE to layer-normed last state)."""
    cfg = with_supervision(tiny_cfg, "L200")
    model = CIJEPA(cfg)
    images, context, targets = batch(cfg)
    loss, stats = model(images, context, targets, sources=[0])

    # Independent computation: teacher on the full image, student on context, predictor per block.
    B, M, K = targets.shape
    with torch.no_grad():
        t = model.teacher.patch_embed(images)
        for blk in model.teacher.blocks:
            t = blk(t, rope=model.teacher.rope)
        t = F.layer_norm(t, t.shape[-1:])
    expected = 0.0
    pred = model.predictors["d5"]
    s = model.student(images, keep=context)[-1]
    for m in range(M):
        out = pred(s, context, targets[:, m:m + 1])[:, 0, :, 0]  # (B, K, D) on block m alone
        y = torch.stack([t[b, targets[b, m]] for b in range(B)])
        expected = expected + F.mse_loss(out, y) / M
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    assert stats["mse"].shape == (1, 1)


def test_loss_weights_rows_and_depths_and_normalises_by_rows(tiny_cfg):
    model = CIJEPA(tiny_cfg)
    images, context, targets = batch(tiny_cfg)
    sources = [1, 3, 4]
    loss, stats = model(images, context, targets, sources)
    mse = stats["mse"]
    assert mse.shape == (3, tiny_cfg.num_depths)
    w = model.weights
    torch.testing.assert_close(loss.detach(), (w[sources] * mse).sum() / 3)
    # Each sampled row's predictor gets gradient, the others none; the teacher never does.
    loss.backward()
    for key, pred in model.predictors.items():
        has_grad = pred.heads.weight.grad is not None
        assert has_grad == (int(key[1:]) in {tiny_cfg.collected_depths[s] for s in sources}), key
    assert all(p.grad is None for p in model.teacher.parameters())


def test_bf16_autocast_path_runs_on_cpu(tiny_cfg):
    model = CIJEPA(tiny_cfg)
    images, context, targets = batch(tiny_cfg)
    loss32, _ = model(images, context, targets, [0, 2, 4])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss16, stats = model(images, context, targets, [0, 2, 4])
    assert loss16.dtype == torch.float32 and torch.isfinite(loss16)
    assert loss16.item() != loss32.item()  # bf16 matmuls really ran
    assert abs(loss16.item() - loss32.item()) < 0.05 * loss32.item()
    loss16.backward()
    assert model.student.blocks[0].attn.qkv.weight.grad.dtype == torch.float32


@pytest.mark.slow
def test_compiled_parts_equal_eager_and_compile_once_for_every_mask_size():
    """Dynamo captures the graphs inductor would compile (the "eager" backend runs them as captured, fast to test)."""
    from torch._dynamo.backends.registry import lookup_backend

    from cijepa_lite.method.model import compile_parts

    graphs = []

    def counting(gm, example_inputs):
        graphs.append(gm)
        return lookup_backend("eager")(gm, example_inputs)

    torch._dynamo.reset()
    cfg = get_config("tiny", depth=3, intermediate_rows=1, pred_depth=1)  # fewer blocks to trace
    eager, compiled = CIJEPA(cfg), CIJEPA(cfg)
    compile_parts(compiled, backend=counting)
    assert compiled.state_dict().keys() == eager.state_dict().keys()  # checkpoints load either way
    shapes = set()
    for step, sources in [(0, [0, 1]), (3, [1])]:
        images, context, targets = batch(cfg, b=4, step=step)
        shapes.add((context.shape[1], targets.shape[2]))
        expected, _ = eager(images, context, targets, sources)
        loss, _ = compiled(images, context, targets, sources)
        torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
        expected.backward()
        loss.backward()
    assert len(shapes) == 2  # the two steps had different mask lengths
    for (name, p), q in zip(eager.named_parameters(), compiled.parameters()):
        if p.grad is not None:
            torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-6, msg=name)
    assert len(graphs) == 3  # student, teacher, one graph shared by all predictors; no recompilation
