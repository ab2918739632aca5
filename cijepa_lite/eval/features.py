"""Frozen-encoder readouts: mean-pooled patch tokens of chosen depths, computed without autograd.

Legend: B batch, N patches, D width, K chosen depths, n images in a split.

Shared by the linear probe (probe.py), the converged logistic probe (logreg.py) and the kNN
monitor (knn.py). The encoder is a `VisionTransformer` whose forward returns every block's output;
there is no CLS token, so an image's feature at depth d is the mean of its N patch tokens [W].
"""
from __future__ import annotations

from contextlib import nullcontext
from typing import Iterable, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..data import Augmented, probe_val_transform


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast(device: torch.device):
    """bf16 autocast on CUDA [IJ]; plain fp32 elsewhere (CPU bf16 matmuls are slower, not faster)."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()


def prepare_encoder(encoder: nn.Module, device: torch.device) -> nn.Module:
    """The frozen encoder on `device`, in eval mode, without grads, channels-last on CUDA (for the patch conv)."""
    encoder = encoder.to(device).eval().requires_grad_(False)
    return encoder.to(memory_format=torch.channels_last) if device.type == "cuda" else encoder


@torch.no_grad()  # not inference_mode: the probe's heads take these features into autograd
def pooled(encoder: nn.Module, images: torch.Tensor, depths: Sequence[int]) -> torch.Tensor:
    """Mean-pooled patch tokens of blocks `depths`, as fp32.

    Args:
        encoder: returns the list of every block's output (B, N, D) for images (B, C, H, W).
        images: (B, C, H, W) on the encoder's device.
        depths: block indices (0-based), e.g. (depth - 1,) for the final layer.
    Returns:
        (K, B, D).
    """
    if images.device.type == "cuda":
        images = images.contiguous(memory_format=torch.channels_last)
    with autocast(images.device):
        hidden = encoder(images)  # depth x (B, N, D)
    return torch.stack([hidden[d].mean(1) for d in depths]).float()  # (K, B, D)


def loader(source: Dataset, transform, batches: Iterable[list[tuple[int, int]]], device: torch.device,
           num_workers: int = 0) -> DataLoader:
    """Images of `source` through `transform` in the given batches of (index, augmentation seed) pairs.

    Augmented seeds every sample itself; the loader's own generator only keeps it from drawing its
    base seed from the global RNG (which would change a training run that reads the kNN monitor).
    """
    return DataLoader(Augmented(source, transform), batch_sampler=batches, num_workers=num_workers,
                      pin_memory=device.type == "cuda", prefetch_factor=4 if num_workers > 0 else None,
                      generator=torch.Generator().manual_seed(0))


def in_order(n: int, batch_size: int) -> list[list[tuple[int, int]]]:
    """Batches visiting 0..n-1 in order, all with seed 0 (for deterministic transforms)."""
    return [[(i, 0) for i in range(lo, min(lo + batch_size, n))] for lo in range(0, n, batch_size)]


def extract(encoder: nn.Module, source: Dataset, transform, depths: Sequence[int], *, batch_size: int = 256,
            device: torch.device | None = None, num_workers: int = 0, progress: bool = True,
            desc: str = "features") -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled features of every image of `source` under a deterministic `transform`.

    Args:
        encoder: a frozen encoder already on `device` (see prepare_encoder).
        depths: block indices to read out.
    Returns:
        features (K, n, D) fp32 on the CPU and labels (n,) int64.
    """
    device = device or default_device()
    feats, labels = [], []
    batches = in_order(len(source), batch_size)
    for images, y in tqdm(loader(source, transform, batches, device, num_workers), desc=desc, unit="batch",
                          disable=not progress, leave=False):
        feats.append(pooled(encoder, images.to(device, non_blocking=True), depths).cpu())
        labels.append(y)
    return torch.cat(feats, dim=1), torch.cat(labels)  # (K, n, D), (n,)


def split_features(encoder: nn.Module, train_source: Dataset, val_source: Dataset, img_size: int,
                   depths: Sequence[int], **kw) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """`extract` of both splits under the deterministic probe val transform (what the logistic probe and kNN read).

    Args:
        kw: passed to `extract` (batch_size, device, num_workers, progress).
    Returns:
        (train features (K, n_train, D), labels (n_train,)), (val features (K, n_val, D), labels (n_val,)).
    """
    transform = probe_val_transform(img_size)
    train = extract(encoder, train_source, transform, depths, desc="train features", **kw)
    val = extract(encoder, val_source, transform, depths, desc="val features", **kw)
    return train, val
