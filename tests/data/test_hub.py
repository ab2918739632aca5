import os
import time

import pytest
from imagekit import solid_jpeg

import cijepa_lite.data.hub as hub
from cijepa_lite.data.imagenet100 import HUB_REVISION, NAMES
from cijepa_lite.data.parquet import write_shard


@pytest.fixture
def no_proxy(monkeypatch):
    for name in hub.PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_revision_is_a_pinned_commit_sha():
    assert len(HUB_REVISION) == 40 and all(c in "0123456789abcdef" for c in HUB_REVISION)


def test_unreachable_endpoint_fails_fast_with_a_clear_message(tmp_path, no_proxy, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    start = time.monotonic()
    with pytest.raises(hub.HubUnreachable, match=r"cannot reach the Hugging Face Hub at http://127\.0\.0\.1:9"):
        hub.download_imagenet100(tmp_path, endpoint="http://127.0.0.1:9")
    assert time.monotonic() - start < 10


def test_offline_mode_fails_fast_with_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(hub.HubUnreachable, match="offline mode"):
        hub.download_imagenet100(tmp_path / "dl")
    assert time.monotonic() - start < 10


def test_fast_transfer_uses_xet_high_performance(monkeypatch):
    monkeypatch.delenv("HF_XET_HIGH_PERFORMANCE", raising=False)
    monkeypatch.delenv("HF_HUB_ENABLE_HF_TRANSFER", raising=False)
    hub.enable_fast_transfer()
    assert os.environ["HF_XET_HIGH_PERFORMANCE"] == "1"
    assert "HF_HUB_ENABLE_HF_TRANSFER" not in os.environ  # huggingface_hub >= 1.0 here: hf_transfer is gone


def test_verify_download_checks_counts_and_classes(tmp_path, monkeypatch):
    for split, n in (("train", 3), ("validation", 2)):
        path = tmp_path / "data" / f"{split}-00000-of-00001.parquet"
        write_shard(path, [solid_jpeg((1, 1, 1))] * n, [0] * n, list(NAMES))
    with pytest.raises(ValueError, match=r"train: 3 images in 1 shards, expected 126,689; val: 2 images"):
        hub.verify_download(tmp_path)
    monkeypatch.setattr(hub, "SPLIT_COUNTS", {"train": 3, "val": 2})
    assert hub.verify_download(tmp_path) == {"train": 3, "val": 2}


# --- any Hub image dataset (`data --hub OWNER/NAME`), with huggingface_hub's download copying from local folders ---

MAIN, CONVERTED_SHA = "a" * 40, "c" * 40


def screens(n: int, offset: int = 0) -> list[bytes]:
    """Screenshot-shaped JPEGs (portrait 1080x2400 and landscape 1920x1080, scaled down), colours by index."""
    return [solid_jpeg((20 + 9 * k % 200, 60, 90), (54, 120) if k % 2 else (96, 54)) for k in range(offset, offset + n)]


def remote(root, layout: str, labelled: bool, column: str = "image", val: str = "validation"):
    """A Hub dataset's two branches as local folders: main/ (its own files) and convert/ (refs/convert/parquet).

    layout "data": the repo's own data/<split>-*.parquet; "convert": main holds no parquet (e.g. a zip of images),
    the conversion branch holds <config>/<split>/0000.parquet. 16 train images and 4 val, labels 0/1 if labelled.
    """
    (root / "main").mkdir(parents=True)
    (root / "main" / "README.md").write_text("# screens\n")
    for split, images in (("train", screens(16)), (val, screens(4, 100))):
        labels = [k % 2 for k in range(len(images))] if labelled else None
        path = f"main/data/{split}-00000-of-00001.parquet" if layout == "data" else f"convert/default/{split}/0000.parquet"
        write_shard(root / path, images, labels, ["home", "settings"] if labelled else None, image_column=column)
    return root


@pytest.fixture
def hub_copy(monkeypatch):
    """huggingface_hub.snapshot_download copying the branch asked for from `calls["remote"]`; records the calls."""
    import fnmatch
    import shutil

    import huggingface_hub

    calls = {"revisions": []}

    def fake(repo_id, repo_type, revision, cache_dir, allow_patterns, **kw):
        calls["revisions"].append(revision)
        branch, sha = ("convert", CONVERTED_SHA) if revision == hub.CONVERTED else ("main", MAIN)
        src = calls["remote"] / branch
        out = os.path.join(cache_dir, f"datasets--{repo_id.replace('/', '--')}", "snapshots", sha)
        for f in (src.rglob("*") if src.exists() else []):
            rel = f.relative_to(src).as_posix()
            if f.is_file() and any(fnmatch.fnmatch(rel, p) for p in allow_patterns):
                os.makedirs(os.path.join(out, os.path.dirname(rel)), exist_ok=True)
                shutil.copy(f, os.path.join(out, rel))
        os.makedirs(out, exist_ok=True)
        return out

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake)
    monkeypatch.setattr(hub, "check_reachable", lambda endpoint: None)
    return calls


def data_hub(tmp_path, *extra) -> list[str]:
    return ["data", "--hub", "me/screens", "--out", str(tmp_path / "cache"), "--download-dir", str(tmp_path / "dl"),
            "--workers", "0", "--short-side", "32", *extra]


