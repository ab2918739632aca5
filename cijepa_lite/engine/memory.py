"""How many images fit in one forward pass: an analytic activation estimate and the micro-batch choice."""
from __future__ import annotations

import gc
import shutil
from pathlib import Path

import torch

from .. import rng
from ..config import Config
from ..method import CIJEPA, MaskSampler, sample_source_depths

# Bytes kept for backward per token per block of width D under bf16 autocast with fused attention
# (no stored attention matrix): ~34 D in half precision for a transformer layer (Korthikanti et al.
# 2022), plus the fp32 LayerNorm outputs that autocast keeps; rounded up.
_BYTES_PER_TOKEN_PER_WIDTH = 44


def activation_bytes_per_sample(cfg: Config, sources: int | None = None) -> int:
    """Analytic activation memory of one training sample, for the largest masks the config can draw."""
    sources = cfg.intermediate_rows + 1 if sources is None else sources
    n_ctx = cfg.num_patches  # upper bound: the context block before the targets are removed
    n_tgt = int(cfg.num_patches * cfg.target_scale[1] * cfg.target_aspect[1]) + 1  # generous block size
    student = cfg.depth * n_ctx * cfg.embed_dim * _BYTES_PER_TOKEN_PER_WIDTH
    predictor = cfg.pred_depth * cfg.num_targets * (n_ctx + n_tgt) * cfg.pred_dim * _BYTES_PER_TOKEN_PER_WIDTH
    heads = cfg.num_targets * n_tgt * cfg.num_depths * cfg.embed_dim * 12  # bf16 outputs + fp32 error terms
    teacher = cfg.depth * cfg.num_patches * cfg.embed_dim * 2  # no-grad hidden states kept for the targets
    return student + sources * (predictor + heads) + teacher


def parameter_counts(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, frozen) parameter counts of a CIJEPA: what static_bytes and choose_micro_batch take."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.teacher.parameters())


def static_bytes(cfg: Config, trainable: int, frozen: int) -> int:
    """fp32 weights, gradients and two AdamW moments of the trainable parameters, plus the teacher."""
    return trainable * 16 + frozen * 4


def checkpoint_bytes(cfg: Config) -> int:
    """About the size of one checkpoint of `cfg`: fp32 student, teacher and predictors plus AdamW's two moments.

    Counted on the meta device (no memory, no initialisation); ~3.3 GB for the ViT-B presets.
    """
    with torch.device("meta"):
        model = CIJEPA(cfg)
    trainable, frozen = parameter_counts(model)
    return 4 * (3 * trainable + frozen)


def release_cached_memory(device: torch.device) -> None:
    """Collect garbage and return the allocator's cached blocks (a previous run in the same kernel, a failed step)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()


def smaller_micro_batch(per_device_batch: int, micro: int) -> int | None:
    """The largest divisor of `per_device_batch` at most half of `micro`, or None when `micro` is 1."""
    fits = [d for d in range(1, micro // 2 + 1) if per_device_batch % d == 0]
    return max(fits) if fits else None


def choose_micro_batch(cfg: Config, per_device_batch: int, device: torch.device,
                       free_bytes: int | None = None, trainable: int = 0, frozen: int = 0) -> int:
    """The largest divisor of `per_device_batch` whose activations fit in 85% of free memory.

    `cfg.micro_batch_size` wins when set. On CPU (no memory query) the whole batch is one pass.
    """
    if cfg.micro_batch_size is not None:
        if per_device_batch % cfg.micro_batch_size:
            raise ValueError(f"config micro_batch_size={cfg.micro_batch_size} does not divide the "
                             f"per-device batch {per_device_batch}")
        return cfg.micro_batch_size
    if free_bytes is None:
        if device.type != "cuda":
            return per_device_batch
        free_bytes = torch.cuda.mem_get_info(device)[0]
    budget = 0.85 * free_bytes - static_bytes(cfg, trainable, frozen)
    per_sample = activation_bytes_per_sample(cfg)
    fits = [d for d in range(1, per_device_batch + 1) if per_device_batch % d == 0 and d * per_sample <= budget]
    if not fits:
        raise RuntimeError(f"not even one sample fits: {per_sample / 2**30:.2f} GiB of activations per sample, "
                           f"{budget / 2**30:.2f} GiB left after weights and optimizer state")
    return max(fits)


def saved_bytes_per_sample(cfg: Config, device: torch.device | str = "cpu", batch_predictors: bool = True) -> int:
    """Measured activation bytes of one sample: what autograd saves for backward at batch 2 minus batch 1.

    Counts each saved storage once (views share it) and never a parameter; the difference of two
    batch sizes removes per-step constants (bf16 weight copies under autocast, RoPE tables). Runs the
    model's forward under the config's precision, on `device` (a ViT-B forward of 2 images on CPU
    takes seconds). `batch_predictors=False` runs the S predictors one by one (the loop) instead of vmapped.
    """
    device = torch.device(device)
    model = CIJEPA(cfg).to(device)
    model.batch_predictors = batch_predictors
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    g = rng.generator(cfg.seed, rng.MASKS, 0)
    context, targets = MaskSampler(cfg)(2, g)
    images = torch.randn(2, cfg.in_chans, cfg.img_size, cfg.img_size, generator=g)
    sources = sample_source_depths(cfg.num_depths, cfg.intermediate_rows, g)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16")

    def saved(b: int) -> int:
        storages: dict[int, int] = {}

        def pack(t: torch.Tensor) -> torch.Tensor:
            s = t.untyped_storage()
            if s.data_ptr() not in params:
                storages[s.data_ptr()] = s.nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast:
            model(images[:b].to(device), context[:b].to(device), targets[:b].to(device), sources)
        return sum(storages.values())

    return saved(2) - saved(1)


def space_report(cfg: Config, run_dir: str | Path) -> dict:
    """Free space on Drive (cfg.mirror_dir) and on the local disk against what the run will need, and a `line`.

    The mirror holds at most rundir.MIRROR_KEEP checkpoints and the run directory keep_checkpoints + 1 (the
    one being written). Drive's trash counts against the quota (see the README): empty it if space is short.
    """
    from .rundir import MIRROR_KEEP

    one = checkpoint_bytes(cfg)
    places = {"local": (Path(run_dir), (cfg.keep_checkpoints + 1) * one)}
    if cfg.mirror_dir:
        places["drive"] = (Path(cfg.mirror_dir), MIRROR_KEEP * one)
    report, parts = {"checkpoint_bytes": one}, []
    for name, (folder, needed) in places.items():
        existing = next(p for p in (folder, *folder.parents) if p.exists())
        free = shutil.disk_usage(existing).free
        report[name] = {"folder": str(folder), "needed_bytes": needed, "free_bytes": free, "enough": free >= needed}
        parts.append(f"{name} {folder}: needs {needed / 2**30:.1f} GiB, {free / 2**30:.1f} GiB free"
                     + ("" if free >= needed else " -- NOT ENOUGH"))
    report["line"] = f"checkpoint {one / 2**30:.2f} GiB; " + "; ".join(parts)
    return report
