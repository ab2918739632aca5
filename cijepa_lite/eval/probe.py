"""The write-up's linear probe (SPEC 7), on one depth or on every collected depth at once.

Legend: B batch, D width, C classes, K probed depths, n images in a split.

Frozen EMA teacher, final-layer patch tokens mean-pooled, one Linear(D -> C), AdamW lr 3e-3,
weight decay 0, lr decayed linearly to 0 over 10 epochs (per step), batch 256, the probe
transforms of data.py, top-1 on the val split [W]. Probing K depths trains K independent heads
from one encoder pass per batch: the loss is the sum of the heads' losses, so each head gets
exactly the gradients (and AdamW the moments) it would get alone.

Every random draw derives from `seed` (rng.PROBE): the data order of each epoch, each sample's
augmentation and each head's init (keyed on its depth, so a head starts the same whether it is
probed alone or beside others).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .. import rng
from ..data import probe_train_transform, probe_val_transform
from .features import default_device, extract, loader, pooled, prepare_encoder

_ORDER, _AUGMENT, _HEAD = range(3)  # sub-streams of rng.PROBE
MAX_EPOCHS = 1000  # [K] the write-up's probe runs 10


@dataclass(frozen=True)
class ProbeRecipe:
    """The probe's hyperparameters; the defaults are the write-up's [W]."""

    epochs: int = 10
    lr: float = 3e-3  # peak, decayed linearly to 0 over all steps
    weight_decay: float = 0.0
    batch_size: int = 256
    val_batch_size: int = 256  # changes only speed, never the result

    def __post_init__(self):
        for key, top in (("epochs", MAX_EPOCHS), ("batch_size", None), ("val_batch_size", None)):
            value = getattr(self, key)
            if type(value) is not int or value < 1 or (top is not None and value > top):
                raise ValueError(f"probe {key}={value!r}: must be a whole number "
                                 + (f"in [1, {top}]" if top else ">= 1"))
        if not all(isinstance(v, (int, float)) and math.isfinite(v) and v >= 0 for v in (self.lr, self.weight_decay)):
            raise ValueError(f"probe lr={self.lr!r}, weight_decay={self.weight_decay!r}: must be finite and >= 0")


def probe_lr(recipe: ProbeRecipe, step: int, total_steps: int) -> float:
    """lr of optimizer step `step` (0-based): recipe.lr at step 0, linearly down to 0 after the last step."""
    return recipe.lr * (1.0 - step / total_steps)


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[list[tuple[int, int]]]:
    """One epoch's batches of (index, augmentation seed): a seeded permutation, the last batch kept partial."""
    order = torch.randperm(n, generator=rng.generator(seed, rng.PROBE, _ORDER, epoch)).tolist()
    base = rng.derive_seed(seed, rng.PROBE, _AUGMENT, epoch)
    keyed = [(i, (base + pos) % (1 << 63)) for pos, i in enumerate(order)]
    return [keyed[lo:lo + batch_size] for lo in range(0, n, batch_size)]


class Heads(nn.Module):
    """K independent Linear(D -> C) heads applied to K feature sets in one batched matmul."""

    def __init__(self, depths: Sequence[int], dim: int, num_classes: int, seed: int):
        super().__init__()
        bound = 1.0 / math.sqrt(dim)  # nn.Linear's default init, drawn from a per-depth generator
        weights, biases = [], []
        for d in depths:
            g = rng.generator(seed, rng.PROBE, _HEAD, d)
            weights.append(torch.empty(num_classes, dim).uniform_(-bound, bound, generator=g))
            biases.append(torch.empty(num_classes).uniform_(-bound, bound, generator=g))
        self.weight = nn.Parameter(torch.stack(weights))  # (K, C, D)
        self.bias = nn.Parameter(torch.stack(biases))  # (K, C)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """(K, B, D) features -> (K, B, C) logits."""
        return torch.baddbmm(self.bias[:, None], feats, self.weight.transpose(1, 2))  # (K, B, C)


def feature_dim(encoder: nn.Module, img_size: int, device: torch.device) -> int:
    """D of a frozen encoder's pooled features (one dummy image)."""
    return pooled(encoder, torch.zeros(1, 3, img_size, img_size, device=device), [0]).shape[-1]


