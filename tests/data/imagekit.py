"""Builders of small test images, good and bad, and of datasets in the Hub's parquet layout."""
from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **kw)
    return out.getvalue()


def solid_jpeg(color: tuple[int, int, int], size: tuple[int, int] = (24, 16)) -> bytes:
    return encode(Image.new("RGB", size, color), "JPEG", quality=95)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels (a decompression bomb) with almost no data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 8)) + chunk(b"IEND", b"")


def convertible() -> dict[str, tuple[bytes, tuple[int, int, int]]]:
    """Files PIL reads in another mode than RGB: name -> (bytes, the RGB colour they must decode to)."""
    rgba = Image.new("RGBA", (20, 20), (10, 200, 30, 0))  # fully transparent: composited on white
    palette = Image.new("RGB", (20, 20), (200, 40, 90)).convert("P", palette=Image.ADAPTIVE)
    deep = Image.fromarray(np.full((20, 20), 32896, dtype=np.uint16))  # 32896 / 257 = 128 (not clipped to 255)
    return {
        "cmyk.JPEG": (encode(Image.new("CMYK", (20, 20), (0, 0, 0, 0)), "JPEG", quality=95), (255, 255, 255)),
        "gray.JPEG": (encode(Image.new("L", (20, 20), 128), "JPEG", quality=95), (128, 128, 128)),
        "rgba.png": (encode(rgba, "PNG"), (255, 255, 255)),
        "palette.png": (encode(palette, "PNG"), (200, 40, 90)),
        "deep16.png": (encode(deep, "PNG"), (128, 128, 128)),
        "png_named.JPEG": (encode(Image.new("RGB", (20, 20), (0, 0, 255)), "PNG"), (0, 0, 255)),
    }


def unreadable() -> dict[str, tuple[bytes, str]]:
    """Files that are not readable images: name -> (bytes, a word the reason must contain)."""
    noise = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    good = encode(Image.fromarray(noise), "JPEG", quality=90)  # textured: the cut falls in the pixel data
    return {
        "truncated.JPEG": (good[: len(good) // 2], "truncated"),
        "empty.JPEG": (b"", "no image data"),
        "html.JPEG": (b"<!DOCTYPE html><html><body>404 Not Found</body></html>", "not an image"),
        "bomb.png": (png_header_only(30000, 30000), "decompression-bomb"),
    }


def good_images(n: int, num_classes: int, offset: int = 0) -> list[tuple[bytes, int, tuple[int, int, int]]]:
    """(JPEG, label, colour) of n solid images whose colour identifies each one."""
    out = []
    for k in range(offset, offset + n):
        color = (20 + (37 * k) % 216, 20 + (91 * k) % 216, 20 + 10 * (k % num_classes))
        out.append((solid_jpeg(color), k % num_classes, color))
    return out


def hub_dataset(root: Path, classes: list[str], n_train: int = 12, n_val: int = 5, bad: bool = True) -> dict:
    """A dataset in the Hub layout under root/data: two train shards (with every bad kind) and one val shard.

    Returns {"train": [(colour or None, label, name)], "val": [...], "bad": {name: reason word}}.
    """
    from cijepa_lite.data.parquet import write_shard

    k = len(classes)
    train = [(b, y, c, f"good{i}.JPEG") for i, (b, y, c) in enumerate(good_images(n_train, k))]
    if bad:
        train += [(b, i % k, c, name) for i, (name, (b, c)) in enumerate(convertible().items())]
        train += [(b, i % k, None, name) for i, (name, (b, _)) in enumerate(unreadable().items())]
    val = [(b, y, c, f"val{i}.JPEG") for i, (b, y, c) in enumerate(good_images(n_val, k, offset=100))]
    half = len(train) // 2
    for path, rows in (("train-00000-of-00002.parquet", train[:half]), ("train-00001-of-00002.parquet", train[half:]),
                       ("validation-00000-of-00001.parquet", val)):
        write_shard(root / "data" / path, [r[0] for r in rows], [r[1] for r in rows], classes, [r[3] for r in rows])
    return {"train": [(c, y, n) for _, y, c, n in train], "val": [(c, y, n) for _, y, c, n in val],
            "bad": {name: word for name, (_, word) in unreadable().items()} if bad else {}}


def mean_color(img: Image.Image) -> tuple[int, ...]:
    return tuple(int(round(v)) for v in np.asarray(img, dtype=np.float64).reshape(-1, 3).mean(0))


def close(a, b, tol: int = 6) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b))
