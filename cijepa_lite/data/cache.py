"""The prepared cache: every image checked and re-encoded once, packed into a few large files.

Format (FORMAT_VERSION 1), one folder, reusable from Google Drive between Colab sessions:
    meta.json             classes, counts, source and revision, settings, shard sizes, skipped images
    <split>-<k>.bin       the split's JPEG files back to back, a new shard every SHARD_BYTES
    <split>.index.npy     int64 (n, 4): shard k, byte offset, byte length, label
Preparation writes `<out>.partial` and renames it to `<out>` when complete, so a folder with a valid
meta.json and shards of the recorded sizes is finished; anything else is redone, never trusted.

Images are resized so their short side is at most `short_side` [K] (bicubic, antialiased; never
upsampled; the long side rounded as torchvision's Resize rounds it), then stored as JPEG quality 90
(4:2:0, no EXIF/ICC). A JPEG that is already RGB, baseline and small enough is stored byte for byte.

What the default short side 256 changes in the recipe. ImageNet photos are typically 500x375 or
500x333; they become 341x256 or 384x256 (linear scale 0.68-0.77); smaller ones are kept as they are.
- pretraining RandomResizedCrop(224, scale 0.3-1): which part of the image a crop covers, and so how
  large objects appear in the 224-px input, is unchanged (scales are relative); only detail is lost.
  A smallest crop (scale 0.3) spans ~160 px of a 341x256 image instead of ~235 px of a 500x375 one,
  so it is upsampled ~1.4x instead of downsampled; crops below scale ~0.5-0.57 (about a third of
  them) are upsampled, against none on 500x375 originals.
- probe train RandomResizedCrop(scale 0.08-1): its small crops, upsampled on the originals too, now
  start from about half as many source pixels.
- probe val Resize(256) + CenterCrop(224): the cache already holds torchvision's Resize(256, bicubic)
  of the original (same filter, same rounding), so probe val sees exactly the recipe's pixels up to
  one JPEG generation (photos with a short side >= 512 are DCT-downscaled first: not bit-exact).
- every re-encoded image passes through one more JPEG generation at quality 90.
Gains: one core decodes + augments ~1.7-1.9x more images per second on ImageNet-like JPEGs
(`data.bench.bench_data`), files are ~3x smaller (estimated 3-5 GB for ImageNet-100 on Drive), random
access costs one read, and no bad or huge image reaches a run. `short_side=320` keeps more detail
(~1 pretraining crop in 10 upsampled) for ~1.4-1.5x the raw speed.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import warnings
from functools import partial
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .images import BadImage, BadImageWarning, RobustSource, encode_jpeg, load_rgb, open_image, resize_short

FORMAT, FORMAT_VERSION = "cijepa-lite-cache", 1
DEFAULT_SHORT_SIDE = 256
JPEG_QUALITY = 90
SHARD_BYTES = 1 << 30
SPLITS = ("train", "val")


def read_meta(root: str | Path) -> dict:
    """The meta.json of a cache folder, checked for format and version."""
    path = Path(root) / "meta.json"
    meta = json.loads(path.read_text())
    if meta.get("format") != FORMAT or meta.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path}: not a {FORMAT} v{FORMAT_VERSION} cache (format={meta.get('format')!r}, "
                         f"version={meta.get('version')!r}); prepare it again")
    return meta


def incomplete_reason(root: str | Path) -> str | None:
    """None if `root` holds a finished cache, else why not (missing meta, a short shard, ...)."""
    root = Path(root)
    if not (root / "meta.json").is_file():
        return f"{root}: no meta.json"
    try:
        meta = read_meta(root)
    except (ValueError, json.JSONDecodeError) as e:
        return str(e)
    for split, info in meta["splits"].items():
        if not (root / f"{split}.index.npy").is_file():
            return f"{root}: {split}.index.npy is missing"
        for shard in info["shards"]:
            path = root / shard["file"]
            size = path.stat().st_size if path.is_file() else -1
            if size != shard["bytes"]:
                return f"{path}: {size} bytes, meta.json records {shard['bytes']} (an interrupted copy?)"
    return None


def prepare_cache(dataset, out: str | Path, source: str, revision: str | None = None,
                  short_side: int = DEFAULT_SHORT_SIDE, workers: int | None = None) -> Path:
    """Convert a ParquetDataset or FolderDataset into a cache at `out`; a finished one there is kept as is.

    Args:
        dataset: a `parquet.ParquetDataset` or `folder.FolderDataset` (anything with classes, class_names
            and units(split)).
        source, revision: recorded in meta.json (e.g. "hf://clane9/imagenet-100", the commit sha).
        short_side: images are resized down to this short side (see the module docstring).
        workers: preparation processes (default: all cores, at most 8); 0 or 1 runs in this process.
    """
    out = Path(out)
    _check_replaceable(out)
    if incomplete_reason(out) is None:
        meta = read_meta(out)
        if (meta["short_side"], meta["revision"]) != (short_side, revision):
            raise ValueError(f"{out} already holds a cache with short_side={meta['short_side']}, "
                             f"revision={meta['revision']!r}; delete it or choose another folder")
        return out
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)  # a half-finished attempt is never trusted
    tmp.mkdir(parents=True)
    workers = min(os.cpu_count() or 1, 8) if workers is None else workers
    pool = multiprocessing.get_context("spawn").Pool(workers) if workers > 1 else None
    try:
        splits = {s: _write_split(dataset.units(s), tmp, s, short_side, pool) for s in SPLITS}
    finally:
        if pool is not None:
            pool.terminate()
    for info in splits.values():
        labels = info.pop("labels")  # -1 throughout for an unlabelled dataset (no classes)
        info["per_class"] = np.bincount(labels[labels >= 0], minlength=len(dataset.classes)).tolist()
    index_hash = hashlib.sha256(b"".join((tmp / f"{s}.index.npy").read_bytes() for s in SPLITS)).hexdigest()
    meta = dict(format=FORMAT, version=FORMAT_VERSION, id=index_hash[:16], source=source, revision=revision,
                short_side=short_side, jpeg_quality=JPEG_QUALITY, classes=dataset.classes,
                class_names=dataset.class_names, splits=splits)
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    _replace_dir(tmp, out)
    return out


def _check_replaceable(out: Path) -> None:
    """Refuse to ever replace a folder that holds anything but (part of) a cache."""
    if out.is_dir():
        ours = lambda name: name == "meta.json" or name.endswith((".bin", ".index.npy"))  # noqa: E731
        foreign = [p.name for p in out.iterdir() if not ours(p.name)]
        if foreign:
            raise FileExistsError(f"{out} exists and holds {foreign[:3]}, which is not a cache; choose another folder")


def _replace_dir(tmp: Path, out: Path) -> None:
    """Move the finished `tmp` to `out`, replacing whatever unfinished folder was there."""
    if out.exists():
        old = out.with_name(out.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
        shutil.rmtree(old)
    os.replace(tmp, out)


def _write_split(units: list, folder: Path, split: str, short_side: int, pool) -> dict:
    """Convert every unit of one split (in order) into shards + index; returns the split's meta entry."""
    convert = partial(_convert_unit, short_side=short_side)
    writer = _ShardWriter(folder, split)
    index, skipped = [], []
    results = pool.imap(convert, units) if pool is not None else map(convert, units)  # both keep the order
    with tqdm(total=sum(map(len, units)), desc=f"preparing {split}", unit="img") as bar:
        for records, bad in results:
            for data, label in records:
                index.append((*writer.write(data), len(data), label))
            for where, reason in bad:
                warnings.warn(f"skipped {where}: {reason}", BadImageWarning)
                skipped.append({"where": where, "reason": reason})
            bar.update(len(records) + len(bad))
    writer.close()
    index = np.asarray(index, dtype=np.int64).reshape(-1, 4)  # (n, 4)
    np.save(folder / f"{split}.index.npy", index)
    return {"count": len(index), "labels": index[:, 3], "shards": writer.shards, "skipped": skipped}