def fit_heads(heads: Heads, encoder: nn.Module, data: DataLoader, depths: Sequence[int], recipe: ProbeRecipe,
              last_epoch_from: int, progress: bool) -> list[float]:
    """Train `heads` on every batch of `data` (all epochs); returns each head's train top-1 (%) in the last epoch."""
    optimizer = torch.optim.AdamW(heads.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    total = len(data)
    correct, seen = torch.zeros(len(depths), device=heads.weight.device), 0
    bar = tqdm(total=total, desc="linear probe", unit="step", disable=not progress, leave=False)
    for step, (images, y) in enumerate(data):
        feats = pooled(encoder, images.to(heads.weight.device, non_blocking=True), depths)  # (K, B, D), no grad
        y = y.to(heads.weight.device, non_blocking=True)
        logits = heads(feats)  # (K, B, C)
        # Sum over heads of each head's mean loss: every head gets the gradient it would get alone.
        loss = F.cross_entropy(logits.flatten(0, 1), y.repeat(len(depths)), reduction="sum") / len(y)
        for group in optimizer.param_groups:
            group["lr"] = probe_lr(recipe, step, total)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step >= last_epoch_from:  # train accuracy of the last epoch (was the probe fitting at all?)
            correct += (logits.detach().argmax(-1) == y).sum(1)
            seen += len(y)
        bar.update(1)
        if step % 20 == 0:  # .item() waits for the device: not every step
            bar.set_postfix(loss=f"{loss.item() / len(depths):.3f}")
    bar.close()
    return (100 * correct / max(seen, 1)).tolist()


@torch.no_grad()
def accuracy(heads: Heads, feats: torch.Tensor, labels: torch.Tensor) -> list[float]:
    """Top-1 (%) of each head on (K, n, D) features."""
    logits = heads(feats.to(heads.weight.device))  # (K, n, C)
    return (100 * (logits.argmax(-1).cpu() == labels).float().mean(1)).tolist()


def linear_probe(encoder: nn.Module, train_source: Dataset, val_source: Dataset, img_size: int, *,
                 depths: Sequence[int], recipe: ProbeRecipe = ProbeRecipe(), seed: int = 0,
                 device: torch.device | None = None, num_workers: int = 0, progress: bool = True) -> dict:
    """Train the recipe's probe on a frozen encoder's depths `depths` and report val top-1 per depth.

    Args:
        encoder: a VisionTransformer (the EMA teacher for the write-up's number); it is frozen here.
        train_source, val_source: map-style sources of (PIL image, label) with a `classes` list.
        img_size: the encoder's input side.
        depths: block indices, e.g. (depth - 1,) for the write-up's probe or cfg.collected_depths.
    Returns:
        {"top1": {"d<k>": val %}, "train_top1": {...}, "steps", "final_lr", "recipe", "seed", "wall_time_s"}.
    """
    t0 = time.time()
    device = device or default_device()
    depths = tuple(depths)
    encoder = prepare_encoder(encoder, device)
    heads = Heads(depths, feature_dim(encoder, img_size, device), len(train_source.classes), seed).to(device)
    per_epoch = [epoch_batches(len(train_source), recipe.batch_size, seed, e) for e in range(recipe.epochs)]
    batches = [b for epoch in per_epoch for b in epoch]  # one loader for all epochs: workers start once
    data = loader(train_source, probe_train_transform(img_size), batches, device, num_workers)
    train_top1 = fit_heads(heads, encoder, data, depths, recipe, len(batches) - len(per_epoch[-1]), progress)
    val_feats, val_labels = extract(encoder, val_source, probe_val_transform(img_size), depths,
                                    batch_size=recipe.val_batch_size, device=device, num_workers=num_workers,
                                    progress=progress, desc="probe val")
    keys = [f"d{d}" for d in depths]
    return {"top1": dict(zip(keys, accuracy(heads, val_feats, val_labels))),
            "train_top1": dict(zip(keys, train_top1)), "steps": len(batches),
            "final_lr": probe_lr(recipe, len(batches), len(batches)),
            "recipe": asdict(recipe), "seed": seed, "wall_time_s": time.time() - t0}
