"""The command line: parquet shards -> prepared cache -> pretraining (subprocesses), and the evaluation
subcommands in process (probe writes a results JSON, table prints it and draws figures)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import matplotlib
from torch.utils.data import Subset

from cijepa_lite import evaluate
from cijepa_lite.cli import main
from cijepa_lite.colab import write_smoke_parquet
from cijepa_lite.config import get_config
from cijepa_lite.data.cache import read_meta
from cijepa_lite.data.sources import Digits
from cijepa_lite.engine.train import train

matplotlib.use("Agg")
ROOT = Path(__file__).resolve().parents[1]


def cli(*args, check=True):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "cijepa_lite", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600, check=check)


def test_help_lists_the_commands():
    out = cli("--help").stdout
    for command in ("pretrain", "data", "probe", "table"):
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


def small_digits(dataset, split, size, data_dir=None):
    subset = Subset(Digits(split, size), range(160 if split == "train" else 80))
    subset.classes = Digits.classes
    return subset


def test_probe_then_table(tmp_path, monkeypatch, capsys):
    run, results = tmp_path / "run", tmp_path / "results"
    cfg = get_config("tiny", batch_size=16, base_batch=16, epochs=1, ckpt_minutes=1e9)
    train(cfg, run, max_steps=2, source=Subset(Digits("train"), range(32)), progress=False)
    monkeypatch.setattr(evaluate, "open_source", small_digits)

    assert main(["probe", "--run", str(run), "--probe", "logreg", "--per-depth", "--results", str(results),
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    (path,) = (results / "runs").glob("*.json")
    record = json.loads(path.read_text())
    assert path.name == "tiny_step-00000002_logreg-teacher.json" and str(path) in printed
    assert record["pretrain"]["step"] == 2 and record["probe"]["converged"] is True
    assert list(record["per_depth"]) == [f"d{d}" for d in cfg.collected_depths]
    assert f"top-1 {record['top1']:.2f}%" in printed

    assert main(["table", "--results", str(results), "--figures", str(tmp_path / "fig"), "--runs", str(run)]) == 0
    printed = capsys.readouterr().out
    assert "R-A05-B08-12" in printed and "NOT comparable" in printed and f"{record['top1']:.2f}" in printed
    assert {p.name for p in (tmp_path / "fig").iterdir()} == {"table.png", "curves-run.png", f"depths-{path.stem}.png"}


def test_probe_of_a_directory_without_checkpoints_names_it(tmp_path, capsys):
    assert main(["probe", "--run", str(tmp_path)]) == 1
    assert capsys.readouterr().err.startswith(f"error: no checkpoint in {tmp_path}")
