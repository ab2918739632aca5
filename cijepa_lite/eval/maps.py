"""Patch-feature maps: how continuous they are, and their 3 principal components as RGB.

Legend: h x w patch grid of one image, D width, n patches of several images together.

The companion essay (SPEC: seeds/000) argues that object-centric SSL assumes continuous images: going
from one patch to its neighbour one mostly sees the same object, which holds for photos and not for
GUI screens. `continuity` measures that on features: the mean cosine similarity of 4-neighbour patches.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def continuity(grid: torch.Tensor) -> float:
    """Mean cosine similarity over every pair of horizontally or vertically adjacent patches, in [-1, 1].

    Args:
        grid: (h, w, D) patch features of one image (h * w >= 2).
    """
    x = F.normalize(grid.float(), dim=-1)  # (h, w, D)
    right = (x[:, 1:] * x[:, :-1]).sum(-1).flatten()  # (h * (w - 1),)
    down = (x[1:] * x[:-1]).sum(-1).flatten()  # ((h - 1) * w,)
    return torch.cat([right, down]).mean().item()


def principal_axes(tokens: torch.Tensor, k: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and top-k principal directions of a set of features (deterministic, each sign fixed).

    Args:
        tokens: (n, D).
    Returns:
        mean (D,) and axes (D, k), columns by decreasing variance; each column's largest entry is positive.
    """
    x = tokens.double()
    mean = x.mean(0)  # (D,)
    _, vectors = torch.linalg.eigh((x - mean).T @ (x - mean))  # ascending eigenvalues, (D, D)
    axes = vectors[:, -k:].flip(1)  # (D, k)
    signs = torch.sign(axes.gather(0, axes.abs().argmax(0, keepdim=True)))  # (1, k)
    return mean.float(), (axes * signs).float()


def pca_rgb(grids: list[torch.Tensor], low: float = 0.01, high: float = 0.99) -> list[torch.Tensor]:
    """Several images' patch features on 3 principal components fitted over all of them, as RGB in [0, 1].

    Each component is scaled by its `low` and `high` quantiles over all patches (shared by the images),
    so the colours of different images are comparable.

    Args:
        grids: (h_i, w_i, D) per image; D >= 3.
    Returns:
        (h_i, w_i, 3) per image.
    """
    tokens = torch.cat([g.reshape(-1, g.shape[-1]) for g in grids]).float()  # (n, D)
    mean, axes = principal_axes(tokens)
    proj = (tokens - mean) @ axes  # (n, 3)
    lo, hi = torch.quantile(proj, torch.tensor([low, high]), dim=0)  # (3,), (3,)
    rgb = ((proj - lo) / (hi - lo).clamp_min(1e-8)).clamp(0, 1)  # (n, 3)
    sizes = [g.shape[0] * g.shape[1] for g in grids]
    return [part.reshape(g.shape[0], g.shape[1], 3) for part, g in zip(rgb.split(sizes), grids)]
