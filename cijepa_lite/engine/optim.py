"""AdamW with I-JEPA's parameter groups, the warmup + cosine learning-rate and weight-decay schedules (SPEC 5).

cfg.ipe_scale set (not None) is facebookresearch/ijepa's arithmetic: its schedulers are stepped before
each step (step i runs with the values of i + 1), the cosines end at int(ipe_scale * total) and
the lr never goes below final_lr. The kit's default indexes from 0 and ends its cosine at the last step.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..config import Config


def make_optimizer(cfg: Config, model: nn.Module) -> torch.optim.AdamW:
    """AdamW over the trainable parameters; no weight decay on biases and 1-D params [IJ].

    Fused (one kernel for all tensors, CPU and CUDA): it also takes `found_inf` on the device, which
    lets the engine skip a non-finite step without a host sync.
    """
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if name.endswith(".bias") or p.ndim == 1 else decay).append(p)
    # Group 0 decays (the engine sets its weight decay every step); I-JEPA's four groups merged two by two.
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.peak_lr, betas=cfg.adam_betas, eps=cfg.adam_eps, fused=True)


def learning_rate(cfg: Config, step: int, total_steps: int) -> float:
    """lr at optimizer step `step` (0-based).

    Linear warmup from warmup_start_factor * peak over warmup_fraction of the run [W][IJ], then a
    half cosine from peak to final_lr at the last step [IJ].
    """
    peak = cfg.peak_lr
    warmup = max(1, round(cfg.warmup_fraction * total_steps))
    start = cfg.warmup_start_factor * peak  # [IJ] start_lr
    if cfg.ipe_scale is not None:  # [IJ] WarmupCosineSchedule
        step, span = step + 1, int(cfg.ipe_scale * total_steps)
        if step < warmup:
            return start + step / warmup * (peak - start)
        progress = (step - warmup) / max(1, span - warmup)
        return max(cfg.final_lr, cfg.final_lr + (peak - cfg.final_lr) * 0.5 * (1.0 + math.cos(math.pi * progress)))
    if step < warmup:
        return start + (peak - start) * step / warmup
    progress = min((step - warmup) / max(total_steps - 1 - warmup, 1), 1.0)
    return cfg.final_lr + (peak - cfg.final_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def weight_decay(cfg: Config, step: int, total_steps: int) -> float:
    """Weight decay at optimizer step `step`: constant [W], or a cosine to cfg.final_weight_decay [IJ]."""
    if cfg.final_weight_decay is None:
        return cfg.weight_decay
    upstream = cfg.ipe_scale is not None  # [IJ] CosineWDSchedule, stepped before the step
    progress = (step + upstream) / (int(cfg.ipe_scale * total_steps) if upstream else max(total_steps - 1, 1))
    ref, final = cfg.weight_decay, cfg.final_weight_decay
    wd = final + (ref - final) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return max(final, wd) if final <= ref else min(final, wd)