def _convert_unit(unit, short_side: int) -> tuple[list[tuple[bytes, int]], list[tuple[str, str]]]:
    """(cache-ready JPEG, label) of each readable image of a unit, and (where, reason) of each bad one."""
    records, bad = [], []
    for data, label, where in unit.read():
        try:
            if isinstance(data, BadImage):
                raise data
            records.append((_cache_bytes(data, where, short_side), label))
        except BadImage as e:
            bad.append((e.where, e.reason))
    return records, bad


def _cache_bytes(data: bytes, where: str, short_side: int) -> bytes:
    """The bytes the cache stores for one image (checked by a full decode either way)."""
    img = open_image(data, where)
    as_is = img.format == "JPEG" and img.mode == "RGB" and min(img.size) <= short_side \
        and not img.info.get("progressive") and not img.info.get("progression")
    rgb = load_rgb(img, where, min_short_side=short_side)
    return data if as_is else encode_jpeg(resize_short(rgb, short_side), JPEG_QUALITY)


class _ShardWriter:
    """Appends encoded images to `<split>-<k>.bin`, opening a new shard every SHARD_BYTES."""

    def __init__(self, folder: Path, split: str):
        self.folder, self.split, self.shards, self.file = folder, split, [], None

    def write(self, data: bytes) -> tuple[int, int]:
        """Append `data`; returns (shard number, byte offset)."""
        if self.file is None or self.file.tell() + len(data) > SHARD_BYTES:
            self._finish()
            name = f"{self.split}-{len(self.shards):03d}.bin"
            self.file = open(self.folder / name, "wb")
            self.shards.append({"file": name, "bytes": 0})
        offset = self.file.tell()
        self.file.write(data)
        return len(self.shards) - 1, offset

    def _finish(self) -> None:
        if self.file is not None:
            self.file.flush()
            os.fsync(self.file.fileno())  # durable before meta.json claims the cache is complete
            self.shards[-1]["bytes"] = self.file.tell()
            self.file.close()
            self.file = None

    def close(self) -> None:
        self._finish()


