"""The predictors' LayerNorm under autocast: one that saves only its input for backward, also under vmap.

Legend: P predictor width; x is (..., P).

Under torch.func.vmap a LayerNorm whose weights differ per predictor row is split by its batching
rule into a plain normalisation and a batched `y * w + b`, which saves the normalised `y` for the
weight's gradient on top of what the normalisation saves: the stacked predictors kept more
activations than the same predictors run one by one. `AffineLayerNorm` saves the input alone and
recomputes `y` in backward; `torch.autograd.Function.vmap` comes from `generate_vmap_rule`.
It is used under autocast only, so the fp32 path (the CPU demo) keeps torch's own kernel, bit for bit.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _normalised(x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(x - mean) * rstd over the last dim in fp32, and rstd (..., 1)."""
    xf = x.float()
    mean = xf.mean(-1, keepdim=True)  # (..., 1)
    rstd = torch.rsqrt(xf.var(-1, unbiased=False, keepdim=True) + eps)  # (..., 1)
    return (xf - mean) * rstd, rstd


class AffineLayerNorm(torch.autograd.Function):
    """layer_norm(x) * w + b in fp32, saving only x, w and b (the normalised x is recomputed in backward)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
        return F.layer_norm(x.float(), x.shape[-1:], weight.float(), bias.float(), eps)  # (..., P)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, bias, eps = inputs
        ctx.save_for_backward(x, weight, bias)
        ctx.eps = eps

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight, bias = ctx.saved_tensors
        y, rstd = _normalised(x, ctx.eps)  # (..., P), (..., 1)
        g = grad.float()
        dims = tuple(range(g.dim() - 1))
        d_weight, d_bias = (g * y).sum(dims), g.sum(dims)  # (P,), (P,)
        gy = g * weight.float()  # (..., P)
        dx = rstd * (gy - gy.mean(-1, keepdim=True) - y * (gy * y).mean(-1, keepdim=True))  # (..., P)
        return dx.to(x.dtype), d_weight.to(weight.dtype), d_bias.to(bias.dtype), None


class LeanLayerNorm(nn.LayerNorm):
    """nn.LayerNorm that, inside an autocast region, runs AffineLayerNorm (fp32 output, as autocast gives)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        device = x.device.type
        if torch.amp.is_autocast_available(device) and torch.is_autocast_enabled(device):
            with torch.autocast(device, enabled=False):
                return AffineLayerNorm.apply(x, self.weight, self.bias, self.eps)
        return super().forward(x)
