"""Collapse monitors and the metrics.jsonl log."""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F


def normalized_std(features: torch.Tensor) -> float:
    """Mean over channels of the batch std of l2-normalised features: ~1/sqrt(D) if healthy, 0 if collapsed.

    Args:
        features: (B, D).
    """
    return F.normalize(features.float(), dim=1).std(0).mean().item()


def rankme(features: torch.Tensor, eps: float = 1e-7) -> float:
    """RankMe (Garrido et al. 2023): exp of the entropy of the normalised singular values, in [1, min(B, D)].

    Args:
        features: (B, D).
    """
    s = torch.linalg.svdvals(features.float())
    p = s / (s.sum() + eps) + eps
    return torch.exp(-(p * p.log()).sum()).item()


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


def read_metrics(path: str | Path) -> list[dict]:
    """Rows of a metrics.jsonl (a torn last line is ignored)."""
    rows = []
    for line in Path(path).read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows
