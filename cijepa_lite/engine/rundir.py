"""The run directory: its layout, the checkpoint's schema, the metrics log and the one resume policy.

    <run>/config.json       the run's resolved config, rewritten at every start (for people and tools)
    <run>/metrics.jsonl     one JSON row per log step
    <run>/checkpoints/      step-XXXXXXXX.pt (-<writer tag> in a campaign) with its .json manifest (checkpoint.py)
    <run>/figures/          PNGs drawn from the run (the notebooks' curves, per-depth accuracy)
    <run>/run.lock          held by the process that trains in it (lock.py)
    <run>/tensorboard/      TensorBoard event files, one per attempt (tracking.py)
    <run>/wandb.json        the run's W&B id and the last step sent to it, when cfg.wandb is set (tracking.py)
    <run>/wandb/            W&B's own files (offline runs among them)

A mirror (`cfg.mirror_dir`, e.g. on Google Drive) has the same layout. Every file name of a run and
every key of a checkpoint is spelled in this module only. A checkpoint is a dict that loads with
`torch.load(weights_only=True)`: step, config, student, teacher, predictors, optimizer, meta.

The resume policy (`resolve_config`), used by `train()`, the command line and the notebooks alike:
the checkpoint's config is the truth; a requested config that differs in any field but the runtime
ones (paths, workers, logging) is refused, naming the fields, unless explicitly allowed.
"""
from __future__ import annotations

import json
import warnings
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from ..config import RUNTIME_FIELDS, Config, config_changes, config_from_dict
from ..files import copy_atomic, write_json
from ..method import CIJEPA
from . import checkpoint
from .lock import DirLock
from .metrics import MetricsLog, read_rows
from .mirror import Mirror

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_DIR = "checkpoints"
FIGURES_DIR = "figures"
LOCK_FILE = "run.lock"
TENSORBOARD_DIR = "tensorboard"
WANDB_FILE = "wandb.json"
_KEYS = ("step", "config", "student", "teacher", "predictors", "optimizer", "meta")
_WEIGHTS = ("student", "teacher", "predictors")
MIRROR_KEEP = 2  # Drive space is scarce (a ViT-B cI-JEPA checkpoint is ~3.3 GB): at most 2 there


@dataclass
class Checkpoint:
    """A loaded, validated checkpoint."""

    step: int
    config: Config
    student: dict[str, torch.Tensor]
    teacher: dict[str, torch.Tensor]
    predictors: dict[str, torch.Tensor]
    optimizer: dict
    meta: dict  # provenance, epoch, total_steps, wall_time_s
    path: Path

    def info(self) -> dict:
        """What the checkpoint says about its pretraining: step, epochs done and planned, device, SHA, wall time."""
        return {"step": self.step, "total_steps": self.meta.get("total_steps"), "epochs_done": self.meta.get("epoch"),
                "epochs_planned": self.config.epochs, "wall_time_s": self.meta.get("wall_time_s"),
                "device": self.meta.get("device"), "git_sha": self.meta.get("git_sha"), "checkpoint": str(self.path)}


def _non_finite(state: dict) -> list[str]:
    return [f"{part}.{k}" for part in _WEIGHTS for k, v in state[part].items()
            if v.is_floating_point() and not torch.isfinite(v).all()]


_TYPES = dict(zip(_KEYS, (int, dict, dict, dict, dict, dict, dict)))  # the type of each key's value


@lru_cache(maxsize=4)
def _model_shapes(cfg: Config) -> tuple[dict[str, dict[str, tuple]], Counter]:
    """Shapes of the weights of the model `cfg` builds ({part: {key: shape}}) and of its trainable parameters.

    Built on the meta device: no memory, no initialisation.
    """
    with torch.device("meta"):
        model = CIJEPA(cfg)
    parts = {part: {k: tuple(v.shape) for k, v in getattr(model, part).state_dict().items()} for part in _WEIGHTS}
    return parts, Counter(tuple(p.shape) for p in model.parameters() if p.requires_grad)


def _shape_problem(state: dict, cfg: Config) -> str | None:
    """None if the weights and optimizer moments fit the model of `cfg`, else what does not."""
    parts, trainable = _model_shapes(cfg)
    for part, expected in parts.items():
        got = state[part]
        if not all(isinstance(v, torch.Tensor) for v in got.values()):
            return f"{part} holds values that are not tensors"
        if set(got) != set(expected):
            return (f"{part} keys differ from the model's (missing {sorted(set(expected) - set(got))[:3]}, "
                    f"unexpected {sorted(set(got) - set(expected))[:3]})")
        wrong = [k for k, shape in expected.items() if tuple(got[k].shape) != shape]
        if wrong:
            return f"{part} tensors have shapes the model does not: {wrong[:3]}"
    opt = state["optimizer"]
    if not (isinstance(opt.get("state"), dict) and isinstance(opt.get("param_groups"), list)
            and all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in opt["param_groups"])):
        return "optimizer state lacks its state / param_groups"
    if sum(len(g["params"]) for g in opt["param_groups"]) != sum(trainable.values()):
        return "optimizer state covers a different number of parameters than the model has"
    moments = Counter(tuple(s["exp_avg"].shape) for s in opt["state"].values()
                      if isinstance(s, dict) and isinstance(s.get("exp_avg"), torch.Tensor))
    if moments - trainable:  # every moment must have the shape of some trainable parameter
        return "optimizer moments have shapes the model's parameters do not"
    return None


