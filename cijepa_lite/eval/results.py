"""Results as data: the write-up's table (SPEC 8) and one JSON per kit evaluation, side by side.

`results/writeup.csv` holds the write-up's 12 rows. Each kit evaluation writes
`results/runs/<name>.json`: the run's full config, where the number came from (step, epochs done,
device, git SHA, library versions, wall time) and which probe produced it. `results_table` puts
the kit's number beside the write-up's only when the run is that row's recipe (same preset config,
ImageNet-100, ViT-B; only `epochs` and `seed` may differ, and the epochs done are shown); every
other result (the tiny CPU demo, custom configs) is listed apart, so it can never pass for a
reproduction of the table.
"""
from __future__ import annotations

import csv
import json
import math
import re
import time
from collections.abc import Sequence
from pathlib import Path

from ..config import PRESETS, Config, config_changes, config_from_dict
from ..files import write_json
from ..provenance import provenance

RESULTS_DIR = Path("results")  # the repository's committed results (tracked: written only when asked to)
OWN_RESULTS_DIR = Path("runs") / "results"  # where probe writes by default: git-ignored, git status stays clean
DEFAULT_RESULTS_DIRS = (RESULTS_DIR, OWN_RESULTS_DIR)  # what table and export read by default
WRITEUP_CSV = Path(__file__).resolve().parent / "writeup.csv"  # package data: ships with pip installs
SCHEMA = 1
COMPARABLE_CHANGES = {"epochs", "seed"}  # fields a kit run may change and still fill a write-up row


