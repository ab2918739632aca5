"""What the notebooks need from their environment: Colab or not, smoke mode, storage, a status line.

Outside Colab every Drive step is skipped with a message and a local folder is used instead.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from .provenance import device_name, versions

SMOKE_ENV = "CIJEPA_SMOKE"  # "1": run every notebook end to end on CPU on locally generated data
STORAGE_ENV = "CIJEPA_STORAGE"  # outside Colab: the folder that stands in for Google Drive
WORKDIR_ENV = "CIJEPA_WORKDIR"  # fast local disk for runs and data (Colab: /content)


def in_colab() -> bool:
    return "google.colab" in sys.modules


def smoke_mode() -> bool:
    """True when CIJEPA_SMOKE is set to a true value, or automatically when no GPU is present."""
    flag = os.environ.get(SMOKE_ENV, "").strip().lower()
    if flag in ("1", "true", "yes"):
        return True
    if flag in ("0", "false", "no"):
        return False
    return not torch.cuda.is_available()


def workdir() -> Path:
    """Fast local disk: /content in Colab, else $CIJEPA_WORKDIR or ./work."""
    default = "/content" if in_colab() else "work"
    path = Path(os.environ.get(WORKDIR_ENV, default)).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def storage(subdir: str = "cijepa-lite") -> Path:
    """Persistent storage that outlives a Colab session: Google Drive there, a local folder elsewhere.

    Mounting Drive asks for an interactive sign-in once per session.
    """
    if in_colab() and not os.environ.get(STORAGE_ENV):
        from google.colab import drive

        drive.mount("/content/drive")
        path = Path("/content/drive/MyDrive") / subdir
    else:
        path = Path(os.environ.get(STORAGE_ENV, workdir() / "storage")).expanduser().resolve() / subdir
        if not in_colab():
            print(f"Not in Colab: Google Drive steps skipped; using the local folder {path} instead.")
    path.mkdir(parents=True, exist_ok=True)
    return path


def status() -> str:
    """One line on what this runtime has: versions, device, smoke mode."""
    v = versions()
    gpu = device_name("cuda") if torch.cuda.is_available() else "no GPU"
    mem = f", {torch.cuda.mem_get_info()[1] / 2**30:.0f} GiB" if torch.cuda.is_available() else ""
    return (f"torch {v['torch']}, torchvision {v['torchvision']}, timm {v['timm']}, python {v['python']}; "
            f"{gpu}{mem}; Colab: {in_colab()}; smoke mode: {smoke_mode()}")


def write_smoke_parquet(root: str | Path) -> Path:
    """Locally generated stand-in for the Hub's parquet shards: the digits as JPEGs, train + validation.

    Smoke mode runs every notebook through the real code paths (parquet -> prepared cache -> training
    -> probe) on this in seconds. Returns `root`; a second call reuses what is there.
    """
    import io

    from .data import Digits
    from .parquet import write_shard

    root = Path(root)
    for split, hub_split in (("train", "train"), ("val", "validation")):
        path = root / "data" / f"{hub_split}-00000-of-00001.parquet"
        if path.exists():
            continue
        digits = Digits(split)
        blobs = []
        for image, _ in digits:
            out = io.BytesIO()
            image.save(out, "JPEG", quality=95)
            blobs.append(out.getvalue())
        write_shard(path, blobs, digits.labels, Digits.classes)
    return root
