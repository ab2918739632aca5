"""Image folders: `<root>/<split>/<class>/**/<image>` with split `train` and `val` (or `validation`).

Classes are the union of the class folders of all splits, sorted (torchvision ImageFolder's order), so
train and val share one class list; ImageNet-100's WordNet-id folders take CMC's order instead
(`imagenet100.canonical_classes`), matching the Hub dataset's label indices.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from .imagenet100 import canonical_classes
from .images import BadImage, RobustSource, read_image_file

SPLIT_DIRS = {"train": ("train",), "val": ("val", "validation")}
# Files with other suffixes (notes, .DS_Store, ...) are not images and are ignored; the content of a
# file with one of these suffixes is never trusted (a .JPEG may be a PNG or an HTML page).
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm"}


def split_dir(root: Path, split: str) -> Path | None:
    """The folder of `split` under `root`, or None."""
    for name in SPLIT_DIRS[split]:
        if (Path(root) / name).is_dir():
            return Path(root) / name
    return None


def is_image_folder(root: Path) -> bool:
    """True if `root` has train/ and val/ (or validation/) folders."""
    return split_dir(root, "train") is not None and split_dir(root, "val") is not None


def _visible(path: Path, base: Path) -> bool:
    return not any(p.startswith(".") for p in path.relative_to(base).parts)


@dataclass
class FolderDataset:
    """The image files of each split of an image folder, with one class list for all splits."""

    root: Path
    classes: list[str]
    class_names: list[str]
    files: dict[str, list[Path]]  # split -> image files, class by class, sorted
    labels: dict[str, np.ndarray]  # split -> int64 label of each file

    @classmethod
    def open(cls, root: str | Path) -> "FolderDataset":
        """List every image file under `root`/<split>/<class>/ and label it by its class folder's name."""
        root = Path(root)
        dirs = {s: split_dir(root, s) for s in SPLIT_DIRS}
        if dirs["train"] is None and dirs["val"] is None:
            raise FileNotFoundError(f"{root}: expected train/ and val/ folders with one sub-folder per class")
        found = {s: sorted(p for p in d.iterdir() if p.is_dir() and _visible(p, d)) if d else []
                 for s, d in dirs.items()}
        keys = sorted({p.name for ps in found.values() for p in ps})
        classes, names, index = canonical_classes(keys)
        label_of = {key: index[k] for k, key in enumerate(keys)}
        files, labels = {}, {}
        for split, class_dirs in found.items():
            pairs = [(f, label_of[d.name]) for d in class_dirs for f in sorted(d.rglob("*"))
                     if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file() and _visible(f, d)]
            files[split] = [f for f, _ in pairs]
            labels[split] = np.asarray([y for _, y in pairs], dtype=np.int64)
        return cls(root, classes, names, files, labels)

    def units(self, split: str, size: int = 64) -> list["FileChunk"]:
        """Units of work of `size` files for preparation workers, in listing order."""
        files, labels = self.files[split], self.labels[split].tolist()
        return [FileChunk(tuple(map(str, files[k : k + size])), tuple(labels[k : k + size]))
                for k in range(0, len(files), size)]


@dataclass(frozen=True)
class FileChunk:
    """A few image files: the unit a preparation worker reads and converts."""

    paths: tuple[str, ...]
    labels: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.paths)

    def read(self) -> Iterator[tuple[bytes | BadImage, int, str]]:
        """(encoded image, label, where) of each file; a file that cannot be read gives its BadImage."""
        for path, label in zip(self.paths, self.labels):
            try:
                yield read_image_file(path), label, path
            except BadImage as bad:
                yield bad, label, path


class FolderSource(RobustSource):
    """One split of an image folder as a source, decoded at run time."""

    def __init__(self, dataset: FolderDataset, split: str):
        if not dataset.files[split]:
            raise FileNotFoundError(f"no images in the {split!r} folder of {dataset.root}")
        self.classes, self.class_names = dataset.classes, dataset.class_names
        self.files, self.labels = [str(f) for f in dataset.files[split]], dataset.labels[split]

    def __len__(self) -> int:
        return len(self.files)

    def _read(self, i: int) -> tuple[bytes, int, str]:
        return read_image_file(self.files[i]), int(self.labels[i]), self.files[i]
