"""Many processes, one outcome: torchrun (gloo on CPU, a loader worker per rank) under signals, a dead rank,
an out-of-memory error on one rank, a signal while setting up, two "nodes" with their own --out, and --max-restarts."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from test_train import compare_runs, final_state

from cijepa_lite.engine import RunDir, checkpoint, read_metrics

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
RANKMAIN = Path(__file__).with_name("rankmain.py")
STEPS = 4
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]


def pretrain(out, steps=STEPS, ckpt_minutes="1e9") -> list[str]:
    return ["pretrain", "--preset", "tiny", "--out", str(out), "--steps", str(steps), "--no-progress", "batch_size=16",
            "base_batch=16", "log_every=1", "num_workers=1", "knn_every_epochs=none", f"ckpt_minutes={ckpt_minutes}"]


def env(tmp, fault=None) -> dict:
    """The children's environment: the fault for rankmain.py, where it writes each rank's status, a short timeout."""
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "CIJEPA_DIST_TIMEOUT_S": "60",
            "CIJEPA_TEST_FAULT": json.dumps(fault or {}), "CIJEPA_TEST_STATUS": str(tmp / "status")}


def torchrun(tmp, argv, fault=None, launcher=("--standalone", "--nproc_per_node=2")) -> subprocess.CompletedProcess:
    shutil.rmtree(tmp / "status", ignore_errors=True)
    return subprocess.run([*TORCHRUN, *launcher, str(RANKMAIN), *argv], cwd=ROOT, env=env(tmp, fault), text=True,
                          capture_output=True, timeout=600)


def statuses(tmp) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((tmp / "status").iterdir())}


def lines(output: str, prefix: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(prefix)]


@pytest.fixture(scope="module")
def together(tmp_path_factory):
    """The uninterrupted 2-rank run."""
    tmp = tmp_path_factory.mktemp("together")
    done = torchrun(tmp, pretrain(tmp / "run"))
    assert done.returncode == 0, done.stderr
    return tmp / "run"


@pytest.mark.parametrize("target", ["rank 1", "agent"])
def test_sigterm_to_one_rank_or_to_the_agent_stops_every_rank_at_one_checkpoint_and_the_rerun_is_bitwise_equal(
        tmp_path, together, target):
    fault = ({"rank": 1, "after": 1, "signal": int(signal.SIGTERM), "target": "self"} if target == "rank 1" else
             {"rank": 0, "after": 1, "signal": int(signal.SIGTERM), "target": "parent"})
    run = tmp_path / "run"
    out = torchrun(tmp_path, pretrain(run), fault).stderr
    assert statuses(tmp_path) == {"rank0": "143", "rank1": "143"}, out
    step3 = run / "checkpoints" / checkpoint.checkpoint_name(3)  # signalled after step 2: every rank stops after 3
    assert lines(out, "stopped:") == [f"stopped: SIGTERM at step 3: checkpoint {step3}; rerun the same command to "
                                      "resume"], out
    assert "[rank" not in out and "DataLoader worker" not in out  # no traceback from a worker
    assert checkpoint.candidates(run / "checkpoints") == [step3]  # written once
    again = torchrun(tmp_path, pretrain(run))
    assert again.returncode == 0 and statuses(tmp_path) == {"rank0": "0", "rank1": "0"}, again.stderr
    assert lines(again.stderr, "resuming") == [f"resuming {run} at step 3 from {step3} (local disk)"]
    assert compare_runs(together, run) == []


@pytest.mark.parametrize("at", ["resume", "open"])
def test_sigterm_to_the_agent_while_setting_up_stops_every_rank_in_one_line_with_nothing_written(tmp_path, at):
    """at "resume": rank 0 chooses the checkpoint while rank 1 waits for it inside a gloo collective, where the
    forwarded signal's handler runs only once the collective fails (rank 0 has gone); at "open": both open data."""
    run = tmp_path / "run"
    out = torchrun(tmp_path, pretrain(run, steps=2), {"rank": 0, "setup_signal": int(signal.SIGTERM), "at": at})
    assert out.returncode != 0 and statuses(tmp_path) == {"rank0": "143", "rank1": "143"}, out.stderr
    assert lines(out.stderr, "stopped:") == ["stopped: SIGTERM before the first step (while setting up): nothing "
                                             "trained, nothing half-written; rerun the same command to start"]
    assert "[rank" not in out.stderr and "cijepa_lite" not in out.stderr, out.stderr  # torchrun's agent's own only
    assert sorted(p for p in run.rglob("*") if p.is_file()) == [], out.stderr


def test_sigterm_to_a_single_process_group_with_a_loader_worker_checkpoints_and_the_rerun_is_bitwise_equal(tmp_path):
    def single(run, fault=None):
        proc = subprocess.Popen([sys.executable, str(RANKMAIN), *pretrain(run)], cwd=ROOT, env=env(tmp_path, fault),
                                text=True, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, start_new_session=True)
        return proc.wait(timeout=600), proc.stderr.read()

    assert single(tmp_path / "alone")[0] == 0
    run = tmp_path / "run"
    status, out = single(run, {"after": 1, "signal": int(signal.SIGTERM), "target": "group"})
    step2 = run / "checkpoints" / checkpoint.checkpoint_name(2)
    assert (status, out.splitlines()) == (143, [f"starting {run} fresh: no checkpoint there",
                                                f"stopped: SIGTERM at step 2: checkpoint {step2}; rerun the same "
                                                "command to resume"])
    assert single(run)[0] == 0
    assert compare_runs(tmp_path / "alone", run) == []


