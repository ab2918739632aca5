"""Figures worth looking at: write-up vs kit per run, top-1 vs depth, and a run's training curves.

Each function returns a matplotlib Figure (nothing is shown); `save_figures` writes them as PNGs.
Import-safe without a display: pyplot is only touched inside the functions.
"""
from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from .engine import RunDir, read_config, read_metrics
from .files import save_figure
from .eval.results import comparable_row, load_results, load_writeup

WRITEUP_COLOUR, KIT_COLOUR, RANDOM_COLOUR = "0.65", "C1", "0.35"


def plot_table(records: list[dict], writeup: list[dict]) -> Figure:
    """Bars per write-up run: the write-up's top-1 (grey, labelled with its epochs) and the kit's (orange,
    labelled with the epochs it has done) where a comparable run was probed. The axis starts at 0."""
    kit = {comparable_row(r): r for r in records if comparable_row(r)}
    ids = [w["run_id"] for w in writeup]
    fig = Figure(figsize=(max(6, 0.7 * len(ids)), 4), layout="constrained")
    ax = fig.subplots()
    x = range(len(ids))
    bars = ax.bar([i - 0.2 for i in x], [w["top1"] for w in writeup], 0.4, color=WRITEUP_COLOUR,
                  label="write-up (ImageNet-100, ViT-B/16)")
    ax.bar_label(bars, [f"{w['epochs']}" for w in writeup], fontsize=6, padding=1)
    done = [i for i, rid in enumerate(ids) if rid in kit]
    if done:
        bars = ax.bar([i + 0.2 for i in done], [kit[ids[i]]["top1"] for i in done], 0.4, color=KIT_COLOUR,
                      label="this kit (same recipe)")
        ax.bar_label(bars, [f"{kit[ids[i]]['pretrain'].get('epochs_done') or 0:.0f}" for i in done], fontsize=6,
                     padding=1)
    ax.set_xticks(list(x), ids, rotation=45, ha="right")
    ax.set_ylabel("val top-1 (%), axis from 0")
    ax.set_ylim(0, 100)
    ax.set_title("ImageNet-100 linear probe: write-up vs this kit (number on a bar: epochs"
                 + ("" if done else "; no kit run reproduced yet") + ")", fontsize=9)
    ax.legend(fontsize=8, loc="upper left")
    return fig


def _random_rows(record: dict) -> list[dict]:
    """The record's random-init readouts under its headline probe."""
    return [r for r in record.get("readouts", []) if str(r.get("model", "")).startswith("random-init")
            and r.get("probe") == record["probe"]["name"]]


def random_reference(record: dict) -> dict[str, float]:
    """Mean over the record's random-init readouts (same probe, with per-depth numbers) per depth, or {}."""
    refs = [r["per_depth"] for r in _random_rows(record) if r.get("per_depth")]
    if not refs:
        return {}
    shared = [k for k in refs[0] if all(k in ref for ref in refs)]
    return {k: sum(ref[k] for ref in refs) / len(refs) for k in shared}


def _random_reference(ax, record: dict) -> None:
    """Random-init encoders under the headline's probe: their mean per depth (dashed), or a line at their mean."""
    rows = _random_rows(record)
    if not rows:
        return
    label = f"random init (mean of {len(rows)})"
    curve = random_reference(record)
    if curve:
        depths = sorted(curve, key=lambda k: int(k[1:]))
        ax.plot([int(k[1:]) for k in depths], [curve[k] for k in depths], "--", color=RANDOM_COLOUR, marker=".",
                label=label)
    else:
        ax.axhline(sum(r["top1"] for r in rows) / len(rows), ls="--", color=RANDOM_COLOUR, label=label + ", last block")


def _pixel_reference(ax, record: dict) -> None:
    """Raw pixels under the headline's probe (a dotted line), where the record has them (the demo's do)."""
    for r in record.get("readouts", []):
        if r.get("model") == "pixels" and r.get("probe") == record["probe"]["name"]:
            ax.axhline(r["top1"], ls=":", color="0.3", label=f"raw pixels ({r['top1']:.1f})")


