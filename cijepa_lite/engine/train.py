"""Pretraining: `train(cfg, run_dir)` runs (or resumes) a run to the end, or to `max_steps`.

Every random draw derives from (seed, step, sample index) (rng.py), the data order resumes in the
middle of an epoch (data/sampler.py) and checkpoints hold everything else, so a run interrupted at
any step and rerun with the same command ends bitwise-equal on CPU to the uninterrupted run.
"""
from __future__ import annotations

import errno
import time
import warnings
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from ..config import Config
from ..data import open_source
from ..eval.knn import KNNMonitor
from ..eval.monitors import finite_or_none, normalized_std, rankme
from ..method import ema_momentum
from ..provenance import provenance
from . import checkpoint, distributed
from .distributed import RunFailed
from .engine import Engine
from .interrupt import RunInterrupted, SetupStop, StopRequest
from .metrics import extend_lineage
from .optim import learning_rate, weight_decay
from .resume import keep_threads, resume_point, say_where
from .rundir import RunDir
from .tracking import Tracker

MIRROR_FLUSH_S = 600.0  # at the end of a run, the mirror gets this long to finish its last copy


class RunYielded(RunFailed):
    """A campaign session found a rival's earlier claim at a checkpoint and stopped without writing it."""


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
          on_log: Callable[[dict], None] | None = None, fence=None) -> dict:
    """Pretrain `cfg` in `run_dir`, resuming from its newest valid checkpoint (here or in cfg.mirror_dir).

    Under torchrun rank 0 alone locks the run directory, chooses the checkpoint and restores from the
    mirror; the other ranks load the same file or refuse in one line.
    Args:
        cfg: the run's config; on resume, non-runtime fields must match the checkpoint's (rundir.resolve_config).
        run_dir: holds config.json, metrics.jsonl and checkpoints/ (rundir.py).
        max_steps: stop after this global step (with a checkpoint); the schedule still spans cfg.epochs.
        allow_config_change: resume even if the config differs from the checkpoint's.
        time_budget_s: stop cleanly (with a checkpoint) once this much wall time has passed.
        source: a data source to use instead of `cfg.dataset` (map-style, items (PIL image, label)).
        progress: show a tqdm progress bar.
        on_log: called on rank 0 with every metrics row as it is logged (e.g. a live plot in a notebook).
        fence: a campaign's claim (`token`, `still_ours()`, `passed_over()`): its token goes into every checkpoint
            (name and meta) and metrics row, and each checkpoint is written only while the claim still holds, else
            RunYielded (campaign/claim.py); the resume passes over checkpoints of the sessions that yielded, and
            keeps only the metrics rows of the resumed checkpoint's lineage (meta "lineage").
    Returns:
        a summary: step reached, total steps, the last checkpoint path, the last logged metrics, mirror failures,
        whether the mirror holds the newest checkpoint, the world size.
    Raises:
        LockBusy: another live process trains in `run_dir` or its mirror.
        RunInterrupted: Ctrl-C, the notebook's interrupt or SIGTERM (on any rank) stopped the run after a checkpoint.
        RunFailed: too many non-finite steps, out of memory at a micro-batch of 1, a rank that died.
    """
    t_start = time.time()
    d = distributed.setup()
    run = RunDir(run_dir, cfg.mirror_dir)
    try:
        with ExitStack() as held, distributed.peers_alive(d):
            with SetupStop(quiet=not d.main):  # a signal before the first step: a clean stop at once
                cfg, ckpt = resume_point(cfg, run, d, held, allow_config_change,
                                         fence.passed_over() if fence is not None else frozenset())
                summary, loop = _set_up(cfg, run, d, ckpt, t_start, max_steps, source, fence)
            return summary if loop is None else loop(time_budget_s, progress, summary, on_log)
    except RunInterrupted as e:
        raise e.with_traceback(None)  # nothing of the run stays referenced (a notebook keeps the traceback)
    except OSError as e:  # a read-only, full or failing local disk: the real error, and what is safe
        if e.errno not in (errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EACCES):
            raise
        newest = checkpoint.candidates(run.checkpoint_dir)
        raise type(e)(f"{e}; the last good checkpoint is {newest[0] if newest else 'none'}") from None
    finally:
        distributed.teardown(d)


