"""Pretraining: `train(cfg, run_dir)` runs (or resumes) a run to the end, or to `max_steps`.

Every random draw derives from (seed, step, sample index) (rng.py), the data order resumes in the
middle of an epoch (data/sampler.py) and checkpoints hold everything else, so a run interrupted at
any step and rerun with the same command ends bitwise-equal on CPU to the uninterrupted run.
"""
from __future__ import annotations

import errno
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from ..config import Config
from ..data import open_source
from ..eval.knn import KNNMonitor
from ..eval.monitors import normalized_std, rankme
from ..method import ema_momentum
from ..provenance import provenance
from . import checkpoint, distributed
from .engine import Engine
from .interrupt import RunInterrupted, StopRequest
from .optim import learning_rate
from .rundir import RunDir, resolve_config

MIRROR_FLUSH_S = 120.0  # after an interrupt, the mirror gets this long to finish its copy


@dataclass(frozen=True)
class Schedule:
    """Where a run is and where it stops."""

    start: int  # first step to run (the resumed checkpoint's step)
    stop: int  # stop after this global step
    total: int  # steps of the whole run (cfg.epochs * steps_per_epoch): the lr and EMA schedules span it
    steps_per_epoch: int
    wall_before: float  # wall seconds spent by earlier sessions of the run

    def why(self, step: int) -> str:
        """Why a run at `step` (>= stop) stopped: "done" (the whole schedule) or "steps" (--steps / max_steps)."""
        return "done" if step >= self.total else "steps"


def train(cfg: Config, run_dir: str | Path, *, max_steps: int | None = None, allow_config_change: bool = False,
          time_budget_s: float | None = None, source=None, progress: bool = True,
          on_log: Callable[[dict], None] | None = None) -> dict:
    """Pretrain `cfg` in `run_dir`, resuming from its newest valid checkpoint (here or in cfg.mirror_dir).

    Args:
        cfg: the run's config; on resume, non-runtime fields must match the checkpoint's (rundir.resolve_config).
        run_dir: holds config.json, metrics.jsonl and checkpoints/ (rundir.py).
        max_steps: stop after this global step (with a checkpoint); the schedule still spans cfg.epochs.
        allow_config_change: resume even if the config differs from the checkpoint's.
        time_budget_s: stop cleanly (with a checkpoint) once this much wall time has passed.
        source: a data source to use instead of `cfg.dataset` (map-style, items (PIL image, label)).
        progress: show a tqdm progress bar.
        on_log: called on rank 0 with every metrics row as it is logged (e.g. a live plot in a notebook).
    Returns:
        a summary: step reached, total steps, the last checkpoint path, the last logged metrics, mirror failures.
    Raises:
        LockBusy: another live process trains in `run_dir` or its mirror.
        RunInterrupted: Ctrl-C, the notebook's interrupt or SIGTERM stopped the run after a checkpoint.
    """
    t_start = time.time()
    d = distributed.setup()
    run = RunDir(run_dir, cfg.mirror_dir)
    with run.lock() if d.main else nullcontext():
        if d.main:
            run.clean_temp()
        try:
            return _train(cfg, run, d, t_start, max_steps, allow_config_change, time_budget_s, source, progress,
                          on_log)
        except RunInterrupted as e:
            raise e.with_traceback(None)  # nothing of the run stays referenced (a notebook keeps the traceback)
        except OSError as e:  # a read-only, full or failing local disk: the real error, and what is safe
            if e.errno not in (errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EACCES):
                raise
            newest = checkpoint.candidates(run.checkpoint_dir)
            raise type(e)(f"{e}; the last good checkpoint is {newest[0] if newest else 'none'}") from None


