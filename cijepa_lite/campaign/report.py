"""What a campaign prints: its status as a table and the one line on what the next step will do."""
from __future__ import annotations

import statistics

from .hours import fits

MIN_ROWS_FOR_RANKS = 3  # a rank correlation over fewer rows says nothing


def next_line(states: list[dict], budget_s: float | None = None) -> str:
    """One line: what the next Run all (or `campaign` command) will do (`budget_s`: training seconds left)."""
    free = [s for s in states if not s["claimed_by"]]
    todo = ([s for s in free if s["state"] == "pretrained"], [s for s in free if s["state"] == "training"],
            [s for s in free if s["state"] == "queued"])
    failed = [s["id"] for s in states if s["state"] == "failed"]
    tail = f"; failed (skipped; --retry-failed to retry): {', '.join(failed)}" if failed else ""
    if todo[0]:
        return f"next: probe {todo[0][0]['id']} (pretrained, not probed yet){tail}"
    for verb, group in (("resume", todo[1]), ("start", todo[2])):
        if group:
            s = group[0]
            left = "" if s["hours_left"] is None else f", ~{s['hours_left']:.2f} h left ({s['hours_kind']})"
            room = fits(s, budget_s)
            return (f"next: {verb} {s['id']} at step {s['step']}/{s['total_steps'] or '?'}{left}"
                    f"{'; ' + room if room else ''}{tail}")
    busy = [s["id"] for s in states if s["claimed_by"] and s["state"] in ("training", "queued", "pretrained")]
    if busy:
        return f"next: nothing free; other sessions are on {', '.join(busy)}{tail}"
    probed = sum(s["state"] == "probed" for s in states)
    return f"the campaign is complete: {probed}/{len(states)} runs probed{tail}"


def row_summary(states: list[dict]) -> dict:
    """Each row's probed top-1 over its seeds (mean, range) beside the write-up's, and Spearman's rank correlation
    between the rows' means and the write-up's column (rows with every seed probed, at least 3 of them; else None).

    Returns:
        {"rows": [{"row", "writeup_top1", "seeds", "n", "mean", "min", "max"}, ...], "spearman": float | None,
         "ranked_rows": how many rows the correlation is over}.
    """
    rows = []
    for row in dict.fromkeys(s["row"] for s in states):
        entries = [s for s in states if s["row"] == row]
        got = [s["top1"] for s in entries if s["state"] == "probed" and s["top1"] is not None]
        rows.append({"row": row, "writeup_top1": entries[0]["writeup_top1"], "seeds": len(entries), "n": len(got),
                     "mean": statistics.mean(got) if got else None, "min": min(got, default=None),
                     "max": max(got, default=None)})
    ranked = [r for r in rows if r["n"] == r["seeds"] and r["writeup_top1"] is not None]
    rho = None
    if len(ranked) >= MIN_ROWS_FOR_RANKS:
        from scipy.stats import spearmanr  # imported here: only a finished campaign needs SciPy

        rho = float(spearmanr([r["mean"] for r in ranked], [r["writeup_top1"] for r in ranked]).statistic)
    return {"rows": rows, "spearman": rho, "ranked_rows": len(ranked)}


def format_status(out: dict) -> str:
    """status() as a table: one line per run, then the totals and the next step."""
    lines = [f"{'run':<18} {'state':<10} {'steps':>13} {'h spent':>8} {'h left':>8} {'how':<10} {'top-1':>6} "
             f"{'write-up':>8}  reason"]
    for s in out["runs"]:
        steps = f"{s['step']}/{s['total_steps'] or '?'}"
        left = "?" if s["hours_left"] is None else f"{s['hours_left']:.2f}"
        top1 = "" if s["top1"] is None else f"{s['top1']:.2f}"
        writeup = "" if s["writeup_top1"] is None else f"{s['writeup_top1']:.2f}"
        lines.append(f"{s['id']:<18} {s['state']:<10} {steps:>13} {s['hours_spent']:>8.2f} {left:>8} "
                     f"{s['hours_kind']:<10} {top1:>6} {writeup:>8}  {s['reason'] or ''}")
    t = out["totals"]
    lines.append(f"hours spent {t['hours_spent']:.2f}, left {t['hours_left']:.2f} ({', '.join(t['kinds']) or '-'})"
                 + (f", {t['hours_left_unknown']} runs unknown" if t["hours_left_unknown"] else ""))
    rows = out.get("rows")
    if rows and rows["spearman"] is not None:
        lines.append(f"rank correlation (Spearman) of the rows' mean top-1 with the write-up's: {rows['spearman']:+.2f} "
                     f"over {rows['ranked_rows']} rows with every seed probed")
    lines.append(out["next"])
    return "\n".join(lines)
