"""Datasets and transforms.

A *source* is a map-style dataset whose item i is `(PIL.Image in RGB, int label)` and which has a
`classes` list. `Augmented` wraps a source with a transform and is indexed by `(index, seed)`
pairs, so each sample's augmentation is drawn from its own seed and never from global state:
a resumed run (or another worker count) augments every sample exactly as before.

`open_source` picks the source: the embedded digits, the prepared cache (cache.py), raw parquet shards
in the Hub layout (parquet.py) or an image folder (folder.py); prepare.py makes the cache.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import transforms as T

from . import canvas
from .cache import CacheSource
from .folder import FolderDataset, FolderSource, is_image_folder
from .imagenet100 import WNIDS
from .images import RobustSource
from .parquet import ParquetDataset, ParquetSource, find_shards

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Where `dataset="imagenet100"` looks when the config's data_dir is None [K].
DEFAULT_DATA_DIR = Path("~/.cache/cijepa-lite/imagenet100").expanduser()


# --- transforms -------------------------------------------------------------------------------

def pretrain_transform(img_size: int, crop_scale: tuple[float, float]) -> T.Compose:
    """[IJ] RandomResizedCrop(img_size, crop_scale) as a uint8 (3, H, W) tensor; no flip, no colour jitter.

    ImageNet normalisation happens on the device (`normalize`): workers hand over a quarter of the
    bytes (shared memory, pinned copies, host-to-device traffic).
    """
    return T.Compose([T.RandomResizedCrop(img_size, scale=crop_scale), T.PILToTensor()])


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> ImageNet-normalised float32, on the images' device.

    The same ops in the same order and dtype as ToTensor + Normalize (x / 255, then (x - mean) / std
    with fp32 mean and std), so the result is bitwise that of the old float pipeline (tested).
    """
    mean, std = _statistics(images.device)
    return images.to(torch.float32).div(255).sub(mean).div(std)  # (B, 3, H, W)


