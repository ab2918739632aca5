"""Data: sources that never die on a bad image, the recipe's transforms, the prepared cache, the data order.

sources.py      `open_source` (digits, ImageNet-100, any path), transforms, per-sample seeded augmentation
canvas.py       the digits at seeded random places and sizes of a larger canvas (the demo's `digits-canvas`)
images.py       decoding untrusted image bytes to RGB (or a named BadImage)
parquet.py      parquet shards in the Hugging Face Hub layout
folder.py       image folders (train/<class>/..., val/<class>/...)
cache.py        the prepared cache: images checked and resized once, packed in shards
imagenet100.py  ImageNet-100's facts: Hub repo and pinned revision, counts, CMC classes
hub.py          downloading the shards from the Hub and checking them
prepare.py      `prepare_data`: download / read, convert, mirror to Drive
sampler.py      the data order: step -> this rank's slice of the global batch, a seed per sample
loading.py      loader workers from the usable CPUs, prefetch sized to /dev/shm
bench.py        images/s per core of raw parquet vs the prepared cache
screens.py      generated screenshot-like and photo-like images (tests, smoke mode, inspect)
"""
from .prepare import prepare_data
from .sampler import StepBatches
from .sources import (Augmented, Digits, normalize, open_source, pretrain_transform, probe_train_transform,
                      probe_val_transform)

__all__ = ["Augmented", "Digits", "normalize", "StepBatches", "open_source", "prepare_data", "pretrain_transform",
           "probe_train_transform", "probe_val_transform"]
