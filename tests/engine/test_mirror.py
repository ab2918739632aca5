import time

import pytest
import torch

from cijepa_lite.engine import checkpoint
from cijepa_lite.engine.mirror import Mirror


def saved(tmp_path, step=2):
    return checkpoint.save({"step": step, "w": torch.ones(2)}, tmp_path / "run", keep=3)


def broken_copies(monkeypatch) -> list:
    """Make every checkpoint copy fail as a dropped Drive mount does; returns the list of attempts."""
    calls = []

    def broken(*args, **kwargs):
        calls.append(1)
        raise OSError(107, "Transport endpoint is not connected")

    monkeypatch.setattr(checkpoint, "copy_checkpoint", broken)
    return calls


def test_mirror_copies_checkpoints_and_extra_files(tmp_path):
    pt = saved(tmp_path)
    (tmp_path / "run" / "metrics.jsonl").write_text('{"step": 2}\n')
    mirror = Mirror(tmp_path / "drive", tmp_path / "drive" / "ckpts", keep=3)
    mirror.submit(pt, extra=[tmp_path / "run" / "metrics.jsonl"])
    mirror.close()
    assert checkpoint.validate(tmp_path / "drive" / "ckpts" / pt.name) is None
    assert (tmp_path / "drive" / "metrics.jsonl").read_text() == '{"step": 2}\n'
    assert mirror.failures == []


def test_failing_mirror_warns_and_never_raises(tmp_path, monkeypatch):
    pt = saved(tmp_path)
    calls = broken_copies(monkeypatch)
    mirror = Mirror(tmp_path / "drive", tmp_path / "drive" / "ckpts", keep=3, retries=2, backoff_s=0.01)
    with pytest.warns(UserWarning, match="failed 2 times.*Transport endpoint"):
        mirror.submit(pt)
        mirror.close()
    assert len(calls) == 2 and "Transport endpoint" in mirror.failures[0]


def test_a_mirror_that_keeps_failing_is_reported_once_retried_with_back_off_and_summed_up(tmp_path, monkeypatch):
    calls = broken_copies(monkeypatch)
    mirror = Mirror(tmp_path / "drive", tmp_path / "drive" / "ckpts", keep=3, retries=2, backoff_s=0.01)
    mirror.pause_s = 3600.0  # far longer than the test: the second checkpoint falls in the pause
    with pytest.warns(UserWarning) as warned:
        for step, done in ((2, 1), (3, 2)):
            mirror.submit(saved(tmp_path, step))
            while len(mirror.failures) < done:  # the background copy has run (no time bound)
                time.sleep(0.01)
        mirror.submit(saved(tmp_path, 4))  # the run's last: tried at close whatever the pause
        mirror.close()
    assert len(warned) == 1 and "step-00000002.pt not copied: failed 2 times" in str(warned[0].message)
    assert len(calls) == 4 and len(mirror.failures) == 3  # steps 2 and 4 tried twice each, step 3 skipped
    assert "step-00000003.pt not copied: skipped: the last 1 copies failed" in mirror.failures[1]
    assert mirror.summary().startswith("3 mirror copies failed this run; first: ") and "step-00000004" in mirror.summary()
