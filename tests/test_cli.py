"""The evaluation subcommands, in process: probe writes a results JSON, table prints it and draws figures."""
import json

import matplotlib
import pytest
from torch.utils.data import Subset

from cijepa_lite import evaluate
from cijepa_lite.cli import main
from cijepa_lite.config import get_config
from cijepa_lite.data import Digits
from cijepa_lite.train import train

matplotlib.use("Agg")


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


def test_probe_of_a_directory_without_checkpoints_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"no checkpoint in {tmp_path}"):
        main(["probe", "--run", str(tmp_path)])