def _train(cfg, run, d, t_start, max_steps, allow_config_change, time_budget_s, source, progress, on_log) -> dict:
    """`train` with the run directory locked."""
    ckpt = run.latest()
    cfg = resolve_config(cfg, ckpt and ckpt.config, allow_config_change)
    source = source if source is not None else open_source(cfg.dataset, "train", cfg.img_size, cfg.data_dir)
    steps_per_epoch = len(source) // cfg.batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"dataset has {len(source)} images, fewer than one batch of batch_size={cfg.batch_size}")
    total = cfg.epochs * steps_per_epoch
    start = ckpt.step if ckpt else 0
    schedule = Schedule(start, total if max_steps is None else min(max_steps, total), total, steps_per_epoch,
                        float(ckpt.meta.get("wall_time_s", 0.0)) if ckpt else 0.0)
    engine = Engine(cfg, d, total)
    resumed_from = ckpt and str(ckpt.path)
    if ckpt is not None:
        engine.load(ckpt.student, ckpt.teacher, ckpt.predictors, ckpt.optimizer)
        engine.restore_interval(ckpt.meta.get("interval"))
        run.restore_from_mirror(resumed_from=ckpt.path)
    del ckpt
    if d.main:
        run.write_config(cfg)
    summary = {"run_dir": str(run.path), "start_step": start, "step": start, "total_steps": total,
               "steps_per_epoch": steps_per_epoch, "micro_batch": engine.micro,
               "checkpoint": resumed_from, "stopped": schedule.why(start)}
    if start >= schedule.stop:
        return summary
    loop = _Loop(engine, run, schedule, t_start)
    return loop.run(engine.loader(source, start, schedule.stop), time_budget_s, progress, summary, on_log)


