"""A campaign across real sessions (separate processes): one SIGKILLed mid-run, two at once, one run failing.

The runs are `tiny` on a 48-image folder, 2 epochs of 3 steps, so each session is seconds of training; the
sessions run with one thread (OMP_NUM_THREADS=1), and so do the reference runs they are compared with bitwise.
"""
import json
import signal
import time
from pathlib import Path

import pytest
import torch

from cijepa_lite import cli
from cijepa_lite.campaign import entries, entry_config, open_campaign
from cijepa_lite.engine import RunDir, read_metrics, train
from tests.campaign_kit import finish, image_folder, overrides, session

ROWS = "R-A05-B08,L200,R-A.-B08"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return image_folder(tmp_path_factory.mktemp("digits-folder"))


def status_json(root: Path, capsys) -> dict:
    capsys.readouterr()
    assert cli.main(["campaign", "--root", str(root), "--status", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def wait_for_step(run: Path, step: int, proc) -> None:
    """Until the run's metrics log reaches `step` (the session must still be running)."""
    deadline = time.time() + 600
    while time.time() < deadline:
        try:
            if any(r["step"] >= step for r in read_metrics(run)):
                return
        except FileNotFoundError:
            pass
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        time.sleep(0.05)
    raise AssertionError(f"{run} never reached step {step}")


def results(root: Path, entry: str) -> list[Path]:
    return sorted((root / "results" / entry / "runs").glob("*.json"))


@pytest.mark.slow
def test_four_sessions_one_killed_end_with_every_run_probed_once_and_the_uninterrupted_weights(tmp_path, data, capsys):
    root = tmp_path / "campaign"
    define = ["--rows", ROWS, "--base", "tiny", *overrides(data)]
    first = finish(session(root, *define, "--steps", "2"))
    assert "R-A05-B08-s0: trained steps 0-2 of 6" in first
    killed = session(root, *define)  # the same command again: resumes R-A05-B08-s0 at 2
    wait_for_step(root / "runs" / "R-A05-B08-s0", 4, killed)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    assert RunDir(root / "runs" / "R-A05-B08-s0").latest().step == 2  # killed mid-run: its steps 3-4 are lost
    third = finish(session(root, *define, "--steps", "5"))
    assert "R-A05-B08-s0: trained steps 2-6 of 6 (done)" in third and "L200-s0: trained steps 0-1 of 6" in third
    fourth = finish(session(root, *define))
    assert "L200-s0: trained steps 1-6 of 6 (done)" in fourth and "R-A.-B08-s0: trained steps 0-6 of 6" in fourth
    got = status_json(root, capsys)
    assert [(r["id"], r["state"], r["step"], r["total_steps"]) for r in got["runs"]] == [
        (f"{row}-s0", "probed", 6, 6) for row in ROWS.split(",")]
    assert all(len(results(root, r["id"])) == 1 and 0 <= r["top1"] <= 100 for r in got["runs"])
    assert got["next"].startswith("the campaign is complete: 3/3 runs probed")
    assert (root / "figures" / "campaign.png").stat().st_size > 0 and (root / "figures" / "table.png").exists()
    spec, threads = open_campaign(root), torch.get_num_threads()
    torch.set_num_threads(1)  # as the sessions ran (OMP_NUM_THREADS=1): another thread count sums in another order
    try:
        for entry in entries(spec):  # the same runs trained uninterrupted, in this process
            train(entry_config(spec, entry), tmp_path / "whole" / entry["id"], progress=False)
    finally:
        torch.set_num_threads(threads)
    for entry in entries(spec):
        whole, pieced = RunDir(tmp_path / "whole" / entry["id"]).latest(), RunDir(root / "runs" / entry["id"]).latest()
        for part in ("student", "teacher", "predictors"):
            a, b = getattr(whole, part), getattr(pieced, part)
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), (entry["id"], part)
        steps = [r["step"] for r in read_metrics(root / "runs" / entry["id"])]
        assert steps == list(range(1, 7))  # the killed session's steps 3-4 were redone once, not logged twice


@pytest.mark.slow
def test_two_sessions_at_once_train_different_runs_and_no_step_twice(tmp_path, data, capsys):
    root = tmp_path / "campaign"
    define = ["--rows", "R-A05-B08,L200", "--base", "tiny", "--steps", "6", *overrides(data)]
    both = [session(root, *define), session(root, *define)]  # one whole run each
    outs = [finish(p) for p in both]
    trained = [[e for e in ("R-A05-B08-s0", "L200-s0") if f"{e}: trained steps 0-6" in out] for out in outs]
    assert sorted(trained) == [["L200-s0"], ["R-A05-B08-s0"]], outs
    for entry in ("R-A05-B08-s0", "L200-s0"):
        steps = [r["step"] for r in read_metrics(root / "runs" / entry)]
        assert steps == sorted(set(steps)) == list(range(1, 7))
    assert [r["state"] for r in status_json(root, capsys)["runs"]] == ["probed", "probed"]


@pytest.mark.slow
def test_a_run_with_a_non_finite_loss_is_marked_failed_with_its_reason_and_the_others_complete(tmp_path, data,
                                                                                               capsys):
    root = tmp_path / "campaign"
    open_campaign(root, ["L200", "R-A05-B08"], [0], "tiny", overrides(data, epochs=1),
                  entry_overrides={"L200-s0": {"base_lr": "1e30", "max_skipped_steps": "1", "epochs": "3"}})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # in this process, as the sessions run (a loaded CI machine)
    try:
        assert cli.main(["campaign", "--root", str(root), "--no-progress", "--settle-s", "0"]) == 0
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "L200-s0: failed: " in out and "R-A05-B08-s0: probed" in out
    got = {r["id"]: r for r in status_json(root, capsys)["runs"]}
    assert got["L200-s0"]["state"] == "failed" and "non-finite" in got["L200-s0"]["reason"]
    assert got["R-A05-B08-s0"]["state"] == "probed" and got["R-A05-B08-s0"]["reason"] is None
    assert cli.main(["campaign", "--root", str(root), "--status"]) == 0
    text = capsys.readouterr().out
    assert "L200-s0" in text and "failed" in text and "--retry-failed" in text
    assert cli.main(["campaign", "--root", str(root), "--no-progress", "--settle-s", "0"]) == 0
    again = capsys.readouterr().out  # a failed run is skipped, not retried, until asked
    assert "L200-s0" not in again.replace("failed (skipped; --retry-failed to retry): L200-s0", "")
