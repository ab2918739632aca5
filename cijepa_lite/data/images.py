"""Decoding untrusted image bytes into RGB, and the base class of sources that must never die on one.

Real datasets hold a few images PIL cannot read as they are: CMYK or grayscale JPEGs, palette or
16-bit PNGs, PNGs named .JPEG (all convertible), and truncated, empty or non-image files (not). Every
decode goes through `decode`, which returns RGB or raises `BadImage` naming the file and the reason.
"""
from __future__ import annotations

import contextlib
import io
import os
import stat
import struct
import threading
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

# Decompression-bomb bound [K]: 2^27 pixels (e.g. 16384 x 8192), far above any photo (ImageNet's largest
# are ~ 10^7) and ~400 MB as RGB. PIL's own limit (~8.9e7 warns, ~1.8e8 raises) is lifted only inside
# `open_image`, which checks this bound from the header before any pixel is decoded.
MAX_PIXELS = 1 << 27
MAX_FILE_BYTES = 1 << 30  # [K] an encoded image file larger than 1 GiB is refused before it is read
# What PIL raises on malformed data (SyntaxError and struct.error come from broken headers).
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, Image.DecompressionBombError)


class BadImage(ValueError):
    """An image that cannot be turned into RGB; `where` names it (file, or parquet shard + row)."""

    def __init__(self, where: str, reason: str):
        super().__init__(f"{where}: {reason}")
        self.where, self.reason = where, reason


class BadImageWarning(UserWarning):
    """An unreadable image was skipped (cache preparation) or replaced by another sample (run time)."""


_PIL_LIMIT_LOCK = threading.Lock()


@contextlib.contextmanager
def _pil_limit_lifted():
    # PIL checks its own (global) limit inside Image.open; we check MAX_PIXELS right after, from the
    # header. The lock keeps threads that decode at once from restoring each other's None.
    with _PIL_LIMIT_LOCK:
        old, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = old


def open_image(data: bytes | None, where: str) -> Image.Image:
    """Read the header of an encoded image (no pixels yet), or raise BadImage; checks the pixel bound.

    Args:
        data: the encoded file (any format PIL reads; the name's extension is never trusted).
        where: how errors name this image (a path, or "shard row N").
    """
    if not data:
        raise BadImage(where, "no image data (empty file or null bytes)")
    try:
        with _pil_limit_lifted():
            img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise BadImage(where, f"not an image PIL can read (starts with {bytes(data[:16])!r})") from None
    except DECODE_ERRORS as e:
        raise BadImage(where, f"unreadable header ({type(e).__name__}: {e})") from None
    w, h = img.size
    if w * h > MAX_PIXELS:
        raise BadImage(where, f"{w}x{h} = {w * h:,} pixels exceeds the decompression-bomb bound {MAX_PIXELS:,}")
    return img


def read_image_file(path: str | os.PathLike) -> bytes:
    """The bytes of an image file, or BadImage naming it: refuses what is not a regular file (a FIFO, a device,
    a folder: opened non-blocking, so a FIFO never hangs) and files over MAX_FILE_BYTES."""
    where = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as e:
        raise BadImage(where, f"cannot read the file ({e.strerror or e})") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise BadImage(where, "not a regular file (a FIFO, socket, device or folder): give image files only")
        if info.st_size > MAX_FILE_BYTES:
            raise BadImage(where, f"{info.st_size:,} bytes is over the {MAX_FILE_BYTES:,}-byte bound of an image file")
        try:
            return f.read(MAX_FILE_BYTES + 1)
        except OSError as e:
            raise BadImage(where, f"cannot read the file ({e.strerror or e})") from None


def open_image_file(path: str | os.PathLike) -> Image.Image:
    """An image file as RGB through the one guarded path (regular file, size and pixel bounds), or BadImage."""
    return decode(read_image_file(path), str(path))


def load_rgb(img: Image.Image, where: str, min_short_side: int | None = None) -> Image.Image:
    """Decode the pixels of an opened image to RGB, or raise BadImage.

    Args:
        min_short_side: if given, a JPEG may be decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT
            scaling) as long as its short side stays >= this; only where the image is resized down to
            that size anyway (cache preparation).
    """
    w, h = img.size
    if min_short_side and img.format == "JPEG" and min(w, h) >= 2 * min_short_side:
        img.draft(img.mode, resized_size((w, h), min_short_side))  # keeps both sides >= the resize target
    try:
        img.load()
        return to_rgb(img)
    except DECODE_ERRORS as e:
        raise BadImage(where, f"cannot decode the pixels ({type(e).__name__}: {e})") from None


def decode(data: bytes | None, where: str) -> Image.Image:
    """Encoded image bytes as an RGB image at full resolution, or BadImage naming `where` and the reason."""
    return load_rgb(open_image(data, where), where)


def to_rgb(img: Image.Image) -> Image.Image:
    """`img` as 8-bit RGB: 16-bit and 32-bit grey are scaled (not clipped), transparency is composited on white."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        # PIL's convert clips these at 255 (a 16-bit PNG turns white); scale the 16-bit range down instead.
        a = np.asarray(img).astype(np.float64)
        a = a if img.mode == "F" else a / 257.0
        return Image.fromarray(np.clip(a + 0.5, 0, 255).astype(np.uint8), "L").convert("RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")  # L, P, CMYK, YCbCr, 1


def resized_size(size: tuple[int, int], short_side: int) -> tuple[int, int]:
    """(w, h) with the short side scaled to `short_side`, the long side as torchvision's Resize(int) rounds it."""
    w, h = size
    if w <= h:
        return short_side, int(short_side * h / w)
    return int(short_side * w / h), short_side


def resize_short(img: Image.Image, short_side: int) -> Image.Image:
    """Bicubic (antialiased) resize of the short side down to `short_side`; never upsamples."""
    if min(img.size) <= short_side:
        return img
    return img.resize(resized_size(img.size, short_side), Image.BICUBIC)


def encode_jpeg(img: Image.Image, quality: int) -> bytes:
    """Baseline JPEG at `quality`, 4:2:0 chroma, optimised Huffman tables, no EXIF or ICC profile."""
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality, subsampling="4:2:0", optimize=True)  # same pixels, ~5% fewer bytes
    return out.getvalue()


class RobustSource:
    """A source whose item i is (RGB image, label); an unreadable item is replaced, never raised.

    Map-style (torch's DataLoader needs only __len__ and __getitem__); deliberately not a torch Dataset
    subclass, so the preparation workers that import this module never import torch.

    Subclasses implement `_read(i) -> (bytes, label, where)`. A bad item i is replaced by the next
    readable index (i+1, i+2, ... mod n), so the substitute depends only on i and a resumed run sees the
    same data; each bad index warns once per process (so once per data-loader worker at most).
    """

    classes: list[str]

    def _read(self, i: int) -> tuple[bytes | None, int, str]:
        """(encoded image, label, where) of item i; may raise BadImage (e.g. an unreadable file)."""
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, i: int) -> tuple[Image.Image, int]:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for a source of {n} images")
        for k in range(n):
            j = (i + k) % n
            try:
                data, label, where = self._read(j)
                return decode(data, where), label
            except BadImage as bad:
                self._warn_once(j, bad)
        raise RuntimeError(f"no readable image in this source of {n} items")

    def _warn_once(self, j: int, bad: BadImage) -> None:
        warned = self.__dict__.setdefault("_warned", set())
        if j not in warned:
            warned.add(j)
            warnings.warn(f"{bad} (index {j} replaced by the next readable image)", BadImageWarning, stacklevel=3)
