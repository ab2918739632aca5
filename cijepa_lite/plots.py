"""Figures worth looking at: write-up vs kit per run, top-1 vs depth, and a run's training curves.

Each function returns a matplotlib Figure (nothing is shown); `save_figures` writes them as PNGs.
Import-safe without a display: pyplot is only touched inside the functions.
"""
from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from .engine import read_metrics
from .eval.results import comparable_row, load_results, load_writeup


def plot_table(records: list[dict], writeup: list[dict]) -> Figure:
    """Bars per write-up run: the write-up's top-1 and the kit's (where a comparable run was probed)."""
    kit = {comparable_row(r): r for r in records if comparable_row(r)}
    ids = [w["run_id"] for w in writeup]
    fig = Figure(figsize=(max(6, 0.7 * len(ids)), 3.5), layout="constrained")
    ax = fig.subplots()
    x = range(len(ids))
    ax.bar([i - 0.2 for i in x], [w["top1"] for w in writeup], 0.4, label="write-up (200 ep., ImageNet-100)")
    done = [i for i, rid in enumerate(ids) if rid in kit]
    ax.bar([i + 0.2 for i in done], [kit[ids[i]]["top1"] for i in done], 0.4, label="this kit")
    for i in done:
        ax.annotate(f"{kit[ids[i]]['pretrain'].get('epochs_done') or 0:.0f} ep.", (i + 0.2, kit[ids[i]]["top1"]),
                    ha="center", va="bottom", fontsize=7)
    ax.set_xticks(list(x), ids, rotation=45, ha="right")
    ax.set_ylabel("val top-1 (%)")
    lows = [w["top1"] for w in writeup] + [kit[ids[i]]["top1"] for i in done]
    ax.set_ylim(max(0, min(lows) - 10), min(100, max(lows) + 5))
    ax.legend(fontsize=8)
    return fig


def plot_depths(record: dict) -> Figure:
    """Top-1 against the probed depth of one result (and of its readouts that have per-depth numbers)."""
    fig = Figure(figsize=(5, 3.5), layout="constrained")
    ax = fig.subplots()
    series = [(f"{record['probe']['name']} ({record['probe']['encoder']})", record["per_depth"])]
    series += [(r["label"], r["per_depth"]) for r in record.get("readouts", [])
               if r.get("per_depth") and r["per_depth"] != record["per_depth"]]  # the headline is drawn once
    for label, per_depth in series:
        if per_depth:
            depths = sorted(per_depth, key=lambda k: int(k[1:]))
            ax.plot([int(k[1:]) for k in depths], [per_depth[k] for k in depths], marker="o", label=label)
    ax.set_xlabel("block (d_k)")
    ax.set_ylabel("val top-1 (%)")
    ax.set_title(f"{record['run_id']}: accuracy vs depth", fontsize=10)
    ax.legend(fontsize=7)
    return fig


def random_reference(record: dict) -> dict[str, float]:
    """Mean over the record's random-init readouts (same probe, with per-depth numbers) per depth, or {}."""
    refs = [r["per_depth"] for r in record.get("readouts", []) if r.get("model", "").startswith("random-init")
            and r.get("probe") == record["probe"]["name"] and r.get("per_depth")]
    if not refs:
        return {}
    shared = [k for k in refs[0] if all(k in ref for ref in refs)]
    return {k: sum(ref[k] for ref in refs) / len(refs) for k in shared}


def plot_depth_overview(records: list[dict]) -> Figure:
    """Top-1 over depth, one line per result with per-depth numbers; dashed in the same colour: its random-init
    encoder (mean over seeds), where the record has random-init per-depth numbers (drawn once if runs share it)."""
    fig = Figure(figsize=(6.5, 4), layout="constrained")
    ax = fig.subplots()
    drawn = []
    for i, r in enumerate(r for r in records if len(r["per_depth"]) > 1):
        label = Path(r.get("file", r["run_id"])).stem
        reference = random_reference(r)
        if reference in drawn:
            reference = {}  # the same random-init encoder as an earlier run's: drawn once
        else:
            drawn.append(reference)
        for per_depth, style, suffix in ((r["per_depth"], "o-", ""), (reference, "--", ", random init")):
            depths = sorted(per_depth, key=lambda k: int(k[1:]))
            if depths:
                ax.plot([int(k[1:]) for k in depths], [per_depth[k] for k in depths], style, color=f"C{i % 10}",
                        label=label + suffix, markersize=4)
    ax.set_xlabel("block (d_k)")
    ax.set_ylabel("val top-1 (%)")
    ax.set_title("top-1 over depth, every run (dashed: random-init encoder)", fontsize=10)
    ax.legend(fontsize=6)
    return fig


def plot_curves(run_dir: str | Path) -> Figure:
    """A run's metrics.jsonl as four panels, each titled: "loss" (total and per source row), "kNN top-1",
    "collapse monitors" (teacher feature std, RankMe) and "schedules" (lr, EMA momentum).

    A panel whose values were not logged (yet) says so instead of plotting.
    """
    rows = read_metrics(run_dir)
    fig = Figure(figsize=(10, 6), layout="constrained")
    fig.suptitle(Path(run_dir).name, fontsize=10)
    loss, knn, collapse, schedules = fig.subplots(2, 2).flat

    def series(ax, key, style="-", color=None, label=None, **kw):
        got = [r for r in rows if r.get(key) is not None]
        if got:
            ax.plot([r["step"] for r in got], [r[key] for r in got], style, color=color, label=label or key, **kw)
            ax.set_ylabel(label or key, color=color)
        return bool(got)

    def panel(ax, title, drawn):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step")
        if not drawn:
            ax.text(0.5, 0.5, "not logged yet", ha="center", va="center", transform=ax.transAxes, color="0.5")

    series(loss, "loss", color="k", linewidth=1.5)
    for name in sorted({n for r in rows for n in r.get("rows", {})}, key=lambda n: int(n[1:]) if n[1:].isdigit() else 0):
        got = [r for r in rows if name in r.get("rows", {})]
        loss.plot([r["step"] for r in got], [r["rows"][name] for r in got], linewidth=0.8, label=f"row {name}")
    loss.legend(fontsize=7)
    panel(loss, "loss", True)
    panel(knn, "kNN top-1 (%), EMA teacher", series(knn, "knn_top1", "o-", color="C1", label="kNN top-1"))
    drawn = series(collapse, "teacher_std", color="C2", label="teacher std")
    drawn |= series(collapse.twinx(), "rankme", color="C3", label="RankMe")
    panel(collapse, "collapse monitors", drawn)
    drawn = series(schedules, "lr", color="C0", label="lr")
    drawn |= series(schedules.twinx(), "momentum", color="C4", label="EMA momentum")
    panel(schedules, "schedules", drawn)
    return fig


def save_figures(out_dir: str | Path, records: list[dict] | None = None, run_dirs: list[str | Path] = (),
                 table: bool = True) -> list[Path]:
    """Write table.png and depths.png (all runs over depth) unless not `table`, depths-<result>.png per result with
    per-depth numbers, curves-<run>.png."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = load_results() if records is None else records
    figures = {"table.png": plot_table(records, load_writeup())} if table else {}
    for r in records:
        if r["per_depth"]:
            figures[f"depths-{Path(r.get('file', r['run_id'])).stem}.png"] = plot_depths(r)
    if table and any(len(r["per_depth"]) > 1 for r in records):
        figures["depths.png"] = plot_depth_overview(records)
    for run in run_dirs:
        figures[f"curves-{Path(run).name}.png"] = plot_curves(run)
    paths = []
    for name, fig in figures.items():
        fig.savefig(out_dir / name, dpi=120)
        paths.append(out_dir / name)
    return paths


ENCODER_TITLES = {"teacher": "EMA teacher (trained)", "random_init": "random init (same shape)"}


def plot_feature_maps(images: list, titles: list[str], maps: dict[str, dict[int, list]], title: str) -> Figure:
    """Per-depth patch features as RGB (3 principal components per depth), trained beside random init.

    Args:
        images: the shown PIL images (already at whole patches), one column each.
        titles: a column title per image.
        maps: {"teacher" | "random_init": {depth: [(h, w, 3) in [0, 1] per image]}}.
    """
    depths = list(next(iter(maps.values())))
    n = len(images)
    fig = Figure(figsize=(2 * 1.25 * n + 0.6, 1.25 * (len(depths) + 1) + 0.6), layout="constrained")
    fig.suptitle(f"{title}: patch features on 3 principal components per depth (rows: depths d_k)", fontsize=10)
    for sub, (encoder, per_depth) in zip(fig.subfigures(1, len(maps)), maps.items()):
        sub.suptitle(ENCODER_TITLES.get(encoder, encoder), fontsize=9)
        axes = sub.subplots(len(depths) + 1, n, squeeze=False)
        for col, image in enumerate(images):
            axes[0, col].imshow(image)
            axes[0, col].set_title(titles[col], fontsize=6)
            for row, d in enumerate(depths, start=1):
                axes[row, col].imshow(per_depth[d][col].numpy(), interpolation="nearest")
        for row, ax in enumerate(axes[:, 0]):
            ax.set_ylabel("image" if row == 0 else f"d{depths[row - 1]}", fontsize=8)
        for ax in axes.flat:
            ax.set_xticks([])
            ax.set_yticks([])
    return fig


def plot_inspect_curves(result: dict) -> Figure:
    """Continuity and RankMe over depth: one colour per image set, solid trained, dashed random init."""
    fig = Figure(figsize=(9, 3.5), layout="constrained")
    fig.suptitle(f"{result['run_id']} step {result['step']}: what each depth keeps", fontsize=10)
    panels = dict(zip(("continuity", "rankme"), fig.subplots(1, 2)))
    for i, (name, got) in enumerate(result["sets"].items()):
        for encoder, style in (("teacher", "o-"), ("random_init", "x--")):
            for key, ax in panels.items():
                values = got[encoder][key]
                ax.plot([int(k[1:]) for k in values], list(values.values()), style, color=f"C{i % 10}",
                        label=f"{name}, {ENCODER_TITLES[encoder].split(' (')[0]}", markersize=4)
    panels["continuity"].set_ylabel("mean cos. sim. of 4-neighbour patches")
    panels["rankme"].set_ylabel("RankMe of the patch features")
    for ax in panels.values():
        ax.set_xlabel("block (d_k)")
        ax.legend(fontsize=7)
    return fig