@functools.lru_cache(maxsize=None)
def _statistics(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """ImageNet mean and std as fp32 (3, 1, 1) on `device`, copied there once: a copy per step would be a host sync."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(-1, 1, 1).to(device)  # (3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(-1, 1, 1).to(device)  # (3, 1, 1)
    return mean, std


def probe_train_transform(img_size: int) -> T.Compose:
    """[W] RandomResizedCrop(scale (0.08, 1), bicubic) + horizontal flip 0.5 + ImageNet normalisation."""
    return T.Compose([
        T.RandomResizedCrop(img_size, scale=(0.08, 1.0), interpolation=T.InterpolationMode.BICUBIC),
        T.RandomHorizontalFlip(0.5), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


def probe_val_transform(img_size: int) -> T.Compose:
    """[W] Resize(256, bicubic) + CenterCrop(224) + normalisation, scaled to img_size (256/224 ratio)."""
    return T.Compose([
        T.Resize(round(img_size * 256 / 224), interpolation=T.InterpolationMode.BICUBIC),
        T.CenterCrop(img_size), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


class Augmented(Dataset):
    """`source` through `transform`, indexed by `(index, seed)`; returns (image tensor, label)."""

    def __init__(self, source: Dataset, transform):
        self.source, self.transform = source, transform

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        index, seed = key
        image, label = self.source[index]
        with torch.random.fork_rng(devices=[]):  # torchvision draws from the global CPU generator
            # Not torch.manual_seed: it also reseeds every CUDA generator (which fork_rng(devices=[]) does
            # not restore) and costs ~0.1 ms a sample; the CPU draws are the same.
            torch.default_generator.manual_seed(seed)
            return self.transform(image), label


# --- the embedded dataset ---------------------------------------------------------------------

class Digits(Dataset):
    """scikit-learn's 1,797 handwritten digits (8x8, 16 grey levels), upscaled to RGB `size` px.

    Ships inside a dependency, so the tiny preset and the demo need no download. A fixed stratified
    split holds out 20% of each class ("val") for the probe; pretraining uses "train" only.
    """

    classes = [str(d) for d in range(10)]

    def __init__(self, split: str = "train", size: int = 32):
        from sklearn.datasets import load_digits

        if split not in ("train", "val"):
            raise ValueError(f"digits split {split!r}: expected 'train' or 'val'")
        digits = load_digits()
        order = np.random.default_rng(0).permutation(len(digits.target))
        labels = digits.target[order]
        rank = np.zeros(len(labels), dtype=int)  # position of each sample within its class
        for c in range(10):
            rank[labels == c] = np.arange((labels == c).sum())
        counts = np.bincount(labels, minlength=10)
        is_val = rank < np.round(counts * 0.2)[labels]
        keep = order[is_val if split == "val" else ~is_val]
        pixels = (digits.images[keep] * (255.0 / 16.0)).round().astype(np.uint8)  # (n, 8, 8)
        self.images = [Image.fromarray(p).resize((size, size), Image.BILINEAR).convert("RGB") for p in pixels]
        self.labels = digits.target[keep].tolist()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Image.Image, int]:
        return self.images[i], self.labels[i]


def open_dataset(path: str | Path, image_column: str = "image", label_column: str | None = None):
    """The raw dataset at `path`: a ParquetDataset (shards in the Hub layout) or a FolderDataset (train/, val/)."""
    path = Path(path).expanduser()
    if find_shards(path, "train") or find_shards(path, "val"):
        return ParquetDataset.open(path, image_column, label_column)
    if is_image_folder(path):
        return FolderDataset.open(path)
    raise FileNotFoundError(f"{path}: neither parquet shards (data/train-*.parquet, data/validation-*.parquet) "
                            "nor an image folder (train/<class>/..., val/<class>/...)")


def open_path(path: str | Path, split: str) -> RobustSource:
    """The source of `split` at `path`: a prepared cache, parquet shards or an image folder (detected)."""
    path = Path(path).expanduser()
    if (path / "meta.json").is_file():
        return CacheSource(path, split)
    dataset = open_dataset(path)
    return ParquetSource(dataset, split) if isinstance(dataset, ParquetDataset) else FolderSource(dataset, split)


def open_source(dataset: str, split: str, img_size: int, data_dir: str | None = None) -> Digits | RobustSource:
    """The source named by a config's `dataset` field, for `split` ("train" or "val").

    Args:
        dataset: "digits" (embedded), "digits-canvas" (the digits placed on a canvas, canvas.py), "imagenet100"
            (the prepared cache at `data_dir`, default DEFAULT_DATA_DIR), or a path: a prepared cache, parquet
            shards or an image folder.
        img_size: the digits' (or their canvas') side in pixels; other sources keep their size (the transforms crop).
    """
    if split not in ("train", "val"):
        raise ValueError(f"split {split!r}: expected 'train' or 'val'")
    if dataset == "digits":
        return Digits(split, size=img_size)
    if dataset == canvas.NAME:
        return canvas.DigitsCanvas(split, size=img_size)
    if dataset == "imagenet100":
        root = Path(data_dir).expanduser() if data_dir else DEFAULT_DATA_DIR
        try:
            source = open_path(root, split)
        except FileNotFoundError as e:
            raise FileNotFoundError(f"no prepared ImageNet-100 at {root} ({e}). Prepare it once with "
                                    f"`python -m cijepa_lite data --hub --out {root}`, or set data_dir") from None
        if source.classes != list(WNIDS):
            raise ValueError(f"{root} holds {len(source.classes)} classes, not ImageNet-100's; "
                             "use dataset=<path> for other data")
        return source
    if Path(dataset).expanduser().exists():
        return open_path(dataset, split)
    raise ValueError(f"config dataset={dataset!r}: expected '{canvas.NAME}', 'digits', 'imagenet100' "
                     "or an existing path")
