"""The bench's plumbing on the tiny model (timings are never asserted: only the bench command measures)."""
import json

import pytest
import torch

from cijepa_lite.bench import main, time_steps
from cijepa_lite.config import get_config, with_supervision
from cijepa_lite.engine.distributed import Dist


def test_time_steps_interleaves_both_variants():
    cfg = get_config("tiny", batch_size=4)
    cfgs = {"ijepa": with_supervision(cfg, "L200"), "cijepa": cfg}
    times = time_steps(cfgs, Dist(0, 1, torch.device("cpu")), steps=2, warmup=1)
    for t in times.values():
        assert {k: len(t[k]) for k in ("wall", "cpu", "host", "device")} == {"wall": 2, "cpu": 2, "host": 2, "device": 2}
        assert all(x > 0 for k in ("wall", "cpu", "host") for x in t[k])
        assert t["device"] == t["host"] and t["graphs"] == 0 and t["peak_bytes"] is None  # CPU: device = host


@pytest.mark.slow
def test_bench_runs_both_variants_and_reports_ratios_and_the_pipeline(tmp_path):
    result = main("tiny", str(tmp_path / "bench.json"), size="preset", batch=8, steps=2, warmup=1, workers=0,
                  memory=False)
    written = json.loads((tmp_path / "bench.json").read_text())
    assert written["variants"].keys() == {"ijepa", "cijepa"} and written["batch"] == 8
    v = written["variants"]
    assert v["ijepa"]["run_id"] == "tiny/L200" and len(v["cijepa"]["step_s_all"]) == 2
    assert written["ratios"]["flops"] == v["cijepa"]["gflop_per_image"] / v["ijepa"]["gflop_per_image"] > 1
    assert written["pipeline"]["images_per_s"] > 0 and result["n_ctx"] > 0


@pytest.mark.slow
def test_bench_compiles_when_asked_counts_graphs_and_records_wall_and_device_time(tmp_path, capsys):
    """`bench --preset tiny compile=true` (Dynamo's eager backend: it traces as inductor does, cheaply)."""
    from cijepa_lite.cli import main as cli

    path = tmp_path / "bench.json"
    assert cli(["bench", "--preset", "tiny", "--size", "preset", "--batch", "8", "--steps", "1", "--warmup", "1",
                "--workers", "0", "--no-memory", "--backend", "eager", "--json", str(path), "compile=true"]) == 0
    written = json.loads(path.read_text())
    assert written["compile"] is True and written["backend"] == "eager"
    for v in written["variants"].values():
        assert v["graphs"] > 0 and v["graphs_while_timed"] == 0
        assert v["step_s"] > 0 and v["device_s"] > 0 and v["host_s"] > 0
    assert "graphs (0 while timed)" in capsys.readouterr().out


@pytest.mark.slow
def test_bench_ops_counts_host_ops_per_step_and_fewer_with_larger_micro_batches(tmp_path):
    from cijepa_lite.cli import main as cli

    counts = {}
    for micro in (4, 8):
        path = tmp_path / f"ops{micro}.json"
        assert cli(["bench", "--preset", "tiny", "--ops", str(micro), "--json", str(path), "batch_size=8"]) == 0
        counts[micro] = json.loads(path.read_text())["ops"]
    assert counts[4] > counts[8] > 0  # every micro-batch repeats the forward and backward
