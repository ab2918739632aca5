"""Where a run's numbers are watched: TensorBoard always, Weights & Biases when asked; rank 0 only.

TensorBoard: every attempt of a run (the first start, each resume, a torchrun restart, a campaign
session) writes a new event file in <run>/tensorboard/ that opens with `purge_step` = the resumed
step + 1, so TensorBoard drops what a killed attempt logged after the checkpoint it rolled back to:
one value per global step, as in metrics.jsonl (which is cut back the same way, metrics.py). Event
files stay on local disk (not mirrored): a resume that finds none rewrites the earlier steps from
metrics.jsonl, which the mirror keeps.

W&B (cfg.wandb = "PROJECT" or "ENTITY/PROJECT"): the W&B run id is created once and kept in
<run>/wandb.json with the last step sent, which travels to the mirror with every checkpoint; every
later attempt continues that W&B run (resume="allow") and sends only later steps, so its steps
only grow. Without an API key (WANDB_API_KEY or a saved `wandb login`) or when going online fails,
it logs offline under <run>/wandb/ (`wandb sync` uploads it later). `wandb` is imported only here and
only when asked; any W&B failure is one warning line and the run goes on without it.
"""
from __future__ import annotations

import json
from importlib import metadata
import netrc
import os
import re
import secrets
import warnings
from pathlib import Path

import psutil
import torch
from torch.utils.tensorboard import SummaryWriter

from ..config import Config
from ..files import write_json
from ..provenance import device_name, git_sha
from .rundir import RunDir, read_metrics

_PROJECT = re.compile(r"(?:[\w.-]+/)?[\w.-]{1,128}")  # ENTITY/PROJECT or PROJECT


def scalars(row: dict, cfg: Config, device: torch.device, memory: bool = True) -> dict[str, float]:
    """The numbers of a metrics row (and what it implies) as flat named scalars; None values left out.
    `memory`: add this process's memory now (False for a row logged earlier: rows do not record it)."""
    per_depth = {f"loss_row/{d}": v for d, v in row.get("rows", {}).items()}
    per_depth.update({f"loss_target/{d}": v for d, v in row.get("targets", {}).items()})
    rate = row.get("images_per_s")
    values = {
        "train/loss": row.get("loss"), "train/lr": row.get("lr"), "train/weight_decay": row.get("weight_decay"),
        "train/momentum": row.get("momentum"), "train/epoch": row.get("epoch"), "train/skipped": row.get("skipped"),
        "monitor/rankme": row.get("rankme"), "monitor/teacher_std": row.get("teacher_std"),
        "monitor/knn_top1": row.get("knn_top1"), "perf/images_per_s": rate,
        "perf/step_time_s": cfg.batch_size / rate if rate else None,
        "perf/memory_gib": memory_gib(device) if memory else None,
        **per_depth,
    }
    return {k: float(v) for k, v in values.items() if v is not None}


def memory_gib(device: torch.device) -> float:
    """Peak GPU memory allocated by this process (CUDA), else its resident memory, in GiB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return psutil.Process().memory_info().rss / 2**30


class Tracker:
    """TensorBoard event files for one attempt of a run, and its W&B run when cfg.wandb is set."""

    def __init__(self, cfg: Config, run: RunDir, start: int, device: torch.device, world: int = 1):
        self.cfg, self.device = cfg, device
        run.tensorboard_dir.mkdir(parents=True, exist_ok=True)
        # A resume with no event files here (a new Colab session: the local disk went, metrics.jsonl came back from
        # the mirror) first writes steps 1..start from metrics.jsonl, in order in this attempt's file; there is then
        # nothing earlier to purge. Otherwise purge_step: TensorBoard forgets every event at or after it from earlier
        # files (a killed attempt's).
        backfill = start > 0 and not any(run.tensorboard_dir.glob("events.out.tfevents.*"))
        self.tb = SummaryWriter(str(run.tensorboard_dir), purge_step=None if backfill else start + 1)
        if backfill:
            for row in read_metrics(run.path):
                if row["step"] <= start:
                    self._add(scalars(row, cfg, device, memory=False), row["step"])
            self.tb.flush()
        self.wandb = WandbRun.open(cfg, run, start, device, world) if cfg.wandb else None

    def _add(self, values: dict[str, float], step: int) -> None:
        for name, value in values.items():
            self.tb.add_scalar(name, value, step)

    def log(self, row: dict) -> None:
        values = scalars(row, self.cfg, self.device)
        self._add(values, row["step"])
        self.tb.flush()  # a SIGKILL right after loses nothing that a checkpoint before it would keep
        if self.wandb is not None and not self.wandb.log(values, row["step"]):
            self.wandb = None

    def close(self) -> None:
        self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()


def show_tensorboard(runs: Path, inline: bool) -> None:
    """TensorBoard on the event files of every run in the folder `runs`: inline in a notebook (`%tensorboard`),
    else one line with the command to run."""
    if not inline:
        print(f"TensorBoard: tensorboard --logdir {runs}  (then open http://localhost:6006)")
        return
    from IPython import get_ipython

    get_ipython().run_line_magic("load_ext", "tensorboard")
    get_ipython().run_line_magic("tensorboard", f'--logdir "{runs}"')


def _kit_version() -> str:
    """The installed kit's version (release.py's VERSION, read from the package metadata: the engine cannot import
    the front), or a note that this is a checkout run in place (its git SHA says which)."""
    try:
        return metadata.version("cijepa-lite")
    except metadata.PackageNotFoundError:
        return "not installed (a checkout: see git_sha)"


def _has_api_key() -> bool:
    """Whether W&B can authenticate: WANDB_API_KEY, or a `wandb login` saved in ~/.netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return any("wandb" in host for host in netrc.netrc(os.environ.get("NETRC")).hosts)
    except (OSError, netrc.NetrcParseError):
        return False


