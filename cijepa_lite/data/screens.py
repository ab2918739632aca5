"""Generated stand-ins for GUI screenshots and photos (tests, smoke mode, a first look without data).

A screenshot here is what the companion essay describes: flat regions with hard edges (bars, cards,
buttons) and rows of small high-contrast strokes (text), not continuous objects. A photo-like image
is the opposite: smooth gradients, soft blobs and fine texture. Everything derives from `seed`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SCREEN_SIZES = ((1080, 2400), (1920, 1080))  # (width, height): a phone held upright, a desktop


def _text_lines(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], rng: np.random.Generator,
                line: int, color: tuple[int, int, int]) -> None:
    """Rows of word-like strokes (small rectangles with gaps and 'letters' cut into them) filling `box`."""
    x0, y0, x1, y1 = box
    for y in range(y0, y1 - line, int(line * 1.8)):
        x, end = x0, x0 + int((x1 - x0) * rng.uniform(0.5, 1.0))
        while x < end:
            word = int(line * rng.uniform(1.5, 5.0))
            draw.rectangle((x, y, min(x + word, end), y + line), fill=color)
            for cut in range(x + line // 3, min(x + word, end), max(2, line // 2)):  # letter gaps
                draw.line((cut, y, cut, y + line), fill=(255, 255, 255), width=max(1, line // 8))
            x += word + line


def screenshot(width: int, height: int, seed: int = 0) -> Image.Image:
    """A GUI-like screen: a top bar, a side panel when landscape, cards of text, buttons and icons."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (width, height), (246, 247, 249))
    draw = ImageDraw.Draw(img)
    unit = max(8, min(width, height) // 40)
    accent = tuple(int(c) for c in rng.integers(30, 200, 3))
    draw.rectangle((0, 0, width, 3 * unit), fill=accent)  # top bar
    _text_lines(draw, (unit, unit, width // 3, 2 * unit), rng, unit // 2 + 2, (255, 255, 255))
    left = 0
    if width > height:  # a desktop's side panel with menu entries
        left = width // 5
        draw.rectangle((0, 3 * unit, left, height), fill=(225, 228, 233))
        _text_lines(draw, (unit, 5 * unit, left - unit, height - unit), rng, unit // 2 + 2, (60, 60, 70))
    y = 4 * unit
    while y < height - 6 * unit:
        card = int(unit * rng.uniform(5, 12))
        bottom = min(y + card, height - unit)
        draw.rounded_rectangle((left + unit, y, width - unit, bottom), radius=unit // 2, fill=(255, 255, 255),
                               outline=(210, 212, 218))
        draw.ellipse((left + 2 * unit, y + unit, left + 4 * unit, y + 3 * unit), fill=accent)  # an icon
        button = rng.random() < 0.4 and bottom - y > 4 * unit
        if button:  # a button right of the text
            draw.rounded_rectangle((width - 8 * unit, bottom - 3 * unit, width - 2 * unit, bottom - unit),
                                   radius=unit // 2, fill=accent)
        text_right = width - (9 if button else 2) * unit
        _text_lines(draw, (left + 5 * unit, y + unit, text_right, bottom - unit), rng, unit // 2, (40, 40, 48))
        y = bottom + unit
    return img


def photo_like(width: int, height: int, seed: int = 0) -> Image.Image:
    """A photo-like scene: a sky-to-ground gradient, soft overlapping blobs, fine texture."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, height)[:, None, None]  # (H, 1, 1)
    sky, ground = rng.uniform(0.4, 0.9, 3), rng.uniform(0.1, 0.5, 3)
    base = np.broadcast_to((1 - t) * sky + t * ground, (height, width, 3))  # (H, W, 3)
    img = Image.fromarray((base * 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(12):
        cx, cy, r = rng.uniform(0, width), rng.uniform(height * 0.3, height), rng.uniform(0.05, 0.25) * width
        draw.ellipse((cx - r, cy - 0.6 * r, cx + r, cy + 0.6 * r), fill=tuple(int(c) for c in rng.integers(20, 235, 3)))
    img = img.filter(ImageFilter.GaussianBlur(radius=width / 60))
    noise = rng.normal(0, 8, (height, width, 1))  # (H, W, 1) grain
    return Image.fromarray(np.clip(np.asarray(img, dtype=np.float64) + noise, 0, 255).astype(np.uint8))


def write_examples(folder: str | Path, sizes: tuple[tuple[int, int], ...] = SCREEN_SIZES,
                   photo_size: tuple[int, int] = (640, 480), seed: int = 0) -> Path:
    """Write one screenshot per (width, height) in `sizes` and one photo-like image as PNGs; returns `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for k, (w, h) in enumerate(sizes):
        screenshot(w, h, seed + k).save(folder / f"screen-{w}x{h}.png")
    photo_like(*photo_size, seed=seed).save(folder / f"photo-{photo_size[0]}x{photo_size[1]}.png")
    return folder
