"""Look inside a run's encoder: per-depth patch-feature maps and two numbers per depth, on photos or screenshots.

Legend: h x w patch grid of one image (its own aspect ratio), D width, K shown depths.

For a handful of images (a fixed sample of the run's val split, and/or any folder, e.g. screenshots),
the EMA teacher's patch features at each depth are projected on 3 principal components, fitted per
depth over all shown images, and drawn as RGB maps (rows: depths, columns: images), beside the same
for a randomly initialised encoder of the same shape. Per depth and per image set two numbers go to a
JSON and are drawn over depth: feature continuity (mean cosine similarity of 4-neighbour patches,
eval/maps.py) and the effective rank (RankMe) of the set's patch features (capped by min(n patches, D),
so compare sets of similar patch counts). Every image is resized so that its long side is about
`max_side` pixels, keeping its aspect ratio, to whole patches: a 1080x2400 phone screenshot runs as a
portrait grid, a 1920x1080 desktop as a landscape one.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image

from .config import Config
from .data import open_source
from .data.images import open_image_file
from .data.sources import IMAGENET_MEAN, IMAGENET_STD
from .engine import RunDir, load_encoders
from .eval.features import default_device
from .eval.maps import continuity, pca_rgb
from .eval.monitors import rankme
from .files import save_figure, write_json
from .method import CIJEPA
from .plots import plot_feature_maps, plot_inspect_curves

VAL = "val"  # in `images`: a fixed sample of the run's own val split
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
ENCODERS = ("teacher", "random_init")
MAX_IMAGES = 32  # per set: every image is its own forward pass and its own column of the figure
MAX_GRID = 64  # patches along an image's long side (64 x 64 = 4096 tokens, attention's cost grows with its square)


def grid_shape(size: tuple[int, int], max_side: int, patch: int) -> tuple[int, int]:
    """(rows, cols) of whole patches for an image of (width, height) whose long side becomes ~`max_side` px."""
    width, height = size
    scale = max_side / max(width, height)
    return max(1, round(height * scale / patch)), max(1, round(width * scale / patch))


def resize_to_patches(image: Image.Image, max_side: int, patch: int) -> Image.Image:
    """`image` resized (bicubic) to whole patches, long side ~`max_side`, aspect ratio kept up to a patch."""
    rows, cols = grid_shape(image.size, max_side, patch)
    return image.resize((cols * patch, rows * patch), Image.BICUBIC)


def folder_images(folder: str | Path, n: int) -> list[tuple[str, Image.Image]]:
    """The first `n` images of a folder (sorted by name) as (file name, RGB image)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"--images {folder}: no such folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:n]
    if not files:
        raise ValueError(f"--images {folder}: no {'/'.join(IMAGE_SUFFIXES)} files in it")
    return [(p.name, open_image_file(p)) for p in files]  # BadImage (a ValueError) names the file


