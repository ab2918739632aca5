"""Timing engine steps the way a GPU needs: device-resident inputs, back-to-back steps, CUDA events.

Per variant: wall time per step (one sync after a block of steps), the host's time to issue each
step (where it exceeds the device time, the host is the bottleneck), the device time between CUDA
events (on CPU the device is the host: device time = host time), process CPU time, the graphs
torch.compile built (during warm-up, and while timed: recompilations) and, on CUDA, the peak memory
of that variant alone.
"""
from __future__ import annotations

import time
from dataclasses import replace

import torch

from . import rng
from .config import Config
from .engine import Engine
from .engine.distributed import Dist
from .method import compile_parts


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_engine(cfg: Config, d: Dist, backend: str | None = None) -> Engine:
    """The engine of `cfg`; with cfg.compile, compiled with `backend` (default: inductor, as training does)."""
    if not (cfg.compile and backend):
        return Engine(cfg, d, total_steps=10_000)
    engine = Engine(replace(cfg, compile=False), d, total_steps=10_000)
    compile_parts(engine.model, backend=backend)
    return engine


def _graphs() -> int:
    """Graphs Dynamo has built in this process so far."""
    return int(torch._dynamo.utils.counters["stats"]["unique_graphs"])


def _block(engine: Engine, images: torch.Tensor, first: int, n: int, device: torch.device) -> dict[str, list[float]]:
    """`n` back-to-back steps: wall (one sync at the end), host time to issue each step, device time per step."""
    _sync(device)
    cuda = device.type == "cuda"
    events = [torch.cuda.Event(enable_timing=True) for _ in range(n + 1)] if cuda else []
    t0, c0 = time.perf_counter(), time.process_time()
    host = []
    if cuda:
        events[0].record()
    for i in range(n):
        h0 = time.perf_counter()
        engine.step(first + i, images)
        host.append(time.perf_counter() - h0)
        if cuda:
            events[i + 1].record()
    _sync(device)
    wall, cpu = (time.perf_counter() - t0) / n, (time.process_time() - c0) / n
    device_s = [a.elapsed_time(b) / 1e3 for a, b in zip(events, events[1:])] if cuda else host  # CPU: device = host
    return {"wall": [wall] * n, "cpu": [cpu] * n, "host": host, "device": device_s}


def time_steps(cfgs: dict[str, Config], d: Dist, steps: int, warmup: int,
               backend: str | None = None) -> dict[str, dict[str, list[float] | float | None]]:
    """Per variant: wall, process-CPU, host-issue and device seconds per optimizer step; graphs; peak memory.

    Inputs live on the device before timing. On CUDA each variant runs alone (its engine built, timed
    in one block of back-to-back steps between CUDA events, its peak read, then freed), so its peak is
    its own. On CPU (no device queue) steps are interleaved one by one, so a machine shared with other
    jobs slows both alike, and the process's CPU time is the steadier measure.
    """
    first = next(iter(cfgs.values()))  # all variants share batch and image size
    images = torch.randn(first.batch_size, first.in_chans, first.img_size, first.img_size,
                         generator=rng.generator(0)).to(d.device)
    out = {name: {"wall": [], "cpu": [], "host": [], "device": [], "graphs": 0, "graphs_while_timed": 0,
                  "peak_bytes": None} for name in cfgs}
    groups = [[name] for name in cfgs] if d.device.type == "cuda" else [list(cfgs)]
    for group in groups:
        if d.device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(d.device)
        engines = {name: build_engine(cfgs[name], d, backend) for name in group}
        for step in range(warmup):
            for name, engine in engines.items():
                before = _graphs()
                engine.step(step, images)
                out[name]["graphs"] += _graphs() - before
        rounds, n = (1, steps) if d.device.type == "cuda" else (steps, 1)
        for r in range(rounds):
            for name, engine in engines.items():
                before = _graphs()
                for key, values in _block(engine, images, warmup + r * n, n, d.device).items():
                    out[name][key] += values
                out[name]["graphs_while_timed"] += _graphs() - before  # recompilations: should stay 0
        for name in group:
            if d.device.type == "cuda":
                out[name]["peak_bytes"] = float(torch.cuda.max_memory_allocated(d.device))
        del engines
    return out