def _warn(what: str, e: BaseException) -> None:
    """One warning line: what failed, the first line of why, and that training goes on."""
    why = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
    warnings.warn(f"W&B: {what}: {why}; training goes on", stacklevel=3)


class WandbRun:
    """The W&B run of a run directory: one id for its whole life, steps sent once and in order."""

    def __init__(self, handle, state: dict, path):
        self.handle, self.state, self.path = handle, state, path

    @classmethod
    def open(cls, cfg: Config, run: RunDir, start: int, device: torch.device, world: int) -> "WandbRun | None":
        """Continue (or start) the run directory's W&B run; None with one warning line when W&B cannot be used."""
        if not _PROJECT.fullmatch(cfg.wandb):
            _warn(f"wandb={cfg.wandb!r} not used", ValueError("give PROJECT or ENTITY/PROJECT (letters, digits, _ . -)"))
            return None
        try:
            import wandb

            state = json.loads(run.wandb_file.read_text()) if run.wandb_file.exists() else {}
            state = {"id": state.get("id") or secrets.token_hex(4), "step": int(state.get("step", 0))}
            write_json(run.wandb_file, state)  # the id exists before W&B is reached: a crash cannot make a second
            entity, _, project = cfg.wandb.rpartition("/")
            modes = (["online"] if _has_api_key() and os.environ.get("WANDB_MODE") is None else []) + ["offline"]
            handle = cls._init(wandb, cfg, run, state["id"], entity or None, project, modes)
            handle.config.update({**cfg.to_dict(), "kit_version": _kit_version(), "git_sha": git_sha(),
                                  "device": device_name(device), "world": world, "resumed_step": start},
                                 allow_val_change=True)
        except Exception as e:  # noqa: BLE001 - W&B's failures are many and never worth a stopped run
            _warn(f"wandb={cfg.wandb!r} not used", e)
            return None
        return cls(handle, state, run.wandb_file)

    @staticmethod
    def _init(wandb, cfg: Config, run: RunDir, run_id: str, entity: str | None, project: str, modes: list[str]):
        """wandb.init in the first mode that works (online, then offline); the last mode's error is raised."""
        for i, mode in enumerate(modes):
            try:
                return wandb.init(project=project, entity=entity, id=run_id, resume="allow", dir=str(run.path),
                                  name=run.path.name, mode=os.environ.get("WANDB_MODE", mode),
                                  settings=wandb.Settings(silent=True, console="off"))
            except Exception as e:  # noqa: BLE001
                if i == len(modes) - 1:
                    raise
                _warn(f"going online failed, logging offline under {run.path / 'wandb'}", e)
                wandb.teardown()  # W&B's service still holds the failed run's id

    def log(self, values: dict[str, float], step: int) -> bool:
        """Send `values` at `step` unless an earlier attempt already sent it; False (one warning) if W&B failed."""
        if step <= self.state["step"]:
            return True
        try:
            self.handle.log(values, step=step)
        except Exception as e:  # noqa: BLE001
            _warn(f"logging step {step} failed, no more W&B this session", e)
            return False
        self.state["step"] = step
        write_json(self.path, self.state)
        return True

    def finish(self) -> None:
        try:
            self.handle.finish()
        except Exception as e:  # noqa: BLE001
            _warn("finishing the run failed", e)
