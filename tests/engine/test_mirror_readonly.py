"""A mirror that turns read-only (or cannot be locked) never fails or blocks a run; a read-only local disk
stops in one line naming the real error and the last good checkpoint."""
import os
import subprocess
import time
import warnings

import pytest
from torch.utils.data import Subset

from cijepa_lite.config import get_config
from cijepa_lite.data.sources import Digits
from cijepa_lite.engine import RunDir, checkpoint
from cijepa_lite.engine.lock import DirLock, LockBusy
from cijepa_lite.engine.train import train

SOURCE = Subset(Digits("train"), range(32))  # 2 steps per epoch at batch 16


def cfg(mirror, **kw):
    return get_config("tiny", batch_size=16, base_batch=16, epochs=2, log_every=1, ckpt_minutes=0,
                      knn_every_epochs=None, mirror_dir=str(mirror), **kw)


def tree(root):
    """Every path under `root` with its size (a listing to compare before and after)."""
    return sorted((str(p.relative_to(root)), p.stat().st_size if p.is_file() else -1) for p in root.rglob("*"))


def wait_for(path, timeout_s=120.0):
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


@pytest.fixture
def tmpfs(tmp_path):
    mnt = tmp_path / "drive"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mnt)],
                                           capture_output=True).returncode:
        pytest.skip("needs root and mount (tmpfs); test_mirror_lock_errors_are_reported covers it by injection")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=True)


def remount(mnt, mode):
    subprocess.run(["mount", "-o", f"remount,{mode}", str(mnt)], check=True)


@pytest.mark.slow
def test_a_mirror_remounted_read_only_mid_run_finishes_the_run_and_the_next_start_trains(tmp_path, tmpfs):
    run, mirror = tmp_path / "run", tmpfs / "r"

    def turn_read_only(row):
        if row["step"] == 2:  # step 1's copy is complete (config.json travels last), then the mount turns read-only
            wait_for(mirror / "config.json")
            remount(tmpfs, "ro")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = train(cfg(mirror), run, max_steps=2, source=SOURCE, progress=False, on_log=turn_read_only)
    assert summary["step"] == 2 and summary["stopped"] == "steps"
    assert checkpoint.validate(run / "checkpoints" / "step-00000002.pt") is None
    assert any("step-00000002.pt not copied" in f and "Read-only" in f for f in summary["mirror_failures"])
    assert "failed" in summary["mirror_status"]
    assert any("could not remove the lock" in str(w.message) for w in caught)  # the release warned, never raised
    before = tree(tmpfs)
    summary = train(cfg(mirror), run, source=SOURCE, progress=False)  # the mirror is still read-only
    assert summary["step"] == 4 and summary["start_step"] == 2
    assert any("cannot lock the mirror" in f and "Read-only" in f for f in summary["mirror_failures"])
    assert tree(tmpfs) == before  # nothing written there
    remount(tmpfs, "rw")
    with pytest.warns(UserWarning, match="taking over the lock of mirror directory"):  # writable again
        with RunDir(run, mirror).lock():
            assert (mirror / "run.lock").exists()
    assert not (mirror / "run.lock").exists()  # the stale lock was taken over, then released


@pytest.mark.slow
def test_a_read_only_local_disk_stops_in_one_line_naming_the_error_and_the_last_good_checkpoint(tmp_path, tmpfs):
    run = tmpfs / "run"

    def turn_read_only(row):
        if row["step"] == 2:
            remount(tmpfs, "ro")

    with pytest.raises(OSError) as e:
        train(cfg(tmp_path / "mirror"), run, max_steps=2, source=SOURCE, progress=False, on_log=turn_read_only)
    message = str(e.value)
    assert "Read-only file system" in message and "\n" not in message
    assert message.endswith(f"the last good checkpoint is {run / 'checkpoints' / 'step-00000001.pt'}")


def test_mirror_lock_errors_are_reported_and_a_live_holder_still_refuses(tmp_path, monkeypatch):
    """Injected: the mirror's lock cannot be taken (OSError) -> reported; a live holder -> LockBusy."""
    acquire = DirLock.acquire

    def read_only_mirror(self):
        if self.what == "mirror directory":
            raise OSError(30, "Read-only file system", str(self.path))
        return acquire(self)

    rd = RunDir(tmp_path / "run", tmp_path / "mirror")
    monkeypatch.setattr(DirLock, "acquire", read_only_mirror)
    with pytest.warns(UserWarning, match="cannot lock the mirror .*Read-only file system"):
        stack = rd.lock()
    with stack:
        mirror = rd.open_mirror()
        mirror.submit(tmp_path / "x.pt")
        mirror.close()
    assert "Read-only" in mirror.status() and len(mirror.failures) == 2
    assert not (tmp_path / "run" / "run.lock").exists()
    monkeypatch.setattr(DirLock, "acquire", acquire)
    with DirLock(tmp_path / "mirror" / "run.lock", "mirror directory"):  # held by a live process (this one)
        with pytest.raises(LockBusy, match="mirror directory .* is in use by process"):
            RunDir(tmp_path / "run", tmp_path / "mirror").lock()
        assert not (tmp_path / "run" / "run.lock").exists()  # the run's lock was released again


def test_releasing_a_lock_never_raises(tmp_path, monkeypatch):
    lock = DirLock(tmp_path / "run.lock").acquire()
    monkeypatch.setattr(type(lock.path), "unlink", lambda *a, **k: (_ for _ in ()).throw(OSError(30, "Read-only")))
    with pytest.warns(UserWarning, match="could not remove the lock .*Read-only"):
        lock.release()
