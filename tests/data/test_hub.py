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
