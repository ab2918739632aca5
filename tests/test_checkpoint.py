import json
import os
import warnings
from pathlib import Path

import pytest
import torch

from cijepa_lite import checkpoint


def state(step, value=1.0):
    w = {"w": torch.full((4, 4), value)}
    return {"step": step, "config": {"seed": 0}, "student": dict(w), "teacher": dict(w), "predictors": dict(w),
            "optimizer": {"state": {}, "param_groups": []}, "rng": torch.get_rng_state()}


def test_save_writes_file_and_manifest_and_loads_weights_only(tmp_path):
    pt = checkpoint.save(state(7), tmp_path, keep=3)
    assert pt.name == "step-00000007.pt" and pt.with_suffix(".json").exists()
    manifest = json.loads(pt.with_suffix(".json").read_text())
    assert manifest["sha256"] == checkpoint.sha256(pt) and manifest["bytes"] == pt.stat().st_size
    loaded = torch.load(pt, weights_only=True)
    assert loaded["step"] == 7 and torch.equal(loaded["student"]["w"], torch.ones(4, 4))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]


def test_keeps_only_the_newest_k(tmp_path):
    for step in (1, 2, 3, 4):
        checkpoint.save(state(step), tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "step-00000003.json", "step-00000003.pt", "step-00000004.json", "step-00000004.pt"]


def corrupt(kind: str, pt: Path) -> None:
    if kind == "truncated":
        pt.write_bytes(pt.read_bytes()[: pt.stat().st_size // 2])
    elif kind == "zero-byte":
        pt.write_bytes(b"")
    elif kind == "bit-flipped":
        data = bytearray(pt.read_bytes())
        data[len(data) // 2] ^= 0x10
        pt.write_bytes(bytes(data))
    elif kind == "manifest-less":
        pt.with_suffix(".json").unlink()
    elif kind == "garbage-manifest":
        pt.with_suffix(".json").write_text("{not json")


@pytest.mark.parametrize("kind", ["truncated", "zero-byte", "bit-flipped", "manifest-less", "garbage-manifest"])
def test_loader_falls_back_past_bad_checkpoints_naming_them(tmp_path, kind):
    checkpoint.save(state(1, 1.0), tmp_path, keep=5)
    checkpoint.save(state(2, 2.0), tmp_path, keep=5)
    newest = checkpoint.save(state(3, 3.0), tmp_path, keep=5)
    corrupt(kind, newest)
    with pytest.warns(UserWarning, match=str(newest.name)):
        loaded, path = checkpoint.load_latest(tmp_path)
    assert loaded["step"] == 2 and path.name == "step-00000002.pt"
    assert torch.equal(loaded["teacher"]["w"], torch.full((4, 4), 2.0))


def test_all_bad_raises_instead_of_restarting_from_scratch(tmp_path):
    pt = checkpoint.save(state(1), tmp_path, keep=5)
    corrupt("truncated", pt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(RuntimeError, match="no valid checkpoint.*step-00000001.pt"):
            checkpoint.load_latest(tmp_path)


def test_no_checkpoint_and_leftover_temp_files_mean_a_fresh_start(tmp_path):
    assert checkpoint.load_latest(tmp_path, tmp_path / "missing") == (None, None)
    (tmp_path / ".tmp-step-00000009.pt-123-1").write_bytes(b"partial")
    assert checkpoint.load_latest(tmp_path) == (None, None)


def test_newest_across_run_dir_and_mirror(tmp_path):
    checkpoint.save(state(5), tmp_path / "local", keep=3)
    checkpoint.save(state(9), tmp_path / "mirror", keep=3)
    loaded, path = checkpoint.load_latest(tmp_path / "local", tmp_path / "mirror")
    assert loaded["step"] == 9 and path.parent.name == "mirror"


def test_non_finite_weights_are_never_written(tmp_path):
    bad = state(3)
    bad["teacher"]["w"][0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite weights in.*teacher.w"):
        checkpoint.save(bad, tmp_path, keep=3)
    assert not list(tmp_path.iterdir())


def test_existing_step_is_replaced_atomically_not_in_place(tmp_path):
    pt = checkpoint.save(state(4, 1.0), tmp_path, keep=3)
    inode = os.stat(pt).st_ino
    checkpoint.save(state(4, 2.0), tmp_path, keep=3)
    assert os.stat(pt).st_ino != inode  # a new file was renamed over it
    assert checkpoint.load_latest(tmp_path)[0]["student"]["w"][0, 0] == 2.0


def test_mirror_copies_checkpoints_and_extra_files(tmp_path):
    pt = checkpoint.save(state(2), tmp_path / "run", keep=3)
    (tmp_path / "run" / "metrics.jsonl").write_text('{"step": 2}\n')
    mirror = checkpoint.Mirror(tmp_path / "drive", keep=3)
    mirror.submit(pt, extra=[tmp_path / "run" / "metrics.jsonl"])
    mirror.close()
    assert checkpoint.validate(tmp_path / "drive" / "checkpoints" / pt.name) is None
    assert (tmp_path / "drive" / "metrics.jsonl").read_text() == '{"step": 2}\n'


def test_failing_mirror_warns_and_never_raises(tmp_path, monkeypatch):
    pt = checkpoint.save(state(2), tmp_path / "run", keep=3)
    calls = []

    def broken(*args, **kwargs):
        calls.append(1)
        raise OSError(107, "Transport endpoint is not connected")

    monkeypatch.setattr(checkpoint, "copy_checkpoint", broken)
    mirror = checkpoint.Mirror(tmp_path / "drive", keep=3, retries=2, backoff_s=0.01)
    with pytest.warns(UserWarning, match="failed 2 times.*Transport endpoint"):
        mirror.submit(pt)
        mirror.close()
    assert len(calls) == 2 and mirror.failures
