"""What an engine step dispatches: the dtypes its matmuls and attention see, and how many host ops it issues.

Both read the ATen ops below autocast, autograd and vmap (a TorchDispatchMode), so they see what
the kernels get: a pre-hook on nn.Linear would see fp32 LayerNorm outputs that autocast casts a
moment later, and would miss the vmapped predictors' batched calls.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from unittest import mock

import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten
# Ops that run on tensor cores under bf16 autocast: every matmul of a Linear and every attention.
MATMULS = {aten.mm.default, aten.addmm.default, aten.bmm.default, aten.baddbmm.default, aten.matmul.default,
           aten.linear.default, aten.convolution.default}
ATTENTION_PREFIX = "_scaled_dot_product"


@dataclass
class DtypeAudit:
    """Input dtypes seen per op: `low` ops must see no fp32 tensor, `fp32` ops only fp32 ones."""

    low: Counter = field(default_factory=Counter)  # (op, dtypes) -> count, matmuls and attention
    fp32: Counter = field(default_factory=Counter)  # (op, dtypes) -> count, targets' layer norm and pow

    def offenders(self) -> list[str]:
        """One line per op that broke the rule: a matmul with an fp32 input, or an fp32 op in low precision."""
        bad = [f"{op} got {dt} ({n}x)" for (op, dt), n in self.low.items() if "torch.float32" in dt]
        bad += [f"{op} got {dt} ({n}x), expected fp32" for (op, dt), n in self.fp32.items()
                if any(d != "torch.float32" for d in dt)]
        return bad


def _dtypes(args) -> tuple[str, ...]:
    return tuple(str(a.dtype) for a in args if isinstance(a, torch.Tensor) and a.is_floating_point())


class _AuditMode(TorchDispatchMode):
    def __init__(self, audit: DtypeAudit, target_width: int):
        super().__init__()
        self.audit, self.width = audit, target_width

    def _is_target_norm(self, args) -> bool:
        # The targets' LayerNorm has no affine weights and the encoder's width; block norms have weights
        # (vmapped ones reach ATen without them, at the predictor's width).
        return args[2] is None and list(args[1]) == [self.width]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if func in MATMULS or name.startswith(ATTENTION_PREFIX):
            self.audit.low[(name, _dtypes(args[:3]))] += 1
        elif func is aten.pow.Tensor_Scalar or (func is aten.native_layer_norm.default and self._is_target_norm(args)):
            self.audit.fp32[(name, _dtypes(args[:1]))] += 1
        return func(*args, **(kwargs or {}))


def audit_dtypes(run, target_width: int) -> DtypeAudit:
    """The input dtypes of every matmul, attention, target LayerNorm (at `target_width`) and square in `run()`."""
    audit = DtypeAudit()
    with _AuditMode(audit, target_width):
        run()
    return audit


class _CountMode(TorchDispatchMode):
    def __init__(self, counts: Counter):
        super().__init__()
        self.counts = counts

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not func.is_view:
            self.counts[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))


def count_ops(run) -> Counter:
    """Non-view ATen ops dispatched while `run()` executes, by name: each is one host-side launch."""
    counts: Counter = Counter()
    with _CountMode(counts):
        run()
    return counts


def step_op_count(cfg, step: int = 0) -> Counter:
    """Non-view ATen ops of one optimizer step of `cfg` (all its micro-batches) on the meta device.

    No data, no kernels: the count is what the host dispatches and is the same on any machine.
    """
    from .distributed import Dist
    from .engine import Engine

    engine = Engine(cfg, Dist(rank=0, world=1, device=torch.device("meta")), total_steps=10_000)
    images = torch.empty(cfg.batch_size, cfg.in_chans, cfg.img_size, cfg.img_size, device="meta")
    # Fused AdamW has a meta kernel, but its device check lists only real devices.
    with mock.patch("torch.optim.adam._device_dtype_check_for_fused", lambda *a, **k: None):
        engine.step(step, images)  # the first step creates the optimizer state: not counted
        return count_ops(lambda: engine.step(step + 1, images))
