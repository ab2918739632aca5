"""Every expected error from the command line is one line on stderr and a non-zero status, no traceback."""
import os
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import pytest

import cijepa_lite.engine.checkpoint as checkpoint_module
from cijepa_lite.cli import main
from cijepa_lite.config import get_config
from cijepa_lite.engine import RunDir
from cijepa_lite.engine.lock import DirLock
from cijepa_lite.engine.optim import make_optimizer
from cijepa_lite.method import CIJEPA

ROOT = Path(__file__).resolve().parents[1]
Usage = namedtuple("Usage", "total used free")
SMALL = ["batch_size=16", "base_batch=16", "knn_every_epochs=none"]


def pretrain(out, *overrides, steps="1"):
    return ["pretrain", "--preset", "tiny", "--out", str(out), "--steps", steps, "--no-progress", *SMALL, *overrides]


def one_line_error(capsys, argv) -> str:
    status = main(argv)
    said = capsys.readouterr().err.strip().splitlines()  # the run's "starting ... fresh" line is not an error
    err = "\n".join(line for line in said if not line.startswith(("starting ", "resuming ")))
    assert status == 1 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("override,expected", [
    ("patch_size=0", "patch_size=0: must be >= 1"), ("num_heads=0", "num_heads=0: must be >= 1"),
    ("num_heads=3", "num_heads=3: must divide the width 64"), ("img_size=30", "img_size=30: must be a multiple of"),
    ("log_every=0", "log_every=0: must be >= 1"), ("keep_checkpoints=0", "keep_checkpoints=0: must be >= 1"),
    ("keep_checkpoints=-1", "keep_checkpoints=-1: must be >= 1"), ("ckpt_minutes=-1", "ckpt_minutes=-1.0: must be >= 0"),
    ("num_workers=-1", "num_workers=-1: must be >= 0"), ("max_skipped_steps=-1", "max_skipped_steps=-1: must be >= 0"),
    ("epochs=0", "epochs=0: must be >= 1"), ("batch_size=0", "batch_size=0: must be >= 1"),
    ("micro_batch_size=0", "micro_batch_size=0: must be >= 1"), ("embed_dim=0", "embed_dim=0: must be >= 1"),
    ("warmup_fraction=2", "warmup_fraction=2.0: must be in [0.0, 1.0]"), ("epochs=three", "epochs='three'"),
    ("alpha=0.5", "unknown config key 'alpha'"), ("target_scale=0.3,0.1", "target_scale=(0.3, 0.1): must be a pair"),
])
def test_bad_config_values_name_the_field_and_the_range(tmp_path, capsys, override, expected):
    assert expected in one_line_error(capsys, pretrain(tmp_path, override))


@pytest.mark.parametrize("steps", ["-1", "0"])
def test_steps_below_one_is_an_error(tmp_path, capsys, steps):
    assert f"--steps {steps}: must be >= 1" in one_line_error(capsys, pretrain(tmp_path, steps=steps))


def test_out_naming_a_file_or_an_impossible_folder(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert f"{tmp_path / 'file'} is a file, not a folder" in one_line_error(capsys, pretrain(tmp_path / "file"))
    assert "Not a directory" in one_line_error(capsys, pretrain(tmp_path / "file" / "run"))


def test_a_busy_run_directory_names_its_holder(tmp_path, capsys):
    with DirLock(tmp_path / "run.lock"):
        err = one_line_error(capsys, pretrain(tmp_path))
    assert f"in use by process {os.getpid()}" in err


def saved_run(path, **overrides):
    cfg = get_config("tiny", **dict(o.split("=") for o in SMALL), **overrides)
    model = CIJEPA(cfg)
    return RunDir(path).save(1, cfg, model, make_optimizer(cfg, model), {})


def test_a_config_guard_refusal_and_no_valid_checkpoint(tmp_path, capsys):
    saved_run(tmp_path / "run")
    err = one_line_error(capsys, pretrain(tmp_path / "run", "all_to_last_weight=0.7", steps="2"))
    assert "refusing to resume with a different config (all_to_last_weight: checkpoint 0.5 vs now 0.7)" in err
    pt = saved_run(tmp_path / "bad")
    pt.write_bytes(pt.read_bytes()[:100])
    assert "no valid checkpoint among" in one_line_error(capsys, pretrain(tmp_path / "bad", steps="2"))


def test_a_missing_dataset_and_an_empty_image_folder(tmp_path, capsys):
    assert "dataset='/nonexistent/images'" in one_line_error(capsys, pretrain(tmp_path, "dataset=/nonexistent/images"))
    for split in ("train", "val"):
        (tmp_path / "images" / split / "cat").mkdir(parents=True)
    status = main(["data", "--image-folder", str(tmp_path / "images"), "--out", str(tmp_path / "c"), "--workers", "1"])
    err = capsys.readouterr().err  # the progress bars, then the error
    assert status == 1 and "Traceback" not in err and "cache ready" not in err
    assert err.strip().splitlines()[-1].startswith(f"data: no images in the train and val split(s) of {tmp_path}")


def test_a_full_disk_names_the_folder_and_the_bytes_needed_and_free(tmp_path, capsys, monkeypatch):
    def full(state, f):
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 123 vs 456")

    monkeypatch.setattr(checkpoint_module.torch, "save", full)
    monkeypatch.setattr(checkpoint_module.shutil, "disk_usage", lambda p: Usage(1 << 30, (1 << 30) - (1 << 20), 1 << 20))
    err = one_line_error(capsys, pretrain(tmp_path))
    assert f"disk full: {tmp_path / 'checkpoints'} needs" in err and "0.00 GiB free" in err
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".tmp-")]


@pytest.mark.slow
def test_through_a_process_no_traceback_unless_debug(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "cijepa_lite"]
    out = subprocess.run(cmd + pretrain(tmp_path, "patch_size=0"), cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 1 and out.stderr.strip() == "error: config patch_size=0: must be >= 1"
    out = subprocess.run(cmd + ["--debug"] + pretrain(tmp_path, "patch_size=0"), cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 1 and "Traceback" in out.stderr and "ValueError" in out.stderr
