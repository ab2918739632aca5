import pytest
import torch

from cijepa_lite.engine import checkpoint
from cijepa_lite.engine.mirror import Mirror


def saved(tmp_path, step=2):
    return checkpoint.save({"step": step, "w": torch.ones(2)}, tmp_path / "run", keep=3)


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
    calls = []

    def broken(*args, **kwargs):
        calls.append(1)
        raise OSError(107, "Transport endpoint is not connected")

    monkeypatch.setattr(checkpoint, "copy_checkpoint", broken)
    mirror = Mirror(tmp_path / "drive", tmp_path / "drive" / "ckpts", keep=3, retries=2, backoff_s=0.01)
    with pytest.warns(UserWarning, match="failed 2 times.*Transport endpoint"):
        mirror.submit(pt)
        mirror.close()
    assert len(calls) == 2 and "Transport endpoint" in mirror.failures[0]