def _set_up(cfg, run, d, ckpt, t_start, max_steps, source, fence) -> tuple[dict, Callable | None]:
    """`train`'s set-up with the run directory locked and the checkpoint chosen: the summary so far and the step
    loop to run (None when the run is already at its stop)."""
    source = source if source is not None else open_source(cfg.dataset, "train", cfg.img_size, cfg.data_dir)
    steps_per_epoch = len(source) // cfg.batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"dataset has {len(source)} images, fewer than one batch of batch_size={cfg.batch_size}")
    threads = keep_threads(ckpt, d)
    if d.main:
        say_where(run, ckpt, d, threads)
    total = cfg.epochs * steps_per_epoch
    start = ckpt.step if ckpt else 0
    schedule = Schedule(start, total if max_steps is None else min(max_steps, total), total, steps_per_epoch,
                        float(ckpt.meta.get("wall_time_s", 0.0)) if ckpt else 0.0)
    engine = Engine(cfg, d, total)
    resumed_from = ckpt and str(ckpt.path)
    lineage = ckpt.meta.get("lineage") if ckpt else None  # [[writer, from_step], ...]: who logged which steps
    if ckpt is not None:
        engine.load(ckpt.student, ckpt.teacher, ckpt.predictors, ckpt.optimizer)
        engine.restore_interval(ckpt.meta.get("interval"))
    del ckpt
    if d.main:
        run.write_config(cfg)
    summary = {"run_dir": str(run.path), "start_step": start, "step": start, "total_steps": total,
               "steps_per_epoch": steps_per_epoch, "micro_batch": engine.micro,
               "checkpoint": resumed_from, "stopped": schedule.why(start), "world": d.world, "rank": d.rank,
               "mirror_has_newest": None}
    if start >= schedule.stop:
        return summary, None
    return summary, partial(_Loop(engine, run, schedule, t_start, fence, lineage).run,
                            engine.loader(source, start, schedule.stop))


