"""Honest hours: what each remaining run needs, measured where the kit has timed it, else projected (and said so).

Per entry, in this order of trust:
  measured    its own metrics.jsonl (median images/s of its logged intervals) -> seconds per step;
  preflight   this session's quick preflight on this GPU (the preset's step at its batch), scaled by FLOPs;
  estimated   another entry of the campaign that was measured, scaled by the analytic FLOPs ratio (flops.py);
  projected   analytic FLOPs over this GPU's dense bf16 peak at an assumed 40% utilisation (bench.PEAK_FLOPS);
  unknown     none of these (a CPU with nothing logged yet).
"""
from __future__ import annotations

from functools import lru_cache

import torch

from ..bench import PEAK_FLOPS, mask_sizes, peak_flops
from ..config import Config
from ..flops import step_flops

UTILISATION = 0.4  # assumed for projections; upstream I-JEPA reaches about 0.2 (docs/speed.md)


@lru_cache(maxsize=64)
def flops_per_step(cfg: Config) -> float:
    """Analytic training FLOPs of one optimizer step of `cfg` at its mean mask sizes (4 draws)."""
    n_ctx, n_tgt, _ = mask_sizes(cfg, range(4))
    return step_flops(cfg, n_ctx, n_tgt)["train"] * cfg.batch_size


def this_gpu_peak() -> float | None:
    """This machine's GPU's dense bf16 FLOP/s when it is a known kind, else None (a CPU, an unknown GPU)."""
    return peak_flops(torch.device("cuda")) if torch.cuda.is_available() else None


def projected_hours(cfg: Config, steps: int, gpu: str, utilisation: float = UTILISATION) -> float:
    """Hours for `steps` steps of `cfg` on a GPU kind of bench.PEAK_FLOPS (e.g. "H100") at `utilisation`."""
    return steps * flops_per_step(cfg) / (PEAK_FLOPS[gpu] * utilisation) / 3600


def add_hours(states: list[dict], configs: dict[str, Config], peak: float | None = None,
              preflight: tuple[Config, float] | None = None) -> dict:
    """Fill each state's "hours_left" and "hours_kind"; return the totals.

    Args:
        states: campaign_states() rows (changed in place).
        configs: each entry's config by id.
        peak: this GPU's dense bf16 FLOP/s (bench.peak_flops), None on a CPU or an unknown GPU.
        preflight: (config, seconds per step) the quick preflight measured in this session, if it ran.
    """
    measured = [(configs[s["id"]], s["step_s"]) for s in states if s["step_s"]]
    for s in states:
        cfg, left = configs[s["id"]], (s["total_steps"] or 0) - s["step"]
        s["hours_left"], s["hours_kind"] = _seconds_per_step(cfg, s, measured, peak, preflight)
        if s["state"] in ("probed", "pretrained", "failed"):
            s["hours_left"], s["hours_kind"] = 0.0, "done" if s["state"] != "failed" else "failed"
        elif s["hours_left"] is not None:
            s["hours_left"] = s["hours_left"] * left / 3600 if s["total_steps"] else None
    known = [s["hours_left"] for s in states if s["hours_left"] is not None]
    return {"hours_spent": sum(s["hours_spent"] for s in states), "hours_left": sum(known),
            "hours_left_unknown": sum(s["hours_left"] is None for s in states),
            "kinds": sorted({s["hours_kind"] for s in states if s["hours_left"]})}


def _seconds_per_step(cfg: Config, state: dict, measured: list, peak: float | None, preflight) -> tuple:
    """(seconds per step, how it was found) for one entry."""
    if state["step_s"]:
        return state["step_s"], "measured"
    if preflight is not None:
        ref_cfg, ref_s = preflight
        return ref_s * flops_per_step(cfg) / flops_per_step(ref_cfg), "preflight"
    if measured:
        ref_cfg, ref_s = measured[0]
        return ref_s * flops_per_step(cfg) / flops_per_step(ref_cfg), "estimated"
    if peak:
        return flops_per_step(cfg) / (peak * UTILISATION), "projected"
    return None, "unknown"


def fits(state: dict, budget_s: float | None) -> str:
    """Whether the entry's remaining hours fit the session's remaining budget, in words."""
    if budget_s is None or state.get("hours_left") is None:
        return ""
    if state["hours_left"] * 3600 <= budget_s:
        return "fits this session"
    return f"does not fit this session ({budget_s / 3600:.1f} h left): it trains part of it and resumes exactly"
