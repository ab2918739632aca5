import json
import warnings

import numpy as np
import pytest
from imagekit import close, encode, hub_dataset, mean_color
from PIL import Image

from cijepa_lite.data.cache import CacheSource, copy_cache, incomplete_reason, prepare_cache, read_meta
from cijepa_lite.data.images import BadImageWarning
from cijepa_lite.data.parquet import ParquetDataset

CLASSES = ["cat", "dog", "eel"]
pytestmark = pytest.mark.filterwarnings("ignore::cijepa_lite.data.images.BadImageWarning")  # checked where it matters


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A Hub-layout dataset with every bad kind, prepared once into a cache (2 preparation processes)."""
    root = tmp_path_factory.mktemp("ds")
    truth = hub_dataset(root, CLASSES)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = prepare_cache(ParquetDataset.open(root), root / "cache", "test://ds", "abc123", short_side=16, workers=2)
    return root, out, truth, [str(w.message) for w in caught if issubclass(w.category, BadImageWarning)]


def test_every_good_image_is_in_the_cache_with_its_label(built):
    _, out, truth, _ = built
    for split in ("train", "val"):
        source = CacheSource(out, split)
        got = [(mean_color(img), label) for img, label in (source[i] for i in range(len(source)))]
        expected = [(c, y) for c, y, _ in truth[split] if c is not None]
        assert len(got) == len(expected)
        for (color, label), (want, want_label) in zip(got, expected):  # order kept: shard by shard, row by row
            assert label == want_label and close(color, want), (color, want)


def test_bad_images_are_skipped_warned_and_listed_by_name(built):
    _, out, truth, warned = built
    skipped = read_meta(out)["splits"]["train"]["skipped"]
    assert len(skipped) == len(truth["bad"]) and len(warned) == len(truth["bad"])
    for name, word in truth["bad"].items():
        (entry,) = [s for s in skipped if f"({name})" in s["where"]]
        assert entry["where"].startswith("train-0000") and " row " in entry["where"] and word in entry["reason"]
        assert any(entry["where"] in w for w in warned)


def test_meta_records_classes_counts_source_and_settings(built):
    _, out, truth, _ = built
    meta = read_meta(out)
    assert meta["classes"] == CLASSES and (meta["source"], meta["revision"]) == ("test://ds", "abc123")
    assert meta["short_side"] == 16 and meta["jpeg_quality"] == 90 and meta["version"] == 1
    for split in ("train", "val"):
        labels = [y for c, y, _ in truth[split] if c is not None]
        assert meta["splits"][split]["count"] == len(labels)
        assert meta["splits"][split]["per_class"] == np.bincount(labels, minlength=3).tolist()


def test_cached_images_have_their_short_side_resized_and_are_never_upsampled(tmp_path):
    from cijepa_lite.data.parquet import write_shard

    sizes = [(40, 30), (30, 60), (10, 12)]
    write_shard(tmp_path / "data" / "train-00000-of-00001.parquet",
                [encode(Image.new("RGB", s, (9, 9, 9)), "PNG") for s in sizes], [0, 1, 0], ["a", "b"])
    out = prepare_cache(ParquetDataset.open(tmp_path), tmp_path / "cache", "t", short_side=20, workers=0)
    got = [img.size for img, _ in (CacheSource(out, "train")[i] for i in range(3))]
    assert got == [(26, 20), (20, 40), (10, 12)]  # torchvision's Resize(20) sizes; 10x12 stays as it is
    with pytest.raises(FileNotFoundError, match="has no 'val' images"):
        CacheSource(out, "val")


def test_rerun_is_a_noop_and_a_half_finished_cache_is_redone(built, tmp_path):
    root, out, _, _ = built
    stamp = (out / "meta.json").stat().st_mtime_ns
    assert prepare_cache(ParquetDataset.open(root), out, "test://ds", "abc123", short_side=16, workers=0) == out
    assert (out / "meta.json").stat().st_mtime_ns == stamp
    half = tmp_path / "half"
    copy_cache(out, half)
    with open(half / "train-000.bin", "r+b") as f:  # as if a copy from Drive was cut off
        f.truncate(100)
    assert "100 bytes" in incomplete_reason(half)
    with pytest.raises(FileNotFoundError, match="prepare or copy it again"):
        CacheSource(half, "train")
    (tmp_path / "half.partial").mkdir()  # a crashed attempt's leftovers
    prepare_cache(ParquetDataset.open(root), half, "test://ds", "abc123", short_side=16, workers=0)
    assert incomplete_reason(half) is None and not (tmp_path / "half.partial").exists()
    assert len(CacheSource(half, "train")) == len(CacheSource(out, "train"))


def test_settings_mismatch_and_foreign_folders_are_refused(built, tmp_path):
    root, out, _, _ = built
    with pytest.raises(ValueError, match="short_side=16"):
        prepare_cache(ParquetDataset.open(root), out, "test://ds", "abc123", short_side=32, workers=0)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a cache"):
        prepare_cache(ParquetDataset.open(root), tmp_path, "t", short_side=16, workers=0)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_copy_cache_is_complete_and_skips_an_identical_copy(built, tmp_path):
    _, out, _, _ = built
    dst = copy_cache(out, tmp_path / "drive" / "cache")
    assert incomplete_reason(dst) is None and json.loads((dst / "meta.json").read_text())["id"] == read_meta(out)["id"]
    stamp = (dst / "train-000.bin").stat().st_mtime_ns
    copy_cache(out, dst)
    assert (dst / "train-000.bin").stat().st_mtime_ns == stamp
    a, b = CacheSource(out, "val")[2], CacheSource(dst, "val")[2]
    assert a[1] == b[1] and np.array_equal(np.asarray(a[0]), np.asarray(b[0]))


def test_shards_roll_over_at_the_size_limit(built, tmp_path, monkeypatch):
    import cijepa_lite.data.cache as cache

    root = built[0]
    monkeypatch.setattr(cache, "SHARD_BYTES", 2000)
    out = prepare_cache(ParquetDataset.open(root), tmp_path / "c", "t", short_side=16, workers=0)
    shards = read_meta(out)["splits"]["train"]["shards"]
    assert len(shards) > 1 and all(s["bytes"] <= 2000 for s in shards)
    ref = CacheSource(built[1], "train")
    got = CacheSource(out, "train")
    assert [got[i][1] for i in range(len(got))] == [ref[i][1] for i in range(len(ref))]
