"""Expected failures of a run are one line and a documented non-zero status: non-finite losses (status 1) and a
mirror that never got a copy of the newest checkpoint (status 3)."""
import json

import pytest

from cijepa_lite.cli import main
from cijepa_lite.engine import read_metrics
from cijepa_lite.engine.mirror import Mirror, NoRoom

pytestmark = pytest.mark.slow  # whole (short) runs
ARGS = ["--preset", "tiny", "--steps", "4", "--no-progress", "batch_size=16", "base_batch=16", "log_every=1",
        "knn_every_epochs=none", "ckpt_minutes=1e9"]


def errors(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]


def test_too_many_non_finite_steps_stop_in_one_line_and_skipped_intervals_log_no_loss(tmp_path, capsys):
    status = main(["pretrain", "--out", str(tmp_path), *ARGS, "base_lr=1e30", "max_skipped_steps=1"])
    err = capsys.readouterr().err
    assert status == 1 and "Traceback" not in err
    assert len(errors(err)) == 1 and "consecutive steps up to step" in errors(err)[0], err
    rows = read_metrics(tmp_path)
    skipped = [r for r in rows if r["skipped"]]
    assert skipped and all(r["loss"] is None and r["targets"] == {} for r in skipped)  # not 0.0
    assert all(r["rankme"] is None or r["rankme"] >= 1 for r in rows)  # the monitors did not crash on NaN features


def test_a_mirror_that_never_got_a_copy_exits_3_in_one_line(tmp_path, capsys, monkeypatch):
    def no_room(self, pt, extra):
        raise NoRoom("needs 1.00 GiB, 0.00 GiB free (simulated)")

    monkeypatch.setattr(Mirror, "_copy_once", no_room)
    status = main(["pretrain", "--out", str(tmp_path / "run"), *ARGS, f"mirror_dir={tmp_path / 'drive'}"])
    out, err = capsys.readouterr()
    assert status == 3, err
    assert json.loads(out)["mirror_has_newest"] is False
    assert len(errors(err)) == 1 and errors(err)[0].startswith(
        f"error: the mirror holds no copy of the newest checkpoint {tmp_path / 'run' / 'checkpoints'}"), err
