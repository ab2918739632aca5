"""The campaign figure: each run's progress against its planned steps, top-1 beside the write-up's, hours."""
from __future__ import annotations

import statistics

from matplotlib.figure import Figure

from ..plots import KIT_COLOUR, WRITEUP_COLOUR

STATE_COLOURS = {"queued": "0.85", "training": "C0", "pretrained": "C2", "probed": "C1", "failed": "C3"}


def plot_campaign(states: list[dict], totals: dict, references: dict[str, float] | None = None) -> Figure:
    """Three panels: progress per entry (coloured by state), top-1 per row (mean and range over seeds) beside the
    write-up's, and training hours spent (steps x measured step time: pauses are not counted) and remaining per
    entry on the machine that trains it (a GPU, or the CPU of a tiny campaign; remaining hatched, with how it was
    found).

    Args:
        references: top-1 levels drawn as vertical lines across the top-1 panel, e.g. {"raw pixels": 17.3,
            "random init (mean of 3)": 48.7}, under the campaign's probe on the same data.
    """
    fig = Figure(figsize=(15, max(3.8, 0.32 * len(states) + 2.0)), layout="constrained")
    progress, top1, hours = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.2, 1.2, 1]})
    _progress(progress, states)
    _top1(top1, states, references or {})
    _hours(hours, states, totals)
    done = sum(s["state"] == "probed" for s in states)
    fig.suptitle(f"campaign: {done}/{len(states)} runs probed, {totals['hours_spent']:.2f} h spent, "
                 f"{totals['hours_left']:.2f} h left" + (f" (+{totals['hours_left_unknown']} unknown)"
                                                         if totals["hours_left_unknown"] else ""), fontsize=10)
    return fig


def _progress(ax, states: list[dict]) -> None:
    y = range(len(states))
    frac = [s["step"] / s["total_steps"] if s["total_steps"] else 0.0 for s in states]
    ax.barh(y, [1.0] * len(states), color="0.95", edgecolor="0.8")
    ax.barh(y, frac, color=[STATE_COLOURS[s["state"]] for s in states])
    for i, s in enumerate(states):
        ax.text(0.01, i, f"{s['state']}  {s['step']}/{s['total_steps'] or '?'} steps ({s['epochs']} ep)",
                va="center", fontsize=7)
    ax.set_yticks(list(y), [s["id"] for s in states], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("fraction of planned steps")
    ax.set_title("progress (colour: state)", fontsize=9)


def _top1(ax, states: list[dict], references: dict[str, float]) -> None:
    rows = list(dict.fromkeys(s["row"] for s in states))
    y = range(len(rows))
    writeup = [next((s["writeup_top1"] for s in states if s["row"] == r), None) for r in rows]
    ax.barh([i - 0.2 for i in y], [w or 0 for w in writeup], 0.4, color=WRITEUP_COLOUR,
            label="write-up (ImageNet-100, ViT-B/16, 200-300 ep)")
    models = sorted({f"{s['model']} on {s['dataset']}" for s in states})
    label = f"this campaign ({'; '.join(models)}): mean, range over seeds"
    for i, row in enumerate(rows):
        got = [s["top1"] for s in states if s["row"] == row and s["top1"] is not None]
        if got:
            mean = statistics.mean(got)
            ax.barh(i + 0.2, mean, 0.4, color=KIT_COLOUR, xerr=[[mean - min(got)], [max(got) - mean]], label=label)
            label = None  # one legend entry
            ax.text(max(got) + 1, i + 0.2, f"{mean:.1f} (n={len(got)})", va="center", fontsize=7)  # clear of the bar
    for (name, level), style in zip(references.items(), (":", "--", "-.")):
        ax.axvline(level, color="0.2", ls=style, lw=1.2, label=f"{name}: {level:.1f}")
    ax.set_yticks(list(y), rows, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("val top-1 (%), axis from 0")
    ax.set_title("top-1: write-up vs this campaign's probe", fontsize=9)
    _legend_in_panel(ax, len(y))


def _hours(ax, states: list[dict], totals: dict) -> None:
    y = range(len(states))
    spent = [s["hours_spent"] for s in states]
    left = [s["hours_left"] or 0.0 for s in states]
    ax.barh(y, spent, color="C0", label="spent (steps x step time on the machine that trained it)")
    ax.barh(y, left, left=spent, color="white", edgecolor="C0", hatch="//", label="remaining")
    for i, s in enumerate(states):
        if s["state"] not in ("probed", "pretrained"):
            ax.text(spent[i] + left[i], i, f" {s['hours_kind']}", va="center", fontsize=7)
    ax.set_yticks(list(y), [s["id"] for s in states], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("hours")
    ax.set_title(f"training hours (remaining: {', '.join(totals['kinds']) or 'none'})", fontsize=9)
    _legend_in_panel(ax, len(y))


def _legend_in_panel(ax, rows: int) -> None:
    """The panel's legend inside it, at the bottom, in a band left free below its `rows` rows (y inverted)."""
    inches = 0.17 * len(ax.get_legend_handles_labels()[1]) + 0.15  # ~ the legend's height at fontsize 7
    share = min(inches / (ax.figure.get_figheight() - 1.0), 0.6)  # of the panel's (the figure's less its margins)
    ax.set_ylim(rows - 0.5 + (rows + 0.1) * share / (1 - share), -0.6)
    ax.legend(fontsize=7, loc="lower right", framealpha=0.9)