def val_images(cfg: Config, n: int) -> list[tuple[str, Image.Image]]:
    """`n` evenly spaced images of the run's val split (always the same ones)."""
    source = open_source(cfg.dataset, VAL, cfg.img_size, cfg.data_dir)
    picks = [k * len(source) // n for k in range(n)]
    return [(f"#{i}", source[i][0]) for i in picks]


def to_input(image: Image.Image) -> torch.Tensor:
    """(3, H, W) normalised like the recipe's transforms."""
    return TF.normalize(TF.to_tensor(image), IMAGENET_MEAN, IMAGENET_STD)


@torch.no_grad()
def patch_grids(encoder: torch.nn.Module, images: Sequence[Image.Image], depths: Sequence[int],
                device: torch.device) -> dict[int, list[torch.Tensor]]:
    """{depth: [(h, w, D) per image]} on the CPU, fp32; one image at a time (every image has its own grid)."""
    encoder = encoder.to(device).eval()
    out = {d: [] for d in depths}
    for image in images:
        hidden = encoder(to_input(image)[None].to(device))  # depth x (1, h * w, D)
        rows, cols = encoder.patch_embed.dynamic_feat_size((image.height, image.width))
        for d in depths:
            out[d].append(hidden[d][0].float().cpu().reshape(rows, cols, -1))  # (h, w, D)
    return out


def measure(grids: dict[int, list[torch.Tensor]]) -> dict[str, dict[str, float]]:
    """Per depth: continuity (mean over the images) and RankMe of all the set's patch features together."""
    return {"continuity": {f"d{d}": float(np.mean([continuity(g) for g in gs])) for d, gs in grids.items()},
            "rankme": {f"d{d}": rankme(torch.cat([g.reshape(-1, g.shape[-1]) for g in gs])) for d, gs in grids.items()}}


def image_sets(cfg: Config, images: Sequence[str | Path], n_images: int, max_side: int) -> dict[str, list]:
    """{set name: [(image name, image resized to whole patches)]}: "val" is the run's val sample, else a folder."""
    sets = {}
    for entry in images:
        if str(entry) == VAL:
            name, loaded = VAL, val_images(cfg, n_images)
        else:
            name, loaded = Path(entry).name or str(entry), folder_images(entry, n_images)
        sets[name] = [(k, resize_to_patches(img, max_side, cfg.patch_size)) for k, img in loaded]
    return sets


def check_bounds(cfg: Config, depths: Sequence[int], max_side: int, n_images: int) -> None:
    """ValueError naming the option and its allowed range when a depth, the side or the image count is out of it."""
    if not all(type(d) is int and 0 <= d < cfg.depth for d in depths) or not depths:
        raise ValueError(f"--depths {list(depths)}: blocks are 0..{cfg.depth - 1}")
    top = MAX_GRID * cfg.patch_size
    if type(max_side) is not int or not cfg.patch_size <= max_side <= top:
        raise ValueError(f"--max-side {max_side}: must be in [{cfg.patch_size}, {top}] px "
                         f"(at least the patch size, at most {MAX_GRID} patches)")
    if type(n_images) is not int or not 1 <= n_images <= MAX_IMAGES:
        raise ValueError(f"--n-images {n_images}: must be in [1, {MAX_IMAGES}]")


def inspect_run(run_dir: str | Path, images: Sequence[str | Path] = (VAL,), *, out: str | Path | None = None,
                depths: Sequence[int] | None = None, max_side: int | None = None, n_images: int = 4,
                device: torch.device | None = None) -> dict:
    """Feature maps (figure), continuity and RankMe per depth (JSON + curves) of a run's EMA teacher vs random init.

    Args:
        run_dir: a pretraining run directory, or an official I-JEPA checkpoint file.
        images: image sets: "val" (the run's val split) and/or folders (the first `n_images` files by name).
        out: the maps' PNG (default the run's figures/inspect.png); the curves go to <out>-curves.png, the numbers
            to <out>.json.
        depths: blocks to show (default every block).
        max_side: the long side in pixels every image is resized to, keeping its aspect (default the run's img_size).
        n_images: images per set.
    Returns:
        what the JSON holds: run, step, depths, max_side, and per set its images, their grids and, for "teacher"
        and "random_init", {"continuity": {"d<k>": ...}, "rankme": {"d<k>": ...}}; plus "files".
    """
    encoders, ckpt = load_encoders(run_dir)
    cfg = ckpt.config
    depths = tuple(range(cfg.depth)) if depths is None else tuple(depths)
    max_side = cfg.img_size if max_side is None else max_side
    check_bounds(cfg, depths, max_side, n_images)
    sets = image_sets(cfg, images, n_images, max_side)
    shown = [img for items in sets.values() for _, img in items]
    device = device or default_device()
    # random init: a fresh student with the run's seed, i.e. the run's own step-0 encoder (what training changed)
    models = {"teacher": encoders["teacher"], "random_init": CIJEPA(cfg).student}
    grids = {e: patch_grids(m, shown, depths, device) for e, m in models.items()}  # {encoder: {depth: [(h, w, D)]}}
    result = {"run": str(run_dir), "run_id": cfg.run_id, "step": ckpt.step, "depths": list(depths),
              "max_side": max_side, "sets": {}}
    start = 0
    for name, items in sets.items():
        part = slice(start, start + len(items))
        start += len(items)
        result["sets"][name] = {"images": [k for k, _ in items], "grids": [[i.height // cfg.patch_size,
                                i.width // cfg.patch_size] for _, i in items],
                                **{e: measure({d: g[d][part] for d in depths}) for e, g in grids.items()}}
    maps = {e: {d: pca_rgb(g[d]) for d in depths} for e, g in grids.items()}  # PCA per depth over all images
    if out is None:  # next to the run (or the official checkpoint file), never in the cwd
        file = Path(run_dir)
        out = file.with_name(f"{file.name}-inspect.png") if file.is_file() else RunDir(run_dir).figure_file("inspect.png")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    titles = [f"{name}\n{k}" for name, items in sets.items() for k, _ in items]
    files = {"maps": out, "curves": out.with_name(f"{out.stem}-curves.png"), "json": out.with_suffix(".json")}
    save_figure(plot_feature_maps(shown, titles, maps, f"{cfg.run_id} step {ckpt.step}"), files["maps"], dpi=100)
    save_figure(plot_inspect_curves(result), files["curves"], dpi=120)
    write_json(files["json"], result)
    return {**result, "files": {k: str(v) for k, v in files.items()}}
