"""The digits placed on a larger canvas: a generated CPU benchmark where raw pixels leave headroom [K].

Centred 8x8 digits are a near-perfect representation as raw pixels (logistic 96.7%, 20-NN 96.9%), so
they leave nothing for self-supervision to show. Here each digit is resized to a side drawn from
`digit_px` and pasted at a random position of a black `size` px canvas, `copies` times per training
digit (once per val digit); the pixels then carry the digit's position as much as its shape.
Everything derives from (seed, split, index): the same arguments give the same images on any machine.
The source digits are the `Digits` split's, so val images come from digits no training image shows.
Measured settings and why this one: docs/benchmark-settings.md.
"""
from __future__ import annotations

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

NAME = "digits-canvas"  # the config's dataset value
DIGIT_PX = (14, 18)  # side of the pasted digit, drawn uniformly (inclusive)
COPIES = 3  # placements per training digit
_SPLITS = {"train": 0, "val": 1}


class DigitsCanvas(Dataset):
    """scikit-learn's digits at seeded random positions and sizes of a `size` px canvas, as RGB PIL images."""

    classes = [str(d) for d in range(10)]

    def __init__(self, split: str = "train", size: int = 32, *, digit_px: tuple[int, int] = DIGIT_PX,
                 copies: int = COPIES, seed: int = 0):
        from .sources import Digits  # the same stratified split of the same source digits

        if not 1 <= digit_px[0] <= digit_px[1] <= size:
            raise ValueError(f"digits-canvas digit_px={digit_px}: need 1 <= lo <= hi <= canvas size {size}")
        source = Digits(split, size=8)
        n = len(source) * (copies if split == "train" else 1)
        rng = np.random.default_rng([seed, _SPLITS[split]])
        sides = rng.integers(digit_px[0], digit_px[1] + 1, size=n)  # (n,)
        corners = (rng.random((n, 2)) * (size - sides[:, None] + 1)).astype(int)  # (n, 2) top-left (x, y)
        self.images, self.labels = [], []
        for i in range(n):
            digit, label = source[i % len(source)]
            canvas = Image.new("RGB", (size, size))
            canvas.paste(digit.resize((int(sides[i]),) * 2, Image.BILINEAR), tuple(int(c) for c in corners[i]))
            self.images.append(canvas)
            self.labels.append(label)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Image.Image, int]:
        return self.images[i], self.labels[i]
