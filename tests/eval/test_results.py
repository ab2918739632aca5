"""Results as data: the write-up's table, result JSON round trips, the side-by-side table, the figures."""
import json

import matplotlib
import pytest

from cijepa_lite.config import SUPERVISION, get_config
from cijepa_lite.eval.results import load_results, load_writeup, make_result, results_table, write_result

matplotlib.use("Agg")

WRITEUP = {"L200": 64.04, "L300": 66.96, "R-U": 67.34, "R-A05-B05": 68.96, "R-A08-B08": 66.94, "R-A05-B08": 70.06,
           "R-A05-B08-12": 69.1, "R-B05": 68.42, "R-B08": 69.36, "R-A05-B10": 69.22, "R-A.-B05": 64.66,
           "R-A.-B08": 66.02}  # SPEC 8


def record(run_id="R-A05-B08", top1=55.5, epochs_done=40.0, **overrides):
    cfg = get_config(run_id, **overrides)
    pretrain = {"step": 1234, "total_steps": 98_000, "epochs_done": epochs_done, "epochs_planned": cfg.epochs,
                "wall_time_s": 3600.0, "device": "NVIDIA A100-SXM4-40GB", "git_sha": "abc", "checkpoint": "x.pt"}
    probe = {"name": "recipe", "encoder": "teacher", "seed": 0}
    return make_result(cfg, pretrain, probe, top1, {"d10": 50.0, "d11": top1})


def test_writeup_table_has_the_specs_twelve_rows():
    rows = load_writeup()
    assert {r["run_id"]: r["top1"] for r in rows} == WRITEUP
    assert [r["run_id"] for r in rows] == list(SUPERVISION)
    assert {r["run_id"]: r["epochs"] for r in rows}["L300"] == 300


def test_result_json_round_trips(tmp_path):
    rec = record()
    path = write_result(rec, tmp_path)
    assert path.parent == tmp_path / "runs" and path.name == "R-A05-B08_step-00001234_recipe-teacher.json"
    (loaded,) = load_results(tmp_path)
    assert {k: v for k, v in loaded.items() if k != "file"} == json.loads(json.dumps(rec))
    assert loaded["config"]["all_to_last_weight"] == 0.5 and loaded["provenance"]["git_sha"]
    assert set(loaded["provenance"]["versions"]) >= {"torch", "timm"}


def test_bad_results_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="lacks"):
        write_result({"run_id": "x"}, tmp_path)
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match="broken.json is not valid JSON"):
        load_results(tmp_path)


def table_rows(text):
    return {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[1:-1]]
            for line in text.splitlines() if line.startswith("| ") and not line.startswith(("| run id", "| ---"))}


def test_table_lists_every_writeup_row_and_only_comparable_kit_numbers():
    comparable = record("R-A05-B08", top1=55.5, epochs_done=40.0, epochs=100)  # shorter run: still that recipe
    changed = record("R-A05-B10", top1=12.0, all_to_last_weight=0.3)  # a different alpha is not R-A05-B10
    tiny = record("tiny", top1=97.0, epochs_done=60.0)
    text = results_table([comparable, changed, tiny])
    main, others = text.split("\n\n")
    rows = table_rows(main)
    assert set(rows) == set(WRITEUP)
    assert rows["R-A05-B08"][6:10] == ["70.06", "55.50", "40/100", "recipe (teacher)"]
    assert rows["R-A05-B08"][10] == "NVIDIA A100-SXM4-40GB"
    assert rows["R-A05-B10"][7] == "" and rows["L200"][7:] == ["", "", "", ""]
    assert "NOT comparable" in others and "97.00" in others and "12.00" in others and "digits" in others


def test_newest_evaluation_of_a_row_wins():
    old, new = record(top1=50.0), record(top1=60.0)
    old["written"], new["written"] = "2026-01-01T00:00:00", "2026-02-01T00:00:00"
    assert table_rows(results_table([old, new]))["R-A05-B08"][7] == "60.00"