def test_data_hub_prepares_a_labelled_dataset_from_its_own_shards_and_pins_the_commit(tmp_path, hub_copy, capsys):
    from cijepa_lite.cli import main
    from cijepa_lite.data.cache import read_meta
    from cijepa_lite.data.sources import open_source

    hub_copy["remote"] = remote(tmp_path / "remote", "data", labelled=True)
    assert main(data_hub(tmp_path)) == 0
    meta = read_meta(tmp_path / "cache")
    assert hub_copy["revisions"] == ["main"] and meta["revision"] == MAIN and meta["source"] == "hf://datasets/me/screens"
    assert meta["classes"] == ["home", "settings"] and meta["splits"]["train"]["per_class"] == [8, 8]
    assert f"at revision {MAIN}" in capsys.readouterr().out
    image, label = open_source(str(tmp_path / "cache"), "val", 32)[1]
    assert label == 1 and min(image.size) == 32 and image.size[0] != image.size[1]  # the aspect is kept


def test_data_hub_falls_back_to_the_parquet_conversion_of_an_unlabelled_dataset(tmp_path, hub_copy, capsys):
    from cijepa_lite.cli import main
    from cijepa_lite.data.cache import read_meta

    hub_copy["remote"] = remote(tmp_path / "remote", "convert", labelled=False, column="png", val="test")
    assert main(data_hub(tmp_path, "--image-column", "png", "--split", "train=train,val=test")) == 0
    meta = read_meta(tmp_path / "cache")
    assert hub_copy["revisions"] == ["main", hub.CONVERTED] and meta["revision"] == CONVERTED_SHA
    assert meta["classes"] == [] and {s: i["count"] for s, i in meta["splits"].items()} == {"train": 16, "val": 4}
    assert "unlabelled" in capsys.readouterr().out


@pytest.mark.parametrize("case", ["no parquet anywhere", "wrong image column", "bad --split"])
def test_data_hub_refuses_what_it_cannot_use_in_one_line(tmp_path, hub_copy, capsys, case):
    from cijepa_lite.cli import main

    hub_copy["remote"] = tmp_path / "remote"
    if case != "no parquet anywhere":
        remote(tmp_path / "remote", "data", labelled=True)
    extra = {"wrong image column": ["--image-column", "img"], "bad --split": ["--split", "train"]}.get(case, [])
    assert main(data_hub(tmp_path, *extra)) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("data: ")
    assert {"no parquet anywhere": "holds no parquet files", "wrong image column": "no column 'img'",
            "bad --split": "give train=NAME"}[case] in err


@pytest.mark.slow  # a short pretraining
def test_an_unlabelled_hub_dataset_pretrains_and_is_inspected_and_probe_says_it_needs_labels(tmp_path, hub_copy,
                                                                                             capsys):
    from cijepa_lite.cli import main

    hub_copy["remote"] = remote(tmp_path / "remote", "data", labelled=False)
    assert main(data_hub(tmp_path)) == 0
    run = tmp_path / "run"
    assert main(["pretrain", "--preset", "tiny", "--out", str(run), "--steps", "2", "--no-progress",
                 f"dataset={tmp_path / 'cache'}", "batch_size=8", "base_batch=8", "knn_every_epochs=none"]) == 0
    assert main(["inspect", "--run", str(run), "--n-images", "2", "--out", str(tmp_path / "maps.png")]) == 0
    assert (tmp_path / "maps.png").stat().st_size > 0
    capsys.readouterr()
    assert main(["probe", "--run", str(run), "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "probe needs labels" in err
def _dropped_connections():
    """A dropped connection as each transport the allowed huggingface_hub versions use raises it, where installed."""
    errors = []
    for module, name, *args in (("httpx", "RemoteProtocolError", "peer closed connection"),  # hub >= 1.0
                                ("httpx", "ReadTimeout", "read timed out"),
                                ("requests.exceptions", "ChunkedEncodingError", "connection broken")):  # hub 0.x
        cls = getattr(pytest.importorskip(module), name)
        errors.append(pytest.param(cls(*args), id=f"{module}.{name}"))
    return errors


@pytest.mark.parametrize("error", _dropped_connections())
def test_a_dropped_download_is_retried_with_backoff_then_reported_in_one_line(tmp_path, monkeypatch, error):
    import huggingface_hub

    calls, waits = [], []

    def snapshot_download(*args, **kwargs):
        calls.append(kwargs["local_dir"])
        if len(calls) < 3:
            raise error  # two drops, then the download completes
        return kwargs["local_dir"]

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.setattr(hub, "check_reachable", lambda endpoint: None)
    monkeypatch.setattr(hub.time, "sleep", waits.append)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert hub.download_imagenet100(tmp_path, retries=3) == tmp_path and len(calls) == 3 and waits == [2, 4]
    calls.clear()
    with pytest.raises(hub.HubUnreachable) as raised:
        hub.download_imagenet100(tmp_path, retries=2)
    assert len(calls) == 2 and "\n" not in str(raised.value)
    assert str(raised.value).startswith("downloading clane9/imagenet-100@") and str(error) in str(raised.value)
