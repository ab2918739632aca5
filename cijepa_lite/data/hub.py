"""Downloading parquet shards from the Hugging Face Hub (ImageNet-100, or any image dataset), checking what arrived."""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import socket
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow.parquet as pq

from .imagenet100 import HUB_REPO, HUB_REVISION, NAMES, NUM_CLASSES, SPLIT_COUNTS
from .images import BadImage, decode
from .parquet import ParquetDataset, class_label_names, find_shards

DEFAULT_ENDPOINT = "https://huggingface.co"
CONVERTED = "refs/convert/parquet"  # the Hub's parquet conversion of every dataset it can read
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


class HubUnreachable(ConnectionError):
    """The Hub could not be reached (offline, no network, wrong endpoint) or kept failing."""


def enable_fast_transfer() -> None:
    """Turn on huggingface_hub's fast transfer; call before it is imported (it reads these at import).

    huggingface_hub >= 1.0 downloads through Xet, whose high-performance mode is HF_XET_HIGH_PERFORMANCE=1.
    Older versions used the separate hf_transfer package, switched on by HF_HUB_ENABLE_HF_TRANSFER=1,
    which fails when the package is missing: it is set only where hf_transfer is installed. A value the
    user already set is kept.
    """
    os.environ.setdefault("HF_XET_HIGH_PERFORMANCE", "1")
    major = int(importlib.metadata.version("huggingface_hub").split(".")[0])
    if major < 1 and importlib.util.find_spec("hf_transfer") is not None:
        os.environ.setdefault("HF_HUB_ENABLE_HF_TRANSFER", "1")
        if "huggingface_hub" in sys.modules:  # already imported (e.g. by timm): its constant is stale
            sys.modules["huggingface_hub"].constants.HF_HUB_ENABLE_HF_TRANSFER = True


