"""The encoders of a run's newest valid checkpoint: what probe, inspect, export and the demo read."""
from __future__ import annotations

from pathlib import Path

from torch import nn

from ..method import VisionTransformer
from .official import official_encoders
from .rundir import Checkpoint, RunDir


def load_encoders(run_dir: str | Path) -> tuple[dict[str, nn.Module], Checkpoint]:
    """The teacher and student of a run's newest valid checkpoint, and the checkpoint.

    `run_dir` may also be an official I-JEPA checkpoint file (official.from_ijepa reads it; step 0).
    """
    run_dir = Path(run_dir)
    if run_dir.is_file():
        return official_encoders(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {run_dir} does not exist")
    run = RunDir(run_dir)
    ckpt = run.latest()
    if ckpt is None:
        raise FileNotFoundError(f"no checkpoint in {run.checkpoint_dir}: pretrain first "
                                f"(python -m cijepa_lite pretrain --preset ... --out {run_dir})")
    encoders = {}
    for which, weights in (("teacher", ckpt.teacher), ("student", ckpt.student)):
        encoders[which] = VisionTransformer(ckpt.config)
        encoders[which].load_state_dict(weights)
    return encoders, ckpt