def load_writeup(path: str | Path = WRITEUP_CSV) -> list[dict]:
    """The write-up's table: run_id, D, intermediate_rows, alpha, beta, epochs, top1 (%) per row."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        row["top1"], row["epochs"] = float(row["top1"]), int(row["epochs"])
    return rows


def make_result(cfg: Config, pretrain: dict, probe: dict, top1: float, per_depth: dict | None = None,
                readouts: list[dict] | None = None, **extra) -> dict:
    """One evaluation record.

    Args:
        cfg: the pretrained run's config.
        pretrain: what the checkpoint says about its pretraining (engine.rundir.Checkpoint.info()).
        probe: which probe produced `top1`: at least "name" and "encoder"; anything else is kept.
        top1: the headline val top-1 (%), final layer.
        per_depth: {"d<k>": top-1 %} from the same probe.
        readouts: further numbers (e.g. student, random-init baselines), each a dict with "label" and "top1".
        extra: further top-level entries (e.g. the demo's verdicts).
    """
    return {"schema": SCHEMA, "run_id": cfg.run_id, "dataset": cfg.dataset, "top1": top1,
            "per_depth": per_depth or {}, "probe": probe, "pretrain": pretrain, "readouts": readouts or [],
            "config": cfg.to_dict(), "provenance": provenance(), "written": time.strftime("%Y-%m-%dT%H:%M:%S"),
            **extra}


def result_name(record: dict) -> str:
    """A file stem from the run id, the step and the probe: e.g. 'R-A05-B08_step-00012345_linear-teacher'."""
    probe = record["probe"]
    stem = f"{record['run_id']}_step-{record['pretrain']['step']:08d}_{probe['name']}-{probe['encoder']}"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", stem)


def write_result(record: dict, results_dir: str | Path) -> Path:
    """Write `record` as results_dir/runs/<result_name>.json (replacing an older evaluation of the same thing)."""
    missing = [k for k in ("run_id", "top1", "probe", "pretrain", "config") if k not in record]
    if missing:
        raise ValueError(f"result record lacks {missing}")
    # an older evaluation is replaced whole or not at all
    return write_json(Path(results_dir) / "runs" / f"{result_name(record)}.json", record)


def load_results(results_dir: str | Path = RESULTS_DIR) -> list[dict]:
    """Every record under results_dir/runs/, oldest first; an unreadable file raises naming it."""
    records = []
    for path in sorted((Path(results_dir) / "runs").glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (ValueError, RecursionError) as e:
            raise ValueError(f"results file {path} is not valid JSON: {e}") from None
        problem = record_problem(record)
        if problem:
            raise ValueError(f"results file {path}: {problem} (rewrite it with probe, or remove it)")
        records.append({**record, "file": str(path)})
    return sorted(records, key=lambda r: r["written"])


def load_results_from(results_dirs: Sequence[str | Path] = DEFAULT_RESULTS_DIRS) -> list[dict]:
    """Every record under each of `results_dirs` that exists (a missing one holds nothing), oldest first."""
    records = [r for d in results_dirs if (Path(d) / "runs").is_dir() for r in load_results(d)]
    return sorted(records, key=lambda r: r["written"])


def _top1(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value <= 100.0  # not NaN


def record_problem(record: object) -> str | None:
    """None if a loaded result record has the fields and types the table and the model card read, else which not."""
    if not isinstance(record, dict):
        return f"holds a {type(record).__name__}, not a JSON object"
    if record.get("schema") != SCHEMA:
        return f"schema {record.get('schema')!r}, expected {SCHEMA}"
    kinds = {"run_id": str, "dataset": str, "written": str, "probe": dict, "pretrain": dict, "config": dict,
             "per_depth": dict, "readouts": list, "provenance": dict}
    wrong = [k for k, kind in kinds.items() if not isinstance(record.get(k), kind)]
    if wrong:
        return f"field {wrong[0]}={record.get(wrong[0])!r} is missing or not a {kinds[wrong[0]].__name__}"
    if not _top1(record.get("top1")):
        return f"field top1={record.get('top1')!r} is not a top-1 accuracy in [0, 100] (%)"
    bad = [k for k, v in record["per_depth"].items() if not _top1(v)]
    if bad:
        return f"field per_depth.{bad[0]}={record['per_depth'][bad[0]]!r} is not a top-1 accuracy in [0, 100] (%)"
    if not all(isinstance(record["probe"].get(k), str) for k in ("name", "encoder")):
        return f"field probe={record['probe']!r} lacks its name and encoder"
    pretrain, done = record["pretrain"], record["pretrain"].get("epochs_done")
    if type(pretrain.get("step")) is not int or type(pretrain.get("epochs_planned")) is not int or not (
            done is None or isinstance(done, (int, float)) and math.isfinite(done)):
        return f"field pretrain={pretrain!r} lacks a whole step and epochs_planned, or a finite epochs_done"
    try:
        config_from_dict(record["config"])
    except ValueError as e:
        return f"field config: {e}"
    return None


def comparable_row(record: dict) -> str | None:
    """The write-up row id a record reproduces (its preset's recipe, up to epochs and seed), else None."""
    preset = PRESETS.get(record["run_id"])
    if preset is None or record["run_id"] == "tiny":
        return None
    changed = set(config_changes(preset, config_from_dict(record["config"])))
    return record["run_id"] if changed <= COMPARABLE_CHANGES else None


def _epochs(record: dict) -> str:
    p = record["pretrain"]
    done = p.get("epochs_done")
    return f"{done:.4g}/{p['epochs_planned']}" if done is not None else f"?/{p['epochs_planned']}"


def _device(record: dict) -> str:
    """Where the model was pretrained (the probe's device is in the record's provenance)."""
    return record["pretrain"].get("device") or record["provenance"].get("device", "?")


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _render(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def results_table(records: list[dict] | None = None, writeup: list[dict] | None = None) -> str:
    """The write-up's 12 rows with the kit's measured top-1 beside (blank where not run), then other kit runs."""
    records = load_results() if records is None else records
    writeup = load_writeup() if writeup is None else writeup
    latest = {}
    for r in records:  # oldest first, so the newest evaluation of a row wins
        row_id = comparable_row(r)
        if row_id:
            latest[row_id] = r
    header = ["run id", "D", "rows", "alpha", "beta", "epochs", "write-up top-1", "kit top-1", "kit epochs done",
              "kit probe", "kit pretrained on"]
    rows = []
    for w in writeup:
        r = latest.get(w["run_id"])
        kit = [_fmt(r["top1"]), _epochs(r), f"{r['probe']['name']} ({r['probe']['encoder']})",
               _device(r)] if r else ["", "", "", ""]
        rows.append([w["run_id"], w["D"], w["intermediate_rows"], w["alpha"], w["beta"], w["epochs"],
                     _fmt(w["top1"])] + kit)
    text = "ImageNet-100, ViT-B/16, val top-1 (%): write-up vs this kit\n" + _render(header, rows)
    others = [r for r in records if not comparable_row(r)]
    if others:
        text += "\n\nOther kit runs: NOT comparable with the write-up (different model, data or recipe)\n"
        text += _render(["result", "run id", "dataset", "model", "epochs done", "top-1", "probe", "pretrained on"],
                        [[Path(r.get("file", "")).stem, r["run_id"], r["dataset"], _model(r["config"]), _epochs(r),
                          _fmt(r["top1"]), f"{r['probe']['name']} ({r['probe']['encoder']})",
                          _device(r)] for r in others])
    return text


def _model(config: dict) -> str:
    return f"ViT {config['depth']}x{config['embed_dim']}, {config['img_size']}px/{config['patch_size']}"
