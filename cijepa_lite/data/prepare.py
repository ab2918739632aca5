"""Preparing the data once: download (or read local shards / an image folder), convert into the cache, mirror to Drive.

The command line's `data` command (cli.py) is a thin wrapper around `prepare_data`.
"""
from __future__ import annotations

from pathlib import Path

from .cache import DEFAULT_SHORT_SIDE, copy_cache, incomplete_reason, prepare_cache, read_meta
from .hub import download_dataset, download_imagenet100, verify_dataset, verify_download
from .imagenet100 import HUB_REPO, HUB_REVISION
from .parquet import ParquetDataset
from .sources import DEFAULT_DATA_DIR, open_dataset


def prepare_data(out: str | Path | None = None, source: str | Path = "hub", revision: str | None = None,
                 token: str | None = None, download_dir: str | Path | None = None,
                 short_side: int = DEFAULT_SHORT_SIDE, workers: int | None = None, mirror: str | Path | None = None,
                 image_column: str = "image", label_column: str | None = None, repo: str = HUB_REPO,
                 splits: dict[str, str] | None = None) -> Path:
    """Make the prepared cache at `out`, doing only what is missing; returns `out`.

    Args:
        out: the cache folder (default DEFAULT_DATA_DIR, where dataset="imagenet100" looks).
        source: "hub" (`repo` at `revision`, downloaded to `download_dir`, default `<out>-parquet`), or a path
            to parquet shards in the Hub layout or to an image folder.
        revision: default: ImageNet-100's pinned commit; for another `repo` its main branch (then its parquet
            conversion); the commit that arrived is recorded in the cache's meta.json either way.
        mirror: a persistent second place (e.g. a Google Drive folder). A finished cache there is copied
            to `out` instead of preparing one; a newly prepared cache is copied there.
        image_column, label_column: column names of parquet shards (label_column None: "label" if the shards
            have it, else unlabelled).
        repo: the Hub dataset OWNER/NAME; splits: its split names for {"train": ..., "val": ...}.
    """
    out = Path(out or DEFAULT_DATA_DIR).expanduser()
    if incomplete_reason(out) is None:
        if read_meta(out)["short_side"] != short_side:
            raise ValueError(f"{out} holds a cache with short_side={read_meta(out)['short_side']}, not {short_side}")
    elif mirror is not None and incomplete_reason(mirror) is None:
        copy_cache(mirror, out)
    elif source == "hub" and repo != HUB_REPO:
        shards, commit = download_dataset(repo, Path(download_dir or out.with_name(out.name + "-hub")).expanduser(),
                                          revision, token)
        dataset = ParquetDataset.open(shards, image_column, label_column, splits)
        verify_dataset(dataset, f"{repo}@{commit}")
        prepare_cache(dataset, out, f"hf://datasets/{repo}", commit, short_side, workers)
    elif source == "hub":
        shards = Path(download_dir or out.with_name(out.name + "-parquet")).expanduser()
        download_imagenet100(shards, revision or HUB_REVISION, token)
        verify_download(shards)
        prepare_cache(ParquetDataset.open(shards), out, f"hf://datasets/{HUB_REPO}", revision or HUB_REVISION,
                      short_side, workers)
    else:
        dataset = open_dataset(source, image_column, label_column)
        prepare_cache(dataset, out, str(Path(source).expanduser().resolve()), None, short_side, workers)
    if mirror is not None:
        copy_cache(out, mirror)
    return out
