"""The figures: write-up vs kit per run, top-1 over depth, a run's training curves."""
import json

import matplotlib
import pytest

from cijepa_lite.config import get_config
from cijepa_lite.eval.results import load_writeup, make_result
from cijepa_lite.plots import plot_curves, plot_depth_overview, plot_depths, plot_table, save_figures

matplotlib.use("Agg")


def record(run_id="R-A05-B08", top1=55.5, epochs_done=40.0, **overrides):
    cfg = get_config(run_id, **overrides)
    pretrain = {"step": 1234, "total_steps": 98_000, "epochs_done": epochs_done, "epochs_planned": cfg.epochs,
                "wall_time_s": 3600.0, "device": "NVIDIA A100-SXM4-40GB", "git_sha": "abc", "checkpoint": "x.pt"}
    return make_result(cfg, pretrain, {"name": "recipe", "encoder": "teacher", "seed": 0}, top1,
                       {"d10": 50.0, "d11": top1})


def test_figures(tmp_path):
    rec = record()
    bars = plot_table([rec], load_writeup())
    assert len(bars.axes[0].patches) == 13  # 12 write-up bars + 1 kit bar
    lines = plot_depths(rec).axes[0].lines
    assert list(lines[0].get_xdata()) == [10, 11] and list(lines[0].get_ydata()) == [50.0, 55.5]
    run = tmp_path / "run"
    run.mkdir()
    rows = [{"step": 10, "loss": 0.5, "rows": {"d3": 0.6, "d5": 0.4}, "lr": 1e-4, "momentum": 0.99,
             "teacher_std": 0.9, "rankme": 40.0},
            {"step": 20, "loss": 0.4, "rows": {"d3": 0.5, "d5": 0.3}, "lr": 2e-4, "momentum": 0.995,
             "teacher_std": 0.8, "rankme": 38.0, "knn_top1": 61.0}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    panels = {ax.get_title(): ax for ax in plot_curves(run).axes if ax.get_title()}
    assert [ln.get_label() for ln in panels["loss"].lines] == ["loss", "row d3", "row d5"]
    assert list(panels["loss"].lines[2].get_ydata()) == [0.4, 0.3]
    assert list(panels["kNN top-1 (%), EMA teacher"].lines[0].get_ydata()) == [61.0]
    twins = {ax.get_ylabel(): ax for ax in plot_curves(run).axes}
    assert list(twins["RankMe"].lines[0].get_ydata()) == [40.0, 38.0]
    assert list(twins["EMA momentum"].lines[0].get_ydata()) == [0.99, 0.995]
    (run / "metrics.jsonl").write_text(json.dumps({"step": 10, "loss": 0.5}) + "\n")  # a run's first row
    empty = [ax for ax in plot_curves(run).axes if any(t.get_text() == "not logged yet" for t in ax.texts)]
    assert [ax.get_title() for ax in empty] == ["kNN top-1 (%), EMA teacher", "collapse monitors", "schedules"]
    with pytest.raises(FileNotFoundError, match="metrics.jsonl"):
        plot_curves(tmp_path)
    paths = save_figures(tmp_path / "fig", [rec], run_dirs=[run])
    assert sorted(p.name for p in paths) == ["curves-run.png", "depths-R-A05-B08.png", "depths.png", "table.png"]
    assert all(p.stat().st_size > 1000 for p in paths)


def test_depth_overview_draws_each_run_and_its_random_init_reference():
    a, b = record(), record("L200", top1=40.0)
    a["readouts"] = [{"label": f"random init seed {s}", "model": f"random-init seed {s}", "probe": "recipe",
                      "top1": 20.0 + s, "per_depth": {"d10": 10.0 + 2 * s, "d11": 20.0 + 2 * s}} for s in (0, 1)]
    a["readouts"].append({"label": "knn", "model": "random-init seed 0", "probe": "knn", "top1": 1.0,
                          "per_depth": {"d10": 1.0, "d11": 1.0}})  # another probe: not this record's reference
    lines = plot_depth_overview([a, b, record(top1=3.0) | {"per_depth": {"d11": 3.0}}]).axes[0].lines
    assert [ln.get_label() for ln in lines] == ["R-A05-B08", "R-A05-B08, random init", "L200"]
    assert list(lines[1].get_ydata()) == [11.0, 21.0] and lines[1].get_linestyle() == "--"
    assert list(lines[2].get_xdata()) == [10, 11] and list(lines[2].get_ydata()) == [50.0, 40.0]
    twice = plot_depth_overview([a, a | {"run_id": "again"}]).axes[0].lines  # a shared random init is drawn once
    assert [ln.get_linestyle() for ln in twice] == ["-", "--", "-"]


def test_table_bars_curves_titles_and_random_reference(tmp_path):
    rec = record()
    ax = plot_table([rec], load_writeup()).axes[0]
    writeup_bar, kit_bar = ax.patches[0], ax.patches[-1]
    assert writeup_bar.get_facecolor() != kit_bar.get_facecolor()
    labels = [t.get_text() for t in ax.texts]
    assert labels[:2] == ["200", "300"] and labels[-1] == "40"  # L200, L300 (write-up epochs), the kit's epochs done
    assert ax.get_ylim()[0] == 0 and "write-up vs this kit" in ax.get_title()

    rec["readouts"] = [{"label": f"random init seed {s}", "model": f"random-init seed {s}", "probe": "recipe",
                        "top1": 40.0 + s, "per_depth": {"d10": 30.0 + s, "d11": 40.0 + s}} for s in (0, 1, 2)]
    ax = plot_depths(rec).axes[0]
    reference = [ln for ln in ax.lines if ln.get_label().startswith("random init (mean of 3)")]
    assert len(reference) == 1 and list(reference[0].get_ydata()) == [31.0, 41.0]
    assert ax.get_title().startswith("R-A05-B08 on " + rec["dataset"].split("/")[-1] + ", step 1234")
    assert not [ln for ln in ax.lines if ln.get_label().startswith("raw pixels")]  # a record without pixel rows
    rec["readouts"] += [{"label": "raw pixels", "model": "pixels", "probe": p, "top1": v, "per_depth": {}}
                        for p, v in (("recipe", 17.5), ("knn", 70.0))]
    (pixels,) = [ln for ln in plot_depths(rec).axes[0].lines if ln.get_label().startswith("raw pixels")]
    assert pixels.get_label() == "raw pixels (17.5)" and list(pixels.get_ydata()) == [17.5, 17.5]  # its probe's

    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text(json.dumps({"step": 7, "loss": 0.5, "lr": 1e-4}) + "\n")
    (run / "config.json").write_text(json.dumps(get_config("L200", dataset="/data/in100", knn_every_epochs=None)
                                                .to_dict()))
    fig = plot_curves(run)
    assert fig._suptitle.get_text().startswith("L200 on in100, step 7")
    titles = [a.get_title() for a in fig.axes]
    assert any("I-JEPA objective" in t and "not comparable" in t for t in titles)
    assert any(t.get_text().startswith("kNN off in this run") for a in fig.axes for t in a.texts)
