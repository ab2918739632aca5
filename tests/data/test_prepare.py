import shutil

import pytest
from imagekit import hub_dataset

from cijepa_lite.cli import main
from cijepa_lite.data.cache import incomplete_reason, read_meta
from cijepa_lite.data.prepare import prepare_data

pytestmark = pytest.mark.filterwarnings("ignore::cijepa_lite.data.images.BadImageWarning")


def _run(argv: list[str]) -> int:
    return main(["data", *argv])


def test_data_command_prepares_local_parquet_and_lists_skipped_images(tmp_path, capsys):
    truth = hub_dataset(tmp_path / "shards", ["a", "b"])
    assert _run(["--parquet-dir", str(tmp_path / "shards"), "--out", str(tmp_path / "cache"), "--workers", "0"]) == 0
    out = capsys.readouterr().out
    assert f"train: {len(truth['train']) - len(truth['bad'])} images, {len(truth['bad'])} skipped, 2 classes" in out
    assert all(f"({name})" in out for name in truth["bad"]) and f"cache ready at {tmp_path / 'cache'}" in out


def test_data_command_reports_an_unreachable_hub_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert _run(["--hub", "--out", str(tmp_path / "cache")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("data: cannot download clane9/imagenet-100@") and "offline" in err


def test_prepare_data_mirrors_to_drive_and_restores_from_it_without_the_hub(tmp_path, monkeypatch):
    hub_dataset(tmp_path / "shards", ["a", "b"], bad=False)
    local, drive = tmp_path / "local" / "cache", tmp_path / "drive" / "cache"
    assert prepare_data(local, tmp_path / "shards", short_side=16, workers=0, mirror=drive) == local
    assert incomplete_reason(drive) is None and read_meta(drive)["id"] == read_meta(local)["id"]
    shutil.rmtree(local)  # a new Colab session: the local disk is empty, Drive is not
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # any attempt to download would fail
    assert prepare_data(local, "hub", short_side=16, workers=0, mirror=drive) == local
    assert read_meta(local)["id"] == read_meta(drive)["id"]
    with pytest.raises(ValueError, match="short_side=16, not 32"):
        prepare_data(local, "hub", short_side=32)
