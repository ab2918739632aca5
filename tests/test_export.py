"""Export: safetensors + config + card that load back, with no run directory, into the run's exact teacher;
the same network as timm's Eva; the Hub upload called as it should be (the Hub itself is unreachable here)."""
import json

import pytest
import torch

import cijepa_lite
from cijepa_lite import load_encoder
from cijepa_lite.cli import main
from cijepa_lite.engine import load_encoders
from cijepa_lite.eval.results import make_result, write_result
from cijepa_lite.export import push_to_hub, timm_encoder


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    results = tmp_path_factory.mktemp("results")
    _, ckpt = load_encoders(tiny_run)
    probe = {"name": "logreg", "encoder": "teacher"}
    write_result(make_result(ckpt.config, ckpt.info(), probe, 42.5, {"d5": 42.5}), results)
    assert main(["export", "--run", str(tiny_run), "--out", str(out), "--results", str(results)]) == 0
    return out


def test_export_and_load_encoder_reproduce_the_teachers_features_exactly(tiny_run, exported, tmp_path):
    teacher = load_encoders(tiny_run)[0]["teacher"].eval()
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    for f in exported.iterdir():  # the folder alone, away from the run directory
        (moved / f.name).write_bytes(f.read_bytes())
    encoder = load_encoder(moved)
    assert "load_encoder" in cijepa_lite.__all__  # SPEC 9: the public surface
    for h, w in ((32, 32), (20, 48)):  # the training grid and a landscape 5 x 12 grid
        images = torch.randn(2, 3, h, w)
        with torch.no_grad():
            for a, b in zip(encoder(images), teacher(images), strict=True):
                assert a.equal(b)


def test_the_folder_holds_safetensors_config_and_card_and_no_pickle(tiny_run, exported):
    names = {p.name for p in exported.iterdir()}
    assert names == {"model.safetensors", "encoder.json", "README.md", "results.json"}
    assert not any(p.read_bytes()[:1] == b"\x80" or p.read_bytes()[:2] == b"PK" or p.suffix in (".pt", ".pkl")
                   for p in exported.iterdir())
    meta = json.loads((exported / "encoder.json").read_text())
    assert meta["run_id"] == "tiny" and meta["which"] == "teacher" and meta["step"] == 2
    card = (exported / "README.md").read_text()
    assert "tiny" in card and meta["git_sha"] in card
    assert "| logreg (teacher) | digits | 42.50 | - (not its recipe) |" in card
    assert json.loads((exported / "results.json").read_text())[0]["top1"] == 42.5


def test_the_encoder_as_timm_eva_gives_identical_features(exported):
    ours, eva = load_encoder(exported), timm_encoder(exported)
    images = torch.randn(2, 3, 36, 28)  # 9 x 7: portrait, not the training grid
    with torch.no_grad():
        mine = ours(images)
        theirs = eva.forward_intermediates(images, output_fmt="NLC", intermediates_only=True)
        assert eva.forward_features(images).equal(mine[-1])  # no final norm
    assert len(theirs) == len(mine)
    for a, b in zip(mine, theirs):
        assert a.equal(b)


def test_push_to_hub_creates_the_repo_and_uploads_the_folder(exported, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr("huggingface_hub.HfApi.create_repo", lambda self, *a, **k: calls.append(("create", a, k)))
    monkeypatch.setattr("huggingface_hub.HfApi.upload_folder", lambda self, *a, **k: calls.append(("upload", a, k)))
    assert push_to_hub(exported, "someone/tiny-cijepa") == "https://huggingface.co/someone/tiny-cijepa"
    (_, args, create), (_, _, upload) = calls
    assert args == ("someone/tiny-cijepa",) and create["exist_ok"] and create["repo_type"] == "model"
    assert upload["folder_path"] == str(exported) and upload["repo_id"] == "someone/tiny-cijepa"


def test_export_of_a_folder_without_checkpoints_is_a_one_line_error(tmp_path, capsys):
    assert main(["export", "--run", str(tmp_path), "--out", str(tmp_path / "out")]) == 1
    assert f"no checkpoint in {tmp_path}" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="not an exported encoder"):
        load_encoder(tmp_path)