class _Loop:
    """The step loop of `train`: logging, kNN readings, checkpoints, the time budget, agreed stops."""

    def __init__(self, engine: Engine, run: RunDir, schedule: Schedule, t_start: float, fence=None, lineage=None):
        self.engine, self.run_dir, self.schedule, self.t_start, self.fence = engine, run, schedule, t_start, fence
        self.writer = {"writer": fence.token} if fence is not None else {}  # the fencing token of every file
        self.resumed_lineage = lineage  # the resumed checkpoint's: the metrics rows kept are its writers'
        lineage = extend_lineage(lineage, fence and fence.token, schedule.start)
        self.lineage = {"lineage": lineage} if lineage else {}
        self.cfg, self.d = engine.cfg, engine.dist
        self.mirror = run.open_mirror() if self.d.main else None
        # Read at log steps every cfg.knn_every_epochs, by rank 0; the others wait at the next collective.
        self.knn = KNNMonitor(self.cfg, self.d.device) if self.cfg.knn_every_epochs and self.d.main else None
        self.saved: str | None = None  # the newest checkpoint written by this session (rank 0; "" elsewhere)
        self.saved_step = -1

    def run(self, loader, time_budget_s, progress, summary, on_log) -> dict:
        cfg, d, sched = self.cfg, self.d, self.schedule
        log = self.run_dir.metrics_log(sched.start, self.resumed_lineage) if d.main else None
        tracker = Tracker(cfg, self.run_dir, sched.start, d.device, d.world) if d.main else None
        bar = tqdm(total=sched.stop, initial=sched.start, desc=cfg.run_id, unit="step",
                   disable=not (progress and d.main), dynamic_ncols=True)
        last_ckpt = t_mark = time.time()
        done, mark_step, row, stopping = sched.start, sched.start, {}, 0
        stop, batches = StopRequest(), distributed.AgreedBatches(loader, d)
        try:
            with stop:
                for step, (images, _) in enumerate(batches, start=sched.start):
                    teacher_feats = self.engine.step(step, images, stop.signum or 0)
                    stopping = self._stop_signal(stop)
                    bar.update(1)
                    done = step + 1
                    if done % cfg.log_every and done != sched.stop:
                        if stopping:
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
                        tracker.log(row)
                        if on_log is not None:
                            on_log(row)
                    self._check_health(row, done)
                    bar.set_postfix(loss="-" if row["loss"] is None else f"{row['loss']:.4f}",
                                    img_s=f"{row['images_per_s']:.0f}")
                    save, out_of_time = distributed.broadcast_flags(
                        d, now - last_ckpt > cfg.ckpt_minutes * 60,
                        time_budget_s is not None and now - self.t_start > time_budget_s)
                    if done == sched.stop or save or out_of_time:
                        self.save(done)
                        last_ckpt = time.time()
                    if out_of_time or stopping:
                        break
            interrupted = bool(stopping) and done < sched.stop
            if interrupted or (batches.failed and done > sched.start):
                self.save(done)  # once: not again when the stop fell on a periodic save
        finally:
            bar.close()
            if tracker is not None:
                tracker.close()
            self._close_mirror(summary, stop.flush_budget_s() if stop.signum else MIRROR_FLUSH_S)
        summary.update(step=done, stopped="time budget" if done < sched.stop else sched.why(done), last=row,
                       checkpoint=self.saved if self.saved is not None else summary["checkpoint"],
                       oom_events=self.engine.oom_events)
        self._agree_mirror(summary)
        if batches.failed:
            raise RunFailed(f"{batches.failed}; checkpoint {summary['checkpoint'] or 'none'} at step "
                            f"{done}; then rerun the same command to resume", quiet=not self.d.main)
        if interrupted:
            self._interrupted(summary, stopping)
        return summary

    def _stop_signal(self, stop: StopRequest) -> int:
        """The signal to stop at after this step: this process's own, or with several ranks the one they agreed on
        in this step (a signal to any rank stops every rank at the same step)."""
        if self.d.world == 1:
            return stop.signum or 0
        stop.agreed(self.engine.stop_signal)
        return self.engine.stop_signal

    def _interrupted(self, summary: dict, signum: int) -> None:
        """After a signal and its checkpoint: RunInterrupted (status 3 if the mirror lacks the checkpoint)."""
        missing = summary["mirror_has_newest"] is False
        where = summary["checkpoint"] or "written by rank 0"
        mirror = f"; the mirror holds no copy of it ({summary['mirror_status']})" if missing else ""
        raise RunInterrupted(f"{StopRequest.name_of(signum)} at step {summary['step']}: checkpoint {where}{mirror}; "
                             "rerun the same command to resume", signum, mirror_missing=missing, quiet=not self.d.main)

    def _close_mirror(self, summary: dict, timeout_s: float) -> None:
        """Let the mirror finish (at most `timeout_s`); record its failures and whether it holds the newest checkpoint."""
        if self.mirror is None:
            return
        self.mirror.close(timeout_s)
        newest = self.saved or summary["checkpoint"]
        summary["mirror_failures"] = list(self.mirror.failures)
        summary["mirror_summary"] = self.mirror.summary()
        summary["mirror_status"] = self.mirror.status()
        summary["mirror_has_newest"] = newest is None or self.mirror.copied == Path(newest).name

    def _agree_mirror(self, summary: dict) -> None:
        """Rank 0's `mirror_has_newest` on every rank (so all exit with the same status)."""
        if self.cfg.mirror_dir:
            summary["mirror_has_newest"] = distributed.broadcast_flags(self.d, bool(summary["mirror_has_newest"]))[0]

    def _log_row(self, done: int, teacher_feats: torch.Tensor, images_per_s: float) -> dict:
        cfg, sched = self.cfg, self.schedule
        sums = self.engine.read_interval()
        feats = distributed.all_gather_rows(self.d, teacher_feats)  # (B, D): the global batch on any number of GPUs
        return {
            "step": done, "epoch": done / sched.steps_per_epoch, "loss": sums["loss"], "rows": sums["rows"],
            "targets": sums["targets"], "lr": learning_rate(cfg, done - 1, sched.total),
            "weight_decay": weight_decay(cfg, done - 1, sched.total),
            "momentum": ema_momentum(cfg, done - 1, sched.total), "images_per_s": images_per_s,
            "teacher_std": finite_or_none(normalized_std(feats)), "rankme": finite_or_none(rankme(feats)),
            "skipped": sums["skipped"], "consecutive_skips": sums["consecutive_skips"],
            "micro_batch": self.engine.micro, "oom_halvings": self.engine.halvings, "world": self.d.world,
            "time_s": sched.wall_before + time.time() - self.t_start,
            **({"mirror_failures": len(self.mirror.failures)} if self.mirror is not None else {}), **self.writer,
        }

    def _check_health(self, row: dict, done: int) -> None:
        """Warn about skipped steps; stop the run after more than cfg.max_skipped_steps in a row (RunFailed)."""
        if row["consecutive_skips"] > self.cfg.max_skipped_steps:
            raise RunFailed(f"{row['consecutive_skips']} consecutive steps up to step {done} had a non-finite "
                            f"loss (max_skipped_steps={self.cfg.max_skipped_steps}); weights are unchanged since. "
                            "Lower the learning rate (base_lr) or check the data; rerun to resume from the last "
                            "checkpoint", quiet=not self.d.main)
        if row["skipped"] > 0 and self.d.main:
            warnings.warn(f"non-finite loss in {row['skipped']} of the steps before {done}: updates skipped",
                          stacklevel=4)  # the caller of train() (-> _Loop.run -> here)

    def save(self, step: int) -> str:
        """Checkpoint `step` on rank 0 (all ranks hold the same weights) once; never one with non-finite weights."""
        if step == self.saved_step:
            return self.saved
        path = None
        if self.fence is not None and distributed.broadcast_flags(self.d, self.d.main and not self.fence.still_ours())[0]:
            raise RunYielded(f"an earlier claim on {self.run_dir.path} became visible late: yielded at step {step} "
                             f"without writing it (earlier checkpoints are {self.fence.token}'s)", quiet=not self.d.main)
        if self.d.main:
            meta = {**self.writer, **self.lineage, **provenance(self.d.device), "epoch": step / self.schedule.steps_per_epoch,
                    "total_steps": self.schedule.total, "world": self.d.world,
                    "torch_threads": torch.get_num_threads(),  # CPU results depend on it: a resume keeps it
                    "wall_time_s": self.schedule.wall_before + time.time() - self.t_start,
                    "interval": self.engine.interval_state()}  # metrics sums since the last log step
            path = self.run_dir.save(step, self.cfg, self.engine.model, self.engine.optimizer, meta)
            if self.mirror is not None:
                self.mirror.submit(path, extra=self.run_dir.mirror_extras())
        distributed.barrier(self.d)
        self.saved, self.saved_step = (str(path) if path else ""), step
        return self.saved
