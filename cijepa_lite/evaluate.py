"""Evaluate a run directory: load its newest valid checkpoint, probe an encoder, return a result record."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from .data import open_source
from .data.loading import auto_workers
from .engine import load_encoders
from .eval.logreg import logistic_probe
from .eval.probe import ProbeRecipe, linear_probe
from .eval.results import make_result
from .method import CIJEPA

PROBES = ("recipe", "logreg")  # the write-up's AdamW probe; the converged logistic regression
ENCODERS = ("teacher", "student")
RECIPE_MIN_WIDTH = 384  # narrower encoders get the logistic probe under "auto": the recipe does not converge (SPEC 10)


def choose_probe(probe: str, embed_dim: int) -> tuple[str, str]:
    """The probe to run and why: "auto" is the write-up's recipe from width RECIPE_MIN_WIDTH up, else logreg."""
    if probe != "auto":
        return probe, "as asked"
    if embed_dim >= RECIPE_MIN_WIDTH:
        return "recipe", f"auto: the write-up's recipe (width {embed_dim} >= {RECIPE_MIN_WIDTH})"
    return "logreg", (f"auto: width {embed_dim} < {RECIPE_MIN_WIDTH}, where the write-up's AdamW recipe does not "
                      "converge; --probe recipe runs it anyway")


def evaluate_run(run_dir: str | Path, *, probe: str = "auto", encoder: str = "teacher", per_depth: bool = False,
                 seed: int = 0, recipe: ProbeRecipe = ProbeRecipe(), num_workers: int | None = None,
                 device: torch.device | None = None, progress: bool = True, random_init: bool = False,
                 dataset: str | None = None) -> dict:
    """Probe a run's frozen encoder on its dataset's val split; the record's top1 is the last block's.

    Args:
        run_dir: a pretraining run directory (checkpoints/ inside), or an official I-JEPA checkpoint file.
        probe: "recipe" (the write-up's, SPEC 7), "logreg" (converged logistic regression) or "auto"
            (choose_probe: recipe for ViT-B-sized encoders, logreg for small ones); the record says which and why.
        encoder: "teacher" (the write-up's) or "student".
        per_depth: probe every block d_0 .. d_{depth-1} (one encoder pass per batch), whatever D the run collected.
        num_workers: data-loader workers (default: the run's config).
        random_init: also probe a randomly initialised encoder of the same shape (the run's seed) at the same
            depths, as a reference readout (the probe's cost twice).
        dataset: probe on this dataset instead of the run's (e.g. an official checkpoint on "imagenet100" or a folder).
    """
    if probe not in PROBES + ("auto",):
        raise ValueError(f"unknown probe {probe!r}; expected one of {PROBES + ('auto',)}")
    if encoder not in ENCODERS:
        raise ValueError(f"unknown encoder {encoder!r}; expected one of {ENCODERS}")
    encoders, ckpt = load_encoders(run_dir)
    cfg = ckpt.config if dataset is None else replace(ckpt.config, dataset=dataset)
    probe, why = choose_probe(probe, cfg.embed_dim)
    last = cfg.depth - 1
    depths = tuple(range(cfg.depth)) if per_depth else (last,)
    train, val = (open_source(cfg.dataset, s, cfg.img_size, cfg.data_dir) for s in ("train", "val"))
    if not train.classes:
        raise ValueError(f"probe needs labels: dataset {cfg.dataset} is unlabelled (it pretrains and can be inspected)")
    workers = auto_workers(cfg.num_workers if num_workers is None else num_workers)
    kw = dict(depths=depths, device=device, num_workers=workers, progress=progress)
    if probe == "recipe":
        kw.update(recipe=recipe, seed=seed)
    fit = linear_probe if probe == "recipe" else logistic_probe
    out = fit(encoders[encoder], train, val, cfg.img_size, **kw)
    keys = ("recipe", "seed", "steps", "final_lr", "wall_time_s") if probe == "recipe" else ("C", "converged")
    described = {"name": probe, "chosen": why, "encoder": encoder, "train_top1": out["train_top1"], **{k: out[k] for k in keys}}
    readouts = []
    if random_init:  # a fresh student of the same shape: what the demo's random-init readouts are
        ref = fit(CIJEPA(cfg).student, train, val, cfg.img_size, **kw)["top1"]
        readouts.append({"label": f"random init seed {cfg.seed}", "model": f"random-init seed {cfg.seed}",
                         "encoder": "student = teacher", "probe": probe, "top1": ref[f"d{last}"],
                         "per_depth": ref if per_depth else {}})
    return make_result(cfg, ckpt.info(), described, out["top1"][f"d{last}"], out["top1"] if per_depth else {},
                       readouts)
