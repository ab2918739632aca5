"""Predictor pathways P_s and their heads H_{s->t} (SPEC 3).

Legend: B batch, M target blocks, N_ctx context tokens, N_tgt tokens per target block,
D encoder width, P predictor width, L collected depths.

Each source depth s has its own narrow ViT P_s (never shared). For each target block m it reads
[context tokens at depth s || mask tokens at block m's positions] and returns the mask-token
outputs h_{s,m}; the L heads H_{s->t}, one Linear(P -> D) per target depth t, are fused into a
single Linear(P -> L*D) whose output slice t is exactly head t (tested against separate heads).

The S sampled predictors of a step run as one call (`run_stacked`): their weights are stacked on a
new leading dim (a differentiable copy, so each predictor keeps its own parameters, state-dict keys
and gradients) and torch.func.vmap runs one predictor's code over it (tested equal to separate calls).
Under vmap a Linear's bias add escapes autocast (a known PyTorch limitation), which left every
predictor layer and its attention in fp32; so inside an autocast region the stacked weights are cast
to the autocast dtype first, exactly as autocast casts them for a single predictor (LayerNorm
parameters stay fp32, as autocast leaves them).
"""
from __future__ import annotations

import warnings

import torch
from timm.layers import trunc_normal_
from torch import nn
from torch.func import functional_call, vmap

from ..config import Config
from .encoder import gather_tokens, make_blocks, rope_table, sincos_table
from .norm import LeanLayerNorm


def norm(dim: int, **kwargs) -> LeanLayerNorm:
    """[IJ] LayerNorm eps 1e-6, saving only its input under autocast (kwargs: timm's device/dtype)."""
    return LeanLayerNorm(dim, eps=1e-6, **kwargs)


class Predictor(nn.Module):
    """P_s with its bank of heads {H_{s->t}}_{t in D}."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.num_depths = cfg.num_depths
        self.embed = nn.Linear(cfg.embed_dim, cfg.pred_dim)  # [IJ] predictor_embed
        self.mask_token = nn.Parameter(torch.zeros(1, 1, cfg.pred_dim))  # one token for all target positions
        # LeanLayerNorm: under vmap, torch's LayerNorm would save a second activation per norm (see norm.py).
        self.blocks = make_blocks(cfg.pred_dim, cfg.pred_depth, cfg.pred_num_heads, cfg.mlp_ratio, norm_layer=norm)
        self.norm = norm(cfg.pred_dim)
        self.heads = nn.Linear(cfg.pred_dim, cfg.num_depths * cfg.embed_dim)  # H_{s->t} for all t, fused
        head_dim = cfg.pred_dim // cfg.pred_num_heads
        self.sincos = cfg.pos_embed == "sincos"  # [IJ] the predictor's own fixed sin-cos positions, added once
        table = sincos_table(cfg.grid, cfg.pred_dim) if self.sincos else rope_table(cfg.grid, head_dim, cfg.rope_base)
        self.register_buffer("rope", table, persistent=False)  # (N, 2*hd) RoPE, or (N, P) sin-cos
        trunc_normal_(self.mask_token, std=0.02)  # [IJ]; Linear/LayerNorm init is vit.init_weights

    def forward(self, z: torch.Tensor, context: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Predictions of every collected teacher depth on every target block.

        Args:
            z: (B, N_ctx, D) student context tokens at this source depth.
            context: (B, N_ctx) their flat patch indices.
            targets: (B, M, N_tgt) flat patch indices of the target blocks.
        Returns:
            (B, M, N_tgt, L, D): entry [..., t, :] is H_{s->t}(h_{s,m}).
        """
        B, M, N_tgt = targets.shape
        N_ctx = context.shape[1]
        x = self.embed(z).repeat_interleave(M, dim=0)  # (B*M, N_ctx, P): one copy per target block
        queries = self.mask_token.expand(B * M, N_tgt, -1)  # (B*M, N_tgt, P)
        pos = torch.cat([context.repeat_interleave(M, dim=0), targets.flatten(0, 1)], dim=1)  # (B*M, N_ctx+N_tgt)
        if self.sincos:  # [IJ] context tokens and mask tokens each get their position added, then no RoPE
            x = x + gather_tokens(self.rope, pos[:, :N_ctx])  # (B*M, N_ctx, P)
            queries = queries + gather_tokens(self.rope, pos[:, N_ctx:])  # (B*M, N_tgt, P)
        x = torch.cat([x, queries.to(x.dtype)], dim=1)  # (B*M, N_ctx + N_tgt, P)
        rope = None if self.sincos else gather_tokens(self.rope, pos).unsqueeze(1)  # (B*M, 1, N_ctx+N_tgt, 2*hd)
        for block in self.blocks:
            x = block(x, rope=rope)
        h = self.norm(x[:, N_ctx:])  # (B*M, N_tgt, P): h_{s,m}, mask-token outputs only
        return self.heads(h).view(B, M, N_tgt, self.num_depths, -1)  # (B, M, N_tgt, L, D)


def stack_params(predictors: list[Predictor]) -> dict[str, torch.Tensor]:
    """Each parameter of the predictors stacked on a new dim 0: name -> (S, *shape); gradients flow back."""
    names = [name for name, _ in predictors[0].named_parameters()]
    return {n: torch.stack([p.get_parameter(n) for p in predictors]) for n in names}  # (S, *shape) each


def autocast_params(template: Predictor, params: dict[str, torch.Tensor], device_type: str) -> dict[str, torch.Tensor]:
    """`params` with every non-LayerNorm weight in the autocast dtype when autocast is on; else as they are."""
    if not (torch.amp.is_autocast_available(device_type) and torch.is_autocast_enabled(device_type)):
        return params
    dtype = torch.get_autocast_dtype(device_type)
    norms = {f"{m_name}.{p_name}" for m_name, m in template.named_modules() if isinstance(m, nn.LayerNorm)
             for p_name, _ in m.named_parameters()}
    return {n: p if n in norms else p.to(dtype) for n, p in params.items()}  # (S, *shape) each


def run_stacked(template: Predictor, params: dict[str, torch.Tensor], z: torch.Tensor, context: torch.Tensor,
                targets: torch.Tensor) -> torch.Tensor:
    """S predictors with `template`'s architecture and buffers and the weights `params`, in one vmapped call.

    Args:
        params: from `stack_params`, name -> (S, *shape).
        z: (S, B, N_ctx, D) the student's context tokens at each source depth.
        context, targets: (B, N_ctx) and (B, M, N_tgt), shared by the S rows.
    Returns:
        (S, B, M, N_tgt, L, D): row i equals predictor i's own forward.
    """
    def one(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(template, p, (x, context, targets))

    with warnings.catch_warnings():
        # On CPU vmap runs SDPA slice by slice (no batching rule yet), which is what separate calls do anyway.
        warnings.filterwarnings("ignore", message="There is a performance drop because we have not yet implemented")
        return vmap(one)(autocast_params(template, params, z.device.type), z)  # (S, B, M, N_tgt, L, D)
