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
from .engine.memory import space_report as space_report  # the pretrain notebook's space check
from .plots import sample_grid as sample_grid  # the data notebook's look at the prepared images
from .provenance import device_name, versions
from .showing import SMOKE as SMOKE, SMOKE_ENV as SMOKE_ENV, smoke_mode as smoke_mode, smoke_named as smoke_named
from .showing import LivePlot as LivePlot, figure_path as figure_path, show as show, smoke_figure as smoke_figure

STORAGE_ENV = "CIJEPA_STORAGE"  # outside Colab: the folder that stands in for Google Drive
WORKDIR_ENV = "CIJEPA_WORKDIR"  # fast local disk for runs and data (Colab: /content)


def in_colab() -> bool:
    return "google.colab" in sys.modules


def workdir() -> Path:
    """Fast local disk: /content in Colab, else $CIJEPA_WORKDIR or ./work."""
    default = "/content" if in_colab() else "work"
    path = Path(os.environ.get(WORKDIR_ENV, default)).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


_TOLD: set[Path] = set()  # local stand-ins for Drive already announced in this process (one line per notebook)


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
        if not in_colab() and path not in _TOLD:
            _TOLD.add(path)
            print(f"Not in Colab: Google Drive steps skipped; using the local folder {path} instead.")
    path.mkdir(parents=True, exist_ok=True)
    return path


def status(threads: str | None = None) -> str:
    """One line on what this runtime has: versions, device, smoke mode; sets torch's CPU threads (cpus.choose_threads:
    torch's own count by default; "fit": the CPUs free now, with a second line when the machine is busy)."""
    from .cpus import choose_threads

    busy = choose_threads(threads)
    v = versions()
    gpu = device_name("cuda") if torch.cuda.is_available() else "no GPU"
    mem = f", {torch.cuda.mem_get_info()[1] / 2**30:.0f} GiB" if torch.cuda.is_available() else ""
    return (f"torch {v['torch']}, torchvision {v['torchvision']}, timm {v['timm']}, python {v['python']}; "
            f"{gpu}{mem}; Colab: {in_colab()}; smoke mode: {smoke_mode()}" + (f"\n{busy}" if busy else ""))


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

    tiny = replace(PRESETS["tiny"], run_id=smoke_named(cfg.run_id, True), dataset=str(data_dir), epochs=1, batch_size=64, base_batch=64,
                   log_every=2, ckpt_minutes=0.0, num_workers=0, knn_every_epochs=None)  # one epoch: no kNN due
    return supervision_config(tiny, cfg.collect_from, cfg.intermediate_rows, cfg.all_to_last_weight,
                              cfg.last_to_last_weight)


def pretrain_run(picked: Config, smoke: bool, data_dir: Path, name: str = "", wandb: str = "") -> tuple[Config, Path]:
    """The config `train()` is asked for and the local run folder: the picked supervision (on the tiny model in
    smoke mode) with this session's paths. The folder is `name`, else named after the supervision actually trained
    (picker.run_name: a table row's id only when it is that row), "smoke-" first in smoke mode; Drive keeps the
    mirror; `wandb` ("PROJECT" or "ENTITY/PROJECT", "" = none) also logs to W&B. Resuming follows
    `train()`'s one policy (engine.rundir.resolve_config)."""
    from .engine.names import check_run_name, run_paths
    from .picker import run_name

    trained = smoke_config(picked, data_dir) if smoke else picked
    name = smoke_named(check_run_name(name) if name else run_name(trained), smoke)  # unsafe RUN_NAME: one line
    run, mirror = run_paths(name, workdir() / "runs", storage() / "runs")
    cfg = replace(trained, run_id=name, mirror_dir=str(mirror), data_dir=None if smoke else str(data_dir),
                  wandb=wandb.strip() or None)
    return cfg, run


