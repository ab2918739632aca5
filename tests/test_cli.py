"""The command line: parquet shards -> prepared cache -> pretraining (subprocesses), and the evaluation
subcommands in process (probe writes a results JSON, table prints it and draws figures)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import matplotlib
import pytest
from torch.utils.data import Subset

from cijepa_lite import evaluate
from cijepa_lite.cli import main
from cijepa_lite.colab import write_smoke_parquet
from cijepa_lite.config import get_config, with_supervision
from cijepa_lite.data.cache import read_meta
from cijepa_lite.data.sources import Digits
from cijepa_lite.engine.train import train

matplotlib.use("Agg")
ROOT = Path(__file__).resolve().parents[1]


def cli(*args, check=True):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "cijepa_lite", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600, check=check)


@pytest.mark.slow
def test_help_lists_the_commands():
    out = cli("--help").stdout
    for command in ("pretrain", "data", "probe", "table"):
        assert command in out


@pytest.mark.slow
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


@pytest.mark.slow
def test_config_lists_every_key_with_its_meaning_and_pretrain_help_says_so():
    from cijepa_lite.config import Config

    listed = cli("config", "--preset", "R-A05-B08").stdout.splitlines()
    assert [line.split(" = ")[0] for line in listed] == list(Config.__dataclass_fields__)
    assert "last_to_last_weight = 0.8  # beta" in "\n".join(listed)
    assert "python -m cijepa_lite config --preset ID" in " ".join(cli("pretrain", "--help").stdout.split())


@pytest.mark.slow
def test_bad_input_is_a_clear_error():
    out = cli("pretrain", "--preset", "tiny", "--out", "/tmp/x", "alpha=0.5", check=False)
    assert out.returncode != 0 and "unknown config key 'alpha'" in out.stderr
    out = cli("data", "--parquet-dir", "/nonexistent/shards", "--out", "/tmp/never", check=False)
    assert out.returncode != 0 and "/nonexistent/shards" in (out.stderr + out.stdout)


def small_digits(dataset, split, size, data_dir=None):
    subset = Subset(Digits(split, size), range(160 if split == "train" else 80))
    subset.classes = Digits.classes
    return subset


@pytest.mark.slow  # a short run, then a probe
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
    assert list(record["per_depth"]) == [f"d{d}" for d in range(cfg.depth)]  # every block, not only D
    assert f"top-1 {record['top1']:.2f}%" in printed

    assert main(["table", "--results", str(results), "--figures", str(tmp_path / "fig"), "--runs", str(run)]) == 0
    printed = capsys.readouterr().out
    assert "R-A05-B08-12" in printed and "NOT comparable" in printed and f"{record['top1']:.2f}" in printed
    assert {p.name for p in (tmp_path / "fig").iterdir()} == {"table.png", "depths.png", "curves-run.png",
                                                              f"depths-{path.stem}.png"}
    assert record["probe"]["chosen"] == "as asked"

    # --runs alone draws the curves into each run; a parent folder expands to the run folders inside it
    assert main(["table", "--results", str(results), "--runs", str(tmp_path)]) == 0
    assert f"wrote {run / 'figures' / 'curves.png'}" in capsys.readouterr().out
    assert main(["table", "--results", str(tmp_path / "nowhere")]) == 1
    assert main(["table", "--results", str(results), "--runs", str(results)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "no results folder" in err and "nor a folder of run folders" in err


def test_probe_of_a_directory_without_checkpoints_names_it(tmp_path, capsys):
    assert main(["probe", "--run", str(tmp_path)]) == 1
    assert capsys.readouterr().err.startswith(f"error: no checkpoint in {tmp_path}")


@pytest.mark.slow  # a short run, then a probe
def test_per_depth_probe_of_an_ijepa_baseline_reports_every_block(tmp_path, monkeypatch, capsys):
    """L200 collects only d_last, yet `probe --per-depth` reads out every block, with a random-init reference."""
    run, results = tmp_path / "run", tmp_path / "results"
    cfg = with_supervision(get_config("tiny", batch_size=16, base_batch=16, epochs=1, ckpt_minutes=1e9), "L200")
    assert cfg.collected_depths == (cfg.depth - 1,)
    train(cfg, run, max_steps=2, source=Subset(Digits("train"), range(32)), progress=False)
    monkeypatch.setattr(evaluate, "open_source", small_digits)
    assert main(["probe", "--run", str(run), "--probe", "logreg", "--per-depth", "--random-init",
                 "--results", str(results), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    (path,) = (results / "runs").glob("*.json")
    record = json.loads(path.read_text())
    every = [f"d{d}" for d in range(cfg.depth)]
    assert list(record["per_depth"]) == every and all(f"  {k}: " in printed for k in every)
    (random,) = record["readouts"]
    assert random["model"] == "random-init seed 0" and list(random["per_depth"]) == every
    assert random["per_depth"] != record["per_depth"]
