"""What a campaign is: its rows, seeds, base config and overrides, fixed in `campaign.json` when it is created.

A campaign's entries are (row, seed) pairs named `<row>-s<seed>` (engine/names.py checks every name). A row is
a table run id (`R-A05-B08`) or a custom supervision spelled as the picker names it
(`custom-D1-11-rows2-a0.30-b0.90`). Each entry's config is the base preset with the row's supervision
(as the demo puts L200's on `tiny`), the row's epochs scaled to the base's (L300 trains 1.5x as long),
the seed; the campaign's overrides go on the base first (so `epochs=2` gives L300 3), then the entry's own (a
Python-only hook, e.g. a test's failing run) and the session's runtime fields.
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import replace
from pathlib import Path

from ..config import PRESETS, RUNTIME_FIELDS, SUPERVISION, Config, parse_overrides
from ..engine.names import check_run_name
from ..files import write_json
from ..picker import supervision_config

SPEC_FILE = "campaign.json"
DEFAULT_BASE = "R-A05-B08"  # the write-up's ViT-B/16 recipe
# Most informative comparison first: the headline pair (best cI-JEPA row vs the I-JEPA baseline); L300, the
# compute-matched baseline (1.5x L200's epochs vs cI-JEPA's 1.62x FLOPs per image); uniform weights (does the
# weighting matter?); no intermediate rows (does deep supervision itself?); then the alpha/beta sweep; d0 included.
ORDER = ("R-A05-B08", "L200", "L300", "R-U", "R-A.-B08", "R-A05-B05", "R-A08-B08", "R-A05-B10", "R-B08", "R-B05",
         "R-A05-B08-12", "R-A.-B05")
_CUSTOM = re.compile(r"custom-D(\d+)-(\d+)-rows(\d+)-a(-unset|[0-9.]+)-b(-unset|[0-9.]+)")  # picker.run_name
_BASE_EPOCHS = 200  # the write-up's epochs for every row but L300
SUPERVISION_FIELDS = {k for sup in SUPERVISION.values() for k in sup} - {"epochs"}


def row_config(base: Config, row: str) -> Config:
    """`base` with the supervision of `row` (a table id or a custom name), run_id = row; ValueError if unknown."""
    if row in SUPERVISION:
        sup = {k: v for k, v in SUPERVISION[row].items() if k != "epochs"}
        epochs = max(1, round(base.epochs * PRESETS[row].epochs / _BASE_EPOCHS))
        return replace(base, run_id=row, epochs=epochs, **sup)
    match = _CUSTOM.fullmatch(row)
    if match is None:
        raise ValueError(f"unknown row {row!r}: use a table run id ({', '.join(ORDER)}) or a custom supervision "
                         "named as the picker does, e.g. custom-D1-11-rows2-a0.30-b0.90")
    first, last, rows, a, b = match.groups()
    if int(last) != base.depth - 1:
        raise ValueError(f"row {row!r}: its last depth d{last} is not the base model's d{base.depth - 1}")
    collect_from = -1 if first == last else int(first)
    weight = lambda text: None if text == "-unset" else float(text)  # noqa: E731
    cfg = supervision_config(base, collect_from, int(rows), weight(a), weight(b))
    return replace(cfg, run_id=row)


def parse_list(text: str | None, what: str, kind=str) -> list | None:
    """`--rows` / `--seeds` as a list (None when not given); ValueError naming a bad item."""
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise ValueError(f"{what} is empty: give a comma-separated list")
    try:
        return [kind(t) for t in items]
    except ValueError:
        raise ValueError(f"{what} {text!r}: expected comma-separated {kind.__name__} values") from None


def make_spec(rows: list[str] | None = None, seeds: list[int] | None = None, base: str | None = None,
              overrides: list[str] | dict | None = None, entry_overrides: dict | None = None) -> dict:
    """A campaign's definition, checked: every row known, every entry config valid, every name safe."""
    base = base or DEFAULT_BASE
    if base not in PRESETS:
        raise ValueError(f"--base {base!r}: unknown preset; use one of {', '.join(PRESETS)}")
    spec = {"rows": list(rows or ORDER), "seeds": list(seeds if seeds is not None else [0]), "base": base,
            "overrides": overrides if isinstance(overrides, dict) else dict(_raw_pairs(overrides or [])),
            "entry_overrides": entry_overrides or {}}
    supervision = sorted(set(spec["overrides"]) & (SUPERVISION_FIELDS | {"seed", "run_id"}))
    if supervision:
        raise ValueError(f"overrides {supervision}: each row sets its own supervision (list custom rows in --rows, "
                         "e.g. custom-D1-11-rows2-a0.30-b0.90) and --seeds set the seeds")
    for key, values in (("rows", spec["rows"]), ("seeds", spec["seeds"])):
        if len(set(values)) != len(values):
            raise ValueError(f"--{key} lists an item twice: {values}")
    if any(not isinstance(s, int) or s < 0 for s in spec["seeds"]):
        raise ValueError(f"--seeds {spec['seeds']}: seeds are integers >= 0")
    for entry in entries(spec):
        entry_config(spec, entry)  # a bad row, key or value fails now, in one line
    return spec


def _raw_pairs(items: list[str]) -> list[tuple[str, str]]:
    parse_overrides(items)  # validates keys and values
    return [(k.strip(), v.strip()) for k, _, v in (i.partition("=") for i in items)]


def split_overrides(items: list[str]) -> tuple[list[str], dict]:
    """(the overrides that define the campaign, {runtime field: value} for this session only).

    Runtime fields (paths, workers, logging, checkpoint cadence: config.RUNTIME_FIELDS) never change the maths,
    so each session may set its own (e.g. data_dir on a new Colab machine); every other key defines the campaign.
    """
    pairs = _raw_pairs(items)
    return [f"{k}={v}" for k, v in pairs if k not in RUNTIME_FIELDS], {k: v for k, v in pairs if k in RUNTIME_FIELDS}


def entries(spec: dict) -> list[dict]:
    """The campaign's entries in queue order: every row at the first seed, then every row at the next."""
    out = []
    for seed in spec["seeds"]:
        for row in spec["rows"]:
            out.append({"id": check_run_name(f"{row}-s{seed}", "campaign entry"), "row": row, "seed": seed})
    return out


def entry_config(spec: dict, entry: dict, session: dict | None = None) -> Config:
    """The config an entry trains: base + row supervision + seed + overrides (the campaign's, the entry's own,
    then this session's runtime fields)."""
    as_config = lambda values: parse_overrides([f"{k}={v}" for k, v in values.items()])  # noqa: E731
    base = replace(PRESETS[spec["base"]], **as_config(spec["overrides"]))  # epochs=N: the base's, L300 gets 1.5 N
    cfg = replace(row_config(base, entry["row"]), seed=entry["seed"])
    for values in (spec["entry_overrides"].get(entry["id"], {}), session or {}):
        cfg = replace(cfg, **as_config(values))
    return cfg


def open_campaign(root: str | Path, rows: list[str] | None = None, seeds: list[int] | None = None,
                  base: str | None = None, overrides: list[str] | None = None, create: bool = True,
                  entry_overrides: dict | None = None) -> dict:
    """The campaign at `root`: created from the arguments if new, else the stored one, which the arguments given
    must match (rerunning the same command is fine; other values are a one-line ValueError).

    Args:
        entry_overrides: {entry id: {key: value}} for single entries (Python only; e.g. a test's failing run).
    """
    root = Path(root).expanduser()
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"campaign root {root} is a file, not a folder: name a folder")
    path = root / SPEC_FILE
    if not path.exists():
        if not create:
            raise FileNotFoundError(f"no campaign at {root} (no {SPEC_FILE}): start one with "
                                    f"`python -m cijepa_lite campaign --root {root}`")
        spec = {**make_spec(rows, seeds, base, overrides, entry_overrides), "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
        write_json(path, spec)
        return spec
    try:
        spec = json.loads(path.read_text())
    except ValueError as e:
        raise ValueError(f"{path} is not valid JSON ({e}): restore it or start a new campaign root") from None
    asked = {"rows": rows, "seeds": seeds, "base": base,
             "overrides": dict(_raw_pairs(overrides)) if overrides else None}
    for key, value in asked.items():
        if value is not None and value != spec[key]:
            raise ValueError(f"campaign {root} was created with {key} {spec[key]}, not {value}: rerun without "
                             f"--{key} (or with the same values), or use another --root for another campaign")
    return spec
