"""One step of a campaign (one Run all, or one `campaign` command): probe what waits, train what fits, redraw.

A session finishes probing runs that are pretrained but unprobed; resumes a partly trained run it can claim,
else claims the next queued one; trains it within its budget (`--steps`: optimizer steps in total this
session; `--time-budget-min`: wall time, less a reserve to checkpoint, mirror and probe); probes it when it
completes (probe "auto" at every depth: the write-up's recipe from ViT-B width, converged logistic regression
on `tiny`: evaluate.py); and with budget left moves on to the next. A run that stops on a non-finite loss or
a config refusal (RuntimeError / ValueError from train) is marked failed with its reason and skipped.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..engine import checkpoint as checkpoints
from ..engine import train
from ..engine.lock import LockBusy
from ..engine.train import RunYielded
from ..eval.results import comparable_row, load_results, load_writeup, write_result
from ..evaluate import evaluate_run
from ..files import save_figure
from ..plots import plot_table
from .claim import Claim, default_settle_s, session_id
from .figure import plot_campaign
from .hours import add_hours, this_gpu_peak
from .report import next_line, row_summary
from .spec import entries, entry_config, open_campaign, split_overrides
from .state import campaign_states, mark_failed, newest_step, results_dir, retry_failed, run_dir

FIGURES_DIR = "figures"
REFERENCES_FILE = "references.json"  # optional, in the campaign root: {"raw pixels": top-1, "random init ...": top-1}
PROBE_RESERVE = (0.1, 120.0, 2700.0)  # of a time budget: this fraction, clamped to [2 min, 45 min], is kept for
# the final checkpoint, the mirror's copy and the probe (the write-up's 10-epoch probe at every depth on ViT-B)


@dataclass
class Budget:
    """What is left of a session: optimizer steps and wall seconds (None = no limit)."""

    steps: int | None = None
    seconds: float | None = None
    t0: float = field(default_factory=time.time)
    steps_done: int = 0

    def steps_left(self) -> int | None:
        return None if self.steps is None else self.steps - self.steps_done

    def train_seconds(self) -> float | None:
        """Wall seconds the next training may take, keeping the probe reserve."""
        if self.seconds is None:
            return None
        frac, lo, hi = PROBE_RESERVE
        return self.seconds - (time.time() - self.t0) - min(max(frac * self.seconds, lo), hi)

    def spent(self) -> bool:
        return (self.steps_left() is not None and self.steps_left() <= 0) or \
               (self.train_seconds() is not None and self.train_seconds() <= 0)


def status(root: str | Path, session: dict | None = None, local: Path | None = None, peak: float | None = None,
           preflight=None, budget: Budget | None = None) -> dict:
    """{"runs": every entry's state with hours, "totals": hours spent / left, "rows": each row's top-1 over its seeds
    and the rank correlation with the write-up (report.row_summary), "next": what the next step does}."""
    spec = open_campaign(root, create=False)
    states = campaign_states(root, spec, session, local)
    configs = {e["id"]: entry_config(spec, e, session) for e in entries(spec)}
    totals = add_hours(states, configs, this_gpu_peak() if peak is None else peak, preflight)
    return {"runs": states, "totals": totals, "rows": row_summary(states),
            "next": next_line(states, budget and budget.train_seconds())}


def _pick(states: list[dict], passed: set[str], probe: bool) -> dict | None:
    """The entry to work on next: a pretrained one to probe, else a partly trained one, else a queued one."""
    free = [s for s in states if s["id"] not in passed and not s["claimed_by"]]
    for wanted in (("pretrained",) if probe else ()) + ("training", "queued"):
        for s in free:
            if s["state"] == wanted:
                return s
    return None


def run_session(root: str | Path, *, rows=None, seeds=None, base=None, overrides=(), steps: int | None = None,
                time_budget_s: float | None = None, probe: bool = True, local: str | Path | None = None,
                settle_s: float | None = None, retry: bool = False, preflight=None, progress: bool = True,
                say=print) -> dict:
    """One step of the campaign at `root` (created from rows/seeds/base/overrides if new); returns status().

    Args:
        local: train on this local folder, mirrored to root/runs (Colab: fast disk + Drive); None: in root/runs.
        settle_s: how long a claim waits for rivals' claims to arrive (default: 120 s on Drive, 2 s elsewhere).
        preflight: (config, seconds per step) measured by this session's preflight, for the hours.
        say: where the session's lines go.
    """
    root = Path(root).expanduser()
    defining, session = split_overrides(list(overrides))
    spec = open_campaign(root, rows, seeds, base, defining)
    if retry:
        say(f"retrying: {', '.join(retry_failed(root)) or 'no failed runs'}")
    budget, me, passed = Budget(steps, time_budget_s), session_id(), set()
    settle_s = default_settle_s(root) if settle_s is None else settle_s
    local = Path(local).expanduser() if local is not None else None
    by_id = {e["id"]: e for e in entries(spec)}
    while True:
        pick = _pick(campaign_states(root, spec, session, local), passed, probe)
        if pick is None or (pick["state"] != "pretrained" and budget.spent()):
            break
        passed.add(pick["id"])
        with Claim(root, pick["id"], me, settle_s) as claim:
            if not claim.acquire():
                say(f"{pick['id']}: claimed by another session, passing")
                continue
            cfg = entry_config(spec, by_id[pick["id"]], session)
            _work(root, pick, cfg, claim, budget, local, probe, progress, say)
    out = status(root, session, local, preflight=preflight, budget=budget)
    out["figures"] = [str(p) for p in save_campaign_figures(root, out)]
    say(out["next"])
    return out


def _work(root: Path, pick: dict, cfg, claim: Claim, budget: Budget, local, probe: bool, progress: bool, say) -> None:
    """Train (and probe) one claimed entry; a failure is recorded, a busy run directory passed over."""
    run = run_dir(root, pick["id"], local)
    if run.mirror is not None:
        cfg = replace(cfg, mirror_dir=str(run.mirror))
    if cfg.wandb:  # the campaign's runs are one W&B group, named after its folder (W&B's own variable; yours wins)
        os.environ.setdefault("WANDB_RUN_GROUP", Path(root).name)
    if not claim.still_ours():  # a rival's claim arrived late: yield before writing anything into the run
        say(f"{pick['id']}: an earlier claim arrived late, passing")
        return
    try:
        if pick["state"] != "pretrained":
            start = newest_step(run)
            left = budget.steps_left()
            summary = train(cfg, run.path, max_steps=None if left is None else start + left,
                            time_budget_s=budget.train_seconds(), progress=progress, fence=claim)
            budget.steps_done += summary["step"] - summary["start_step"]
            say(f"{pick['id']}: trained steps {summary['start_step']}-{summary['step']} of {summary['total_steps']}"
                f" ({summary['stopped']})")
            if summary["step"] < summary["total_steps"] or not probe:
                return
        path = probe_entry(root, pick["id"], run, progress)
        say(f"{pick['id']}: probed, wrote {path}")
    except RunYielded as e:  # a rival's earlier claim became visible while training: its run from now on
        claim.record_yield(newest_step(run))
        say(f"{pick['id']}: {e}; passing")
    except LockBusy as e:  # a run folder locked by a process outside the campaign's claims
        say(f"{pick['id']}: {e}; passing")
    except (RuntimeError, ValueError) as e:  # a non-finite stop, a config refusal, an unusable checkpoint
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        mark_failed(root, pick["id"], reason, newest_step(run))
        say(f"{pick['id']}: failed: {reason}")


def probe_entry(root: Path, entry: str, run, progress: bool = True) -> Path:
    """Probe an entry's final checkpoint at every depth ("auto": the write-up's recipe at ViT-B width, logreg on
    tiny), write its result JSON under root/results/<entry>/ and prune the run to its final checkpoint."""
    run.copy_back_newest()  # a new Colab session: the checkpoint is only on Drive
    record = evaluate_run(run.path, probe="auto", per_depth=True, progress=progress)
    path = write_result(record, results_dir(root, entry))
    for folder in run.checkpoint_dirs():  # only the final checkpoint stays (Drive: emptied first, for its trash)
        checkpoints.prune(folder, keep=1, truncate=run.mirror is not None and folder.is_relative_to(run.mirror))
    return path


def campaign_figures(root: Path, out: dict) -> dict:
    """{file name: Figure}: campaign.png (plot_campaign, with the levels of root/references.json where it exists)
    and table.png (the write-up's table beside the results that reproduce a row's recipe: none on `tiny`)."""
    records = [r for s in out["runs"] if (results_dir(root, s["id"]) / "runs").is_dir()
               for r in load_results(results_dir(root, s["id"]))]
    references = root / REFERENCES_FILE
    return {"campaign.png": plot_campaign(out["runs"], out["totals"],
                                          json.loads(references.read_text()) if references.is_file() else None),
            "table.png": plot_table([r for r in records if comparable_row(r)], load_writeup())}


def figure_path(root: str | Path, name: str) -> Path:
    """Where a campaign figure is kept: root/figures/<name>."""
    return Path(root) / FIGURES_DIR / name


def save_campaign_figures(root: Path, out: dict) -> list[Path]:
    """Write the campaign_figures into root/figures/."""
    paths = []
    for name, fig in campaign_figures(root, out).items():
        paths.append(figure_path(root, name))
        save_figure(fig, paths[-1], dpi=110)
    return paths


def gpu_preflight(say=print) -> tuple | None:
    """On a GPU: the quick preflight (a failing check stops the session in one line); returns (config, seconds
    per step) of its timed preset for the hours. None on a CPU (nothing to check; tests cover the CPU path)."""
    import torch

    from ..preflight import FAIL, preflight_config, run_preflight

    if not torch.cuda.is_available():
        return None
    rows = run_preflight(quick=True)
    failed = [f"{r['check']}: {r['text']}" for r in rows if r["status"] == FAIL]
    if failed:
        raise ValueError("preflight failed, nothing trained: " + " | ".join(failed) + " (--no-preflight skips it)")
    timed = next(r["record"] for r in rows if r["check"] == "throughput L200 vs preset")
    return preflight_config(None, torch.device("cuda"), True), timed["step_s"]["cijepa"]
