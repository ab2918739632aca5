"""The bench's plumbing on the tiny model (timings are never asserted: only the bench command measures)."""
import torch

from cijepa_lite.bench import time_steps
from cijepa_lite.cli import build_parser
from cijepa_lite.config import get_config, with_supervision
from cijepa_lite.distributed import Dist


def test_time_steps_interleaves_both_variants():
    cfg = get_config("tiny", batch_size=4)
    cfgs = {"ijepa": with_supervision(cfg, "L200"), "cijepa": cfg}
    times = time_steps(cfgs, Dist(0, 1, torch.device("cpu")), steps=2, warmup=1)
    assert {k: len(v) for k, v in times.items()} == {"ijepa": 2, "ijepa:cpu": 2, "cijepa": 2, "cijepa:cpu": 2}
    assert all(t > 0 for v in times.values() for t in v)


def test_bench_command_line():
    args = build_parser().parse_args(["bench", "--preset", "tiny", "--recompiles", "300", "compile=true"])
    assert args.recompiles == 300 and args.backend == "eager" and args.overrides == ["compile=true"]
    args = build_parser().parse_args(["bench", "--json", "out.json", "--size", "preset", "--batch", "2"])
    assert (args.preset, args.size, args.batch, args.json) == ("R-A05-B08", "preset", 2, "out.json")
