"""Pretraining: `train(cfg, run_dir)` runs (or resumes) a run to the end, or to `max_steps`.

Every random draw derives from (seed, step, sample index) (rng.py), the data order resumes in the
middle of an epoch (sampler.py) and checkpoints hold everything else, so a run interrupted at any
step and rerun with the same command ends bitwise-equal on CPU to the uninterrupted run.

Inside a step nothing waits for the device: a non-finite loss skips the update on the device
(fused AdamW's found_inf, EMA momentum 1), and metrics are read back every `log_every` steps.
"""
from __future__ import annotations

import json
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as torch_dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from . import checkpoint, distributed, rng
from .config import RUNTIME_FIELDS, Config
from .data import Augmented, open_source, pretrain_transform
from .ema import ema_momentum, ema_update
from .knn import KNNMonitor
from .loss import sample_source_depths, weight_rows
from .masks import MaskSampler
from .memory import choose_micro_batch, parameter_counts
from .model import CIJEPA, compile_parts, depth_key
from .monitors import MetricsLog, normalized_std, rankme
from .optim import learning_rate, make_optimizer
from .provenance import provenance
from .sampler import StepBatches


@dataclass
class Interval:
    """Device-side sums over the steps since the last log line (read back once per interval)."""

    loss: torch.Tensor  # () sum of finite step losses
    rows: torch.Tensor  # (L,) sum of weighted row losses per source depth
    row_count: torch.Tensor  # (L,) how often each depth was a source row
    targets: torch.Tensor  # (L,) sum over steps of the per-target-depth MSE (mean over rows)
    finite: torch.Tensor  # () finite steps
    skipped: torch.Tensor  # () non-finite steps
    consecutive: torch.Tensor  # () non-finite steps in a row, carried across intervals

    @classmethod
    def zeros(cls, num_depths: int, device: torch.device, consecutive: torch.Tensor | None = None) -> "Interval":
        z = lambda *s: torch.zeros(s, device=device)  # noqa: E731
        return cls(z(), z(num_depths), z(num_depths), z(num_depths), z(), z(),
                   z() if consecutive is None else consecutive)


def saved_config(run_dir: str | Path) -> Config | None:
    """The config a run directory was started with (from its config.json), or None for a new run."""
    path = Path(run_dir) / "config.json"
    if not path.exists():
        return None
    return config_from_dict(json.loads(path.read_text()))


