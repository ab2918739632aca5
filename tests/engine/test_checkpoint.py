import json
import os
import warnings
from pathlib import Path

import pytest
import torch

from cijepa_lite.engine import checkpoint


def state(step, value=1.0):
    return {"step": step, "w": torch.full((4, 4), value)}


def sound(loaded) -> str | None:
    """The content check that load_latest takes: here, only that a step is there."""
    return None if isinstance(loaded, dict) and "step" in loaded else "no step"


def load_latest(*directories):
    return checkpoint.load_latest(list(directories), sound)


def test_save_writes_file_and_manifest_and_loads_weights_only(tmp_path):
    pt = checkpoint.save(state(7), tmp_path, keep=3)
    assert pt.name == "step-00000007.pt" and pt.with_suffix(".json").exists()
    manifest = json.loads(pt.with_suffix(".json").read_text())
    assert manifest["sha256"] == checkpoint.sha256(pt) and manifest["bytes"] == pt.stat().st_size
    loaded = torch.load(pt, weights_only=True)
    assert loaded["step"] == 7 and torch.equal(loaded["w"], torch.ones(4, 4))
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
        loaded, path = load_latest(tmp_path)
    assert loaded["step"] == 2 and path.name == "step-00000002.pt"
    assert torch.equal(loaded["w"], torch.full((4, 4), 2.0))


def test_all_bad_raises_instead_of_restarting_from_scratch(tmp_path):
    pt = checkpoint.save(state(1), tmp_path, keep=5)
    corrupt("truncated", pt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(RuntimeError, match="no valid checkpoint.*step-00000001.pt"):
            load_latest(tmp_path)


def test_no_checkpoint_and_leftover_temp_files_mean_a_fresh_start(tmp_path):
    assert load_latest(tmp_path, tmp_path / "missing") == (None, None)
    (tmp_path / ".tmp-step-00000009.pt-123-1").write_bytes(b"partial")
    assert load_latest(tmp_path) == (None, None)


def test_newest_across_run_dir_and_mirror(tmp_path):
    checkpoint.save(state(5), tmp_path / "local", keep=3)
    checkpoint.save(state(9), tmp_path / "mirror", keep=3)
    loaded, path = load_latest(tmp_path / "local", tmp_path / "mirror")
    assert loaded["step"] == 9 and path.parent.name == "mirror"


def test_a_sound_file_with_bad_content_is_skipped_like_a_corrupt_one(tmp_path):
    checkpoint.save(state(1), tmp_path, keep=5)
    newest = checkpoint.save({"step": 2, "w": "not a tensor"}, tmp_path, keep=5)
    with pytest.warns(UserWarning, match=f"{newest.name}: content says no"):
        loaded, path = checkpoint.load_latest([tmp_path], lambda s: "content says no" if s["step"] == 2 else None)
    assert loaded["step"] == 1


def test_existing_step_is_replaced_atomically_not_in_place(tmp_path):
    pt = checkpoint.save(state(4, 1.0), tmp_path, keep=3)
    inode = os.stat(pt).st_ino
    checkpoint.save(state(4, 2.0), tmp_path, keep=3)
    assert os.stat(pt).st_ino != inode  # a new file was renamed over it
    assert load_latest(tmp_path)[0]["w"][0, 0] == 2.0
