"""TensorBoard and W&B across resumes: one value per global step, one W&B run id, rank 0 alone, failures one line."""
import json
import signal
import struct
import warnings
from pathlib import Path

import pytest
from forkkit import Server
from test_ranks import pretrain, torchrun
from test_train import small

from cijepa_lite.engine import RunDir, read_metrics, train
from cijepa_lite.engine.tracking import scalars

pytestmark = pytest.mark.slow  # real processes and whole (short) runs
wandb = pytest.importorskip("wandb", reason="wandb is an optional extra (pip install wandb)")


def tensorboard_steps(run: Path, tag: str = "train/loss") -> list[int]:
    """The steps of `tag` as TensorBoard's reader shows them (purged events dropped)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(RunDir(run).tensorboard_dir))
    acc.Reload()
    return [e.step for e in acc.Scalars(tag)]


def raw_tensorboard_steps(run: Path, tag: str = "train/loss") -> list[int]:
    """Every step written for `tag` in every event file, purged or not."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    files = sorted(RunDir(run).tensorboard_dir.glob("events.out.tfevents.*"))
    return [e.step for f in files for e in EventFileLoader(str(f)).Load()
            if e.HasField("summary") and any(v.tag == tag for v in e.summary.value)]


def wandb_records(path: Path) -> list:
    """The records of an offline W&B run file (a LevelDB-style log of protobuf records in 32 KiB blocks)."""
    from wandb.proto import wandb_internal_pb2

    data, pos, part, out = path.read_bytes(), 7, b"", []  # 7: the ":W&B" header, its magic and version
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        if left < 7:  # a block's tail too short for a record header is padding
            pos += left
            continue
        _, size, kind = struct.unpack("<IHB", data[pos:pos + 7])
        part, pos = part + data[pos + 7:pos + 7 + size], pos + 7 + size
        if kind in (1, 4):  # FULL or LAST: a whole record
            record = wandb_internal_pb2.Record()
            record.ParseFromString(part)
            out.append(record)
            part = b""
    return out


def wandb_runs(run: Path) -> list[dict]:
    """Each offline W&B attempt under `run`, in order: its run id, group and the steps it logged (an attempt killed
    before W&B's writer flushed left no records: skipped)."""
    out = []
    for d in sorted((run / "wandb").glob("offline-run-*")):
        records = wandb_records(next(d.glob("run-*.wandb")))
        meta = next((r.run for r in records if r.WhichOneof("record_type") == "run"), None)
        if meta is None:
            continue
        steps = [r.history.step.num for r in records if r.WhichOneof("record_type") == "history"]
        config = {i.key: json.loads(i.value_json) for r in records if r.WhichOneof("record_type") == "config"
                  for i in r.config.update}
        config.update({i.key: json.loads(i.value_json) for i in meta.config.update})
        out.append({"id": meta.run_id, "group": meta.run_group, "steps": steps, "config": config})
    return out


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")


def test_a_run_sigkilled_after_a_checkpoint_and_rerun_has_one_tensorboard_event_per_step(tmp_path):
    run = tmp_path / "run"
    argv = pretrain(run, steps=2)
    with Server() as server:
        assert server.run(argv, tmp_path / "log1") == 0  # checkpoint at step 2
        argv[argv.index("--steps") + 1] = "6"
        status = server.run(argv, tmp_path / "log2", {"signal_after": [4, signal.SIGKILL]})  # logged 3, 4; killed
        assert status == -signal.SIGKILL
        assert server.run(argv, tmp_path / "log3") == 0, (tmp_path / "log3").read_text()
    assert sorted(raw_tensorboard_steps(run)) == [1, 2, 3, 3, 4, 4, 5, 6]  # the killed attempt's 3 and 4 are there
    assert tensorboard_steps(run) == [1, 2, 3, 4, 5, 6]  # ... and TensorBoard reads each step once
    assert tensorboard_steps(run, "loss_row/d5") == [1, 2, 3, 4, 5, 6]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(RunDir(run).tensorboard_dir))
    acc.Reload()
    logged = [e.value for e in acc.Scalars("train/loss")]
    assert logged == pytest.approx([r["loss"] for r in read_metrics(run)], rel=1e-6)
    tags = set(acc.Tags()["scalars"])
    assert {"train/lr", "train/weight_decay", "train/momentum", "monitor/rankme", "monitor/teacher_std",
            "perf/step_time_s", "perf/images_per_s", "perf/memory_gib", "loss_target/d1"} <= tags


def test_an_offline_wandb_run_resumed_twice_is_one_run_id_with_monotonic_steps(tmp_path, offline, monkeypatch):
    from torch.utils.data import Subset

    from cijepa_lite.data.sources import Digits

    source, run = Subset(Digits("train"), range(64)), tmp_path / "run"
    monkeypatch.setenv("WANDB_RUN_GROUP", "table")  # what a campaign sets (campaign/session.py)
    cfg = small(wandb="me/cijepa", knn_every_epochs=None)
    for stop in (2, 4, 6):
        assert train(cfg, run, max_steps=stop, source=source, progress=False)["step"] == stop
    attempts = wandb_runs(run)
    stored = json.loads(RunDir(run).wandb_file.read_text())
    assert len(attempts) == 3 and {a["id"] for a in attempts} == {stored["id"]} and stored["step"] == 6
    assert [s for a in attempts for s in a["steps"]] == [1, 2, 3, 4, 5, 6]
    assert {a["group"] for a in attempts} == {"table"}
    config = attempts[-1]["config"]
    assert config["run_id"] == "tiny" and config["kit_version"] and config["git_sha"] and config["device"]