class CacheSource(RobustSource):
    """One split of a prepared cache as a source: memory-mapped shards, JPEG decoded per item."""

    def __init__(self, root: str | Path, split: str):
        self.root, self.split = Path(root), split
        reason = incomplete_reason(self.root)
        if reason is not None:
            raise FileNotFoundError(f"no finished cache at {self.root} ({reason}); prepare or copy it again")
        meta = read_meta(self.root)
        if not meta["splits"][split]["count"]:
            raise FileNotFoundError(f"the cache at {self.root} has no {split!r} images (its source had none)")
        self.classes, self.class_names = meta["classes"], meta["class_names"]
        self.shard_files = [s["file"] for s in meta["splits"][split]["shards"]]
        self.index = np.load(self.root / f"{split}.index.npy", mmap_mode="r")  # (n, 4)
        self._maps: list | None = None  # per-process memory maps, opened on first use

    def __len__(self) -> int:
        return len(self.index)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_maps": None}  # memory maps do not pickle (spawned loader workers)

    def _read(self, i: int) -> tuple[bytes, int, str]:
        shard, offset, length, label = (int(v) for v in self.index[i])
        if self._maps is None:
            self._maps = [np.memmap(self.root / f, dtype=np.uint8, mode="r") for f in self.shard_files]
        data = self._maps[shard][offset : offset + length].tobytes()
        return data, label, f"{self.shard_files[shard]} bytes {offset}+{length} ({self.split} item {i})"


def copy_cache(src: str | Path, dst: str | Path) -> Path:
    """Copy a finished cache (e.g. from Google Drive to local disk) atomically; a finished copy is kept."""
    src, dst = Path(src), Path(dst)
    reason = incomplete_reason(src)
    if reason is not None:
        raise FileNotFoundError(f"cannot copy {src}: not a finished cache ({reason})")
    if incomplete_reason(dst) is None and read_meta(dst)["id"] == read_meta(src)["id"]:
        return dst
    _check_replaceable(dst)
    tmp = dst.with_name(dst.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    files = sorted(p for p in src.iterdir() if p.is_file())
    with tqdm(total=sum(p.stat().st_size for p in files), desc=f"copying to {dst}", unit="B", unit_scale=True) as bar:
        for path in files:
            with open(path, "rb") as fin, open(tmp / path.name, "wb") as fout:
                while chunk := fin.read(1 << 24):
                    fout.write(chunk)
                    bar.update(len(chunk))
    _replace_dir(tmp, dst)
    return dst
