"""Preparing the data once (download, convert into the cache, mirror to Drive), and the `data` command.

Command line (wired into `python -m cijepa_lite data ...` by the CLI module):
    data --hub [--revision SHA] [--token T] [--download-dir D] --out CACHE [--mirror DRIVE_DIR]
    data --parquet-dir DIR --out CACHE        local shards in the Hub layout (data/train-*.parquet, ...)
    data --image-folder DIR --out CACHE       DIR/train/<class>/*, DIR/val/<class>/*
    data --bench [--bench-images N]           raw parquet vs cache, images/s per core
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .cache import DEFAULT_SHORT_SIDE, copy_cache, incomplete_reason, prepare_cache, read_meta
from .data import DEFAULT_DATA_DIR, open_dataset
from .hub import HubUnreachable, download_imagenet100, verify_download
from .imagenet100 import HUB_REPO, HUB_REVISION
from .parquet import ParquetDataset


def prepare_data(out: str | Path | None = None, source: str | Path = "hub", revision: str = HUB_REVISION,
                 token: str | None = None, download_dir: str | Path | None = None,
                 short_side: int = DEFAULT_SHORT_SIDE, workers: int | None = None, mirror: str | Path | None = None,
                 image_column: str = "image", label_column: str = "label") -> Path:
    """Make the prepared cache at `out`, doing only what is missing; returns `out`.

    Args:
        out: the cache folder (default DEFAULT_DATA_DIR, where dataset="imagenet100" looks).
        source: "hub" (clane9/imagenet-100 at `revision`, downloaded to `download_dir`, default
            `<out>-parquet`), or a path to parquet shards in the Hub layout or to an image folder.
        mirror: a persistent second place (e.g. a Google Drive folder). A finished cache there is copied
            to `out` instead of preparing one; a newly prepared cache is copied there.
        image_column, label_column: column names of parquet shards.
    """
    out = Path(out or DEFAULT_DATA_DIR).expanduser()
    if incomplete_reason(out) is None:
        if read_meta(out)["short_side"] != short_side:
            raise ValueError(f"{out} holds a cache with short_side={read_meta(out)['short_side']}, not {short_side}")
    elif mirror is not None and incomplete_reason(mirror) is None:
        copy_cache(mirror, out)
    elif source == "hub":
        shards = Path(download_dir or out.with_name(out.name + "-parquet")).expanduser()
        download_imagenet100(shards, revision, token)
        verify_download(shards)
        prepare_cache(ParquetDataset.open(shards), out, f"hf://datasets/{HUB_REPO}", revision, short_side, workers)
    else:
        dataset = open_dataset(source, image_column, label_column)
        prepare_cache(dataset, out, str(Path(source).expanduser().resolve()), None, short_side, workers)
    if mirror is not None:
        copy_cache(out, mirror)
    return out


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `data` command's options to `parser`."""
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--hub", action="store_true", help=f"download {HUB_REPO} (parquet) and prepare the cache")
    what.add_argument("--parquet-dir", type=Path, help="local parquet shards in the Hub layout")
    what.add_argument("--image-folder", type=Path, help="folder with train/ and val/, one sub-folder per class")
    what.add_argument("--bench", action="store_true", help="measure raw parquet vs cache images/s per core")
    parser.add_argument("--out", type=Path, default=None, help=f"cache folder (default {DEFAULT_DATA_DIR})")
    parser.add_argument("--mirror", type=Path, default=None, help="persistent copy, e.g. a Google Drive folder")
    parser.add_argument("--revision", default=HUB_REVISION, help="Hub commit to download (default: pinned)")
    parser.add_argument("--token", default=None, help="Hugging Face token (default: HF_TOKEN or saved login)")
    parser.add_argument("--download-dir", type=Path, default=None, help="where --hub puts the shards")
    parser.add_argument("--short-side", type=int, default=DEFAULT_SHORT_SIDE, help="cache images' short side")
    parser.add_argument("--workers", type=int, default=None, help="preparation processes (default: cores, <= 8)")
    parser.add_argument("--image-column", default="image", help="parquet column with the encoded images")
    parser.add_argument("--label-column", default="label", help="parquet column with the labels")
    parser.add_argument("--bench-images", type=int, default=300, help="synthetic images for --bench")


def run_data_command(args: argparse.Namespace) -> int:
    """Run the `data` command; returns the exit status (1 with a one-line reason on bad input or no network)."""
    if args.bench:
        from .databench import bench_data

        bench_data(n_images=args.bench_images, short_side=args.short_side)
        return 0
    source = "hub" if args.hub else (args.parquet_dir or args.image_folder)
    try:
        out = prepare_data(args.out, source, args.revision, args.token, args.download_dir, args.short_side,
                           args.workers, args.mirror, args.image_column, args.label_column)
    except (HubUnreachable, FileNotFoundError, FileExistsError, ValueError) as e:
        print(f"data: {e}", file=sys.stderr)
        return 1
    meta = read_meta(out)
    for split, info in meta["splits"].items():
        print(f"{split}: {info['count']:,} images, {len(info['skipped'])} skipped, {len(meta['classes'])} classes")
        for bad in info["skipped"]:
            print(f"  skipped {bad['where']}: {bad['reason']}")
    print(f"cache ready at {out}")
    return 0
