"""The predictors' LayerNorm under autocast: one that saves only its input for backward, also under vmap.

Legend: P predictor width; x is (..., P).

Under torch.func.vmap a LayerNorm whose weights differ per predictor row is split by its batching
rule into a plain normalisation and a batched `y * w + b`, which saves the normalised `y` for the
weight's gradient on top of what the normalisation saves: the stacked predictors kept more
activations than the same predictors run one by one. `AffineLayerNorm` saves the input alone and
recomputes the statistics in backward (torch's LayerNorm kernels forward and back); `torch.autograd.Function.vmap` comes from `generate_vmap_rule`.
It is used under autocast only, so the fp32 path (the CPU demo) keeps torch's own kernel, bit for bit.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


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
        xf, shape = x.float(), x.shape[-1:]
        _, mean, rstd = torch.ops.aten.native_layer_norm(xf, shape, None, None, ctx.eps)  # (..., 1) each, recomputed
        dx, d_weight, d_bias = torch.ops.aten.native_layer_norm_backward(
            grad.float(), xf, shape, mean, rstd, weight.float(), bias.float(), [True, True, True])  # torch's own kernel
        return dx.to(x.dtype), d_weight.to(weight.dtype), d_bias.to(bias.dtype), None


class LeanLayerNorm(nn.LayerNorm):
    """nn.LayerNorm that, inside an autocast region, runs AffineLayerNorm (fp32 output, as autocast gives)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        device = x.device.type
        if torch.amp.is_autocast_available(device) and torch.is_autocast_enabled(device):
            with torch.autocast(device, enabled=False):
                return AffineLayerNorm.apply(x, self.weight, self.bias, self.eps)
        return super().forward(x)
