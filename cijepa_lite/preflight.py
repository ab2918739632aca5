"""`python -m cijepa_lite preflight`: prove the GPU path in minutes, before a long run, as a PASS/FAIL table.

Each check returns (status, numbers, record). Status is PASS or FAIL; SKIP where a check does not
apply to this device (memory on CPU), INFO where a number is reported without a threshold (speed
on CPU, where the tiny model says nothing about a GPU). On CUDA the checks run the preset's own model
(ViT-B, R-A05-B08 by default); on CPU the `tiny` preset, in well under two minutes. The exit status is
non-zero when any check fails; `require` raises with the failing lines (for a notebook cell).
"""
from __future__ import annotations

import platform
import statistics
import sys
import tempfile
import time
from dataclasses import replace

import timm
import torch

from . import rng
from .config import Config, get_config, with_supervision
from .data import open_source
from .data.loading import auto_workers, shm_free_bytes, usable_cpus
from .engine import Engine, RunDir
from .engine.dispatch import audit_dtypes, step_op_count
from .engine.distributed import Dist
from .engine.fit import check_bf16
from .files import write_json
from .flops import step_flops
from .method import MaskSampler, sample_source_depths
from .timing import build_engine, time_steps

PASS, FAIL, SKIP, INFO = "PASS", "FAIL", "SKIP", "INFO"


def _images(cfg: Config, device: torch.device, step: int = 0) -> torch.Tensor:
    g = rng.generator(cfg.seed, 99, step)
    return torch.randn(cfg.batch_size, cfg.in_chans, cfg.img_size, cfg.img_size, generator=g).to(device)


def _cuda(d: Dist) -> bool:
    return d.device.type == "cuda"


def check_environment(cfg: Config, d: Dist, quick: bool):
    """Versions, GPU and compute capability, CPUs, /dev/shm, free memory; FAIL without native bf16."""
    shm = shm_free_bytes()
    rec = {"python": platform.python_version(), "torch": torch.__version__, "timm": timm.__version__,
           "cpus": usable_cpus(), "workers": auto_workers(cfg.num_workers), "shm_free_gib": shm and shm / 2**30}
    ok = True
    if _cuda(d):
        free, total = torch.cuda.mem_get_info(d.device)
        rec.update(gpu=torch.cuda.get_device_name(d.device), capability=torch.cuda.get_device_capability(d.device),
                   free_gib=free / 2**30, total_gib=total / 2**30)
        ok = check_bf16(cfg, d.device)
    shm_text = f"{rec['shm_free_gib']:.1f} GiB" if shm is not None else "none"
    text = (f"torch {rec['torch']}, {rec.get('gpu', 'cpu')} {rec.get('capability', '')}, {rec['cpus']} CPUs "
            f"({rec['workers']} workers), /dev/shm {shm_text}"
            + (f", {rec['free_gib']:.1f}/{rec['total_gib']:.1f} GiB free" if _cuda(d) else ""))
    return (PASS if ok else FAIL), text, rec


def check_dtypes(cfg: Config, d: Dist, quick: bool):
    """Every matmul and attention of a bf16 step gets bf16 inputs; targets' LayerNorm and the MSE stay fp32."""
    cfg = replace(cfg, precision="bf16")
    engine = Engine(cfg, d, total_steps=100)
    images = _images(cfg, d.device)
    audit = audit_dtypes(lambda: engine.step(0, images), cfg.embed_dim)
    bad = audit.offenders()
    text = f"{sum(audit.low.values())} matmul/attention calls bf16, {sum(audit.fp32.values())} fp32 ops"
    return (FAIL if bad else PASS), text + (f"; {bad[0]}" if bad else ""), {"offenders": bad}


