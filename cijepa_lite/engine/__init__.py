"""The engine: everything that runs a pretraining and keeps it safe.

train.py       `train(cfg, run_dir)`: run or resume a run; logging, kNN readings, checkpoint cadence, time budget
engine.py      `Engine`: model, optimizer, micro-batch and the optimizer step of one process; the pretraining loader
rundir.py      the run directory: layout, checkpoint schema, metrics log, the one resume policy
encoders.py    the encoders of a run's newest valid checkpoint (probe, inspect, export, demo)
names.py       a user's run name as a folder here and in the mirror (one safe path component)
checkpoint.py  checkpoint files: atomic writes, sha256 manifests, validated loading
mirror.py      the background copy of every checkpoint to a second place (Google Drive)
lock.py        one writer per run directory and mirror: a lock file, stale holders taken over
interrupt.py   Ctrl-C, the notebook's interrupt and SIGTERM: checkpoint, then a one-line RunInterrupted
optim.py       AdamW's parameter groups and the warmup + cosine learning rate
memory.py      activation memory and the micro-batch choice
fit.py         what this GPU runs: native bf16 or a warning, the micro-batch from a measured trial
dispatch.py    what a step dispatches: the dtype audit and the host-op count (meta device)
resume.py      where a run resumes: rank 0 chooses the checkpoint, the other ranks load it or refuse
distributed.py torch.distributed for torchrun: set-up, per-step agreement, a dead rank named (RunFailed)
tracking.py    TensorBoard event files always, W&B when cfg.wandb is set; one value per step across resumes
"""
from .distributed import RunFailed
from .engine import Engine
from .encoders import load_encoders
from .rundir import Checkpoint, RunDir, read_config, read_metrics, resolve_config
from .train import train

__all__ = ["Checkpoint", "Engine", "RunDir", "RunFailed", "load_encoders", "read_config", "read_metrics", "resolve_config", "train"]