def test_a_killed_rank_is_named_by_the_survivor_in_bounded_time_and_max_restarts_resumes_the_run(tmp_path, together):
    """torchrun --max-restarts 1: attempt 0 loses rank 1 to SIGKILL; attempt 1 is the rerun of the same command."""
    run, once = tmp_path / "run", tmp_path / "killed"
    kill = {"rank": 1, "after": 1, "kill": True, "once": str(once)}  # once: the restarted rank 1 runs on
    out = torchrun(tmp_path, pretrain(run, ckpt_minutes=0), kill,  # ckpt_minutes=0: a checkpoint at every log step
                   ("--standalone", "--nproc_per_node=2", "--max-restarts=1"))
    assert out.returncode == 0, out.stderr
    assert statuses(tmp_path) == {"rank0": "1", "rank0-attempt1": "0", "rank1-attempt1": "0"}, out.stderr  # 1 died
    named = lines(out.stderr, "error: ")
    assert len(named) == 1 and re.match(r"error: rank 0: rank 1 \(pid \d+\) stopped answering", named[0]), out.stderr
    waited = (tmp_path / "status" / "rank0").stat().st_mtime - float(once.read_text())
    assert waited < 60, f"the survivor took {waited:.0f} s to stop"
    assert lines(out.stderr, "resuming") == [f"resuming {run} at step 1 from "
                                             f"{run / 'checkpoints' / checkpoint.checkpoint_name(1)} (local disk)"]
    assert compare_runs(together, run) == []


def test_out_of_memory_on_one_rank_halves_the_micro_batch_on_both_and_matches_the_unsplit_run(tmp_path, together):
    run = tmp_path / "run"
    out = torchrun(tmp_path, pretrain(run), {"rank": 1, "oom_over": 4})  # 8 images per rank do not fit on rank 1
    assert out.returncode == 0, out.stderr
    assert out.stderr.count("out of memory at step 0 with micro-batch 8 on rank 1: redoing the step with 4 on "
                            "every rank") == 1
    assert [(r["micro_batch"], r["oom_halvings"], r["world"]) for r in read_metrics(run)] == [(4, 1, 2)] * STEPS
    assert out.stdout.count('"run_dir"') == 1  # the summary, from rank 0 only
    whole, split = final_state(together), final_state(run)
    for part in ("student", "teacher", "predictors"):
        worst = max((whole[part][k] - split[part][k]).abs().max().item() for k in whole[part]
                    if whole[part][k].is_floating_point())
        assert worst <= 1e-6, f"{part} differs by {worst}"


def test_two_nodes_with_their_own_out_resume_consistently_or_refuse_in_one_line(tmp_path, together):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    outs = [tmp_path / "node0", tmp_path / "node1"]

    def nodes(steps: int) -> tuple[list[int], str]:
        """Two agents (--nnodes 2, one process each), each with its own --out."""
        shutil.rmtree(tmp_path / "status", ignore_errors=True)
        procs = [subprocess.Popen([*TORCHRUN, "--nnodes=2", f"--node_rank={i}", "--nproc_per_node=1",
                                   "--master_addr=127.0.0.1", f"--master_port={port}", str(RANKMAIN),
                                   *pretrain(outs[i], steps)], cwd=ROOT, env=env(tmp_path), text=True,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for i in (0, 1)]
        errs = [p.communicate(timeout=600)[1] for p in procs]
        return [p.returncode for p in procs], "\n".join(errs)

    codes, out = nodes(2)
    assert codes == [0, 0], out
    codes, out = nodes(STEPS)  # node 1's --out has no checkpoint: rank 1 cannot follow rank 0's step 2
    assert statuses(tmp_path) == {"rank0": "1", "rank1": "1"}, out
    refused = lines(out, "error: ")
    assert len(refused) == 1 and refused[0].startswith(
        f"error: rank 0 resumes from {checkpoint.checkpoint_name(2)} (step 2) but other ranks cannot load it "
        f"(rank 1: no {checkpoint.checkpoint_name(2)} in {outs[1] / 'checkpoints'})"), out
    shutil.copytree(outs[0] / "checkpoints", outs[1] / "checkpoints")
    codes, out = nodes(STEPS)
    assert codes == [0, 0], out
    assert compare_runs(together, outs[0]) == []


def test_a_loader_worker_killed_on_rank_1_stops_every_rank_at_one_checkpoint_and_the_rerun_is_bitwise_equal(tmp_path):
    steps = 7  # more than a worker prefetches (4) after the fault at step 0
    reference = torchrun(tmp_path, pretrain(tmp_path / "reference", steps))
    assert reference.returncode == 0, reference.stderr
    run = tmp_path / "run"
    out = torchrun(tmp_path, pretrain(run, steps), {"rank": 1, "after": 0, "worker_signal": int(signal.SIGKILL)}).stderr
    assert statuses(tmp_path) == {"rank0": "1", "rank1": "1"}, out
    saved = checkpoint.candidates(run / "checkpoints")
    assert len(saved) == 1 and 1 <= int(saved[0].stem.split("-")[1]) < steps, out
    errors = lines(out, "error:")
    assert len(errors) == 1 and errors[0].startswith("error: rank 1: a loader worker (pid "), out
    assert "killed by SIGKILL" in errors[0] and f"checkpoint {saved[0]} at step" in errors[0], out
    again = torchrun(tmp_path, pretrain(run, steps))
    assert again.returncode == 0, again.stderr
    assert compare_runs(tmp_path / "reference", run) == []
