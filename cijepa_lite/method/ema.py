"""The EMA teacher: xi <- m * xi + (1 - m) * theta after each optimizer step [IJ]."""
from __future__ import annotations

import torch
from torch import nn

from ..config import Config


def ema_momentum(cfg: Config, step: int, total_steps: int) -> float:
    """m at optimizer step `step` (0-based): linear from cfg.ema_start to cfg.ema_end over the run [IJ].

    ipe_scale set: I-JEPA's generator, whose ramp spans ipe_scale x the run (its default 1.25 ends below ema_end).
    """
    if cfg.ipe_scale is not None:
        return cfg.ema_start + step * (cfg.ema_end - cfg.ema_start) / (total_steps * cfg.ipe_scale)
    return cfg.ema_start + (cfg.ema_end - cfg.ema_start) * min(step / max(total_steps, 1), 1.0)


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, momentum: float | torch.Tensor) -> None:
    """In place, one multi-tensor op per term instead of a Python loop over parameters.

    `momentum` may be a 0-d tensor on the device (the engine passes 1.0 to skip a step without a
    host sync). Bitwise equal to `t.mul_(m).add_(s * (1 - m))` per tensor (tested).
    """
    t_params = list(teacher.parameters())
    s_params = [p.detach() for p in student.parameters()]
    m = torch.as_tensor(momentum, dtype=torch.float32, device=t_params[0].device)
    torch._foreach_mul_(t_params, m)
    torch._foreach_add_(t_params, torch._foreach_mul(s_params, 1.0 - m))