def check_reachable(endpoint: str, timeout: float = 5.0) -> None:
    """Raise HubUnreachable within `timeout` s if the endpoint takes no TCP connection.

    huggingface_hub retries a dead connection for ~25 s per call; one plain connect fails fast instead.
    Behind a proxy the endpoint is reached through it, so the check is left to huggingface_hub.
    """
    if any(os.environ.get(v) for v in PROXY_VARIABLES):
        return
    url = urlsplit(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError as e:
        raise HubUnreachable(f"cannot reach the Hugging Face Hub at {endpoint} ({e}). Check the network (or "
                             f"HF_ENDPOINT), or download the parquet shards elsewhere and pass --parquet-dir") from None


def transport_errors() -> tuple[type[BaseException], ...]:
    """The errors of a dropped or failing connection in every huggingface_hub the requirements allow: its HTTP
    error, OSError (0.x's requests errors are OSErrors), and httpx's (1.x, 2.x: not OSErrors) where importable."""
    from huggingface_hub.utils import HfHubHTTPError

    errors = [HfHubHTTPError, OSError]
    for module, name in (("httpx", "HTTPError"), ("requests", "RequestException")):
        try:
            errors.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


def download_imagenet100(download_dir: str | Path, revision: str = HUB_REVISION, token: str | None = None,
                         retries: int = 3, endpoint: str | None = None) -> Path:
    """Download the parquet shards of clane9/imagenet-100 at `revision` into `download_dir`; returns it.

    Args:
        download_dir: local folder; the shards land in `download_dir/data/` (the Hub's layout). Files
            already complete there are not fetched again, so an interrupted download resumes.
        token: a Hugging Face token; None uses HF_TOKEN or the saved login (the dataset is public).
        retries: attempts on transient failures (connection reset, server errors), with backoff.
        endpoint: the Hub's URL; None uses HF_ENDPOINT or huggingface.co.
    """
    return snapshot(HUB_REPO, revision, token, retries, endpoint, local_dir=str(download_dir),
                    allow_patterns=["*.parquet", "README.md"])


def download_dataset(repo: str, download_dir: str | Path, revision: str | None = None, token: str | None = None,
                     retries: int = 3, endpoint: str | None = None) -> tuple[Path, str]:
    """Any Hub dataset's parquet shards: its own (at `revision`, default main), else the Hub's parquet conversion
    (branch refs/convert/parquet, `<config>/<split>/NNNN.parquet`). Returns (the folder, the commit it holds):
    the snapshot folder is named after the commit, so the revision is pinned whatever branch was asked for.
    Args as `download_imagenet100`; `download_dir` is a huggingface_hub cache (files already there are reused).
    """
    for rev in [revision] if revision else ["main", CONVERTED]:
        path = snapshot(repo, rev, token, retries, endpoint, cache_dir=str(download_dir),
                        allow_patterns=["*.parquet", "README.md"])
        if any(path.rglob("*.parquet")):
            return path, path.name
    raise FileNotFoundError(f"{repo}@{revision or 'main'} holds no parquet files"
                            + ("" if revision else f", nor does its parquet conversion ({CONVERTED})"))


def snapshot(repo: str, revision: str, token: str | None, retries: int, endpoint: str | None, **where) -> Path:
    """huggingface_hub.snapshot_download of a dataset at `revision` (`where`: local_dir or cache_dir, patterns),
    retried on transient failures; one-line errors: RuntimeError (refused), HubUnreachable."""
    if retries < 1:
        raise ValueError(f"retries={retries}: need at least 1 attempt")
    enable_fast_transfer()
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import (
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    endpoint = endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT
    offline = os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")
    what, into = f"{repo}@{revision}", where.get("local_dir") or where.get("cache_dir")
    if not offline:
        check_reachable(endpoint)
    for attempt in range(1, retries + 1):
        try:
            return Path(snapshot_download(repo, repo_type="dataset", revision=revision, token=token,
                                          endpoint=endpoint, local_files_only=offline, **where))
        except (RepositoryNotFoundError, RevisionNotFoundError, GatedRepoError) as e:
            raise RuntimeError(f"the Hub refused {what}: {e}") from None  # retrying cannot help
        except LocalEntryNotFoundError as e:
            why = "offline mode (HF_HUB_OFFLINE=1) and no complete local copy" if offline else "the Hub is unreachable"
            raise HubUnreachable(f"cannot download {what} into {into}: {why} ({e})") from None
        except transport_errors() as e:
            if attempt == retries:
                last = (str(e).strip().splitlines() or [""])[0]  # one line: hub errors may carry a server's page
                raise HubUnreachable(f"downloading {what} failed {retries} times; last error: {type(e).__name__}: "
                                     f"{last}; rerun the same command to resume the download") from None
            time.sleep(2**attempt)  # files completed so far are kept and skipped next time
    raise AssertionError("unreachable: the last attempt returns or raises")


def verify_download(root: str | Path) -> dict:
    """Check the shards under `root` against ImageNet-100's counts and classes (SPEC 6); returns the counts.

    Reads only the parquet footers. Raises ValueError naming every mismatch.
    """
    counts, problems = {}, []
    for split, expected in SPLIT_COUNTS.items():
        files = find_shards(Path(root), split)
        counts[split] = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
        if counts[split] != expected:
            problems.append(f"{split}: {counts[split]:,} images in {len(files)} shards, expected {expected:,}")
        for f in files:
            names = class_label_names(f)
            if names is None or len(names) != NUM_CLASSES or set(names) != set(NAMES):
                problems.append(f"{f.name}: ClassLabel names are not ImageNet-100's {NUM_CLASSES} classes")
                break
    if problems:
        raise ValueError(f"{root} does not hold {HUB_REPO} as expected: " + "; ".join(problems))
    return counts


def verify_dataset(dataset: ParquetDataset, what: str) -> dict:
    """Check a downloaded dataset before preparing it: train shards arrived and the first image decodes; returns
    the images per split. (ParquetDataset.open has checked every shard's columns.) ValueError naming `what`."""
    counts = {split: len(labels) for split, labels in dataset.labels.items()}
    if not counts["train"]:
        raise ValueError(f"{what}: no train shards arrived (splits are found by name: pass --split train=NAME)")
    data, _, where = next(dataset.units("train")[0].read())
    try:
        decode(data, where)
    except BadImage as e:
        raise ValueError(f"{what}: its first train image does not decode ({e}): is --image-column right?") from None
    return counts
