"""The engine of one process: model, optimizer, micro-batch and the optimizer step; the pretraining loader.

`Engine(cfg, dist, total_steps)` is what `train()` drives and what `bench` and the tests build.
In one process nothing inside a step waits for the device: a non-finite loss skips the update on
the device (fused AdamW's found_inf, EMA momentum 1), and the metrics are summed on the device
(`Interval`) until `read_interval` reads them back once per log step. With several processes each
step ends in one agreement (distributed.gather_flags: out of memory, non-finite loss, a signal per
rank), read on the host, before the gradients are averaged by hand: so an out-of-memory error on one
rank makes every rank halve and redo the step, and a signal to any rank stops all at the same step.
(DDP's reducer is not used: it starts its all-reduces inside backward, where a rank that ran out of
memory can no longer join them.)

Legend: L collected depths, S sampled source rows.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import warnings

import torch
import torch.distributed as torch_dist
from torch.utils.data import DataLoader

from .. import rng
from ..config import Config
from ..data import Augmented, StepBatches, normalize, pretrain_transform
from ..data.loading import auto_workers, ignore_stop_signals, loader_timeout_s, prefetch_factor
from ..method import CIJEPA, MaskSampler, compile_parts, depth_key, ema_momentum, ema_update, sample_source_depths
from ..method.objective import weight_rows
from .distributed import Dist, RunFailed, all_reduce_mean, gather_flags
from .fit import check_bf16, measured_micro_batch
from .memory import choose_micro_batch, parameter_counts, release_cached_memory, smaller_micro_batch
from .optim import learning_rate, make_optimizer, weight_decay


@dataclass
class Interval:
    """Device-side sums over the steps since the last log line (read back once per interval)."""

    loss: torch.Tensor  # () sum of finite step losses
    rows: torch.Tensor  # (L,) sum of weighted row losses per source depth
    row_count: torch.Tensor  # (L,) how often each depth was a source row
    targets: torch.Tensor  # (L,) sum over steps of the per-target-depth MSE (mean over rows)
    finite: torch.Tensor  # () finite steps
    skipped: torch.Tensor  # () non-finite steps

    @classmethod
    def zeros(cls, num_depths: int, device: torch.device) -> "Interval":
        z = lambda *s: torch.zeros(s, device=device)  # noqa: E731
        return cls(z(), z(num_depths), z(num_depths), z(num_depths), z(), z())


def autocast(cfg: Config, device: torch.device):
    """bf16 autocast on any device that has autocast when cfg.precision is "bf16"; nothing for "fp32".

    The meta device (host-op counts) has no autocast: there a bf16 config runs its ops in fp32.
    """
    if cfg.precision == "bf16" and torch.amp.is_autocast_available(device.type):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor on `device` without a host sync: a blocking copy to CUDA waits for the whole queue."""
    if device.type != "cuda":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


