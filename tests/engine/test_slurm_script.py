"""docs/slurm-pretrain.sbatch under stand-ins for SLURM's commands and torchrun (no SLURM here): the time-limit
signal (USR1 to the batch shell) requeues the job, the shell then waits for the run to stop, and exits with the
run's own status (143 after its checkpoint). That the kit checkpoints on SIGTERM on every rank is tested with real
processes in test_ranks.py."""
import os
import signal
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "docs" / "slurm-pretrain.sbatch"


def stand_in(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(0o755)


def wait_for(predicate, what: str, proc: subprocess.Popen, limit_s: float = 120.0) -> None:
    """Poll until `predicate()` holds; fail (with the script's output) if the script ends first or after limit_s."""
    deadline = time.monotonic() + limit_s
    while not predicate():
        assert proc.poll() is None, f"the script ended (status {proc.returncode}) before {what}: {proc.stdout.read()}"
        assert time.monotonic() < deadline, f"no {what} after {limit_s} s"
        time.sleep(0.05)


def test_the_time_limit_signal_requeues_and_the_script_exits_with_the_runs_status_after_its_checkpoint(tmp_path):
    bin_dir, calls, pid = tmp_path / "bin", tmp_path / "calls", tmp_path / "torchrun.pid"
    bin_dir.mkdir()
    stand_in(bin_dir, "scontrol", f'echo "scontrol $*" >> {calls}\nif [ "$1" = show ]; then echo node0; fi\n')
    stand_in(bin_dir, "srun", f'echo "srun $1" >> {calls}\nshift\nexec "$@"\n')  # srun OPTION bash -c CMD
    # torchrun: on SIGTERM it "checkpoints" and exits 143, as every rank of the kit does
    stand_in(bin_dir, "torchrun", f'echo "torchrun $*" >> {calls}\n'
                                  f'trap \'echo "checkpoint" >> {calls}; exit 143\' TERM\necho $$ > {pid}\n'
                                  'while :; do sleep 0.05; done\n')
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "SLURM_JOB_ID": "42",
           "SLURM_JOB_NODELIST": "node[0-1]", "SLURM_NNODES": "2", "SLURM_GPUS_ON_NODE": "4", "PRESET": "tiny",
           "OUT": str(tmp_path / "out")}
    proc = subprocess.Popen(["bash", str(SCRIPT)], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        wait_for(lambda: pid.exists() and pid.read_text().strip(), "torchrun start", proc)
        os.kill(proc.pid, signal.SIGUSR1)  # #SBATCH --signal=B:USR1@180: to the batch shell only
        wait_for(lambda: "scontrol requeue 42" in calls.read_text(), "requeue", proc)
        assert proc.poll() is None  # still waiting for the run to stop
        os.kill(int(pid.read_text()), signal.SIGTERM)  # what SLURM sends every process of the step
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 143, out
    assert out.splitlines() == ["time limit near: checkpoint and requeue", "pretrain exited with status 143"]
    assert calls.read_text().splitlines() == [
        "scontrol show hostnames node[0-1]", "srun --kill-on-bad-exit=1",
        "torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint=node0:29500 --rdzv-id=42 "
        f"-m cijepa_lite pretrain --preset tiny --out {tmp_path / 'out'} --no-progress",
        "scontrol requeue 42", "checkpoint"]
