"""How many loader processes and how many batches in flight: sized to this machine's CPUs and shared memory;
loader workers that leave SIGINT and SIGTERM to their parent.

torchrun and cluster schedulers (SLURM) signal a worker's whole process group: loader workers that
died of that SIGTERM would take the run down with "DataLoader worker exited unexpectedly" before
the main process could write its checkpoint. Workers ignore both signals; the parent decides.

Workers hand batches to the main process through /dev/shm; a VM or container with a small /dev/shm
kills them with a bus error. So the prefetch depth is sized to the free space there, with a warning
that says what to do when even the shallowest queue does not fit comfortably.
"""
from __future__ import annotations

import os
import shutil
import signal
import warnings

SHM = "/dev/shm"
MAX_PREFETCH = 4  # batches in flight per worker when memory allows (torch's default is 2)
SHM_SHARE = 0.5  # the loader may fill at most this share of /dev/shm's free space


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, which containers and schedulers narrow)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def ignore_stop_signals(worker_id: int) -> None:
    """A DataLoader worker_init_fn: SIGINT and SIGTERM are the parent's to act on (it stops the workers itself).

    Args:
        worker_id: the worker's index (unused).
    """
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, signal.SIG_IGN)


def auto_workers(num_workers: int | None, processes_per_node: int = 1) -> int:
    """`num_workers` as configured, or when None: this process's share of the node's CPUs minus one for itself.

    Args:
        processes_per_node: training processes sharing this node's CPUs (torchrun's LOCAL_WORLD_SIZE).
    """
    if num_workers is not None:
        return num_workers
    return max(0, usable_cpus() // max(processes_per_node, 1) - 1)


def shm_free_bytes(path: str = SHM) -> int | None:
    """Free bytes in shared memory, or None where there is no /dev/shm (macOS, Windows)."""
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def prefetch_factor(batch_bytes: int, workers: int, free: int | None = None) -> int | None:
    """Batches each worker keeps in flight: MAX_PREFETCH, fewer if they would fill /dev/shm; None without workers.

    Args:
        batch_bytes: bytes of one collated batch (uint8 images: B * 3 * H * W).
        free: free bytes of /dev/shm (default: measured now).
    """
    if workers == 0:
        return None
    free = shm_free_bytes() if free is None else free
    if free is None:
        return MAX_PREFETCH
    fits = int(SHM_SHARE * free // max(batch_bytes * workers, 1))
    if fits < 2:
        need = 2 * batch_bytes * workers / SHM_SHARE / 2**30
        warnings.warn(f"/dev/shm has {free / 2**30:.2f} GiB free, too little for {workers} loader workers with 2 batches "
                      f"of {batch_bytes / 2**20:.0f} MiB each in flight (~{need:.1f} GiB wanted): workers may die with a "
                      "bus error. Give the container more shared memory (docker run --shm-size=8g), or lower "
                      "num_workers or batch_size", stacklevel=2)
    return max(1, min(MAX_PREFETCH, fits))
