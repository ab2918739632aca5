"""What the notebooks need from their environment: Colab or not, smoke mode, storage, a status line.

Outside Colab every Drive step is skipped with a message and a local folder is used instead.
"""
from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path

import torch

from .config import PRESETS, Config
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
    from .data.parquet import write_shard

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


# --- what the notebooks call, one function per step ---------------------------------------------

def prepare(smoke: bool, token: str | None = None, short_side: int | None = None) -> Path:
    """The prepared dataset on fast local disk, doing only what is missing; returns its folder.

    A finished copy on Drive (storage()) is copied back instead of being prepared again; a newly
    prepared cache is copied to Drive for later sessions. Smoke mode uses locally generated shards.
    """
    from .data import prepare_data
    from .data.cache import DEFAULT_SHORT_SIDE

    local = workdir() / "data"
    if smoke:
        shards = write_smoke_parquet(local / "smoke-parquet")
        return prepare_data(out=local / "smoke-cache", source=shards, mirror=storage() / "smoke-cache",
                            short_side=short_side or 32, workers=1)
    return prepare_data(out=local / "imagenet100", source="hub", token=token or None,
                        mirror=storage() / "imagenet100-cache", short_side=short_side or DEFAULT_SHORT_SIDE)


def smoke_config(cfg: Config, data_dir: Path) -> Config:
    """`cfg`'s supervision on the tiny model, one short epoch on the smoke data: same code paths, seconds."""
    from .picker import supervision_config

    tiny = replace(PRESETS["tiny"], run_id=cfg.run_id, dataset=str(data_dir), epochs=1, batch_size=64, base_batch=64,
                   log_every=2, ckpt_minutes=0.0, num_workers=0)
    return supervision_config(tiny, cfg.collect_from, cfg.intermediate_rows, cfg.all_to_last_weight,
                              cfg.last_to_last_weight)


def pretrain_config(picked: Config, smoke: bool, data_dir: Path, mirror_dir: Path) -> Config:
    """The config a notebook asks `train()` for: the picked supervision (on the tiny model in smoke mode),
    with this session's paths. Resuming follows `train()`'s one policy (engine.rundir.resolve_config)."""
    fresh = smoke_config(picked, data_dir) if smoke else picked
    return replace(fresh, mirror_dir=str(mirror_dir), data_dir=None if smoke else str(data_dir))


def describe(cfg: Config) -> str:
    """A few lines on what a run will do."""
    from .picker import matching_run_id

    row = matching_run_id(cfg)
    return (f"run {cfg.run_id}: supervision of table row {row or '(none: a new combination)'}; "
            f"D = d{cfg.collected_depths[0]}..d{cfg.collected_depths[-1]} (L={cfg.num_depths}), "
            f"{cfg.intermediate_rows} intermediate rows, alpha={cfg.all_to_last_weight}, beta={cfg.last_to_last_weight}; "
            f"ViT {cfg.embed_dim}x{cfg.depth} at {cfg.img_size}px, batch {cfg.batch_size}, {cfg.epochs} epochs, "
            f"data {cfg.dataset if cfg.data_dir is None else cfg.data_dir}; Drive mirror {cfg.mirror_dir}")


class LivePlot:
    """An `on_log` callback for train(): redraws the run's curves in place every `every` logged rows."""

    def __init__(self, run_dir: str | Path, every: int = 5):
        self.run_dir, self.every, self.rows, self.handle = Path(run_dir), every, 0, None

    def __call__(self, row: dict) -> None:
        import matplotlib.pyplot as plt
        from IPython.display import display

        from .plots import plot_curves

        self.rows += 1
        if self.rows % self.every:
            return
        fig = plot_curves(self.run_dir)
        if self.handle is None:
            self.handle = display(fig, display_id=True)
        else:
            self.handle.update(fig)
        plt.close(fig)


def sample_grid(cache: str | Path, n: int = 16, split: str = "train"):
    """A figure of `n` evenly spaced images of a prepared cache with their class names."""
    from matplotlib.figure import Figure

    from .data.cache import CacheSource

    source = CacheSource(cache, split)
    cols = 8
    fig = Figure(figsize=(2 * cols, 2.2 * ((n + cols - 1) // cols)), layout="constrained")
    for k, ax in enumerate(fig.subplots((n + cols - 1) // cols, cols).flat):
        ax.axis("off")
        if k < n:
            image, label = source[k * len(source) // n]
            ax.imshow(image)
            ax.set_title(source.classes[label][:18], fontsize=8)
    return fig


def local_run(name: str, smoke: bool, data_dir: Path) -> Path:
    """A run's folder on local disk, with its newest checkpoint copied back from Drive if needed.

    In smoke mode a run that does not exist yet is pretrained for a few steps first.
    """
    from .config import get_config
    from .engine import RunDir, train

    run = RunDir(workdir() / "runs" / name, storage() / "runs" / name)
    if not run.has_checkpoints():
        if not smoke:
            raise FileNotFoundError(f"no checkpoints for run {name!r} in {run.path} or {run.mirror}: "
                                    "pretrain it first (02_pretrain notebook)")
        train(smoke_config(get_config(name if name in PRESETS else "tiny"), data_dir), run.path, max_steps=4)
    run.copy_back_newest()
    return run.path


def space_report(cfg: Config, run_dir: str | Path) -> dict:
    """Free space on Drive (cfg.mirror_dir) and on the local disk against what the run will need, and a `line`.

    The mirror holds at most rundir.MIRROR_KEEP checkpoints and the run directory keep_checkpoints + 1 (the
    one being written). Drive's trash counts against the quota (see the README): empty it if space is short.
    """
    import shutil

    from .engine.memory import checkpoint_bytes
    from .engine.rundir import MIRROR_KEEP

    one = checkpoint_bytes(cfg)
    places = {"local": (Path(run_dir), (cfg.keep_checkpoints + 1) * one)}
    if cfg.mirror_dir:
        places["drive"] = (Path(cfg.mirror_dir), MIRROR_KEEP * one)
    report, parts = {"checkpoint_bytes": one}, []
    for name, (folder, needed) in places.items():
        existing = next(p for p in (folder, *folder.parents) if p.exists())
        free = shutil.disk_usage(existing).free
        report[name] = {"folder": str(folder), "needed_bytes": needed, "free_bytes": free, "enough": free >= needed}
        parts.append(f"{name} {folder}: needs {needed / 2**30:.1f} GiB, {free / 2**30:.1f} GiB free"
                     + ("" if free >= needed else " -- NOT ENOUGH"))
    report["line"] = f"checkpoint {one / 2**30:.2f} GiB; " + "; ".join(parts)
    return report
