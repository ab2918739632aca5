"""Collapse monitors of pooled features: normalised std and RankMe (logged by the engine every log step).

Both are NaN, never an error, for features that are not all finite (a diverged step).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def normalized_std(features: torch.Tensor) -> float:
    """Mean over channels of the batch std of l2-normalised features: ~1/sqrt(D) if healthy, 0 if collapsed.

    Args:
        features: (B, D).
    """
    if not torch.isfinite(features).all():
        return float("nan")
    return F.normalize(features.float(), dim=1).std(0).mean().item()


def rankme(features: torch.Tensor, eps: float = 1e-7) -> float:
    """RankMe (Garrido et al. 2023): exp of the entropy of the normalised singular values, in [1, min(B, D)].

    Args:
        features: (B, D).
    """
    if not torch.isfinite(features).all():
        return float("nan")  # the SVD raises on non-finite input
    s = torch.linalg.svdvals(features.float())
    p = s / (s.sum() + eps) + eps
    return torch.exp(-(p * p.log()).sum()).item()


def finite_or_none(x: float) -> float | None:
    """A monitor's value as a metrics row keeps it: None when it is not finite (JSON has no NaN)."""
    return x if math.isfinite(x) else None
