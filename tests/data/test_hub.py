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