class Engine:
    """Student, teacher, predictors and fused AdamW of one process, for a schedule of `total_steps` steps."""

    def __init__(self, cfg: Config, dist: Dist, total_steps: int):
        self.cfg, self.dist, self.total_steps = cfg, dist, total_steps
        self.model = CIJEPA(cfg)
        trainable, frozen = parameter_counts(self.model)
        release_cached_memory(dist.device)  # a previous run in this kernel may still hold cached blocks
        self.micro = choose_micro_batch(cfg, cfg.batch_size // dist.world, dist.device, trainable=trainable,
                                        frozen=frozen)
        self.model.to(dist.device)
        check_bf16(cfg, dist.device)
        if dist.device.type == "cuda" and cfg.micro_batch_size is None:  # the analytic choice is the trial's size
            self.micro = self._agreed(measured_micro_batch(cfg, self.model, cfg.batch_size // dist.world, self.micro,
                                                           dist.device))
        if cfg.compile:
            compile_parts(self.model)
        self.optimizer = make_optimizer(cfg, self.model)
        self.masks = MaskSampler(cfg)
        self.halvings = 0  # micro-batch halvings after out-of-memory errors
        self.oom_events: list[dict] = []  # {"step", "ranks", "micro"}: which ranks ran out, and the micro-batch after
        self.stop_signal = 0  # the signal any rank received, agreed at the last step (0: none)
        self.interval = Interval.zeros(cfg.num_depths, dist.device)
        self.consecutive_skips = torch.zeros((), device=dist.device)  # non-finite steps in a row, across intervals

    def _agreed(self, micro: int) -> int:
        """The smallest micro-batch over ranks: every rank must run as many micro-batches (DDP's no_sync)."""
        if self.dist.world == 1:
            return micro
        t = torch.tensor(float(micro), device=self.dist.device)
        torch_dist.all_reduce(t, op=torch_dist.ReduceOp.MIN)
        return int(t.item())

    def load(self, student: dict, teacher: dict, predictors: dict, optimizer: dict) -> None:
        """Restore the weights and the optimizer's state (e.g. from a rundir.Checkpoint)."""
        self.model.student.load_state_dict(student)
        self.model.teacher.load_state_dict(teacher)
        self.model.predictors.load_state_dict(predictors)
        self.optimizer.load_state_dict(optimizer)

    def loader(self, source, start: int, stop: int) -> DataLoader:
        """This rank's share of steps start..stop-1 of `source` under the pretraining augmentation (uint8 batches)."""
        cfg, d = self.cfg, self.dist
        batches = StepBatches(len(source), cfg.batch_size, cfg.seed, start, stop, d.rank, d.world)
        workers = auto_workers(cfg.num_workers, d.local_world)  # None: resolved here, never written back
        batch_bytes = cfg.batch_size // d.world * cfg.in_chans * cfg.img_size ** 2  # uint8 images
        return DataLoader(Augmented(source, pretrain_transform(cfg.img_size, cfg.crop_scale)), batch_sampler=batches,
                          num_workers=workers, pin_memory=d.device.type == "cuda", persistent_workers=workers > 0,
                          prefetch_factor=prefetch_factor(batch_bytes, workers), generator=torch.Generator().manual_seed(0),
                          worker_init_fn=ignore_stop_signals, timeout=loader_timeout_s() if workers else 0)

    def step(self, step: int, images: torch.Tensor, signum: int = 0) -> torch.Tensor:
        """One optimizer step (all micro-batches); returns this rank's pooled teacher features (B / world, D).

        After an out-of-memory error on any rank every rank halves the micro-batch and redoes the step.
        Args:
            images: the loader's uint8 batch (normalised on the device) or already normalised floats.
            signum: a signal this rank received (0: none); `stop_signal` is then the one the ranks agreed on.
        """
        cfg, d = self.cfg, self.dist
        share = cfg.batch_size // d.world
        context, targets = self.masks(cfg.batch_size, rng.generator(cfg.seed, rng.MASKS, step))  # whole global batch
        rows = slice(d.rank * share, (d.rank + 1) * share)  # this rank's slice, cut to the global shortest [K]
        context, targets = to_device(context[rows], d.device), to_device(targets[rows], d.device)
        sources = sample_source_depths(cfg.num_depths, cfg.intermediate_rows, rng.generator(cfg.seed, rng.SOURCES, step))
        images = images.to(d.device, non_blocking=True)
        if images.dtype == torch.uint8:  # loader batches: normalised here, on the device
            images = normalize(images)
        while True:
            passes = None
            try:
                passes = self._passes(images, context, targets, sources)
            except torch.OutOfMemoryError:
                pass  # handled outside the except block, so the traceback no longer holds the step's tensors
            finite, out_of_memory = self._agree(passes, signum)
            if not out_of_memory:
                break
            self._halve(step, out_of_memory)
        loss_sum, mse_sum, teacher = passes
        self._drop_unsampled_grads(sources)
        all_reduce_mean(d, [p.grad for p in self.model.parameters() if p.grad is not None])
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(cfg, step, self.total_steps)
        self.optimizer.param_groups[0]["weight_decay"] = weight_decay(cfg, step, self.total_steps)  # the decay group
        self.optimizer.found_inf = (~finite).float()  # fused AdamW skips the update on the device
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        momentum = torch.where(finite, ema_momentum(cfg, step, self.total_steps), 1.0)  # 1 = teacher untouched
        ema_update(self.model.teacher, self.model.student, momentum)
        self._accumulate(finite, loss_sum, mse_sum, sources)
        return teacher

    def _passes(self, images, context, targets, sources) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Forward and backward of every micro-batch of this rank's share (no collective); loss, (S, L) MSE, features."""
        cfg, share = self.cfg, self.cfg.batch_size // self.dist.world
        loss_sum = torch.zeros((), device=self.dist.device)
        mse_sum = torch.zeros(len(sources), cfg.num_depths, device=self.dist.device)  # (S, L)
        teacher = []
        for lo in range(0, share, self.micro):
            part, frac = slice(lo, lo + self.micro), self.micro / share
            with autocast(cfg, self.dist.device):
                loss, stats = self.model(images[part], context[part], targets[part], sources)
            (loss * frac).backward()
            loss_sum += loss.detach() * frac
            mse_sum += stats["mse"] * frac
            teacher.append(stats["teacher"].detach())
        return loss_sum, mse_sum, torch.cat(teacher)  # ..., (share, D)

    def _agree(self, passes, signum: int) -> tuple[torch.Tensor, list[int]]:
        """(every rank's loss finite, as a device bool; the ranks that ran out of memory); sets stop_signal.

        One process: nothing waits for the device. Several: one gather of each rank's flags, read on the host.
        """
        d = self.dist
        if d.world == 1:
            self.stop_signal = signum
            return (torch.isfinite(passes[0]) if passes else torch.ones((), dtype=torch.bool)), [] if passes else [0]
        nonfinite = (~torch.isfinite(passes[0])).float() if passes else torch.zeros((), device=d.device)
        mine = torch.stack([torch.tensor(float(passes is None), device=d.device), nonfinite,
                            torch.tensor(float(signum), device=d.device)])
        flags = gather_flags(d, mine)  # (world, 3) on the host
        self.stop_signal = int(flags[:, 2].max())
        finite = torch.tensor(bool(flags[:, 1].max() == 0), device=d.device)
        return finite, [r for r in range(d.world) if flags[r, 0] > 0]

    def _halve(self, step: int, ranks: list[int]) -> None:
        """Every rank halves the micro-batch after `ranks` ran out of memory; RunFailed at a micro-batch of 1."""
        before = self.micro
        where = f" on rank {', '.join(map(str, ranks))}" if self.dist.world > 1 else ""
        if not self.halve_micro_batch():
            raise RunFailed(f"out of memory at step {step}{where} even with a micro-batch of 1: "
                            f"{self.cfg.img_size}px images of this model do not fit on the device; use a GPU with "
                            "more memory or a smaller img_size")
        self.halvings += 1
        self.oom_events.append({"step": step, "ranks": ranks, "micro": self.micro})
        if self.dist.main:
            warnings.warn(f"out of memory at step {step} with micro-batch {before}{where}: redoing the step with "
                          f"{self.micro}" + (" on every rank" if self.dist.world > 1 else ""), stacklevel=3)

    def halve_micro_batch(self) -> bool:
        """After an out-of-memory error inside `step`: drop the partial gradients and cached blocks and halve
        the micro-batch (to a divisor of the per-device batch), so the step can be redone from the same state.
        False when the micro-batch is already 1."""
        self.optimizer.zero_grad(set_to_none=True)
        smaller = smaller_micro_batch(self.cfg.batch_size // self.dist.world, self.micro)
        release_cached_memory(self.dist.device)
        if smaller is None:
            return False
        self.micro = smaller
        return True

    def _drop_unsampled_grads(self, sources: list[int]) -> None:
        """Predictors not sampled this step get no update at all (grad None), as in one process."""
        sampled = {depth_key(self.model.depths[s]) for s in sources}
        for key, predictor in self.model.predictors.items():
            if key not in sampled:
                for p in predictor.parameters():
                    p.grad = None

    def _accumulate(self, finite: torch.Tensor, loss_sum: torch.Tensor, mse_sum: torch.Tensor,
                    sources: list[int]) -> None:
        acc, ok = self.interval, finite.float()
        weighted = (weight_rows(self.model.weights, sources) * mse_sum).sum(1)  # (S,)
        acc.loss += torch.nan_to_num(loss_sum) * ok
        for i, s in enumerate(sources):  # integer indexing: no index tensor copied to the device (a sync)
            acc.rows[s].add_(torch.nan_to_num(weighted[i]) * ok)
            acc.row_count[s].add_(ok)
        acc.targets += torch.nan_to_num(mse_sum.mean(0)) * ok
        acc.finite += ok
        acc.skipped += 1 - ok
        self.consecutive_skips.mul_(1 - ok).add_(1 - ok)

    def interval_state(self) -> dict:
        """The sums since the last log step as host lists, for a checkpoint written between log steps."""
        return {name: getattr(self.interval, name).tolist() for name in Interval.__dataclass_fields__}

    def restore_interval(self, state: dict | None) -> None:
        """Continue the sums of `interval_state` (a resumed run logs the same rows as an uninterrupted one)."""
        if state:
            self.interval = Interval(**{k: torch.tensor(v, device=self.dist.device) for k, v in state.items()})

    def read_interval(self) -> dict:
        """The interval's sums (averaged over ranks) as host numbers, and a fresh interval; one host sync."""
        cfg, d, acc = self.cfg, self.dist, self.interval
        sums = torch.cat([acc.loss[None], acc.rows, acc.row_count, acc.targets, acc.finite[None], acc.skipped[None]])
        if d.world > 1:
            torch_dist.all_reduce(sums)
            sums /= d.world
        L = cfg.num_depths
        loss, rows, counts, targets, finite, skipped = sums.split([1, L, L, L, 1, 1])
        finite_n = finite.item()
        names = [depth_key(b) for b in self.model.depths]
        self.interval = Interval.zeros(L, d.device)
        if finite_n == 0:  # every step of the interval was skipped: no loss to report (not 0.0)
            loss_mean, target_means = None, {}
        else:
            loss_mean, target_means = loss.item() / finite_n, dict(zip(names, (targets / finite_n).tolist()))
        return {"loss": loss_mean, "rows": {n: r / c for n, r, c in zip(names, rows.tolist(), counts.tolist()) if c > 0},
                "targets": target_means, "skipped": int(skipped.item()),
                "consecutive_skips": int(self.consecutive_skips.item())}
