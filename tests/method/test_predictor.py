import torch
from torch import nn

from cijepa_lite import rng
from cijepa_lite.config import get_config
from cijepa_lite.method.masks import MaskSampler
from cijepa_lite.method.model import CIJEPA


def inputs(cfg, b=3):
    g = rng.generator(0, 1, 0)
    context, targets = MaskSampler(cfg)(b, g)
    z = torch.randn(b, context.shape[1], cfg.embed_dim, generator=g)
    return z, context, targets


def test_fused_heads_equal_a_bank_of_separate_heads():
    cfg = get_config("tiny")
    pred = CIJEPA(cfg).predictors["d5"]
    z, context, targets = inputs(cfg)
    out = pred(z, context, targets)  # (B, M, N_tgt, L, D)
    assert out.shape == (*targets.shape, cfg.num_depths, cfg.embed_dim)
    # Recompute h_{s,m} by hand and apply L separate Linear(P -> D) heads cut from the fused weight.
    captured = {}
    pred.norm.register_forward_hook(lambda m, i, o: captured.setdefault("h", o))
    pred(z, context, targets)
    h = captured["h"]
    for t in range(cfg.num_depths):
        head = nn.Linear(cfg.pred_dim, cfg.embed_dim)
        head.weight.data = pred.heads.weight[t * cfg.embed_dim:(t + 1) * cfg.embed_dim]
        head.bias.data = pred.heads.bias[t * cfg.embed_dim:(t + 1) * cfg.embed_dim]
        torch.testing.assert_close(out[:, :, :, t].flatten(0, 1), head(h))


def test_each_target_block_is_predicted_independently():
    """Running M blocks together equals running each block alone ([context || block m's mask tokens])."""
    cfg = get_config("tiny")
    pred = CIJEPA(cfg).predictors["d2"]
    z, context, targets = inputs(cfg)
    together = pred(z, context, targets)
    for m in range(targets.shape[1]):
        alone = pred(z, context, targets[:, m:m + 1])[:, 0]
        torch.testing.assert_close(together[:, m], alone, rtol=1e-4, atol=1e-5)


def test_predictors_are_separate_modules():
    cfg = get_config("tiny")
    model = CIJEPA(cfg)
    a, b = model.predictors["d1"], model.predictors["d5"]
    assert a.embed.weight.data_ptr() != b.embed.weight.data_ptr()
    assert not torch.equal(a.embed.weight, b.embed.weight)
    assert a.mask_token.shape == (1, 1, cfg.pred_dim)


def test_batched_predictors_equal_separate_predictors_and_keep_their_own_gradients():
    """run_stacked over the stacked weights of S predictors == each predictor's own forward and backward."""
    from cijepa_lite.method.predictor import run_stacked, stack_params

    cfg = get_config("tiny")
    model = CIJEPA(cfg)
    keys = ["d1", "d3", "d5"]
    twins = CIJEPA(cfg)  # same seed: identical weights, run separately
    z, context, targets = inputs(cfg, b=3)
    zs = torch.stack([z, 2 * z, -z])  # (S, B, N_ctx, D): a different input per row
    batched = run_stacked(model.predictors["d2"], stack_params([model.predictors[k] for k in keys]), zs, context, targets)
    separate = torch.stack([twins.predictors[k](x, context, targets) for k, x in zip(keys, zs)])
    torch.testing.assert_close(batched, separate, rtol=1e-5, atol=1e-6)
    batched.square().mean().backward()
    separate.square().mean().backward()
    for k in keys:
        for (name, p), q in zip(model.predictors[k].named_parameters(), twins.predictors[k].parameters()):
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-7, msg=f"{k}.{name}")
    assert model.predictors["d2"].embed.weight.grad is None  # the template lends only its code and buffers


def test_batched_predictors_under_bf16_autocast_equal_separate_ones_and_output_bf16():
    """Inside autocast the stacked weights are cast as autocast casts a single predictor's: same dtype, same values."""
    from cijepa_lite.method.predictor import run_stacked, stack_params

    cfg = get_config("tiny")
    model = CIJEPA(cfg)
    keys = ["d1", "d3", "d5"]
    z, context, targets = inputs(cfg, b=3)
    zs = torch.stack([z, 2 * z, -z])  # (S, B, N_ctx, D)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        batched = run_stacked(model.predictors["d2"], stack_params([model.predictors[k] for k in keys]), zs, context,
                              targets)
        separate = torch.stack([model.predictors[k](x, context, targets) for k, x in zip(keys, zs)])
    assert batched.dtype == separate.dtype == torch.bfloat16
    torch.testing.assert_close(batched.float(), separate.float(), rtol=2e-2, atol=2e-2)


def test_lean_layer_norm_under_vmap_equals_torch_layer_norm_forward_and_backward():
    """AffineLayerNorm (saves only its input) == F.layer_norm per row, values and all three gradients."""
    from torch.func import vmap

    from cijepa_lite.method.norm import AffineLayerNorm

    g = torch.Generator().manual_seed(0)
    xs, ws, bs = (torch.randn(*s, generator=g, requires_grad=True) for s in [(3, 5, 16), (3, 16), (3, 16)])
    out = vmap(lambda x, w, b: AffineLayerNorm.apply(x, w, b, 1e-6))(xs, ws, bs)  # (3, 5, 16)
    ref = torch.stack([nn.functional.layer_norm(xs[i], (16,), ws[i], bs[i], 1e-6) for i in range(3)])
    torch.testing.assert_close(out, ref)
    grad = torch.randn(out.shape, generator=g)
    for a, b in zip(torch.autograd.grad(out, (xs, ws, bs), grad), torch.autograd.grad(ref, (xs, ws, bs), grad)):
        torch.testing.assert_close(a, b)
