"""What the campaign notebook (06_campaign) needs: the session's arguments from its parameters cell."""
from __future__ import annotations

from pathlib import Path

from .. import colab

SMOKE_OVERRIDES = ("epochs=1", "batch_size=16", "base_batch=16", "log_every=2", "num_workers=0",
                   "knn_every_epochs=none")  # the tiny model, one short epoch: the same code paths in seconds
SMOKE_STEPS = 3  # optimizer steps per smoke Run all (every cell must finish within nbval's 60 s)


def session_args(smoke: bool, data_dir: Path, folder: str, rows: str, seeds: str, base: str,
                 hours: float) -> dict:
    """run_session's keyword arguments for one Run all: the campaign on Drive (storage()), training on local disk.

    Args:
        smoke: the notebooks' smoke mode: `tiny` with SMOKE_OVERRIDES on the smoke data, SMOKE_STEPS steps.
        data_dir: the prepared dataset (colab.prepare).
        folder: the campaign's folder name under the kit's Drive folder.
        rows, seeds: comma-separated, "" for the campaign's (new campaign: all rows in ORDER, seed 0).
        base: the preset each row goes on (ignored in smoke mode: tiny).
        hours: this session's time budget.
    """
    from ..engine.names import check_run_name
    from .spec import parse_list

    root = colab.storage() / check_run_name(folder, "CAMPAIGN folder")
    args = {"root": root, "local": colab.workdir() / "campaign-runs" / folder,
            "rows": parse_list(rows or None, "ROWS"), "seeds": parse_list(seeds or None, "SEEDS", int)}
    if smoke:
        return {**args, "base": "tiny", "overrides": [f"dataset={data_dir}", *SMOKE_OVERRIDES], "steps": SMOKE_STEPS}
    return {**args, "base": base, "overrides": [f"data_dir={data_dir}"], "time_budget_s": hours * 3600}