def _median_s(run, repeats: int, device: torch.device) -> float:
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def check_predictors(cfg: Config, d: Dist, quick: bool):
    """The vmapped predictors equal the looped ones (forward), both timed."""
    engine = Engine(cfg, d, total_steps=100)
    model, images = engine.model, _images(cfg, d.device)
    g = rng.generator(cfg.seed, rng.MASKS, 0)
    context, targets = (t.to(d.device) for t in MaskSampler(cfg)(cfg.batch_size, g))
    sources = sample_source_depths(cfg.num_depths, cfg.intermediate_rows, g)
    with torch.autocast(d.device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16"), torch.no_grad():
        hidden = model.student(images, keep=context)
        results, times = {}, {}
        for batched in (True, False):
            model.batch_predictors = batched
            results[batched] = model.predict(hidden, context, targets, sources).float()
            repeats = 5 if _cuda(d) and not quick else 2
            times[batched] = _median_s(lambda: model.predict(hidden, context, targets, sources), repeats, d.device)
    err = (results[True] - results[False]).abs().max().item() / results[False].abs().max().item()
    tol = 2e-2 if cfg.precision == "bf16" else 1e-4
    text = f"S={len(sources)}: max rel diff {err:.1e} (tol {tol:.0e}); vmapped {1e3 * times[True]:.1f} ms, " \
           f"looped {1e3 * times[False]:.1f} ms"
    return (PASS if err <= tol else FAIL), text, {"rel_diff": err, "vmapped_s": times[True], "looped_s": times[False]}


def check_no_sync(cfg: Config, d: Dist, quick: bool):
    """CUDA: real-loader steps under set_sync_debug_mode("error"); CPU: a whole step runs on the meta device."""
    if not _cuda(d):
        ops = sum(step_op_count(cfg).values())  # a .item() or a data-dependent shape would raise on meta
        return PASS, f"a step runs on the meta device (no value is read back): {ops} host ops", {"ops": ops}
    engine = Engine(cfg, d, total_steps=1000)
    try:
        source = open_source(cfg.dataset, "train", cfg.img_size, cfg.data_dir)
    except (FileNotFoundError, ValueError):  # no prepared cache on this machine: the embedded digits at img_size
        source = open_source("digits", "train", cfg.img_size)
    steps = 3 if quick else 6
    batches = iter(engine.loader(source, 0, steps))
    engine.step(0, next(batches)[0])  # first step: lazy state (optimizer moments, caches)
    torch.cuda.synchronize(d.device)
    for step, (images, _) in enumerate(batches, start=1):
        torch.cuda.set_sync_debug_mode("error")  # around the step only: the loader's own waits are not the step's
        try:
            engine.step(step, images)
        except RuntimeError as e:
            return FAIL, f"host sync inside a step: {str(e).splitlines()[0]}", {"error": str(e)}
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return PASS, f"{steps - 1} real-loader steps without a host sync", {"steps": steps - 1}


def _state(engine: Engine) -> list[torch.Tensor]:
    """Every tensor an optimizer step may change: student, teacher, predictors, AdamW moments and steps."""
    opt = [t for s in engine.optimizer.state.values() for t in s.values() if isinstance(t, torch.Tensor)]
    return [t.detach().clone() for t in [*engine.model.parameters(), *engine.model.teacher.parameters(), *opt]]


def check_nonfinite_skip(cfg: Config, d: Dist, quick: bool):
    """A step on NaN images leaves every weight, teacher weight and optimizer state bitwise unchanged."""
    engine = Engine(cfg, d, total_steps=100)
    engine.step(0, _images(cfg, d.device))
    before = _state(engine)
    engine.step(1, torch.full_like(_images(cfg, d.device), float("nan")))
    changed = sum(not torch.equal(a, b) for a, b in zip(before, _state(engine)))
    skipped = engine.read_interval()["skipped"]
    ok = changed == 0 and skipped == 1
    return (PASS if ok else FAIL), f"{len(before)} tensors, {changed} changed, {skipped} step skipped", \
        {"tensors": len(before), "changed": changed}


def check_memory(cfg: Config, d: Dist, quick: bool):
    """CUDA: the peak of a step at the chosen micro-batch against the device's memory."""
    if not _cuda(d):
        return SKIP, "no device memory to measure on CPU", {}
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(d.device)
    engine = Engine(cfg, d, total_steps=100)
    images = _images(cfg, d.device)
    engine.step(0, images)
    engine.step(1, images)
    peak, total = torch.cuda.max_memory_allocated(d.device), torch.cuda.get_device_properties(d.device).total_memory
    text = f"micro-batch {engine.micro} x {cfg.batch_size // engine.micro}: peak {peak / 2**30:.1f} of " \
           f"{total / 2**30:.1f} GiB"
    return (PASS if peak < 0.95 * total else FAIL), text, {"micro": engine.micro, "peak": peak, "total": total}


def check_throughput(cfg: Config, d: Dist, quick: bool):
    """L200 and the preset timed back to back: images/s, utilisation, and the time/FLOP ratio (<= 1.25 on CUDA)."""
    cfgs = {"ijepa": with_supervision(cfg, "L200"), "cijepa": cfg}
    times = time_steps(cfgs, d, steps=2 if quick else 5, warmup=1 if quick else 2)
    g = rng.generator(cfg.seed, rng.MASKS, 0)
    context, targets = MaskSampler(cfg)(cfg.batch_size, g)
    flops = {n: step_flops(c, context.shape[1], targets.shape[2])["train"] for n, c in cfgs.items()}
    step = {n: statistics.median(t["device"]) for n, t in times.items()}
    ratio = (step["cijepa"] / step["ijepa"]) / (flops["cijepa"] / flops["ijepa"])
    rec = {"step_s": step, "images_per_s": {n: cfg.batch_size / s for n, s in step.items()}, "time_over_flops": ratio}
    text = f"L200 {rec['images_per_s']['ijepa']:.0f} img/s, {cfg.run_id} {rec['images_per_s']['cijepa']:.0f} img/s; " \
           f"time/FLOP ratio {ratio:.2f}"
    if _cuda(d):
        from .bench import peak_flops

        peak = peak_flops(d.device)
        if peak:
            rec["utilisation"] = flops["cijepa"] * cfg.batch_size / step["cijepa"] / peak
            text += f", utilisation {100 * rec['utilisation']:.0f}%"
        return (PASS if ratio <= 1.25 else FAIL), text, rec
    return INFO, text + " (CPU: no threshold)", rec


def check_compile(cfg: Config, d: Dist, quick: bool):
    """torch.compile: graphs built at step 0, none after (no recompilation), loss equal to eager at step 0."""
    backend = "inductor" if _cuda(d) else "eager"  # eager traces as inductor does, without a C++ build on CPU
    torch._dynamo.reset()
    graphs = torch._dynamo.utils.counters["stats"]
    losses, built = {}, []
    for compiled in (False, True):
        engine = build_engine(replace(cfg, compile=compiled), d, backend)
        for step in range(3 if compiled else 1):  # steps 1 and 2 draw other mask sizes: no graph may be added
            before = graphs["unique_graphs"]
            engine.step(step, _images(cfg, d.device, step))
            built.append(graphs["unique_graphs"] - before)
            if step == 0:
                losses[compiled] = engine.read_interval()["loss"]
    built = built[1:]  # the eager engine's step builds nothing
    err = abs(losses[True] - losses[False]) / abs(losses[False])
    tol = 2e-2 if cfg.precision == "bf16" and _cuda(d) else 1e-5
    ok = built[0] > 0 and sum(built[1:]) == 0 and err <= tol
    text = f"{backend}: {built[0]} graphs at step 0, {sum(built[1:])} after; loss rel diff to eager {err:.1e}"
    return (PASS if ok else FAIL), text, {"graphs": built, "loss_rel_diff": err}


def check_pipeline(cfg: Config, d: Dist, quick: bool, demand: float | None = None):
    """The input pipeline's images/s with the configured workers against what the step consumes."""
    from .bench import pipeline

    rec = pipeline(cfg, None, None)
    text = f"{rec['dataset']}, {rec['workers']} workers: {rec['images_per_s']:.0f} img/s"
    if demand is None:
        return INFO, text, rec
    rec["demand"] = demand
    return (PASS if rec["images_per_s"] >= demand else FAIL), text + f" vs the step's {demand:.0f} img/s", rec


def check_checkpoint(cfg: Config, d: Dist, quick: bool):
    """Save after a step, reload into a fresh engine: the next step is bitwise that of the engine that never stopped."""
    engine = Engine(cfg, d, total_steps=100)
    engine.step(0, _images(cfg, d.device, 0))
    with tempfile.TemporaryDirectory() as tmp:
        run = RunDir(tmp)
        run.save(0, cfg, engine.model, engine.optimizer, meta={})
        ckpt = run.latest()
        again = Engine(cfg, d, total_steps=100)
        again.load(ckpt.student, ckpt.teacher, ckpt.predictors, ckpt.optimizer)
    for e in (engine, again):
        e.step(1, _images(cfg, d.device, 1))
    differ = sum(not torch.equal(a, b) for a, b in zip(_state(engine), _state(again)))
    return (PASS if differ == 0 else FAIL), f"step 1 after reload: {differ} tensors differ", {"differ": differ}


CHECKS = {"environment": check_environment, "dtype audit": check_dtypes, "predictors vmapped = looped": check_predictors,
          "no host sync in a step": check_no_sync, "non-finite step skipped": check_nonfinite_skip,
          "memory at the micro-batch": check_memory, "throughput L200 vs preset": check_throughput,
          "compile": check_compile, "input pipeline": check_pipeline, "checkpoint reload": check_checkpoint}


def preflight_config(preset: str | None, device: torch.device, quick: bool) -> Config:
    """The preset at its own size on CUDA (R-A05-B08 by default), `tiny` at batch 8 on CPU."""
    if device.type == "cuda":
        return get_config(preset or "R-A05-B08", batch_size=64 if quick else 256)
    return get_config(preset or "tiny", batch_size=8, num_workers=0)


def run_preflight(preset: str | None = None, quick: bool = False, out=None) -> list[dict]:
    """Every check in order, each line printed (to `out`, default stdout) as it finishes; returns their records."""
    out = out or sys.stdout
    d = Dist(rank=0, world=1, device=torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    cfg = preflight_config(preset, d.device, quick)
    rows, demand = [], None
    print(f"preflight {cfg.run_id} on {d.device} ({'quick' if quick else 'full'})", file=out, flush=True)
    for name, check in CHECKS.items():
        if quick and name == "compile":
            status, text, rec = SKIP, "skipped by --quick", {}
        else:
            t0 = time.perf_counter()
            kwargs = {"demand": demand} if check is check_pipeline else {}
            status, text, rec = check(cfg, d, quick, **kwargs)
            rec["seconds"] = time.perf_counter() - t0
        if check is check_throughput:
            demand = rec["images_per_s"]["cijepa"]
        rows.append({"check": name, "status": status, "text": text, "record": rec})
        print(f"{status:4s}  {name:28s} {text}", file=out, flush=True)
    return rows


def require(preset: str | None = None, quick: bool = True) -> None:
    """Run the preflight; raise RuntimeError naming the failing lines if any check fails (for a notebook cell)."""
    failed = [f"{r['check']}: {r['text']}" for r in run_preflight(preset, quick) if r["status"] == FAIL]
    if failed:
        raise RuntimeError("preflight failed: " + " | ".join(failed))


def main(preset: str | None, json_path: str | None, quick: bool) -> int:
    """Print the table, write the JSON when asked; exit status 1 if any check failed."""
    rows = run_preflight(preset, quick)
    failed = [r for r in rows if r["status"] == FAIL]
    print(f"{len(rows) - len(failed)}/{len(rows)} checks without failure" + (f"; FAILED: {', '.join(r['check'] for r in failed)}"
                                                                             if failed else ""))
    if json_path:
        write_json(json_path, {"torch": torch.__version__, "quick": quick, "checks": rows})
    return 1 if failed else 0
