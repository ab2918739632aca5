"""The metrics log: append-only JSON lines, cut back to the resumed step on resume (rundir.py names the file)."""
from __future__ import annotations

import json
from pathlib import Path


class MetricsLog:
    """Append-only JSON lines; on resume, rows past the checkpoint's step are dropped (they get redone)."""

    def __init__(self, path: str | Path, resume_step: int):
        self.path = Path(path)
        if self.path.exists():
            kept = [line for line in self.path.read_text().splitlines() if line.strip() and _step(line) <= resume_step]
            self.path.write_text("".join(line + "\n" for line in kept))

    def write(self, row: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")


def _step(line: str) -> int:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return 1 << 62  # a torn last line from a killed run: drop it
