"""One writer per run directory: a live holder is refused naming it, a dead one's lock is taken over."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from cijepa_lite.engine import RunDir, read_metrics
from cijepa_lite.engine.lock import STALE_S, DirLock, LockBusy, process_started

ROOT = Path(__file__).resolve().parents[2]


def test_a_held_lock_refuses_a_second_holder_naming_it_and_is_released(tmp_path):
    with DirLock(tmp_path / "run.lock"):
        with pytest.raises(LockBusy, match=rf"in use by process {os.getpid()} on .* since \d{{4}}-"):
            DirLock(tmp_path / "run.lock").acquire()
    with DirLock(tmp_path / "run.lock"):  # released on exit: free again
        pass
    assert not (tmp_path / "run.lock").exists()


def test_a_refused_mirror_lock_releases_the_run_directory_lock(tmp_path):
    with DirLock(tmp_path / "drive" / "run.lock"):
        with pytest.raises(LockBusy, match="mirror directory"):
            RunDir(tmp_path / "run", tmp_path / "drive").lock()
    with RunDir(tmp_path / "run").lock():
        pass


def write_record(path: Path, pid: int, host: str, start) -> None:
    path.write_text(json.dumps({"pid": pid, "host": host, "process_start": start, "locked": time.time()}))


@pytest.mark.slow
def test_a_dead_holders_lock_is_taken_over_with_a_warning(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock = tmp_path / "run.lock"
    write_record(lock, dead.pid, os.uname().nodename, None)
    with pytest.warns(UserWarning, match=f"process {dead.pid} that locked it .* is gone"):
        with DirLock(lock):
            assert json.loads(lock.read_text())["pid"] == os.getpid()


def test_a_reused_pid_does_not_keep_a_lock(tmp_path):
    lock = tmp_path / "run.lock"
    write_record(lock, os.getpid(), os.uname().nodename, psutil.Process().create_time() - 100)
    with pytest.warns(UserWarning, match="pid was reused"):
        DirLock(lock).acquire().release()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="start times since boot come from Linux's /proc")
def test_a_live_holder_keeps_its_lock_when_the_wall_clock_steps(tmp_path, monkeypatch):
    """psutil's create_time moves with the boot time the kernel derives from the wall clock (a stepped VM clock
    moves it): the lock compares the holder's start since boot, which does not move."""
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        lock = tmp_path / "run.lock"
        record = {"pid": holder.pid, "host": os.uname().nodename, "process_start": psutil.Process(holder.pid).create_time(),
                  "started": process_started(holder.pid), "locked": time.time()}
        lock.write_text(json.dumps(record))
        create_time = psutil.Process.create_time
        monkeypatch.setattr(psutil.Process, "create_time", lambda self: create_time(self) + 3600.0)  # a 1 h step
        with pytest.raises(LockBusy, match=f"in use by process {holder.pid}"):
            DirLock(lock).acquire()
        holder.kill()
        holder.wait()
        with pytest.warns(UserWarning, match=f"process {holder.pid} that locked it .* is gone"):
            DirLock(lock).acquire().release()
    finally:
        holder.kill()
        holder.wait()


def test_another_hosts_lock_counts_until_its_heartbeat_is_stale(tmp_path):
    lock = tmp_path / "run.lock"
    write_record(lock, 1, "another-colab-vm", 0.0)
    with pytest.raises(LockBusy, match="process 1 on another-colab-vm"):
        DirLock(lock).acquire()
    old = time.time() - STALE_S - 1
    os.utime(lock, (old, old))
    with pytest.warns(UserWarning, match="another-colab-vm .* has not touched it"):
        DirLock(lock).acquire().release()


@pytest.mark.slow
def test_two_commands_on_one_out_one_trains_and_a_killed_holder_is_taken_over(tmp_path):
    """A Colab cell run twice: the second exits at once naming the first; after a SIGKILL the lock is taken over."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "cijepa_lite", "pretrain", "--preset", "tiny", "--out", str(tmp_path), "--steps",
           "1000", "--no-progress", "batch_size=16", "base_batch=16", "log_every=1", "ckpt_minutes=0"]
    first = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = RunDir(tmp_path).metrics_file
    deadline = time.time() + 120
    while not (metrics.exists() and metrics.read_text().count("\n") >= 1) and time.time() < deadline:
        time.sleep(0.05)
    t0 = time.time()
    second = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    waited = time.time() - t0
    assert first.poll() is None, "the first run ended before the second started"
    # the lock is taken before any data or model is opened: the wait is Python importing torch (seconds on an
    # idle machine, tens of seconds on a loaded 2-core one)
    assert second.returncode == 1 and waited < 120
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and f"in use by process {first.pid}" in lines[0] and "Traceback" not in second.stderr
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=60)
    stop = len(read_metrics(tmp_path)) + 2  # the killed run checkpointed every step: resume, then 2 more
    cmd[cmd.index("1000")] = str(stop)
    third = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert third.returncode == 0, third.stderr
    assert "taking over the lock" in third.stderr and f"process {first.pid}" in third.stderr
    assert [r["step"] for r in read_metrics(tmp_path)] == list(range(1, stop + 1))
    assert not (tmp_path / "run.lock").exists()
