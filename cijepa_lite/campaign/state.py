"""Each entry's state, read from disk: its run folder's checkpoints and metrics, its result JSON, its claim.

    queued       nothing trained yet and nobody on it
    training     partly trained (a checkpoint short of the schedule's end), or claimed by a live session now
    pretrained   a checkpoint at the schedule's last step, not probed yet
    probed       a result JSON of that last step (its top-1 beside the write-up's)
    failed       failed/<entry>.json says why (a non-finite stop, a config refusal); skipped until retried

The only things stored besides what the engine writes are the campaign's definition (campaign.json) and
failures (failed/<entry>.json), each written atomically; everything else is derived here on every read.
"""
from __future__ import annotations

import json
import re
import statistics
import time
from functools import lru_cache
from pathlib import Path

from ..config import Config
from ..data import open_source
from ..engine import RunDir, read_metrics
from ..engine import checkpoint as checkpoints
from ..eval.results import load_results, load_writeup
from ..files import write_json
from .claim import live_claims, read_yield
from .spec import entries, entry_config

RUNS_DIR, RESULTS_DIR, FAILED_DIR = "runs", "results", "failed"
STATES = ("queued", "training", "pretrained", "probed", "failed")


def run_dir(root: Path, entry: str, local: Path | None = None) -> RunDir:
    """An entry's run folder: `local/<entry>` mirrored to `root/runs/<entry>` when training on a local disk
    (Colab), else `root/runs/<entry>` itself."""
    on_root = Path(root) / RUNS_DIR / entry
    return RunDir(Path(local) / entry, on_root) if local is not None else RunDir(on_root)


def results_dir(root: Path, entry: str) -> Path:
    """Where an entry's result JSON goes (results/<entry>/runs/*.json: `table --results` reads it)."""
    return Path(root) / RESULTS_DIR / entry


def failure_file(root: Path, entry: str) -> Path:
    return Path(root) / FAILED_DIR / f"{entry}.json"


def mark_failed(root: Path, entry: str, reason: str, step: int | None) -> None:
    """Record why an entry failed (it is skipped until `retry_failed`)."""
    write_json(failure_file(root, entry), {"entry": entry, "reason": reason, "step": step,
                                           "when": time.strftime("%Y-%m-%dT%H:%M:%S")})


def retry_failed(root: Path) -> list[str]:
    """Forget every recorded failure (the entries are queued again, resuming where they were); returns them."""
    folder = Path(root) / FAILED_DIR
    found = sorted(folder.glob("*.json")) if folder.is_dir() else []
    for path in found:
        path.unlink()
    return [p.stem for p in found]


def newest_step(run: RunDir) -> int:
    """The newest checkpoint's step here or in the mirror (its file name says it), 0 without one."""
    steps = [int(re.search(r"\d+", p.name).group()) for d in run.checkpoint_dirs() for p in checkpoints.candidates(d)]
    return max(steps, default=0)


def _metrics(run: RunDir) -> list[dict]:
    for place in [run.path] + ([run.mirror] if run.mirror else []):
        try:
            return read_metrics(place)
        except FileNotFoundError:
            continue
    return []


def steps_per_epoch(cfg: Config, rows: list[dict]) -> int | None:
    """From the run's own log (step / epoch), else from the dataset's size; None when the data is not there."""
    if rows and rows[-1].get("epoch"):
        return round(rows[-1]["step"] / rows[-1]["epoch"])
    try:
        return _train_images(cfg.dataset, cfg.img_size, cfg.data_dir) // cfg.batch_size
    except (FileNotFoundError, ValueError):
        return None


@lru_cache(maxsize=8)
def _train_images(dataset: str, img_size: int, data_dir: str | None) -> int:
    """Images in a dataset's train split (a missing dataset raises, and is looked for again next time)."""
    return len(open_source(dataset, "train", img_size, data_dir))


def _probed(root: Path, entry: str, total: int | None) -> dict | None:
    """The entry's result record of its last step (the newest evaluation), or None."""
    folder = results_dir(root, entry)
    if total is None or not (folder / "runs").is_dir():
        return None
    done = [r for r in load_results(folder) if r["pretrain"]["step"] >= total]
    return done[-1] if done else None


def entry_state(root: Path, spec: dict, entry: dict, session: dict | None = None, local: Path | None = None) -> dict:
    """One entry's row of the status: id, seed, row, state, step, total_steps, top1, reason, hours, claim."""
    cfg = entry_config(spec, entry, session)
    run = run_dir(root, entry["id"], local)
    rows = _metrics(run)
    per_epoch = steps_per_epoch(cfg, rows)
    total = per_epoch * cfg.epochs if per_epoch else None
    step = newest_step(run)
    record = _probed(root, entry["id"], total)
    claims = live_claims(root, entry["id"])
    failed = failure_file(root, entry["id"])
    reason = json.loads(failed.read_text())["reason"] if failed.exists() else None
    yielded = read_yield(root, entry["id"])
    if reason is not None:
        state = "failed"
    elif record is not None:
        state = "probed"
    elif total is not None and step >= total:
        state = "pretrained"
    else:
        state = "training" if step > 0 or claims else "queued"
    step_s = seconds_per_step(rows, cfg.batch_size)
    return {"id": entry["id"], "row": entry["row"], "seed": entry["seed"], "state": state, "step": step,
            "total_steps": total, "epochs": cfg.epochs, "top1": record["top1"] if record else None,
            "model": f"ViT {cfg.depth}x{cfg.embed_dim}, {cfg.img_size}px", "dataset": Path(cfg.dataset).name,
            "reason": reason or (yielded and f"session {yielded['session']} yielded at step {yielded['step']} to "
                                           f"{yielded['yielded_to']}, whose claim became visible late"),
            "claimed_by": claims[0]["session"] if claims else None,
            "hours_spent": hours_spent(rows, step_s), "step_s": step_s, "run_dir": str(run.path)}


def seconds_per_step(rows: list[dict], batch_size: int) -> float | None:
    """A run's measured seconds per step: the median over its logged intervals (the first, warming up, left out)."""
    ips = [r["images_per_s"] for r in rows[1:] if r.get("images_per_s")]
    return batch_size / statistics.median(ips) if ips else None


def hours_spent(rows: list[dict], step_s: float | None) -> float:
    """Training hours of a run: its steps x its measured step time, so a paused session or a suspended VM (wall
    time in the rows' time_s) is not counted; a run with one logged row has only its wall time."""
    if not rows:
        return 0.0
    return (rows[-1]["step"] * step_s if step_s else rows[-1]["time_s"]) / 3600


def campaign_states(root: str | Path, spec: dict, session: dict | None = None, local: Path | None = None) -> list[dict]:
    """Every entry's state in queue order, with the write-up's top-1 of its row (None for custom rows)."""
    writeup = {w["run_id"]: w["top1"] for w in load_writeup()}
    return [{**entry_state(Path(root), spec, e, session, local), "writeup_top1": writeup.get(e["row"])}
            for e in entries(spec)]
