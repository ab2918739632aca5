"""What this GPU can run: native bf16 or not, and the micro-batch from a measured trial.

The analytic bound of memory.py is safe but generous (444 MiB/sample at ViT-B against ~142 measured),
so on CUDA one forward + backward at the analytic choice reads the real peak, and the micro-batch
grows to the largest divisor of the per-device batch that the measurement says fits. The OOM
fallback of the training loop (halve and redo the step) stays the net under this estimate.
"""
from __future__ import annotations

import warnings

import torch
from torch import nn

from .. import rng
from ..config import Config
from ..method import MaskSampler

BUDGET = 0.85  # share of free memory the step may use
MASK_MARGIN = 1.15  # later steps may draw longer contexts than the trial's


class PrecisionWarning(UserWarning):
    """bf16 requested on a GPU that only emulates it."""


def check_bf16(cfg: Config, device: torch.device) -> bool:
    """Warn (and return False) when cfg asks for bf16 on a CUDA GPU without native bf16 (compute capability < 8.0)."""
    if cfg.precision != "bf16" or device.type != "cuda":
        return True
    major, minor = torch.cuda.get_device_capability(device)
    if major >= 8:
        return True
    warnings.warn(f"{torch.cuda.get_device_name(device)} (compute capability {major}.{minor}) has no native bf16: "
                  "bf16 autocast is emulated and several times slower. Pick a GPU with compute capability >= 8.0 "
                  "(A100, L4, H100; in Colab: Runtime > Change runtime type), or run with precision=fp32 "
                  "(about twice the activation memory: the micro-batch shrinks by itself)", PrecisionWarning, stacklevel=2)
    return False


def trial_bytes_per_sample(cfg: Config, model: nn.Module, batch: int, device: torch.device) -> float:
    """Peak bytes per sample of one forward + backward of `batch` synthetic images on CUDA, all S rows sampled.

    The gradients it creates are dropped again (the model is left as it was); their bytes are not per sample.
    """
    g = rng.generator(cfg.seed, rng.MASKS, 0)
    context, targets = MaskSampler(cfg)(batch, g)
    images = torch.randn(batch, cfg.in_chans, cfg.img_size, cfg.img_size, generator=g)
    sources = list(range(cfg.num_depths - 1 - cfg.intermediate_rows, cfg.num_depths))  # S rows, d_last last
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
        loss, _ = model(images.to(device), context.to(device), targets.to(device), sources)
    loss.backward()
    grads = sum(p.grad.numel() * p.grad.element_size() for p in model.parameters() if p.grad is not None)
    peak = torch.cuda.max_memory_allocated(device) - base - grads
    model.zero_grad(set_to_none=True)
    return max(peak, 1) / batch


def measured_micro_batch(cfg: Config, model: nn.Module, per_device_batch: int, start: int,
                         device: torch.device) -> int:
    """The largest divisor of `per_device_batch` whose measured activations fit next to grads and AdamW state.

    Args:
        start: the analytic choice, the trial's size (never returns less unless the trial says it cannot fit).
    """
    per_sample = trial_bytes_per_sample(cfg, model, start, device) * MASK_MARGIN
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    free = torch.cuda.mem_get_info(device)[0]
    budget = BUDGET * free - trainable * 12  # fp32 grads and two AdamW moments are not allocated yet
    fits = [d for d in range(1, per_device_batch + 1) if per_device_batch % d == 0 and d * per_sample <= budget]
    return max(fits) if fits else start
