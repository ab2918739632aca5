"""The bench's plumbing on the tiny model (timings are never asserted: only the bench command measures)."""
import json

import torch

from cijepa_lite.bench import main, time_steps
from cijepa_lite.config import get_config, with_supervision
from cijepa_lite.engine.distributed import Dist


def test_time_steps_interleaves_both_variants():
    cfg = get_config("tiny", batch_size=4)
    cfgs = {"ijepa": with_supervision(cfg, "L200"), "cijepa": cfg}
    times = time_steps(cfgs, Dist(0, 1, torch.device("cpu")), steps=2, warmup=1)
    assert {k: len(v) for k, v in times.items()} == {"ijepa": 2, "ijepa:cpu": 2, "cijepa": 2, "cijepa:cpu": 2}
    assert all(t > 0 for v in times.values() for t in v)


def test_bench_runs_both_variants_and_reports_ratios_and_the_pipeline(tmp_path):
    result = main("tiny", str(tmp_path / "bench.json"), size="preset", batch=8, steps=2, warmup=1, workers=0,
                  memory=False)
    written = json.loads((tmp_path / "bench.json").read_text())
    assert written["variants"].keys() == {"ijepa", "cijepa"} and written["batch"] == 8
    v = written["variants"]
    assert v["ijepa"]["run_id"] == "tiny/L200" and len(v["cijepa"]["step_s_all"]) == 2
    assert written["ratios"]["flops"] == v["cijepa"]["gflop_per_image"] / v["ijepa"]["gflop_per_image"] > 1
    assert written["pipeline"]["images_per_s"] > 0 and result["n_ctx"] > 0