def test_a_rerun_sends_wandb_only_the_steps_after_those_already_sent(tmp_path, offline):
    """After a kill that rolled back to a checkpoint: steps already sent are not sent again (W&B refuses them)."""
    from torch.utils.data import Subset

    from cijepa_lite.data.sources import Digits

    source, run = Subset(Digits("train"), range(64)), tmp_path / "run"
    cfg = small(wandb="cijepa", knn_every_epochs=None)
    train(cfg, run, max_steps=2, source=source, progress=False)
    state = json.loads(RunDir(run).wandb_file.read_text())
    RunDir(run).wandb_file.write_text(json.dumps({**state, "step": 4}))  # as if a killed attempt had sent 3 and 4
    train(cfg, run, max_steps=6, source=source, progress=False)
    assert [a["steps"] for a in wandb_runs(run)] == [[1, 2], [5, 6]]
    assert tensorboard_steps(run) == [1, 2, 3, 4, 5, 6]


def test_two_processes_under_torchrun_and_a_restart_log_once_to_one_wandb_run(tmp_path, offline, monkeypatch):
    monkeypatch.delenv("WANDB_SERVICE", raising=False)  # not this pytest process's W&B service (an earlier test's)
    run = tmp_path / "run"
    argv = pretrain(run, steps=4, ckpt_minutes="0") + ["wandb=cijepa"]
    fault = {"after": 1, "kill": True, "once": str(tmp_path / "killed")}  # rank 0 dies in step 2, after step 1's ckpt
    done = torchrun(tmp_path, argv, fault, launcher=("--standalone", "--nproc_per_node=2", "--max-restarts=1"))
    assert done.returncode == 0, done.stderr[-2000:]
    attempts = wandb_runs(run)
    assert len(list((run / "wandb").glob("offline-run-*"))) == 2  # one per torchrun attempt: rank 0 alone logs
    assert {a["id"] for a in attempts} == {json.loads(RunDir(run).wandb_file.read_text())["id"]}
    assert attempts[-1]["steps"] == [2, 3, 4]  # the killed attempt's step 1 may still sit in W&B's write buffer
    steps = [s for a in attempts for s in a["steps"]]
    assert steps == sorted(set(steps))
    assert len(list(RunDir(run).tensorboard_dir.glob("events.out.tfevents.*"))) == 2
    assert tensorboard_steps(run) == [1, 2, 3, 4] and sorted(raw_tensorboard_steps(run)) == [1, 2, 3, 4]


@pytest.mark.parametrize("broken", ["bad project name", "no network", "not installed"])
def test_a_broken_wandb_warns_in_one_line_and_the_run_finishes(tmp_path, monkeypatch, broken):
    from torch.utils.data import Subset

    from cijepa_lite.data.sources import Digits

    project = "a/b/c" if broken == "bad project name" else "cijepa"
    monkeypatch.delenv("WANDB_MODE", raising=False)
    if broken == "no network":  # a key, and a W&B server that refuses connections
        monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
        monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
        monkeypatch.setenv("WANDB_INIT_TIMEOUT", "5")
        wandb.teardown()  # W&B reads its settings from the environment once per process: an earlier test's are set
    if broken == "not installed":
        monkeypatch.setitem(__import__("sys").modules, "wandb", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = train(small(wandb=project, knn_every_epochs=None), tmp_path, max_steps=2,
                        source=Subset(Digits("train"), range(64)), progress=False)
    assert summary["step"] == 2 and tensorboard_steps(tmp_path) == [1, 2]
    said = [str(w.message) for w in caught if str(w.message).startswith("W&B")]
    assert len(said) == 1 and "\n" not in said[0] and "training goes on" in said[0], said
    if broken == "no network":  # online failed: the run is logged offline instead
        assert [a["steps"] for a in wandb_runs(tmp_path)] == [[1, 2]]


def test_scalars_name_every_logged_number_and_derive_step_time(tiny_cfg):
    import torch

    row = {"step": 20, "loss": 0.5, "rows": {"d5": 0.2}, "targets": {"d1": 0.3}, "lr": 1e-3, "momentum": 0.99,
           "weight_decay": 0.3, "images_per_s": 64.0, "teacher_std": None, "rankme": 12.0, "knn_top1": 0.7, "epoch": 1.0, "skipped": 0}
    values = scalars(row, tiny_cfg, torch.device("cpu"))
    assert values["perf/step_time_s"] == tiny_cfg.batch_size / 64.0
    assert values["train/weight_decay"] == 0.3 and values["loss_row/d5"] == 0.2
    assert "monitor/teacher_std" not in values and values["monitor/knn_top1"] == 0.7 and values["perf/memory_gib"] > 0
