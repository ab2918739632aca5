"""The run directory: checkpoint schema and content checks, the one resume policy, the metrics log, the mirror copy-back."""
import json
import warnings

import pytest
import torch

from cijepa_lite.config import get_config
from cijepa_lite.engine import RunDir, read_metrics, resolve_config
from cijepa_lite.engine.checkpoint import candidates
from cijepa_lite.engine.optim import make_optimizer
from cijepa_lite.engine.rundir import MetricsLog, content_problem
from cijepa_lite.method import CIJEPA


@pytest.fixture(scope="module")
def model_and_optimizer():
    cfg = get_config("tiny", depth=2, collect_from=-1, intermediate_rows=0, pred_depth=1)
    model = CIJEPA(cfg)
    return cfg, model, make_optimizer(cfg, model)


def test_a_saved_checkpoint_loads_back_with_every_field(tmp_path, model_and_optimizer):
    cfg, model, optimizer = model_and_optimizer
    run = RunDir(tmp_path)
    path = run.save(7, cfg, model, optimizer, {"epoch": 0.5, "total_steps": 20, "wall_time_s": 3.0})
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"step", "config", "student", "teacher", "predictors", "optimizer", "meta"}
    ckpt = run.latest()
    assert ckpt.step == 7 and ckpt.config == cfg and ckpt.path == path
    assert all(torch.equal(v, model.student.state_dict()[k]) for k, v in ckpt.student.items())
    assert ckpt.info()["epochs_done"] == 0.5 and ckpt.info()["epochs_planned"] == cfg.epochs


def test_non_finite_weights_are_never_written(tmp_path, model_and_optimizer):
    cfg, model, optimizer = model_and_optimizer
    bad = CIJEPA(cfg)
    with torch.no_grad():
        bad.teacher.blocks[0].attn.qkv.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite weights in.*teacher.blocks.0.attn.qkv.weight"):
        RunDir(tmp_path).save(3, cfg, bad, optimizer, {})
    assert not candidates(RunDir(tmp_path).checkpoint_dir)


def _sound_state(cfg, model, optimizer) -> dict:
    return {"step": 1, "config": cfg.to_dict(), "student": model.student.state_dict(),
            "teacher": model.teacher.state_dict(), "predictors": model.predictors.state_dict(),
            "optimizer": optimizer.state_dict(), "meta": {}}


def _first_key(d: dict) -> str:
    return next(iter(d))


@pytest.mark.parametrize("spoil,reason", [
    (lambda s: [1, 2], "holds a list, not a dict"),
    (lambda s: {"step": 1}, "lacks keys"),
    (lambda s: s | {"teacher": "a string"}, "wrong types in ['teacher']"),
    (lambda s: s | {"step": "7"}, "wrong types in ['step']"),
    (lambda s: s | {"config": s["config"] | {"embed_dim": "wide"}}, "unusable config"),
    (lambda s: s | {"student": s["student"] | {_first_key(s["student"]): torch.zeros(3, 5)}}, "shapes the model"),
    (lambda s: s | {"predictors": {"x": torch.zeros(1)}}, "predictors keys differ"),
    (lambda s: s | {"student": s["student"] | {_first_key(s["student"]): "not a tensor"}}, "not tensors"),
    (lambda s: s | {"optimizer": {"state": {}}}, "optimizer state lacks"),
    (lambda s: s | {"teacher": s["teacher"] | {_first_key(s["teacher"]): torch.full(
        s["teacher"][_first_key(s["teacher"])].shape, float("inf"))}}, "non-finite weights in ['teacher."),
])
def test_content_problems_are_named(model_and_optimizer, spoil, reason):
    state = _sound_state(*model_and_optimizer)
    assert content_problem(state) is None
    assert reason in content_problem(spoil(state))


def test_the_resume_policy_keeps_the_checkpoints_config_and_refuses_a_different_one():
    saved = get_config("tiny", epochs=3)
    again = resolve_config(get_config("tiny", epochs=3, log_every=7, num_workers=2), saved)
    assert again.log_every == 7 and again.num_workers == 2 and again == get_config("tiny", epochs=3, log_every=7,
                                                                                  num_workers=2)
    with pytest.raises(ValueError, match=r"all_to_last_weight: checkpoint 0.5 vs now 0.3.*--allow-config-change"):
        resolve_config(get_config("tiny", epochs=3, all_to_last_weight=0.3), saved)
    allowed = resolve_config(get_config("tiny", epochs=4), saved, allow_change=True)
    assert allowed.epochs == 4
    assert resolve_config(saved, None) is saved  # a new run takes what was asked


def test_metrics_log_drops_rows_past_the_resumed_step_and_a_torn_line(tmp_path):
    path = RunDir(tmp_path).metrics_file
    path.write_text("".join(json.dumps({"step": s}) + "\n" for s in (1, 2, 3, 4)) + '{"step": 5, "lo')
    log = MetricsLog(path, resume_step=2)
    log.write({"step": 3, "loss": 0.1})
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2, 3] and read_metrics(tmp_path)[-1]["loss"] == 0.1
    with pytest.raises(FileNotFoundError, match="is .* a run directory"):
        read_metrics(tmp_path / "nowhere")


def test_a_new_session_copies_the_newest_checkpoint_back_from_the_mirror(tmp_path, model_and_optimizer):
    cfg, model, optimizer = model_and_optimizer
    drive = RunDir(tmp_path / "drive")
    for step in (2, 4):
        drive.save(step, cfg, model, optimizer, {})
    drive.metrics_file.write_text('{"step": 4}\n')
    local = RunDir(tmp_path / "local", mirror=drive.path)
    assert local.has_checkpoints() and local.copy_back_newest()
    assert [p.name for p in candidates(local.checkpoint_dir)] == [candidates(drive.checkpoint_dir)[0].name]
    assert read_metrics(local.path) == [{"step": 4}]
    assert not local.copy_back_newest()  # there is one here now
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert RunDir(tmp_path / "local").latest().step == 4
