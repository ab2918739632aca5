"""torchrun with 2 CPU processes (gloo) computes and logs what one process computes with the same global batch."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cijepa_lite.engine import RunDir, read_metrics

pytestmark = pytest.mark.slow  # real processes (see pyproject: the fast tier is -m "not slow")

ROOT = Path(__file__).resolve().parents[2]
ARGS = ["pretrain", "--preset", "tiny", "--steps", "3", "--no-progress", "batch_size=16", "base_batch=16",
        "log_every=1", "num_workers=0"]


def run(cmd, out):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    subprocess.run(cmd + ["-m", "cijepa_lite", *ARGS[:5], "--out", str(out), *ARGS[5:]], cwd=ROOT, env=env,
                   check=True, capture_output=True, timeout=600)
    return vars(RunDir(out).latest())


@pytest.mark.slow  # starts processes
def test_two_ranks_equal_one_process(tmp_path):
    one = run([sys.executable], tmp_path / "one")
    two = run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"], tmp_path / "two")
    assert two["step"] == one["step"] == 3
    for part in ("student", "teacher", "predictors"):
        for key, value in one[part].items():
            torch.testing.assert_close(two[part][key], value, rtol=1e-4, atol=1e-5, msg=f"{part}.{key}")
    # the collapse monitors read the whole global batch on any number of processes; each row records the world
    rows = {n: read_metrics(tmp_path / n) for n in ("one", "two")}
    for a, b in zip(rows["one"], rows["two"], strict=True):
        assert (a["world"], b["world"]) == (1, 2)
        assert b["rankme"] == pytest.approx(a["rankme"], rel=1e-4)
        assert b["teacher_std"] == pytest.approx(a["teacher_std"], rel=1e-4)
    # the check can fail: weights moved from their initial values
    assert not torch.equal(one["student"]["blocks.0.attn.qkv.weight"], one["teacher"]["blocks.0.attn.qkv.weight"])
