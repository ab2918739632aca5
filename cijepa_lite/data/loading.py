"""How many loader processes and how many batches in flight: sized to this machine's CPUs and shared memory;
loader workers that leave SIGINT and SIGTERM to their parent.

torchrun and cluster schedulers (SLURM) signal a worker's whole process group: loader workers that
died of that SIGTERM would take the run down with "DataLoader worker exited unexpectedly" before
the main process could write its checkpoint. Workers ignore both signals; the parent decides.

Workers hand batches to the main process through /dev/shm; a VM or container with a small /dev/shm
kills them with a bus error. So the prefetch depth is sized to the free space there, with a warning
that says what to do when even the shallowest queue does not fit comfortably.

A worker that dies anyway (the OOM killer's SIGKILL, a bus error) or hangs (no batch within the loader's timeout)
ends the batches with LoaderFailed, one line naming the cause and what to do, between two steps: torch's SIGCHLD
handler, which raises wherever the main thread is, is active only while the main thread waits for a batch, never
in the middle of an optimizer update.
"""
from __future__ import annotations

import os
import shutil
import signal
import threading
import warnings
from typing import Iterator

import torch

SHM = "/dev/shm"
MAX_PREFETCH = 4  # batches in flight per worker when memory allows (torch's default is 2)
SHM_SHARE = 0.5  # the loader may fill at most this share of /dev/shm's free space
WORKERS_PER_CPU = 2  # more loader processes than this per CPU only fill memory (issue 29: 100000 forked >1000)
TIMEOUT_ENV, TIMEOUT_S = "CIJEPA_LOADER_TIMEOUT_S", 300.0  # a worker with no batch this long hangs (< the ranks' 600 s)


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
        return check_workers(num_workers, "num_workers")
    return max(0, usable_cpus() // max(processes_per_node, 1) - 1)


def check_workers(workers: int, name: str) -> int:
    """`workers` if this machine can hold that many loader processes (at most WORKERS_PER_CPU per usable CPU),
    else ValueError in one line naming `name` and the bound."""
    bound = WORKERS_PER_CPU * usable_cpus()
    if not 0 <= workers <= bound:
        raise ValueError(f"{name}={workers}: at most {bound} loader processes on this machine ({usable_cpus()} usable "
                         f"CPUs x {WORKERS_PER_CPU}; each may hold ~0.5 GB); lower it, or leave it unset")
    return workers


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


def env_seconds(name: str, default: float) -> float:
    """Seconds from the environment variable `name`, or `default` when unset; ValueError in one line if not a number."""
    value = os.environ.get(name, "")
    try:
        return float(value) if value else default
    except ValueError:
        raise ValueError(f"{name}={value!r}: must be a number of seconds") from None


def loader_timeout_s() -> float:
    """Seconds a loader worker may take for one batch: $CIJEPA_LOADER_TIMEOUT_S or TIMEOUT_S."""
    return env_seconds(TIMEOUT_ENV, TIMEOUT_S)


class LoaderFailed(RuntimeError):
    """A loader worker died or hung; the message names the cause and what to do."""


def _why(it, error: str) -> str:
    """The cause of a loader failure and what to do, in one line (without the checkpoint, which the caller names)."""
    dead = [(w.pid, -w.exitcode) for w in getattr(it, "_workers", []) if (w.exitcode or 0) < 0]
    todo = "use fewer workers (num_workers=N) or none (num_workers=0)"
    if "timed out" in error:
        return (f"no batch from the loader workers in {loader_timeout_s():.0f} s: a worker hangs ({TIMEOUT_ENV} sets "
                f"the limit); {todo}")
    if not dead:
        return f"{error.strip().splitlines()[0]}; {todo}"
    pid, signum = dead[0]
    cause = f"a loader worker (pid {pid}) was killed by {signal.Signals(signum).name}"
    if signum == signal.SIGBUS:
        shm = shutil.disk_usage(SHM) if os.path.isdir(SHM) else None
        size = f" ({shm.free / 2**30:.2f} of {shm.total / 2**30:.2f} GiB free)" if shm else ""
        return (f"{cause}, a bus error: most often {SHM} too small for the batches in flight{size}; give the "
                f"machine more shared memory (docker run --shm-size=8g) or {todo}")
    if signum == signal.SIGKILL:
        cause += " (the out-of-memory killer, or someone)"
    return f"{cause}; {todo}"


def _worker_failed(error: Exception, workers: list) -> bool:
    """Whether `error` (raised while fetching a batch) comes from a dead or hung worker, not from the data."""
    text = str(error)
    if isinstance(error, RuntimeError) and any(s in text for s in ("timed out", "exited unexpected", "killed by")):
        return True
    if isinstance(error, (OSError, EOFError)):  # its socket closed: the worker is exiting (moments, not more)
        for w in workers:
            w.join(timeout=2.0)
    return any((w.exitcode or 0) < 0 for w in workers)


def guarded(loader) -> Iterator:
    """`loader`'s batches; a worker that died or hung raises LoaderFailed between two batches (module docstring)."""
    it = iter(loader)
    swap = threading.current_thread() is threading.main_thread() and hasattr(it, "_workers")
    torch_handler = signal.getsignal(signal.SIGCHLD) if swap else None
    try:
        while True:
            try:
                if swap:
                    signal.signal(signal.SIGCHLD, torch_handler)  # waiting for a batch: torch reports a death at once
                    torch._C._error_if_any_worker_fails()  # a worker that died during the last step
                batch = next(it)
            except StopIteration:
                return
            except Exception as e:  # e.g. ConnectionResetError: a batch in shared memory from a worker now dead
                if swap:
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # our kills below are not torch's errors
                workers = getattr(it, "_workers", [])
                if not _worker_failed(e, workers):
                    raise
                why = _why(it, str(e))
                for w in workers:  # a hung (or stopped) worker ignores SIGTERM: no leftovers
                    if w.is_alive():
                        w.kill()
                getattr(it, "_shutdown_workers", lambda: None)()  # forgets their pids (torch's SIGCHLD check)
                raise LoaderFailed(why) from None
            finally:
                if swap:
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # during the step: nothing raised mid-update
            yield batch
    finally:
        if swap:
            signal.signal(signal.SIGCHLD, torch_handler)
