"""`python -m cijepa_lite bench`: the I-JEPA baseline and a cI-JEPA preset, timed side by side.

Both variants run the engine's real optimizer step (`train._Loop.step`: masks, forward, backward,
fused AdamW, EMA) at the same model size and batch, on the same synthetic images and the same
(seed, step) masks. Steps are interleaved (baseline, preset, baseline, ...) so that a machine
shared with other jobs slows both alike, and each variant's median is reported.

On CPU the default model is ViT-S/16-sized (width 384, 6 heads, 12 blocks, so D keeps L = 11
depths; predictor width 192, 6 blocks) at 224 px with the recipe's masks, in fp32, batch 8: a few
minutes on 2 cores. On a GPU the default is the preset's own ViT-B/16 at batch 256.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import replace

import torch

from . import rng
from .config import Config, get_config, with_supervision
from .data import open_source
from .data.loading import auto_workers, check_workers
from .engine import Engine
from .engine.distributed import Dist
from .engine.memory import activation_bytes_per_sample, saved_bytes_per_sample
from .files import write_json
from .flops import step_flops
from .method import MaskSampler, compile_parts
from .timing import time_steps

# Dense bf16 tensor-core peaks (no sparsity), matched against the device name.
PEAK_FLOPS = {"A100": 312e12, "H100": 989e12, "H200": 989e12}


def cpu_sized(cfg: Config) -> Config:
    """`cfg` with a ViT-S/16-sized encoder and a half-width predictor, fp32 (CPU default)."""
    return replace(cfg, embed_dim=384, num_heads=6, pred_dim=192, pred_num_heads=6, precision="fp32")


def peak_flops(device: torch.device) -> float | None:
    """The device's dense bf16 peak in FLOP/s when known (A100 312, H100/H200 SXM 989 TFLOP/s)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_FLOPS.items() if k in name), None)


def mask_sizes(cfg: Config, steps: range) -> tuple[float, float, float]:
    """Mean context and target-block lengths the engine draws at these steps, and ms per draw."""
    sampler = MaskSampler(cfg)
    ctx, tgt = [], []
    t0 = time.perf_counter()
    for step in steps:
        c, t = sampler(cfg.batch_size, rng.generator(cfg.seed, rng.MASKS, step))
        ctx.append(c.shape[1])
        tgt.append(t.shape[2])
    ms = 1e3 * (time.perf_counter() - t0) / len(steps)
    return statistics.mean(ctx), statistics.mean(tgt), ms


def pipeline_rate(cfg: Config, source, batches: int, workers: int) -> float:
    """Images/s of the training input pipeline: the engine's own loader (`Engine.loader`) with `workers`."""
    engine = Engine(replace(cfg, num_workers=workers), Dist(rank=0, world=1, device=torch.device("cpu")), batches + 1)
    it = iter(engine.loader(source, 0, batches + 1))
    next(it)  # worker start-up is not throughput
    t0 = time.perf_counter()
    n = sum(images.shape[0] for images, _ in it)
    return n / (time.perf_counter() - t0)


