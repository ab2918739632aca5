"""Analytic training FLOPs per image: a function of the config and the batch's actual mask sizes.

Counts what `torch.utils.flop_counter.FlopCounterMode` counts (matmuls, convolutions, the two
attention products; 2 FLOPs per multiply-add) and nothing else: norms, GELU, RoPE, gathers and the
loss are memory-bound extras that the utilisation figure leaves out, as is usual (tested equal to
FlopCounterMode on a model whose attention is explicit).

Legend: N patches, N_ctx context tokens, N_tgt tokens per target block, M target blocks,
D encoder width, P predictor width, L collected depths, S sampled source rows.

One training step per image:
  teacher: forward of the encoder on all N tokens (no grad);
  student: forward + backward (2x forward) on N_ctx tokens, except that the patch embedding needs
           no input gradient (its input is the image), so its backward is 1x forward;
  each of the S predictors: forward + backward of embed (N_ctx), M runs of its blocks on
           N_ctx + N_tgt tokens, and its L fused heads on M * N_tgt tokens.
"""
from __future__ import annotations

from .config import Config


def linear_flops(tokens: float, fan_in: int, fan_out: int) -> float:
    """One Linear (or patchify conv) applied to `tokens` tokens."""
    return 2.0 * tokens * fan_in * fan_out


def block_flops(width: int, tokens: float, mlp_ratio: float) -> float:
    """Forward FLOPs of one pre-LN block: qkv, projection, MLP, and the QK^T and AV products."""
    hidden = int(width * mlp_ratio)
    dense = linear_flops(tokens, width, 3 * width) + linear_flops(tokens, width, width)
    mlp = linear_flops(tokens, width, hidden) + linear_flops(tokens, hidden, width)
    attention = 2 * (2.0 * tokens * tokens * width)  # QK^T and AV, all heads together
    return dense + mlp + attention


def encoder_flops(cfg: Config, tokens: float) -> tuple[float, float]:
    """(patch embedding, blocks) forward FLOPs of the encoder when its blocks see `tokens` tokens.

    The patch embedding always runs on all N patches (the context is gathered after it).
    """
    patch = linear_flops(cfg.num_patches, cfg.in_chans * cfg.patch_size**2, cfg.embed_dim)
    return patch, cfg.depth * block_flops(cfg.embed_dim, tokens, cfg.mlp_ratio)


def predictor_flops(cfg: Config, n_ctx: float, n_tgt: float) -> float:
    """Forward FLOPs of one predictor P_s with its L fused heads, over all M target blocks."""
    M, P = cfg.num_targets, cfg.pred_dim
    embed = linear_flops(n_ctx, cfg.embed_dim, P)  # once per image, then repeated per block
    blocks = M * cfg.pred_depth * block_flops(P, n_ctx + n_tgt, cfg.mlp_ratio)
    heads = linear_flops(M * n_tgt, P, cfg.num_depths * cfg.embed_dim)
    return embed + blocks + heads


def step_flops(cfg: Config, n_ctx: float, n_tgt: float, sources: int | None = None) -> dict[str, float]:
    """Training FLOPs per image of one step, by part, and their sum under "train".

    Args:
        cfg: the run's config (model sizes, M, L).
        n_ctx: context tokens per image (after the batch's cut to its shortest mask).
        n_tgt: tokens per target block.
        sources: |S| predictors run per step; default intermediate_rows + 1.
    """
    S = cfg.intermediate_rows + 1 if sources is None else sources
    t_patch, t_blocks = encoder_flops(cfg, cfg.num_patches)
    s_patch, s_blocks = encoder_flops(cfg, n_ctx)
    pred = S * predictor_flops(cfg, n_ctx, n_tgt)
    parts = {
        "teacher": t_patch + t_blocks,
        "student": 2 * s_patch + 3 * s_blocks,  # no input gradient for the patch embedding
        "predictors": 3 * pred,
    }
    parts["train"] = sum(parts.values())
    return parts

