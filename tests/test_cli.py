"""The command line end to end: parquet shards -> prepared cache -> pretraining on it."""
import json
import os
import subprocess
import sys
from pathlib import Path

from cijepa_lite.cache import read_meta
from cijepa_lite.colab import write_smoke_parquet

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, check=True):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "cijepa_lite", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600, check=check)


def test_help_lists_the_commands():
    out = cli("--help").stdout
    for command in ("pretrain", "data"):
        assert command in out


def test_parquet_to_cache_to_pretraining(tmp_path):
    shards = write_smoke_parquet(tmp_path / "shards")
    cache = tmp_path / "cache"
    cli("data", "--parquet-dir", str(shards), "--out", str(cache), "--short-side", "32", "--workers", "1")
    meta = read_meta(cache)
    assert meta["splits"]["train"]["count"] == 1438 and meta["splits"]["val"]["count"] == 359
    run = tmp_path / "run"
    out = cli("pretrain", "--preset", "tiny", "--out", str(run), "--steps", "2", "--no-progress",
              f"dataset={cache}", "batch_size=32", "base_batch=32", "log_every=1")
    summary = json.loads(out.stdout)
    assert summary["step"] == 2 and summary["steps_per_epoch"] == 1438 // 32
    assert (run / "checkpoints" / "step-00000002.pt").exists()


def test_bad_input_is_a_clear_error():
    out = cli("pretrain", "--preset", "tiny", "--out", "/tmp/x", "alpha=0.5", check=False)
    assert out.returncode != 0 and "unknown config key 'alpha'" in out.stderr
    out = cli("data", "--parquet-dir", "/nonexistent/shards", "--out", "/tmp/never", check=False)
    assert out.returncode != 0 and "/nonexistent/shards" in (out.stderr + out.stdout)
