"""Helpers of the campaign tests: a small image folder, the tiny campaign's overrides, sessions as processes."""
import os
import subprocess
import sys
from pathlib import Path

from cijepa_lite.data import Digits

ROOT = Path(__file__).resolve().parents[1]


def image_folder(folder: Path, train: int = 48, val: int = 40) -> Path:
    """`folder`/train|val/<digit>/<i>.png: a few digits as an image folder (3 steps per epoch at batch 16)."""
    for split, n in (("train", train), ("val", val)):
        digits = Digits(split)
        for i in range(n):
            image, label = digits[i]
            path = folder / split / str(label) / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            image.save(path)
    return folder


def overrides(data: Path, epochs: int = 2) -> list[str]:
    """Every run of a test campaign: tiny, the small folder, batch 16, a log row per step, no timed checkpoints."""
    return [f"dataset={data}", f"epochs={epochs}", "batch_size=16", "base_batch=16", "log_every=1",
            "ckpt_minutes=1000", "knn_every_epochs=none", "num_workers=0"]


def session(root: Path, *args: str) -> subprocess.Popen:
    """`python -m cijepa_lite campaign --root ROOT ...` as its own process (one thread: a loaded CI machine)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "cijepa_lite", "campaign", "--root", str(root), "--no-progress",
                             "--settle-s", "0.5", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def finish(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out[-3000:]
    return out
