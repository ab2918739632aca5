"""A Drive mirror with little room: never more than keep checkpoints of space, the newest complete copy kept,
every failure reported with the mirror's path and reason (summary, metrics, status line)."""
import errno
import shutil
from collections import namedtuple
from pathlib import Path

import pytest
import torch
from torch.utils.data import Subset

from cijepa_lite.config import get_config
from cijepa_lite.data.sources import Digits
from cijepa_lite.engine import RunDir, checkpoint, read_metrics, train
from cijepa_lite.engine.mirror import Mirror
from cijepa_lite.engine.rundir import MIRROR_KEEP

Usage = namedtuple("Usage", "total used free")


def used(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


class Drive:
    """A fake filesystem of `capacity` bytes at `root` (plus `other` bytes of someone else's files, or trash)."""

    def __init__(self, root: Path, capacity: int):
        self.root, self.capacity, self.other, self.peak = root, capacity, 0, 0
        self.real = shutil.disk_usage

    def usage(self, path):
        if not Path(path).is_relative_to(self.root):
            return self.real(path)
        taken = used(self.root) + self.other
        self.peak = max(self.peak, taken)
        return Usage(self.capacity, taken, max(self.capacity - taken, 0))


def wait_copied(mirror: Mirror, name: str) -> None:
    mirror.close()
    assert mirror.copied == name or mirror.failures


def test_room_for_2_5_checkpoints_always_holds_the_newest_complete_copy(tmp_path, monkeypatch):
    local = tmp_path / "run"
    first = checkpoint.save({"step": 1, "w": torch.ones(256, 256)}, local, keep=2)
    size = checkpoint.checkpoint_bytes(first)
    drive = Drive(tmp_path / "drive", int(2.5 * size))
    monkeypatch.setattr(shutil, "disk_usage", drive.usage)
    original_copy = checkpoint.copy_atomic

    def copy_and_measure(src, dst):  # the peak is right after a copy, before the prune
        original_copy(src, dst)
        drive.usage(dst)

    monkeypatch.setattr(checkpoint, "copy_atomic", copy_and_measure)
    sizes = []  # manifests differ by a byte or two (their timestamps): compare with the largest checkpoint
    for step in range(1, 6):
        pt = checkpoint.save({"step": step, "w": torch.full((256, 256), float(step))}, local, keep=2)
        sizes.append(checkpoint.checkpoint_bytes(pt))
        mirror = Mirror(drive.root, drive.root / "ckpts", keep=MIRROR_KEEP, retries=1, backoff_s=0)
        mirror.submit(pt)
        wait_copied(mirror, pt.name)
        assert mirror.failures == []
        newest = checkpoint.candidates(drive.root / "ckpts")[0]
        assert newest.name == pt.name and checkpoint.validate(newest) is None
    assert drive.peak <= MIRROR_KEEP * max(sizes)  # copy-then-prune needed 3 checkpoints' room


def test_a_full_drive_keeps_the_older_copy_and_names_mirror_and_reason(tmp_path, monkeypatch):
    local = tmp_path / "run"
    drive = Drive(tmp_path / "drive", 1 << 40)
    monkeypatch.setattr(shutil, "disk_usage", drive.usage)
    mirror = Mirror(drive.root, drive.root / "ckpts", keep=MIRROR_KEEP, retries=1, backoff_s=0)
    mirror.submit(checkpoint.save({"step": 1, "w": torch.ones(64, 64)}, local, keep=2))
    wait_copied(mirror, checkpoint.checkpoint_name(1))
    drive.other = drive.capacity - used(drive.root) - 100  # Drive fills up (other files, the trash)
    mirror = Mirror(drive.root, drive.root / "ckpts", keep=MIRROR_KEEP, retries=2, backoff_s=0)
    mirror.submit(checkpoint.save({"step": 2, "w": torch.ones(64, 64)}, local, keep=2))
    mirror.close()
    assert len(mirror.failures) == 1
    assert f"mirror {drive.root}: step-00000002.pt not copied" in mirror.failures[0]
    assert "needs 0.00 GiB" in mirror.failures[0] and "free" in mirror.failures[0]
    assert [p.name for p in checkpoint.candidates(drive.root / "ckpts")] == [checkpoint.checkpoint_name(1)]
    assert "newest copy step-00000001.pt; 1 failed" in mirror.status()


def test_enospc_in_the_middle_of_a_copy_leaves_no_partial_file_and_the_older_copy(tmp_path, monkeypatch):
    local, drive = tmp_path / "run", tmp_path / "drive"
    mirror = Mirror(drive, RunDir(drive).checkpoint_dir, keep=MIRROR_KEEP, retries=1, backoff_s=0)
    mirror.submit(checkpoint.save({"step": 1, "w": torch.ones(64, 64)}, local, keep=2))
    mirror.close()

    def half_then_full(src, dst):
        Path(dst).with_name(".tmp-" + Path(dst).name + "-1-1").write_bytes(b"partial")  # a killed copy's leftover
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint, "copy_atomic", half_then_full)
    mirror = Mirror(drive, RunDir(drive).checkpoint_dir, keep=MIRROR_KEEP, retries=1, backoff_s=0)
    mirror.submit(checkpoint.save({"step": 2, "w": torch.ones(64, 64)}, local, keep=2))
    mirror.close()
    assert "No space left on device" in mirror.failures[0]
    assert checkpoint.validate(RunDir(drive).checkpoint_dir / checkpoint.checkpoint_name(1)) is None
    RunDir(local, drive).clean_temp()  # what the next start does
    assert not [p for p in (RunDir(drive).checkpoint_dir).iterdir() if p.name.startswith(".tmp-")]


