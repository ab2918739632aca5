"""Parquet image datasets in the Hugging Face Hub layout, read with pyarrow only (no second Arrow copy).

Layout: `<root>/data/<split>-0000K-of-0000N.parquet` (or `<root>/<config>/<split>/*.parquet`, or a flat
folder of `<split>-*.parquet`); split "val" is also found as "validation" or "valid". Columns: `image`
(struct {bytes, path}, as `datasets` writes it, or plain binary) and `label`: an int whose class names
are in the schema metadata under `huggingface` (a ClassLabel), a plain int, or a string; or no label at all.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .imagenet100 import canonical_classes
from .images import RobustSource

SPLIT_ALIASES = {"train": ("train",), "val": ("validation", "val", "valid")}


def find_shards(root: Path, split: str, name: str | None = None) -> list[Path]:
    """The parquet files of `split` ("train" or "val"; or the dataset's split `name`) below `root`, sorted;
    hidden folders are skipped."""
    names = (name,) if name else SPLIT_ALIASES[split]
    found = []
    for path in sorted(Path(root).rglob("*.parquet")):
        parts = path.relative_to(root).parts
        if any(p.startswith(".") for p in parts):
            continue  # e.g. huggingface_hub's .cache folder inside a local_dir download
        words = [*parts[:-1], re.split(r"[-_.]", path.stem)[0]]
        if any(w in names for w in words):
            found.append(path)
    return found


def class_label_names(path: Path, column: str = "label") -> list[str] | None:
    """ClassLabel names of feature `column` in a shard's `huggingface` schema metadata, if any."""
    meta = pq.read_schema(path).metadata or {}
    if b"huggingface" not in meta:
        return None
    features = json.loads(meta[b"huggingface"]).get("info", {}).get("features", {})
    label = features.get(column) or {}
    return list(label["names"]) if label.get("_type") == "ClassLabel" and "names" in label else None


@dataclass
class ParquetDataset:
    """The shards of a parquet dataset's splits, one class list for all splits, and every row's label."""

    root: Path
    files: dict[str, list[Path]]  # split -> shards
    classes: list[str]  # class ids (WordNet ids for ImageNet-100)
    class_names: list[str]  # readable names, same order
    labels: dict[str, np.ndarray]  # split -> int64 label of every row, shards in order
    image_column: str = "image"

    @classmethod
    def open(cls, root: str | Path, image_column: str = "image", label_column: str | None = None,
             splits: dict[str, str] | None = None) -> "ParquetDataset":
        """Find the shards under `root`, resolve the classes and map every row's label by class name.

        Args:
            label_column: None: "label" where every shard has it, else the dataset is unlabelled (no classes,
                every label -1: it pretrains and can be inspected, not probed); a named column must exist.
            splits: the dataset's split names for the kit's {"train": ..., "val": ...} (default: SPLIT_ALIASES).
        """
        root, splits = Path(root), splits or {}
        files = {s: find_shards(root, s, splits.get(s)) for s in SPLIT_ALIASES}
        if not files["train"] and not files["val"]:
            raise FileNotFoundError(f"no parquet shards named train-*/validation-* below {root}")
        shards = files["train"] + files["val"]
        if label_column is None and all("label" in pq.read_schema(f).names for f in shards):
            label_column = "label"
        for path in shards:
            _check_columns(path, image_column, label_column)
        if label_column is None:  # unlabelled
            labels = {s: np.full(sum(pq.ParquetFile(f).metadata.num_rows for f in fs), -1) for s, fs in files.items()}
            return cls(root, files, [], [], labels, image_column)
        raw = {s: [pq.read_table(f, columns=[label_column]).column(0) for f in fs] for s, fs in files.items()}
        keys = _class_keys(files, raw, label_column)
        classes, names, index = canonical_classes(keys)
        lookup = {key: index[k] for k, key in enumerate(keys)}
        labels = {s: _map_labels(fs, raw[s], lookup, keys) for s, fs in files.items()}
        return cls(root, files, classes, names, labels, image_column)

    def units(self, split: str) -> list["RowGroup"]:
        """One unit of work per row group of `split`, in file order, with its rows' labels."""
        units, start = [], 0
        for path in self.files[split]:
            meta, first = pq.ParquetFile(path).metadata, 0
            for g in range(meta.num_row_groups):
                n = meta.row_group(g).num_rows
                labels = tuple(int(x) for x in self.labels[split][start + first : start + first + n])
                units.append(RowGroup(str(path), g, first, labels, self.image_column))
                first += n
            start += first
        return units


def _check_columns(path: Path, image_column: str, label_column: str | None) -> None:
    """Raise ValueError naming the shard if a column is missing or the image column has another type."""
    schema = pq.read_schema(path)
    for column in (image_column, label_column):
        if column is not None and column not in schema.names:
            raise ValueError(f"{path}: no column {column!r} (columns: {', '.join(schema.names)})")
    kind = schema.field(image_column).type
    if not (pa.types.is_struct(kind) and kind.get_field_index("bytes") >= 0) and not pa.types.is_binary(kind) \
            and not pa.types.is_large_binary(kind):
        raise ValueError(f"{path}: column {image_column!r} has type {kind}; expected struct{{bytes, path}} or binary")


def _class_keys(files: dict[str, list[Path]], raw: dict[str, list[pa.ChunkedArray]], column: str) -> list[str]:
    """The class list before canonicalisation: ClassLabel names, else sorted strings, else '0'..'max'."""
    shards = [f for fs in files.values() for f in fs]
    names = {tuple(n) if n is not None else None for n in (class_label_names(f, column) for f in shards)}
    if len(names) > 1:
        raise ValueError(f"shards under {shards[0].parent} disagree on their ClassLabel names")
    columns = [c for cs in raw.values() for c in cs]
    if pa.types.is_string(columns[0].type) or pa.types.is_large_string(columns[0].type):
        return sorted({v for c in columns for v in c.to_pylist() if v is not None})
    (known,) = names
    if known is not None:
        return list(known)
    top = max((int(pc.max(c).as_py() or 0) for c in columns), default=0)
    return [str(k) for k in range(top + 1)]


def _map_labels(files: list[Path], raw: list[pa.ChunkedArray], lookup: dict, keys: list[str]) -> np.ndarray:
    """Final int64 label of every row: the raw value's class key, looked up by name."""
    out = []
    for path, column in zip(files, raw):
        values = column.to_pylist()
        for row, v in enumerate(values):
            key = v if isinstance(v, str) else (keys[v] if v is not None and 0 <= v < len(keys) else None)
            if key is None:
                raise ValueError(f"{path} row {row}: label {v!r} is not one of the {len(keys)} classes")
            values[row] = lookup[key]
        out.append(np.asarray(values, dtype=np.int64))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def _image_bytes(column: pa.Array, row: int) -> tuple[bytes | None, str]:
    """(encoded bytes, original file name or '') of one cell of an image column."""
    if pa.types.is_struct(column.type):
        cell = column[row].as_py() or {}
        return cell.get("bytes"), cell.get("path") or ""
    return column[row].as_py(), ""


def _where(path: str, row: int, name: str) -> str:
    """How a row is named in warnings and meta.json: "<shard> row <n> (<original file name>)"."""
    return f"{os.path.basename(path)} row {row}" + (f" ({name})" if name else "")


@dataclass(frozen=True)
class RowGroup:
    """One row group of one shard: the unit a preparation worker reads and converts."""

    path: str
    index: int  # row group number in the file
    first_row: int  # row number (in the file) of its first row
    labels: tuple[int, ...]
    image_column: str

    def __len__(self) -> int:
        return len(self.labels)

    def read(self) -> Iterator[tuple[bytes | None, int, str]]:
        """(encoded image, label, where) of each row."""
        table = pq.ParquetFile(self.path).read_row_group(self.index, columns=[self.image_column])
        column = table.column(0).combine_chunks()
        for r, label in enumerate(self.labels):
            data, name = _image_bytes(column, r)
            yield data, label, _where(self.path, self.first_row + r, name)


class ParquetSource(RobustSource):
    """Raw parquet shards as a source, decoded at run time (random access reads a whole row group)."""

    def __init__(self, dataset: ParquetDataset, split: str):
        if not dataset.files[split]:
            raise FileNotFoundError(f"no {split!r} shards below {dataset.root}")
        self.classes, self.class_names = dataset.classes, dataset.class_names
        self.units = dataset.units(split)
        self.starts = np.cumsum([0] + [len(u) for u in self.units])  # (G + 1,)
        self._cached: tuple[int, pa.Array] | None = None  # the last row group read, per process

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_cached": None}  # loader workers start without a copy of the cached group

    def _read(self, i: int) -> tuple[bytes | None, int, str]:
        g = int(np.searchsorted(self.starts, i, side="right")) - 1
        unit, r = self.units[g], i - int(self.starts[g])
        if self._cached is None or self._cached[0] != g:
            table = pq.ParquetFile(unit.path, memory_map=True).read_row_group(unit.index, columns=[unit.image_column])
            self._cached = (g, table.column(0).combine_chunks())
        data, name = _image_bytes(self._cached[1], r)
        return data, unit.labels[r], _where(unit.path, unit.first_row + r, name)


def write_shard(path: str | Path, images: list[bytes | None], labels: list | None, class_names: list[str] | None = None,
                file_names: list[str] | None = None, image_column: str = "image") -> Path:
    """Write one shard as the Hub stores it (for tests and the benchmark): image {bytes, path}, label.

    Args:
        labels: ints (with `class_names`, stored as a ClassLabel in the `huggingface` metadata) or strings;
            None: no label column (an unlabelled dataset).
    """
    file_names = file_names or [f"{k:06d}.JPEG" for k in range(len(images))]
    image = pa.array([{"bytes": b, "path": p} for b, p in zip(images, file_names)],
                     type=pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
    columns, features = {image_column: image}, {image_column: {"_type": "Image"}}
    if labels is not None:
        dtype = "string" if labels and isinstance(labels[0], str) else "int64"
        columns["label"] = pa.array(labels, type=pa.string() if dtype == "string" else pa.int64())
        features["label"] = {"dtype": dtype, "_type": "Value"}
        if class_names is not None:
            features["label"] = {"names": list(class_names), "_type": "ClassLabel"}
    table = pa.table(columns)
    table = table.replace_schema_metadata({"huggingface": json.dumps({"info": {"features": features}})})
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=100)  # `datasets` writes image datasets in groups of 100 rows
    return Path(path)