def content_problem(state: object) -> str | None:
    """None if a loaded checkpoint fits the schema and its model (types, keys, shapes, finite weights), else why not."""
    if not isinstance(state, dict):
        return f"holds a {type(state).__name__}, not a dict"
    missing = [k for k in _KEYS if k not in state]
    if missing:
        return f"lacks keys {missing}"
    wrong = [k for k, kind in _TYPES.items() if not isinstance(state[k], kind) or isinstance(state[k], bool)]
    if wrong:
        return f"holds wrong types in {wrong} ({', '.join(type(state[k]).__name__ for k in wrong)})"
    try:
        cfg = config_from_dict(state["config"])
    except (ValueError, TypeError) as e:
        return f"holds an unusable config: {e}"
    problem = _shape_problem(state, cfg)
    if problem:
        return problem
    bad = _non_finite(state)
    return f"non-finite weights in {bad[:3]}" if bad else None


def _as_checkpoint(state: dict, path: Path) -> Checkpoint:
    return Checkpoint(step=int(state["step"]), config=config_from_dict(state["config"]), path=path,
                      **{k: state[k] for k in ("student", "teacher", "predictors", "optimizer", "meta")})


class RunDir:
    """A run directory and, optionally, its mirror."""

    def __init__(self, path: str | Path, mirror: str | Path | None = None):
        self.path = Path(path)
        self.mirror = Path(mirror) if mirror else None
        self.mirror_unavailable: str | None = None  # why the mirror is not written this run (set by lock())

    @property
    def config_file(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def metrics_file(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / CHECKPOINT_DIR

    tensorboard_dir = property(lambda self: self.path / TENSORBOARD_DIR)  # TensorBoard's event files
    wandb_file = property(lambda self: self.path / WANDB_FILE)  # {"id": the W&B run id, "step": the last step sent}

    def figure_file(self, name: str) -> Path:
        """Where a figure of this run is saved: <run>/figures/<name>."""
        return self.path / FIGURES_DIR / name

    def lock(self) -> ExitStack:
        """Exclusive locks on the run directory and the mirror for the life of the `with` block (lock.py).

        A live holder of either is refused (LockBusy); a mirror that cannot be locked (OSError: read-only, a
        dropped mount) never blocks: the run goes on without copies and `mirror_unavailable` says why."""
        with ExitStack() as stack:  # a refused second lock releases the first
            for where, what in ((self.path, "run directory"), (self.mirror, "mirror directory")):
                if where is not None and where.exists() and not where.is_dir():
                    raise NotADirectoryError(f"{what} {where} is a file, not a folder: name a folder")
            stack.enter_context(DirLock(self.path / LOCK_FILE, "run directory"))
            if self.mirror is not None:
                try:
                    stack.enter_context(DirLock(self.mirror / LOCK_FILE, "mirror directory"))
                except OSError as e:
                    self.mirror_unavailable = f"cannot lock the mirror {self.mirror}: {e.strerror or e}"
                    warnings.warn(f"{self.mirror_unavailable}; training goes on without copies there", stacklevel=2)
            return stack.pop_all()

    def clean_temp(self) -> list[Path]:
        """Remove what killed writes left here and in the mirror (temp files, orphan manifests); call while locked."""
        places = [self.path] + ([self.mirror] if self.mirror and not self.mirror_unavailable else [])
        return [p for place in places for d in (place, place / CHECKPOINT_DIR) for p in checkpoint.clean(d)]

    def checkpoint_dirs(self) -> list[Path]:
        """Where checkpoints may be: here, and in the mirror."""
        return [self.checkpoint_dir] + ([self.mirror / CHECKPOINT_DIR] if self.mirror else [])

    def has_checkpoints(self) -> bool:
        return any(checkpoint.candidates(d) for d in self.checkpoint_dirs())

    def latest(self, passed_over: frozenset = frozenset()) -> Checkpoint | None:
        """The newest valid checkpoint here or in the mirror (bad ones skipped with a warning), or None; rank 0's.
        Checkpoints written by the fencing tokens in `passed_over` (sessions that yielded the run) are not chosen."""
        state, path = checkpoint.load_latest(self.checkpoint_dirs(), content_problem, passed_over)
        return None if state is None else _as_checkpoint(state, path)

    def load_chosen(self, name: str, sha256: str) -> Checkpoint:
        """The checkpoint `name` another rank validated (its manifest's `sha256`), here or in the mirror, memory-mapped."""
        return _as_checkpoint(*checkpoint.load_named(self.checkpoint_dirs(), name, sha256))

    def save(self, step: int, cfg: Config, model: nn.Module, optimizer: torch.optim.Optimizer, meta: dict) -> Path:
        """Write the checkpoint of `step` (never one with non-finite weights) and prune to cfg.keep_checkpoints."""
        state = {"step": step, "config": cfg.to_dict(), "student": model.student.state_dict(),
                 "teacher": model.teacher.state_dict(), "predictors": model.predictors.state_dict(),
                 "optimizer": optimizer.state_dict(), "meta": meta}
        bad = _non_finite(state)
        if bad:
            raise ValueError(f"refusing to write a checkpoint at step {step}: non-finite weights in {bad[:3]}")
        return checkpoint.save(state, self.checkpoint_dir, cfg.keep_checkpoints)

    def write_config(self, cfg: Config) -> None:
        write_json(self.config_file, cfg.to_dict())

    def open_mirror(self) -> Mirror | None:
        """The background copier to the mirror (None without one)."""
        if self.mirror is None:
            return None
        return Mirror(self.mirror, self.mirror / CHECKPOINT_DIR, MIRROR_KEEP, unavailable=self.mirror_unavailable)

    def mirror_extras(self) -> list[Path]:
        """The files that travel to the mirror with every checkpoint."""
        return [self.metrics_file, self.config_file, self.wandb_file]  # wandb.json: a new session continues its W&B run

    def restore_from_mirror(self, resumed_from: Path | None = None) -> None:
        """After a lost local disk: bring the mirror's metrics.jsonl, config.json and wandb.json back.

        Args:
            resumed_from: the checkpoint being resumed; files are restored only when it lies in the mirror
                (or, with None, whenever the local copies are missing).
        """
        if self.mirror is None or (resumed_from is not None and not resumed_from.is_relative_to(self.mirror)):
            return
        for name in (METRICS_FILE, CONFIG_FILE, WANDB_FILE):
            local, mirrored = self.path / name, self.mirror / name
            if mirrored.exists() and not local.exists():
                self.path.mkdir(parents=True, exist_ok=True)
                copy_atomic(mirrored, local)

    def copy_back_newest(self) -> bool:
        """Copy the mirror's newest checkpoint here when there is none here (a new Colab session); True if one came."""
        if checkpoint.candidates(self.checkpoint_dir) or self.mirror is None:
            return False
        newest = checkpoint.candidates(self.mirror / CHECKPOINT_DIR)
        if not newest:
            return False
        checkpoint.copy_checkpoint(newest[0], self.checkpoint_dir, keep=1)
        self.restore_from_mirror()
        return True

    def metrics_log(self, resume_step: int, lineage: list | None = None) -> MetricsLog:
        return MetricsLog(self.metrics_file, resume_step, lineage)


def resolve_config(requested: Config, saved: Config | None, allow_change: bool = False) -> Config:
    """The config a run continues with: the checkpoint's (`saved`), with the runtime fields of `requested`.

    A requested config that differs from the checkpoint's in any other field is refused naming the
    fields (ValueError), unless `allow_change`, in which case the requested config wins.
    """
    if saved is None:
        return requested
    changes = config_changes(saved, requested)
    if changes and not allow_change:
        listed = ", ".join(f"{k}: checkpoint {a!r} vs now {b!r}" for k, (a, b) in changes.items())
        raise ValueError(f"refusing to resume with a different config ({listed}); "
                         "pass allow_config_change=True (--allow-config-change) to resume anyway")
    return requested if changes else replace(saved, **{k: getattr(requested, k) for k in RUNTIME_FIELDS})


def read_metrics(run_dir: str | Path) -> list[dict]:
    """Rows of a run's metrics.jsonl (a damaged row is skipped with a warning naming file and line, metrics.py);
    FileNotFoundError naming it if missing."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: is {run_dir} a run directory with logged steps?")
    return read_rows(path)


def read_config(run_dir: str | Path) -> dict | None:
    """The config.json a run wrote at its last start (a validated dict), or None when there is none yet;
    ValueError naming the file and the field when it is damaged or hand-edited."""
    path = RunDir(run_dir).config_file
    if not path.exists():
        return None
    try:
        return config_from_dict(json.loads(path.read_text())).to_dict()
    except (ValueError, RecursionError) as e:
        raise ValueError(f"{path}: {e} (the next pretrain of this run rewrites it)") from None