def plot_depths(record: dict) -> Figure:
    """Top-1 against the probed depth of one result (and of its readouts that have per-depth numbers),
    with the random-init encoders' accuracy as a reference where the record has them (the demo's do)."""
    fig = Figure(figsize=(5.5, 3.8), layout="constrained")
    ax = fig.subplots()
    series = [(f"{record['probe']['name']} ({record['probe']['encoder']})", record["per_depth"])]
    series += [(r["label"], r["per_depth"]) for r in record.get("readouts", [])
               if r.get("per_depth") and r["per_depth"] != record["per_depth"]  # the headline is drawn once
               and not str(r.get("model", "")).startswith("random-init")]
    for label, per_depth in series:
        if per_depth:
            depths = sorted(per_depth, key=lambda k: int(k[1:]))
            ax.plot([int(k[1:]) for k in depths], [per_depth[k] for k in depths], marker="o", label=label)
    _random_reference(ax, record)
    _pixel_reference(ax, record)
    ax.set_xlabel("block (d_k)")
    ax.set_ylabel("val top-1 (%)")
    ax.set_title(f"{record['run_id']} on {Path(str(record['dataset'])).name}, step {record['pretrain']['step']}: "
                 "accuracy vs depth", fontsize=9)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=7)
    return fig


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


def _loss_title(cfg: dict | None) -> str:
    """The loss panel's title: which objective, and that losses of different methods are not comparable."""
    if cfg is None:
        return "loss"
    targets = len(range(cfg["collect_from"] % cfg["depth"], cfg["depth"]))
    method = "I-JEPA objective, 1 target depth" if targets == 1 else f"cI-JEPA objective, {targets} target depths"
    return f"loss ({method}):\nnot comparable with another method's loss"


def plot_curves(run_dir: str | Path) -> Figure:
    """A run's metrics.jsonl as four panels, each titled: "loss" (total and per source row), "kNN top-1",
    "collapse monitors" (teacher feature std, RankMe) and "schedules" (lr, EMA momentum); the figure is
    titled with the run id, dataset and last step.

    A panel whose values were not logged (yet) says so; the kNN panel says when kNN is off in the run.
    """
    rows, cfg = read_metrics(run_dir), read_config(run_dir)
    fig = Figure(figsize=(10, 6.4), layout="constrained")
    name = cfg["run_id"] if cfg else Path(run_dir).name
    where = f" on {Path(str(cfg['dataset'])).name}" if cfg else ""
    fig.suptitle(f"{name}{where}, step {rows[-1]['step'] if rows else 0} ({Path(run_dir).name}/)", fontsize=10)
    loss, knn, collapse, schedules = fig.subplots(2, 2).flat

    def series(ax, key, style="-", color=None, label=None, **kw):
        got = [r for r in rows if r.get(key) is not None]
        if got:
            ax.plot([r["step"] for r in got], [r[key] for r in got], style, color=color, label=label or key, **kw)
            ax.set_ylabel(label or key, color=color)
        return bool(got)

    def panel(ax, title, drawn, why="not logged yet"):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step")
        if not drawn:
            ax.text(0.5, 0.5, why, ha="center", va="center", transform=ax.transAxes, color="0.5")

    series(loss, "loss", color="k", linewidth=1.5)
    for name in sorted({n for r in rows for n in r.get("rows", {})}, key=lambda n: int(n[1:]) if n[1:].isdigit() else 0):
        got = [r for r in rows if name in r.get("rows", {})]
        loss.plot([r["step"] for r in got], [r["rows"][name] for r in got], linewidth=0.8, label=f"row {name}")
    loss.legend(fontsize=7)
    panel(loss, _loss_title(cfg), True)
    every = cfg.get("knn_every_epochs") if cfg else None
    why = ("not logged yet" if cfg is None else "kNN off in this run (knn_every_epochs=None)" if every is None
           else f"kNN every {every:g} epochs: none logged yet")
    panel(knn, "kNN top-1 (%), EMA teacher", series(knn, "knn_top1", "o-", color="C1", label="kNN top-1"), why)
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
        save_figure(fig, out_dir / name, dpi=120)
        paths.append(out_dir / name)
    return paths


ENCODER_TITLES = {"teacher": "EMA teacher (from the checkpoint)", "random_init": "random init (same shape)"}


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


def save_curves(run_dirs: list[str | Path]) -> list[Path]:
    """Write each run's training curves into the run folder itself (figures/curves.png)."""
    paths = []
    for run in run_dirs:
        path = RunDir(run).figure_file("curves.png")
        save_figure(plot_curves(run), path, dpi=120)
        paths.append(path)
    return paths


def sample_grid(cache: str | Path, n: int = 16, split: str = "train") -> Figure:
    """A figure of `n` evenly spaced images of a prepared cache with their class names."""
    from .data.cache import CacheSource

    source = CacheSource(cache, split)
    cols = 8
    fig = Figure(figsize=(2 * cols, 2.2 * ((n + cols - 1) // cols)), layout="constrained")
    for k, ax in enumerate(fig.subplots((n + cols - 1) // cols, cols).flat):
        ax.axis("off")
        if k < n:
            image, label = source[k * len(source) // n]
            ax.imshow(image)
            ax.set_title(source.classes[label][:18], fontsize=8)
    return fig