def tensorboard(run_dir: str | Path) -> None:
    """TensorBoard inline on every run beside `run_dir` (engine/tracking.py); headless (nbval): the command."""
    from .engine.tracking import show_tensorboard

    show_tensorboard(Path(run_dir).parent, inline=in_colab() or not smoke_mode())


def picker(cfg: Config):
    """The alpha/beta picker on `cfg`'s supervision, or None in a headless run (smoke mode outside Colab, unless
    CIJEPA_WIDGETS=1 says a browser shows it), which shows the weight matrix as a still figure instead."""
    from IPython.display import display

    from .picker import AlphaBetaPicker, weights_figure

    if smoke_mode() and not in_colab() and os.environ.get("CIJEPA_WIDGETS") != "1":
        show(weights_figure(cfg), workdir() / "figures" / f"weights-{cfg.run_id}.png")
        return None
    chooser = AlphaBetaPicker(cfg)
    display(chooser.widget)
    return chooser


def describe(cfg: Config) -> str:
    """A few lines on what a run will do."""
    from .picker import matching_run_id

    row = matching_run_id(cfg)
    return (f"run {cfg.run_id}: supervision of table row {row or '(none: a new combination)'}; "
            f"D = d{cfg.collected_depths[0]}..d{cfg.collected_depths[-1]} (L={cfg.num_depths}), "
            f"{cfg.intermediate_rows} intermediate rows, alpha={cfg.all_to_last_weight}, beta={cfg.last_to_last_weight}; "
            f"ViT {cfg.embed_dim}x{cfg.depth} at {cfg.img_size}px, batch {cfg.batch_size}, {cfg.epochs} epochs, "
            f"data {cfg.dataset if cfg.data_dir is None else cfg.data_dir}; Drive mirror {cfg.mirror_dir}")


def local_run(name: str, smoke: bool, data_dir: Path) -> Path:
    """A run's folder on local disk, with its newest checkpoint copied back from Drive if needed.

    In smoke mode the run is "smoke-<name>", pretrained for a few steps first if it does not exist yet.
    """
    from .config import get_config
    from .engine import RunDir, train
    from .engine.names import check_run_name, run_paths

    run = RunDir(*run_paths(smoke_named(check_run_name(name), smoke), workdir() / "runs", storage() / "runs"))
    if not run.has_checkpoints():
        if not smoke:
            raise FileNotFoundError(f"no checkpoints for run {name!r} in {run.path} or {run.mirror}: "
                                    "pretrain it first (02_pretrain notebook)")
        train(smoke_config(get_config(name if name in PRESETS else "tiny"), data_dir), run.path, max_steps=4)
    run.copy_back_newest()
    return run.path


def official_checkpoint(path: str, smoke: bool) -> Path | None:
    """The inspect notebook's official I-JEPA file: `path` (None if empty), or in smoke mode a small one built here."""
    from .engine.official import write_small_official
    if smoke:
        return write_small_official(workdir() / "official" / "ijepa-small.pth.tar")
    return Path(path).expanduser() if path else None


def user_images(folder: str, smoke: bool) -> Path:
    """The inspect notebook's own image set: `folder` (e.g. on Google Drive), else an upload in Colab.

    In smoke mode, or outside Colab without a folder, a phone and a desktop screenshot-like image and a
    photo-like one are generated locally instead (data/screens.py).
    """
    from .data.screens import write_examples

    if smoke or (not folder and not in_colab()):
        print("Using generated screenshot-like images and a photo-like one (smoke mode, or no IMAGES_DIR).")
        return write_examples(workdir() / "screens")
    if folder:
        if folder.startswith("/content/drive"):
            storage()  # mounts Google Drive
        path = Path(folder).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"IMAGES_DIR {folder}: no such folder (a Drive path looks like "
                                    "/content/drive/MyDrive/screenshots)")
        return path
    from google.colab import files

    target = workdir() / "uploads"
    target.mkdir(parents=True, exist_ok=True)
    for name, data in files.upload().items():
        (target / Path(name).name).write_bytes(data)
    return target