def run_bench(preset: str = "R-A05-B08", *, size: str | None = None, batch: int | None = None, steps: int | None = None,
              warmup: int | None = None, dataset: str | None = None, workers: int | None = None, memory: bool = True,
              backend: str | None = None, overrides: dict | None = None) -> dict:
    """Time both variants and gather FLOPs, utilisation, memory, compiled graphs and the input pipeline's rate.

    Args:
        preset: the cI-JEPA run id; the baseline is L200's supervision at the same size.
        size: "cpu" (ViT-S-sized, fp32) or "preset" (the preset's own); default by device.
        batch, steps, warmup: images per step, timed steps, dropped steps; defaults by device.
        dataset: the source for the input-pipeline rate (default: the config's own, e.g. the prepared
            ImageNet-100 cache; the digits when it is not there); workers: default the config's num_workers.
        memory: also report ViT-B activation bytes per sample (analytic and measured).
        backend: torch.compile backend when compile=true (default inductor; "eager" traces alike, cheaply).
        overrides: Config fields applied to both variants (e.g. {"compile": True}).
    """
    if workers is not None:
        check_workers(workers, "--workers")  # before minutes of timing, not after
    d = Dist(rank=0, world=1, device=torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    on_cpu = d.device.type == "cpu"
    size = size or ("cpu" if on_cpu else "preset")
    cfg = get_config(preset, **(overrides or {}))
    cfg = cpu_sized(cfg) if size == "cpu" else cfg
    cfg = replace(cfg, batch_size=batch or (8 if on_cpu else 256), log_every=10**9)
    steps, warmup = steps or (5 if on_cpu else 20), warmup if warmup is not None else (2 if on_cpu else 5)
    cfgs = {"ijepa": with_supervision(cfg, "L200"), "cijepa": cfg}
    times = time_steps(cfgs, d, steps, warmup, backend)
    n_ctx, n_tgt, mask_ms = mask_sizes(cfg, range(warmup, warmup + steps))
    out = {"device": torch.cuda.get_device_name(d.device) if not on_cpu else "cpu",
           "threads": torch.get_num_threads(), "torch": torch.__version__, "preset": preset, "size": size,
           "batch": cfg.batch_size, "steps": steps, "warmup": warmup, "precision": cfg.precision,
           "compile": cfg.compile, "backend": (backend or "inductor") if cfg.compile else None,
           "n_ctx": n_ctx, "n_tgt": n_tgt, "mask_ms_per_step": mask_ms,
           "variants": {name: variant(c, times[name], n_ctx, n_tgt, peak_flops(d.device)) for name, c in cfgs.items()}}
    v = out["variants"]
    flop_ratio = v["cijepa"]["gflop_per_image"] / v["ijepa"]["gflop_per_image"]
    time_ratio = v["cijepa"]["step_s"] / v["ijepa"]["step_s"]
    pairwise = statistics.median(b / a for a, b in zip(times["ijepa"]["wall"], times["cijepa"]["wall"]))
    cpu_ratio = v["cijepa"]["step_cpu_s"] / v["ijepa"]["step_cpu_s"]
    out["ratios"] = {"step_time": time_ratio, "flops": flop_ratio, "time_over_flops": time_ratio / flop_ratio,
                     "step_time_pairwise_median": pairwise, "step_cpu_time": cpu_ratio,
                     "cpu_time_over_flops": cpu_ratio / flop_ratio,
                     "device_time": v["cijepa"]["device_s"] / v["ijepa"]["device_s"]}
    out["pipeline"] = pipeline(cfg, dataset, workers)
    if memory:
        out["memory_vit_b"] = vit_b_memory(preset, d.device)
    return out


def variant(c: Config, t: dict, n_ctx: float, n_tgt: float, peak: float | None) -> dict:
    """One variant's record: medians of wall, CPU, host-issue and device time, throughput, FLOPs, memory, graphs."""
    step_s = statistics.median(t["wall"])
    flops = step_flops(c, n_ctx, n_tgt)
    return {"run_id": c.run_id, "step_s": step_s, "step_s_all": t["wall"],
            "step_cpu_s": statistics.median(t["cpu"]), "step_cpu_s_all": t["cpu"],
            "host_s": statistics.median(t["host"]), "device_s": statistics.median(t["device"]),
            "device_s_all": t["device"], "images_per_s": c.batch_size / step_s,
            "gflop_per_image": flops["train"] / 1e9, "gflop_by_part": {k: v / 1e9 for k, v in flops.items() if k != "train"},
            "tflop_per_s": flops["train"] * c.batch_size / step_s / 1e12,
            "utilisation": flops["train"] * c.batch_size / step_s / peak if peak else None,
            "peak_memory_bytes": t["peak_bytes"], "graphs": t["graphs"], "graphs_while_timed": t["graphs_while_timed"]}


def pipeline(cfg: Config, dataset: str | None, workers: int | None) -> dict:
    """The input pipeline's images/s on `dataset` (default the config's, else the digits) with the config's workers."""
    workers = auto_workers(cfg.num_workers if workers is None else workers)
    name, note = dataset or cfg.dataset, None
    try:
        source = open_source(name, "train", cfg.img_size, cfg.data_dir)
    except (FileNotFoundError, ValueError) as e:
        if dataset is not None:  # asked for by name: its absence is an error
            raise
        name, note, source = "digits", f"{cfg.dataset} not available ({e})", open_source("digits", "train", cfg.img_size)
    rate = pipeline_rate(cfg, source, batches=max(4, 64 // cfg.batch_size), workers=workers)
    return {"dataset": name, "workers": workers, "images_per_s": rate, "note": note}


def vit_b_memory(preset: str, device: torch.device) -> dict:
    """Activation bytes per sample at ViT-B/16 for I-JEPA and the preset: the analytic model and a measurement."""
    out = {}
    for name, c in {"ijepa": get_config("L200"), "cijepa": get_config(preset)}.items():
        out[name] = {"analytic": activation_bytes_per_sample(c), "saved_tensors": saved_bytes_per_sample(c, device)}
    return out


def compile_counts(cfg: Config, steps: int, backend: str = "eager") -> dict:
    """Graphs torch.compile builds over `steps` engine steps of `cfg`, and at which step each was built.

    `backend` "eager" or "aot_eager" trace exactly as "inductor" does (Dynamo decides recompilations,
    the backend only turns graphs into code), so they count recompilations cheaply on a CPU.
    """
    from torch._dynamo.backends.registry import lookup_backend

    torch._dynamo.reset()
    d = Dist(rank=0, world=1, device=torch.device("cpu"))
    built: list[int] = []
    step_now = 0

    def counting(gm, example_inputs):
        built.append(step_now)
        return lookup_backend(backend)(gm, example_inputs)

    engine = Engine(replace(cfg, compile=False), d, total_steps=10_000)
    compile_parts(engine.model, backend=counting)
    images = torch.randn(cfg.batch_size, cfg.in_chans, cfg.img_size, cfg.img_size, generator=rng.generator(0))
    for step_now in range(steps):
        engine.step(step_now, images)
    first = [s for s in built if s == 0]
    return {"run_id": cfg.run_id, "steps": steps, "backend": backend, "graphs": len(built),
            "graphs_at_first_step": len(first), "recompilations": len(built) - len(first), "built_at_steps": built}


def report(r: dict) -> str:
    """The human-readable summary of a `run_bench` result."""
    lines = [f"device {r['device']} ({r['threads']} threads), torch {r['torch']}, size {r['size']}, batch {r['batch']}, "
             f"{r['precision']}, compile {r['compile']} ({r['backend']}), median of {r['steps']} steps after {r['warmup']}",
             f"masks: N_ctx {r['n_ctx']:.1f}, N_tgt {r['n_tgt']:.1f}, sampling {r['mask_ms_per_step']:.1f} ms/step"]
    for name, v in r["variants"].items():
        util = f", utilisation {100 * v['utilisation']:.1f}%" if v["utilisation"] is not None else ""
        mem = f", peak {v['peak_memory_bytes'] / 2**30:.2f} GiB" if v["peak_memory_bytes"] else ""
        graphs = f", {v['graphs']} graphs ({v['graphs_while_timed']} while timed)" if r["compile"] else ""
        lines.append(f"{name:7s} {v['run_id']:>22s}: {v['step_s']:.3f} s/step wall, {v['device_s']:.3f} device, "
                     f"{v['host_s']:.3f} host to issue (CPU {v['step_cpu_s']:.3f} s){graphs}, "
                     f"{v['images_per_s']:.1f} img/s, "
                     f"{v['gflop_per_image']:.2f} GFLOP/img, {v['tflop_per_s']:.3f} TFLOP/s{util}{mem}")
    q = r["ratios"]
    lines.append(f"cI-JEPA / I-JEPA: step time {q['step_time']:.3f}x (median of pairs {q['step_time_pairwise_median']:.3f}x, "
                 f"process CPU time {q['step_cpu_time']:.3f}x), FLOPs {q['flops']:.3f}x; time/FLOP ratio "
                 f"{q['time_over_flops']:.3f}, CPU-time/FLOP ratio {q['cpu_time_over_flops']:.3f} (target <= 1.1)")
    p = r["pipeline"]
    note = f" [{p['note']}]" if p["note"] else ""
    lines.append(f"input pipeline ({p['dataset']}, {p['workers']} workers): {p['images_per_s']:.0f} img/s{note}")
    for name, m in r.get("memory_vit_b", {}).items():
        lines.append(f"ViT-B {name} activations/sample: analytic {m['analytic'] / 2**20:.0f} MiB, "
                     f"measured saved tensors {m['saved_tensors'] / 2**20:.0f} MiB")
    return "\n".join(lines)


def _write(result: dict, json_path: str | None) -> None:
    if json_path:
        write_json(json_path, result)


def main(preset: str, json_path: str | None, **kwargs) -> dict:
    """Run, print the summary, and write the JSON result when asked."""
    result = run_bench(preset, **kwargs)
    print(report(result))
    _write(result, json_path)
    return result


def recompiles_main(preset: str, json_path: str | None, steps: int, backend: str, overrides: dict) -> dict:
    """Count compiled graphs over `steps` steps of the preset (its own size), print and write them."""
    result = compile_counts(get_config(preset, **overrides), steps, backend)
    print(f"{result['run_id']}: {result['graphs']} graphs over {steps} steps ({backend}); "
          f"{result['graphs_at_first_step']} at the first step, {result['recompilations']} recompilations after it")
    _write(result, json_path)
    return result


def ops_main(preset: str, json_path: str | None, micro: int, overrides: dict) -> dict:
    """Count the host ops (non-view ATen ops, meta device) of one optimizer step of the preset, print and write them."""
    from .engine.dispatch import step_op_count

    cfg = get_config(preset, **{"micro_batch_size": micro, **overrides})
    counts = step_op_count(cfg)
    result = {"run_id": cfg.run_id, "batch": cfg.batch_size, "micro_batch": micro, "ops": sum(counts.values()),
              "by_op": dict(counts.most_common())}
    print(f"{cfg.run_id}: {result['ops']} non-view ATen ops per optimizer step at {micro} x {cfg.batch_size // micro} "
          f"(meta device: no autocast casts, SDPA as its math decomposition)")
    _write(result, json_path)
    return result