class _Loop:
    """The step loop of `train`: logging, kNN readings, checkpoints, the time budget."""

    def __init__(self, engine: Engine, run: RunDir, schedule: Schedule, t_start: float):
        self.engine, self.run_dir, self.schedule, self.t_start = engine, run, schedule, t_start
        self.cfg, self.d = engine.cfg, engine.dist
        self.mirror = run.open_mirror() if self.d.main else None
        # Read at log steps every cfg.knn_every_epochs, by rank 0; the others wait at the next collective.
        self.knn = KNNMonitor(self.cfg, self.d.device) if self.cfg.knn_every_epochs and self.d.main else None
        self.halvings = 0  # micro-batch halvings after out-of-memory errors

    def run(self, loader, time_budget_s, progress, summary, on_log) -> dict:
        cfg, d, sched = self.cfg, self.d, self.schedule
        log = self.run_dir.metrics_log(sched.start) if d.main else None
        bar = tqdm(total=sched.stop, initial=sched.start, desc=cfg.run_id, unit="step",
                   disable=not (progress and d.main), dynamic_ncols=True)
        last_ckpt = t_mark = time.time()
        done, mark_step, row = sched.start, sched.start, {}
        stop = StopRequest()
        try:
            with stop:
                for step, (images, _) in enumerate(loader, start=sched.start):
                    teacher_feats = self._step(step, images)
                    bar.update(1)
                    done = step + 1
                    if done % cfg.log_every and done != sched.stop:
                        if stop.signum and d.world == 1:  # several ranks agree on stopping at log steps only
                            break
                        continue
                    now = time.time()
                    row = self._log_row(done, teacher_feats, (done - mark_step) * cfg.batch_size / (now - t_mark))
                    if self.knn is not None and self.knn.due(mark_step, done, sched.steps_per_epoch):
                        row["knn_top1"] = self.knn(self.engine.model.teacher)
                        now = time.time()  # the kNN reading is not training time: images_per_s leaves it out
                    t_mark, mark_step = now, done
                    if log is not None:
                        log.write(row)
                        if on_log is not None:
                            on_log(row)
                    self._check_health(row, done)
                    bar.set_postfix(loss=f"{row['loss']:.4f}", img_s=f"{row['images_per_s']:.0f}")
                    save, out_of_time, stopping = distributed.broadcast_flags(
                        d, now - last_ckpt > cfg.ckpt_minutes * 60,
                        time_budget_s is not None and now - self.t_start > time_budget_s, bool(stop.signum))
                    if done == sched.stop or save or out_of_time:
                        summary["checkpoint"] = self.save(done)
                        last_ckpt = time.time()
                    if out_of_time or stopping:
                        break
                if stop.signum and done < sched.stop:
                    self._stop(stop, done, summary)
        finally:
            bar.close()
            self._close_mirror(summary, MIRROR_FLUSH_S if stop.signum else 600.0)
        summary.update(step=done, stopped="time budget" if done < sched.stop else sched.why(done), last=row)
        return summary

    def _step(self, step: int, images: torch.Tensor) -> torch.Tensor:
        """One optimizer step; on an out-of-memory error the micro-batch is halved and the step redone."""
        while True:
            try:
                return self.engine.step(step, images)
            except torch.OutOfMemoryError:
                before = self.engine.micro
            # outside the except block, so the error's traceback no longer holds the step's tensors
            if not self.engine.halve_micro_batch():
                raise torch.OutOfMemoryError(f"out of memory at step {step} even with a micro-batch of 1")
            self.halvings += 1
            warnings.warn(f"out of memory at step {step} with micro-batch {before}: "
                          f"redoing the step with {self.engine.micro}")

    def _stop(self, stop: StopRequest, done: int, summary: dict) -> None:
        """After a signal: the checkpoint at the current step, then RunInterrupted."""
        summary["checkpoint"] = self.save(done)
        raise RunInterrupted(f"{stop.name} at step {done}: checkpoint {summary['checkpoint'] or 'written by rank 0'}; "
                             "rerun the same command to resume", stop.signum)

    def _close_mirror(self, summary: dict, timeout_s: float) -> None:
        if self.mirror is None:
            return
        self.mirror.close(timeout_s)
        summary["mirror_failures"] = list(self.mirror.failures)
        summary["mirror_status"] = self.mirror.status()

    def _log_row(self, done: int, teacher_feats: torch.Tensor, images_per_s: float) -> dict:
        cfg, sched = self.cfg, self.schedule
        sums = self.engine.read_interval()
        return {
            "step": done, "epoch": done / sched.steps_per_epoch, "loss": sums["loss"], "rows": sums["rows"],
            "targets": sums["targets"], "lr": learning_rate(cfg, done - 1, sched.total),
            "momentum": ema_momentum(cfg, done - 1, sched.total), "images_per_s": images_per_s,
            "teacher_std": normalized_std(teacher_feats), "rankme": rankme(teacher_feats),
            "skipped": sums["skipped"], "consecutive_skips": sums["consecutive_skips"],
            "micro_batch": self.engine.micro, "oom_halvings": self.halvings,
            "time_s": sched.wall_before + time.time() - self.t_start,
            **({"mirror_failures": len(self.mirror.failures)} if self.mirror is not None else {}),
        }

    def _check_health(self, row: dict, done: int) -> None:
        """Warn about skipped steps; stop the run after more than cfg.max_skipped_steps in a row."""
        if row["consecutive_skips"] > self.cfg.max_skipped_steps:
            raise RuntimeError(f"{row['consecutive_skips']} consecutive steps up to step {done} had a non-finite "
                               f"loss (max_skipped_steps={self.cfg.max_skipped_steps}); weights are unchanged since. "
                               "Lower the learning rate or check the data.")
        if row["skipped"] > 0:
            warnings.warn(f"non-finite loss in {row['skipped']} of the steps before {done}: updates skipped")

    def save(self, step: int) -> str:
        """Checkpoint on rank 0 (all ranks hold the same weights); never one with non-finite weights."""
        path = None
        if self.d.main:
            meta = {**provenance(self.d.device), "epoch": step / self.schedule.steps_per_epoch,
                    "total_steps": self.schedule.total,
                    "wall_time_s": self.schedule.wall_before + time.time() - self.t_start,
                    "interval": self.engine.interval_state()}  # metrics sums since the last log step
            path = self.run_dir.save(step, self.cfg, self.engine.model, self.engine.optimizer, meta)
            if self.mirror is not None:
                self.mirror.submit(path, extra=self.run_dir.mirror_extras())
        distributed.barrier(self.d)
        return str(path) if path else ""
