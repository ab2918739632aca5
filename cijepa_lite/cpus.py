"""How many CPU threads torch uses: by default torch's own count (the usable cores), whatever the load, so the same
command gives the same weights on an idle and on a busy machine (CPU sums are split by thread: the count changes
the last bits). Asked for (`--threads fit`, `colab.status(threads="fit")`): the CPUs other work leaves free, so a
busy machine slows a run gracefully, at the price of weights that depend on the load at start.

With as many threads as cores, every parallel region waits for its slowest thread, the one sharing a core with
the other process: 40 tiny steps took 30 s alone and 61 s beside one busy process on 2 cores (issue 21); with one
thread fewer no thread shares a core. docs/bench/busy_cpu.py measures both choices, alone and beside a busy
process. The choice is made once, at the start of a command (cli.main) or of a notebook (colab.status), never
inside train(); checkpoints record it (meta torch_threads) and a resume keeps it (engine/resume.py).
"""
from __future__ import annotations

import os

import psutil
import torch


def usable_cpus() -> list[int]:
    """The CPUs this process may run on (its affinity where the OS says, else all)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def busy_cpus(cpus: list[int], interval: float = 0.5) -> float:
    """How many of `cpus` other work keeps busy, measured over `interval` seconds (e.g. 1.0 = one whole CPU)."""
    percent = psutil.cpu_percent(interval=interval, percpu=True)
    return sum(percent[c] for c in cpus if c < len(percent)) / 100


def threads_for(cpus: int, busy: float, default: int) -> int:
    """Torch threads for `cpus` usable CPUs of which `busy` are in use: the free ones, rounded, at least 1 and at
    most `default` (torch's own choice, kept on an idle machine).

    Args:
        cpus: CPUs this process may use.
        busy: CPUs' worth of load from other processes (0.0 = idle).
        default: torch's thread count before any choice.
    """
    free = int(cpus - busy + 0.5)
    return max(1, min(default, free))


def fit_threads(interval: float = 0.5) -> str | None:
    """Set torch's threads to the CPUs free now (threads_for); returns one line saying so when the machine is busy,
    None when nothing changed. OMP_NUM_THREADS set (by you, or torchrun) is left alone."""
    if os.environ.get("OMP_NUM_THREADS"):
        return None
    default, cpus = torch.get_num_threads(), usable_cpus()
    busy = busy_cpus(cpus, interval)
    threads = threads_for(len(cpus), busy, default)
    if threads >= default:
        return None
    torch.set_num_threads(threads)
    return (f"busy machine: other processes keep {busy:.1f} of {len(cpus)} CPUs busy; using {threads} torch "
            f"thread{'s' * (threads > 1)} instead of {default} (steps are slower than on an idle machine)")


def choose_threads(choice: str | None) -> str | None:
    """Set torch's CPU threads: None keeps torch's own count (load-independent bits), "fit" the CPUs free now
    (fit_threads; returns its one line when the machine is busy), "N" that many (1 to the usable CPUs, else
    ValueError in one line). OMP_NUM_THREADS set (by you, or torchrun) wins."""
    if choice == "fit":
        return fit_threads()
    cpus = len(usable_cpus())
    if choice is not None and not (str(choice).isdigit() and 1 <= int(choice) <= cpus):
        raise ValueError(f"--threads {choice!r}: give 'fit' or a whole number from 1 to {cpus} (the usable CPUs)")
    if choice is not None and not os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(int(choice))
    return None
