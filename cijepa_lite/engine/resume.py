"""Where a run resumes: rank 0 alone chooses, every other rank follows or the run refuses in one line.

Rank 0 locks the run directory, picks the newest valid checkpoint (here or in the mirror; it hashes
and validates it), restores the mirror's logs and resolves the config; the other ranks load that same
file (by name and manifest sha256, memory-mapped) from their own --out or its mirror. One line on
stderr says where the run resumes from or that it starts fresh.
"""
from __future__ import annotations

import os
import sys
from contextlib import ExitStack

import torch

from ..config import Config
from . import checkpoint, distributed
from .distributed import Dist, RunFailed
from .rundir import Checkpoint, RunDir, resolve_config


def resume_point(cfg: Config, run: RunDir, d: Dist, held: ExitStack, allow_config_change: bool,
                 passed_over: frozenset = frozenset()) -> tuple[Config, Checkpoint | None]:
    """Rank 0 locks, chooses the checkpoint (not one of the writers `passed_over`), restores from the mirror and
    resolves the config; the others follow."""
    chosen = {}

    def decide():
        held.enter_context(run.lock())
        run.clean_temp()
        chosen["ckpt"] = ckpt = run.latest(passed_over)
        resolved = resolve_config(cfg, ckpt and ckpt.config, allow_config_change)
        if ckpt is not None:
            run.restore_from_mirror(resumed_from=ckpt.path)
        return resolved, ckpt and (ckpt.path.name, ckpt.step, checkpoint.manifest_sha256(ckpt.path))

    resolved, name = distributed.from_rank_zero(d, decide)
    if name is None:
        return resolved, None
    problem, ckpt = None, chosen.get("ckpt")
    if not d.main:
        try:
            ckpt = run.load_chosen(name[0], name[2])
        except (OSError, ValueError, RuntimeError) as e:  # a missing or different file; torch.load's errors
            problem = str(e)
    problems = distributed.gather_objects(d, problem)
    if any(problems):
        bad = "; ".join(f"rank {r}: {p}" for r, p in enumerate(problems) if p)
        raise RunFailed(f"rank 0 resumes from {name[0]} (step {name[1]}) but other ranks cannot load it ({bad}). "
                        "With --out on node-local disks every node needs rank 0's checkpoints: put --out on a "
                        "shared disk, or copy rank 0's checkpoints/ to every node", quiet=not d.main)
    return resolved, ckpt


def keep_threads(ckpt: Checkpoint | None, d: Dist) -> str:
    """On the CPU, resume with the torch thread count the checkpoint was written with; returns a note when it changed.

    CPU kernels split their sums by thread, so the count changes the last bits of every step: keeping it keeps a
    resumed run bitwise equal to the uninterrupted one, whatever cpus.fit_threads chose for this session's load.
    OMP_NUM_THREADS set by hand (or by torchrun) wins.
    """
    saved = ckpt and ckpt.meta.get("torch_threads")
    now = torch.get_num_threads()
    if d.device.type != "cpu" or not isinstance(saved, int) or saved < 1 or saved == now or os.environ.get(
            "OMP_NUM_THREADS"):
        return ""
    torch.set_num_threads(saved)
    return f"; {saved} CPU threads as before (not {now}), so the run stays bitwise reproducible"


def say_where(run: RunDir, ckpt: Checkpoint | None, d: Dist, note: str = "") -> None:
    """One line (rank 0, stderr): where the run resumes from, or that it starts fresh; `note` appended."""
    if ckpt is None:
        line = f"starting {run.path} fresh: no checkpoint there" + (f" or in {run.mirror}" if run.mirror else "")
    else:
        where = "the mirror" if run.mirror and ckpt.path.is_relative_to(run.mirror) else "local disk"
        before = ckpt.meta.get("world")
        line = f"resuming {run.path} at step {ckpt.step} from {ckpt.path} ({where})" + (
            f"; saved by {before} processes, now {d.world} (same global batch and data order)"
            if before and before != d.world else "")
    print(line + note, file=sys.stderr, flush=True)