@pytest.fixture(scope="module")
def source():
    return Subset(Digits("train"), range(64))


@pytest.mark.slow
def test_through_train_the_failure_reaches_summary_and_metrics_and_the_mirror_alone_resumes(tmp_path, source,
                                                                                          monkeypatch):
    run, drive_dir = tmp_path / "run", tmp_path / "drive"
    cfg = get_config("tiny", batch_size=16, base_batch=16, epochs=3, log_every=1, ckpt_minutes=0, keep_checkpoints=2,
                     knn_every_epochs=None, mirror_dir=str(drive_dir))
    train(cfg, run, max_steps=2, source=source, progress=False)
    size = checkpoint.checkpoint_bytes(checkpoint.candidates(RunDir(run).checkpoint_dir)[0])
    drive = Drive(drive_dir, used(drive_dir) + int(1.5 * size))  # room for 2.5 checkpoints in all
    monkeypatch.setattr(shutil, "disk_usage", drive.usage)
    out = train(cfg, run, max_steps=4, source=source, progress=False)
    assert out["mirror_failures"] == [] and drive.peak <= drive.capacity
    drive.other = drive.capacity  # Drive is full from now on
    out = train(cfg, run, max_steps=6, source=source, progress=False)
    assert len(out["mirror_failures"]) == 2 and f"mirror {drive_dir}: step-00000005.pt" in out["mirror_failures"][0]
    assert "needs" in out["mirror_failures"][0] and "free" in out["mirror_failures"][0]
    assert "newest copy step-00000004.pt; 2 failed" in out["mirror_status"]
    assert [r["mirror_failures"] for r in read_metrics(run)[-2:]] == [0, 1]  # step 6's row saw step 5's failure
    shutil.rmtree(run)  # a new Colab session: only Drive is left
    drive.other = 0
    out = train(cfg, run, max_steps=7, source=source, progress=False)
    assert out["start_step"] == 4 and out["step"] == 7  # the mirror kept step 4, the newest complete copy


def test_pruned_mirror_copies_are_emptied_before_deletion(tmp_path, monkeypatch):
    """Drive keeps deleted files in its trash (quota) for 30 days: the mirror empties them first."""
    sizes, real_unlink = [], Path.unlink

    def unlink(self, missing_ok=False):
        if self.suffix == ".pt":
            sizes.append(self.stat().st_size)
        real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", unlink)
    local, drive = tmp_path / "run", tmp_path / "drive"
    for step in range(1, 5):
        mirror = Mirror(drive, drive / "ckpts", keep=MIRROR_KEEP, retries=1, backoff_s=0)
        mirror.submit(checkpoint.save({"step": step, "w": torch.ones(64, 64)}, local, keep=10))
        mirror.close()
    assert sizes == [0, 0]  # the mirror deleted steps 1 and 2, each emptied first; the local run deletes none
    assert checkpoint.validate(drive / "ckpts" / checkpoint.checkpoint_name(4)) is None
