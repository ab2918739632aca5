"""The cI-JEPA objective (SPEC 4): row weights, source-depth sampling, teacher targets, the loss.

Legend: B batch, M target blocks, N_tgt tokens per block, D width, L = |D| collected depths,
S sampled source rows. Depth arguments are positions in D (0 .. L-1); position L-1 is d_last.

    L = 1/(M|S|) sum_m sum_{s in S} sum_{t in D} w[s,t] * MSE(H_{s->t}(P_s(z_s^C, C, T_m)), y_t[T_m])
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .encoder import gather_tokens


def depth_weights(num_depths: int, alpha: float | None = None, beta: float | None = None) -> torch.Tensor:
    """w[s, t] (L, L): row = source position in D, column = target position, last = d_last [W].

    Code semantics of the write-up: `alpha` (all_to_last_weight) puts alpha on d_last and
    (1-alpha)/(L-1) on every other depth in EVERY row; `beta` (last_to_last_weight) then sets the
    last row alone to beta / (1-beta)/(L-1). alpha None: non-last rows uniform 1/L. beta None: beta = alpha.
    """
    L = num_depths
    w = torch.full((L, L), 1.0 / L, dtype=torch.float64)
    if alpha is not None:
        w[:, :-1] = (1.0 - alpha) / (L - 1) if L > 1 else 0.0
        w[:, -1] = alpha
    beta = alpha if beta is None else beta
    if beta is not None:
        w[-1, :-1] = (1.0 - beta) / (L - 1) if L > 1 else 0.0
        w[-1, -1] = beta
    return w.float()


def sample_source_depths(num_depths: int, intermediate_rows: int, generator: torch.Generator) -> list[int]:
    """S = {d_a, d_b, ..., d_last}: `intermediate_rows` distinct positions drawn uniformly from D \\ {d_last}.

    Returned ascending, d_last (L-1) always last [W]. intermediate_rows=0 gives [L-1] (no deep supervision).
    """
    picks = torch.randperm(num_depths - 1, generator=generator)[:intermediate_rows]
    return sorted(picks.tolist()) + [num_depths - 1]


def weight_rows(weights: torch.Tensor, sources: list[int]) -> torch.Tensor:
    """w[sources] (S, L) without a host sync.

    Indexing a CUDA tensor with a Python list copies the list to the device and waits for it;
    integer indexing gives views, and one stack keeps everything on the device.
    """
    return torch.stack([weights[s] for s in sources])  # (S, L)


def teacher_targets(hidden: list[torch.Tensor], depths: tuple[int, ...], targets: torch.Tensor) -> torch.Tensor:
    """y_t[T_m] for every t in D: teacher states layer-normed without affine [IJ], on the target blocks.

    Args:
        hidden: the teacher's per-block outputs, each (B, N, D), computed on the full image.
        depths: D as block indices.
        targets: (B, M, N_tgt) flat patch indices.
    Returns:
        (B, M, N_tgt, L, D).
    """
    B, M, N_tgt = targets.shape
    flat = targets.flatten(1)  # (B, M*N_tgt)
    # fp32 on every device (CUDA autocast does it; CPU autocast would keep bf16); a no-op on fp32 states.
    ys = [F.layer_norm(gather_tokens(hidden[d], flat).float(), hidden[d].shape[-1:]) for d in depths]  # L x (B, M*N_tgt, D)
    return torch.stack(ys, dim=2).view(B, M, N_tgt, len(depths), -1)  # (B, M, N_tgt, L, D)


def cijepa_loss(
    predictions: list[torch.Tensor], y: torch.Tensor, weights: torch.Tensor, sources: list[int], kind: str = "mse"
) -> tuple[torch.Tensor, torch.Tensor]:
    """The weighted multi-depth masked latent loss, and the (S, L) matrix of per-pair MSEs.

    Args:
        predictions: one (B, M, N_tgt, L, D) tensor per sampled source row.
        y: (B, M, N_tgt, L, D) teacher targets.
        weights: (L, L) depth_weights.
        sources: positions in D of the sampled rows, aligned with `predictions`.
        kind: "mse" [W], or "smooth_l1" (beta 1) [IJ], which then replaces MSE in the formula and in `mse`.
    Returns:
        loss (scalar) and mse (S, L) where mse[i, t] = MSE(H_{s_i->t}, y_t), averaged over the M blocks,
        their tokens and features (all blocks have N_tgt tokens, so the mean over blocks is exact).
    """
    if kind == "smooth_l1":  # [IJ] F.smooth_l1_loss(z, h): the same mean over every element
        mse = torch.stack([F.smooth_l1_loss(p.float(), y.float(), reduction="none").mean(dim=(0, 1, 2, 4))
                           for p in predictions])  # (S, L)
    else:
        mse = torch.stack([(p.float() - y.float()).pow(2).mean(dim=(0, 1, 2, 4)) for p in predictions])  # (S, L)
    w = weight_rows(weights, sources).to(mse.device)  # (S, L)
    loss = (w * mse).sum() / len(sources)  # 1/(M|S|): the mean over blocks is already inside mse
    return loss, mse