def config_from_dict(values: dict) -> Config:
    known = Config.__dataclass_fields__
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"saved config has keys this version does not know: {unknown}")
    return Config(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def config_changes(saved: Config, cfg: Config) -> dict[str, tuple]:
    """Fields (other than runtime ones) whose value differs: {name: (saved, new)}."""
    a, b = saved.to_dict(), cfg.to_dict()
    return {k: (a[k], b[k]) for k in a if k not in RUNTIME_FIELDS and a[k] != b[k]}


def _resume_config(cfg: Config, state: dict, allow_config_change: bool) -> Config:
    saved = config_from_dict(state["config"])
    changes = config_changes(saved, cfg)
    if changes and not allow_config_change:
        listed = ", ".join(f"{k}: checkpoint {a!r} vs now {b!r}" for k, (a, b) in changes.items())
        raise ValueError(f"refusing to resume with a different config ({listed}); "
                         "pass allow_config_change=True (--allow-config-change) to resume anyway")
    # Runtime fields (paths, workers, logging) always come from the new call.
    return cfg if changes else replace(saved, **{k: getattr(cfg, k) for k in RUNTIME_FIELDS})


def _autocast(cfg: Config, device: torch.device):
    if cfg.precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def train(cfg: Config, run_dir: str | Path, *, max_steps: int | None = None, allow_config_change: bool = False,
          time_budget_s: float | None = None, source=None, progress: bool = True,
          on_log: Callable[[dict], None] | None = None) -> dict:
    """Pretrain `cfg` in `run_dir`, resuming from its newest valid checkpoint.

    Args:
        cfg: the run's config; on resume, non-runtime fields must match the checkpoint's.
        run_dir: holds config.json, metrics.jsonl and checkpoints/.
        max_steps: stop after this global step (with a checkpoint); the schedule still spans cfg.epochs.
        allow_config_change: resume even if the config differs from the checkpoint's.
        time_budget_s: stop cleanly (with a checkpoint) once this much wall time has passed.
        source: a data source to use instead of `cfg.dataset` (map-style, items (PIL image, label)).
        progress: show a tqdm progress bar.
        on_log: called on rank 0 with every metrics row as it is logged (e.g. a live plot in a notebook).
    Returns:
        a summary: step reached, total steps, the last checkpoint path, the last logged metrics.
    """
    t_start = time.time()
    d = distributed.setup()
    run_dir = Path(run_dir)
    mirror_dirs = [Path(cfg.mirror_dir) / "checkpoints"] if cfg.mirror_dir else []
    state, state_path = checkpoint.load_latest(run_dir / "checkpoints", *mirror_dirs)
    if state is not None:
        cfg = _resume_config(cfg, state, allow_config_change)
    source = source if source is not None else open_source(cfg.dataset, "train", cfg.img_size, cfg.data_dir)
    steps_per_epoch = len(source) // cfg.batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"dataset has {len(source)} images, fewer than one batch of batch_size={cfg.batch_size}")
    total = cfg.epochs * steps_per_epoch
    stop = total if max_steps is None else min(max_steps, total)

    model = CIJEPA(cfg)
    trainable, frozen = parameter_counts(model)
    per_device = cfg.batch_size // d.world
    micro = choose_micro_batch(cfg, per_device, d.device, trainable=trainable, frozen=frozen)
    model.to(d.device)
    if cfg.compile:
        compile_parts(model)
    optimizer = make_optimizer(cfg, model)
    start, wall_before = 0, 0.0
    if state is not None:
        model.student.load_state_dict(state["student"])
        model.teacher.load_state_dict(state["teacher"])
        model.predictors.load_state_dict(state["predictors"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        start, wall_before = int(state["step"]), float(state["meta"].get("wall_time_s", 0.0))
        _restore_metrics(run_dir, state_path, cfg)
    del state
    if d.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
    summary = {"run_dir": str(run_dir), "start_step": start, "step": start, "total_steps": total,
               "steps_per_epoch": steps_per_epoch, "micro_batch": micro, "checkpoint": state_path and str(state_path)}
    if start >= stop:
        return summary

    loop = _Loop(cfg, d, model, optimizer, run_dir, total, steps_per_epoch, micro, wall_before, t_start)
    loader = _loader(cfg, source, d, start, stop)
    return loop.run(loader, start, stop, time_budget_s, progress, summary, on_log)


def _restore_metrics(run_dir: Path, state_path: Path, cfg: Config) -> None:
    """After resuming from the mirror (local disk lost), bring its metrics.jsonl back too."""
    local = run_dir / "metrics.jsonl"
    if cfg.mirror_dir and state_path.is_relative_to(Path(cfg.mirror_dir)) and not local.exists():
        mirrored = Path(cfg.mirror_dir) / "metrics.jsonl"
        if mirrored.exists():
            run_dir.mkdir(parents=True, exist_ok=True)
            local.write_bytes(mirrored.read_bytes())


def _loader(cfg: Config, source, d: distributed.Dist, start: int, stop: int) -> DataLoader:
    batches = StepBatches(len(source), cfg.batch_size, cfg.seed, start, stop, d.rank, d.world)
    workers = cfg.num_workers
    return DataLoader(Augmented(source, pretrain_transform(cfg.img_size, cfg.crop_scale)), batch_sampler=batches,
                      num_workers=workers, pin_memory=d.device.type == "cuda", persistent_workers=workers > 0,
                      prefetch_factor=4 if workers > 0 else None)


def _to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor on `device` without a host sync: a blocking copy to CUDA waits for the whole queue."""
    if device.type != "cuda":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


class _Loop:
    """The step loop and what it logs and saves."""

    def __init__(self, cfg, d, model, optimizer, run_dir, total, steps_per_epoch, micro, wall_before, t_start):
        self.cfg, self.d, self.model, self.optimizer = cfg, d, model, optimizer
        self.run_dir, self.total, self.steps_per_epoch, self.micro = run_dir, total, steps_per_epoch, micro
        self.wall_before, self.t_start = wall_before, t_start
        self.masks = MaskSampler(cfg)
        self.ddp = (DistributedDataParallel(model, device_ids=[d.device.index] if d.device.type == "cuda" else None,
                                            broadcast_buffers=False, find_unused_parameters=True)
                    if d.world > 1 else None)
        # Drive space is scarce (a ViT-B cI-JEPA checkpoint is ~4 GB): keep at most 2 there.
        self.mirror = (checkpoint.Mirror(cfg.mirror_dir, min(cfg.keep_checkpoints, 2))
                       if cfg.mirror_dir and d.main else None)
        # Read at log steps every cfg.knn_every_epochs, by rank 0; the others wait at the next collective.
        self.knn = KNNMonitor(cfg, d.device) if cfg.knn_every_epochs and d.main else None

    def run(self, loader, start, stop, time_budget_s, progress, summary, on_log) -> dict:
        cfg, d = self.cfg, self.d
        log = MetricsLog(self.run_dir / "metrics.jsonl", start) if d.main else None
        acc = Interval.zeros(cfg.num_depths, d.device)
        bar = tqdm(total=stop, initial=start, desc=cfg.run_id, unit="step", disable=not (progress and d.main),
                   dynamic_ncols=True)
        last_ckpt = t_mark = time.time()
        done, mark_step, row = start, start, {}
        try:
            for step, (images, _) in enumerate(loader, start=start):
                teacher_feats = self.step(step, images, acc)
                bar.update(1)
                done = step + 1
                if done % cfg.log_every and done != stop:
                    continue
                now = time.time()
                row = self._log_row(done, acc, teacher_feats, (done - mark_step) * cfg.batch_size / (now - t_mark))
                if self.knn is not None and self.knn.due(mark_step, done, self.steps_per_epoch):
                    row["knn_top1"] = self.knn(self.model.teacher)
                    now = time.time()  # the kNN reading is not training time: images_per_s leaves it out
                t_mark, mark_step = now, done
                acc = Interval.zeros(cfg.num_depths, d.device, consecutive=acc.consecutive)
                if log is not None:
                    log.write(row)
                    if on_log is not None:
                        on_log(row)
                bar.set_postfix(loss=f"{row['loss']:.4f}", img_s=f"{row['images_per_s']:.0f}")
                save, out_of_time = distributed.broadcast_flags(
                    d, now - last_ckpt > cfg.ckpt_minutes * 60,
                    time_budget_s is not None and now - self.t_start > time_budget_s)
                if done == stop or save or out_of_time:
                    summary["checkpoint"] = self.save(done)
                    last_ckpt = time.time()
                if out_of_time:
                    break
        finally:
            bar.close()
            if self.mirror is not None:
                self.mirror.close()
        summary.update(step=done, stopped_early=done < stop, last=row)
        return summary

    def step(self, step: int, images: torch.Tensor, acc: Interval) -> torch.Tensor:
        """One optimizer step (all micro-batches); returns the last micro-batch's pooled teacher features."""
        cfg, d = self.cfg, self.d
        share = cfg.batch_size // d.world
        context, targets = self.masks(cfg.batch_size, rng.generator(cfg.seed, rng.MASKS, step))  # whole global batch
        rows = slice(d.rank * share, (d.rank + 1) * share)  # this rank's slice, cut to the global shortest [K]
        context, targets = _to_device(context[rows], d.device), _to_device(targets[rows], d.device)
        sources = sample_source_depths(cfg.num_depths, cfg.intermediate_rows, rng.generator(cfg.seed, rng.SOURCES, step))
        images = images.to(d.device, non_blocking=True)
        forward = self.ddp or self.model
        loss_sum = torch.zeros((), device=d.device)
        mse_sum = torch.zeros(len(sources), cfg.num_depths, device=d.device)
        chunks = range(0, share, self.micro)
        for i, lo in enumerate(chunks):
            part = slice(lo, lo + self.micro)
            frac = self.micro / share
            sync = self.ddp.no_sync() if self.ddp is not None and i < len(chunks) - 1 else nullcontext()
            with sync:
                with _autocast(cfg, d.device):
                    loss, stats = forward(images[part], context[part], targets[part], sources)
                (loss * frac).backward()
            loss_sum += loss.detach() * frac
            mse_sum += stats["mse"] * frac
        self._drop_unsampled_grads(sources)
        finite = torch.isfinite(loss_sum)
        if d.world > 1:  # every rank must take the same decision
            flag = finite.float()
            torch_dist.all_reduce(flag, op=torch_dist.ReduceOp.MIN)
            finite = flag.bool()
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(cfg, step, self.total)
        self.optimizer.found_inf = (~finite).float()  # fused AdamW skips the update on the device
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        momentum = torch.where(finite, ema_momentum(cfg, step, self.total), 1.0)  # 1 = teacher untouched
        ema_update(self.model.teacher, self.model.student, momentum)
        self._accumulate(acc, finite, loss_sum, mse_sum, sources)
        return stats["teacher"]

    def _drop_unsampled_grads(self, sources: list[int]) -> None:
        """Predictors not sampled this step get no update at all (grad None), as in one process."""
        sampled = {depth_key(self.model.depths[s]) for s in sources}
        for key, predictor in self.model.predictors.items():
            if key not in sampled:
                for p in predictor.parameters():
                    p.grad = None

    def _accumulate(self, acc: Interval, finite, loss_sum, mse_sum, sources) -> None:
        ok = finite.float()
        weighted = (weight_rows(self.model.weights, sources) * mse_sum).sum(1)  # (S,)
        acc.loss += torch.nan_to_num(loss_sum) * ok
        for i, s in enumerate(sources):  # integer indexing: no index tensor copied to the device (a sync)
            acc.rows[s].add_(torch.nan_to_num(weighted[i]) * ok)
            acc.row_count[s].add_(ok)
        acc.targets += torch.nan_to_num(mse_sum.mean(0)) * ok
        acc.finite += ok
        acc.skipped += 1 - ok
        acc.consecutive.mul_(1 - ok).add_(1 - ok)

    def _log_row(self, done: int, acc: Interval, teacher_feats: torch.Tensor, images_per_s: float) -> dict:
        cfg, d = self.cfg, self.d
        sums = torch.cat([acc.loss[None], acc.rows, acc.row_count, acc.targets, acc.finite[None], acc.skipped[None]])
        if d.world > 1:
            torch_dist.all_reduce(sums)
            sums /= d.world
        L = cfg.num_depths
        loss, rows, counts, tgts, finite, skipped = sums.split([1, L, L, L, 1, 1])
        finite_n = max(finite.item(), 1.0)
        names = [depth_key(b) for b in self.model.depths]
        if acc.consecutive.item() > cfg.max_skipped_steps:
            raise RuntimeError(f"{int(acc.consecutive.item())} consecutive steps up to step {done} had a non-finite "
                               f"loss (max_skipped_steps={cfg.max_skipped_steps}); weights are unchanged since. "
                               "Lower the learning rate or check the data.")
        if skipped.item() > 0:
            warnings.warn(f"non-finite loss in {int(skipped.item())} of the steps before {done}: updates skipped")
        return {
            "step": done, "epoch": done / self.steps_per_epoch, "loss": loss.item() / finite_n,
            "rows": {n: r / c for n, r, c in zip(names, rows.tolist(), counts.tolist()) if c > 0},
            "targets": dict(zip(names, (tgts / finite_n).tolist())),
            "lr": learning_rate(cfg, done - 1, self.total), "momentum": ema_momentum(cfg, done - 1, self.total),
            "images_per_s": images_per_s, "teacher_std": normalized_std(teacher_feats),
            "rankme": rankme(teacher_feats), "skipped": int(skipped.item()), "micro_batch": self.micro,
            "time_s": self.wall_before + time.time() - self.t_start,
        }

    def save(self, step: int) -> str:
        """Checkpoint on rank 0 (all ranks hold the same weights); never one with non-finite weights."""
        path = None
        if self.d.main:
            m = self.model
            state = {"step": step, "config": self.cfg.to_dict(), "student": m.student.state_dict(),
                     "teacher": m.teacher.state_dict(), "predictors": m.predictors.state_dict(),
                     "optimizer": self.optimizer.state_dict(), "rng": torch.get_rng_state(),
                     "meta": {**provenance(self.d.device), "epoch": step / self.steps_per_epoch,
                              "total_steps": self.total, "wall_time_s": self.wall_before + time.time() - self.t_start}}
            path = checkpoint.save(state, self.run_dir / "checkpoints", self.cfg.keep_checkpoints)
            if self.mirror is not None:
                self.mirror.submit(path, extra=[self.run_dir / "metrics.jsonl", self.run_dir / "config.json"])
        distributed.barrier(self.d)
        return str(path) if path else ""
