"""Data benchmark: images/s per core of raw parquet vs the prepared cache, both + pretraining augmentation
(the crop to a uint8 tensor, as the loader workers do; normalisation happens on the device).

There is no ImageNet on a test machine, so the benchmark writes ImageNet-like JPEGs: mostly 500x375 and
375x500 with some larger and smaller ones, quality 90, with 1/f-like luminance texture, colour casts and
sharp-edged shapes, so files average ~100 KB like ImageNet's (~110 KB).
"""
from __future__ import annotations

import io
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from .cache import DEFAULT_SHORT_SIDE, CacheSource, prepare_cache
from .parquet import ParquetDataset, ParquetSource, write_shard
from .sources import Augmented, pretrain_transform


def _field(rng: np.random.Generator, w: int, h: int, cell: int) -> np.ndarray:
    """A smooth random field (h, w) of std ~1 that varies over `cell` pixels."""
    if cell <= 1:
        return rng.standard_normal((h, w), dtype=np.float32)
    small = rng.standard_normal((h // cell + 2, w // cell + 2), dtype=np.float32)
    return np.asarray(Image.fromarray(small, "F").resize((w, h), Image.BICUBIC))


def synthetic_photo(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """A natural-image-like RGB picture: 1/f-like luminance texture, a colour cast and a few shapes."""
    lum = sum(a * _field(rng, w, h, c) for c, a in ((96, 45), (24, 28), (6, 22), (2, 16), (1, 15)))  # (h, w)
    chroma = 18 * np.stack([_field(rng, w, h, 64), _field(rng, w, h, 64)], -1)  # (h, w, 2)
    base = rng.uniform(80, 170) + lum
    rgb = np.stack([base + chroma[..., 0], base + 0.5 * (chroma[..., 1] - chroma[..., 0]), base - chroma[..., 1]], -1)
    mask = Image.new("L", (w, h))
    draw = ImageDraw.Draw(mask)
    for _ in range(rng.integers(2, 6)):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        box = (x, y, x + int(rng.integers(30, w // 2)), y + int(rng.integers(30, h // 2)))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=int(rng.integers(1, 255)))
    tint = np.asarray(mask, np.float32)[..., None] / 255 * rng.normal(0, 60, size=3).astype(np.float32)  # (h, w, 3)
    return Image.fromarray(np.clip(rgb + tint, 0, 255).astype(np.uint8))


def synthetic_size(rng: np.random.Generator) -> tuple[int, int]:
    """ImageNet-like (w, h): long side 500 for 3/4 (Flickr's medium size), else 200-1000 px; mostly 4:3.

    Mean ~2.1e5 pixels (ImageNet's often quoted mean resolution 469x387 is 1.8e5); 3/4 landscape.
    """
    long = 500 if rng.random() < 0.75 else int(rng.integers(200, 1001))
    short = round(long / rng.choice([4 / 3, 3 / 2, 5 / 4, 1.0], p=[0.5, 0.25, 0.15, 0.1]))
    return (long, short) if rng.random() < 0.75 else (short, long)


def write_synthetic_parquet(root: str | Path, n: int, seed: int = 0, num_classes: int = 10) -> Path:
    """A one-shard train split of `n` synthetic JPEGs (quality 90) in the Hub layout under `root`."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n):
        out = io.BytesIO()
        synthetic_photo(rng, *synthetic_size(rng)).save(out, "JPEG", quality=90)
        images.append(out.getvalue())
    labels = [int(k % num_classes) for k in range(n)]
    return write_shard(Path(root) / "data" / "train-00000-of-00001.parquet", images, labels,
                       [f"class{k}" for k in range(num_classes)])


def _cpu_seconds(source, order: np.ndarray, img_size: int) -> float:
    """CPU seconds this process spends on source + pretraining augmentation over `order`."""
    augmented = Augmented(source, pretrain_transform(img_size, (0.3, 1.0)))
    start = time.process_time()
    for i in order:
        augmented[int(i), int(i)]
    return time.process_time() - start


def bench_data(n_images: int = 300, short_side: int = DEFAULT_SHORT_SIDE, img_size: int = 224, seed: int = 0,
               rounds: int = 3, workdir: str | Path | None = None) -> dict:
    """Measure raw parquet vs prepared cache images/s per core (one thread), print a table, return the numbers.

    Args:
        n_images: synthetic ImageNet-like images to write and read.
        rounds: passes over the images per path, alternating between paths.
        workdir: where to write them (default: a temporary folder, removed afterwards).
    """
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(workdir or tmp)
        write_synthetic_parquet(root / "parquet", n_images, seed)
        start = time.process_time()
        prepare_cache(ParquetDataset.open(root / "parquet"), root / "cache", "synthetic", None, short_side, workers=0)
        prepare_rate = n_images / (time.process_time() - start)
        shuffled = np.random.default_rng(seed).permutation(n_images)
        raw = ParquetDataset.open(root / "parquet")
        paths = {"raw parquet, sequential": (ParquetSource(raw, "train"), np.arange(n_images)),
                 "raw parquet, random order": (ParquetSource(raw, "train"), shuffled),
                 "prepared cache, random order": (CacheSource(root / "cache", "train"), shuffled)}
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # per-core rates: one process, one thread
        try:
            seconds = dict.fromkeys(paths, 0.0)
            for _ in range(rounds):  # alternate the paths so a slow spell of the machine hits all of them
                for name, (source, order) in paths.items():
                    seconds[name] += _cpu_seconds(source, order, img_size)
        finally:
            torch.set_num_threads(threads)
    rows = {name: rounds * n_images / s for name, s in seconds.items()}
    ratio = rows["prepared cache, random order"] / rows["raw parquet, sequential"]
    print(f"{'source + RandomResizedCrop(224, scale 0.3-1) -> uint8':<58} {'images/s per core':>17}")
    for name, rate in rows.items():
        print(f"{name:<58} {rate:>17.1f}")
    print(f"cache / raw (sequential) per core: {ratio:.2f}x; preparation {prepare_rate:.1f} img/s/core; "
          f"{n_images} images, cache short side {short_side}")
    return {"images_per_cpu_s": rows, "ratio": ratio, "prepare_images_per_cpu_s": prepare_rate, "n_images": n_images,
            "short_side": short_side}
