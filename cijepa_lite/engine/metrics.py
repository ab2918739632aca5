"""The metrics log: append-only JSON lines, cut back to the resumed step on resume (rundir.py names the file).

Every row is a JSON object with a whole, finite "step". A damaged row (a torn last line from a killed
run, a hand edit such as {"step": Infinity}) never makes a run unreadable or unresumable: readers skip
it with a warning naming the file and the line, and a resume drops it from the log. In a campaign every
row carries its session's fencing token ("writer"); a resume keeps only the rows of the resumed checkpoint's
lineage (two sessions that trained one run unknowingly: each step once, from the writer that trained it).
"""
from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

from ..files import write_atomic


def metrics_row(line: str) -> tuple[dict | None, str | None]:
    """(row, None) for a valid row, (None, None) for a blank line, (None, why) for a damaged one."""
    if not line.strip():
        return None, None
    try:
        row = json.loads(line)
    except (ValueError, RecursionError) as e:  # RecursionError: deeply nested JSON
        return None, f"not a JSON row ({e})"
    if not isinstance(row, dict):
        return None, f"holds a {type(row).__name__}, not a JSON object"
    step = row.get("step")
    if isinstance(step, bool) or not isinstance(step, (int, float)) or not math.isfinite(step) or step != int(step):
        return None, f"field step={step!r} is not a whole number"
    return row, None


def read_rows(path: Path) -> list[dict]:
    """The valid rows of the metrics log `path`; damaged ones are skipped with a warning naming path and line."""
    rows = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        row, why = metrics_row(line)
        if why:
            warnings.warn(f"{path} line {number}: {why}; row skipped", stacklevel=3)
        elif row is not None:
            rows.append(row)
    return rows


def writer_at(lineage: list, step: int) -> str | None:
    """The writer that logged `step` in a lineage of [writer, from_step] pairs (it logged steps after from_step)."""
    writer = None
    for who, start in lineage:
        if step > start:
            writer = who
    return writer


def extend_lineage(lineage: list | None, writer: str | None, start: int) -> list | None:
    """A resumed checkpoint's lineage continued by `writer` from step `start` (None: no fencing token anywhere)."""
    if writer is None and not lineage:
        return None
    before = lineage or ([[None, 0]] if start else [])
    return before if before and before[-1][0] == writer else before + [[writer, start]]


class MetricsLog:
    """Append-only JSON lines; on resume, rows past the checkpoint's step (and damaged rows) are dropped."""

    def __init__(self, path: str | Path, resume_step: int, lineage: list | None = None):
        """`lineage`: the resumed checkpoint's [[writer, from_step], ...] (meta "lineage"); with it, only the rows
        its writers logged are kept (each step's row from the writer that held the run then)."""
        self.path = Path(path)
        if self.path.exists():
            kept = [row for row in read_rows(self.path) if row["step"] <= resume_step
                    and (not lineage or row.get("writer") == writer_at(lineage, row["step"]))]
            text = "".join(json.dumps(row) + "\n" for row in kept).encode()
            write_atomic(self.path, lambda f: f.write(text))  # a kill mid-rewrite keeps the old log whole

    def write(self, row: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
