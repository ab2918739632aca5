import random

import numpy as np
import pytest
from imagekit import close, mean_color, solid_jpeg

from cijepa_lite.data.folder import FolderDataset
from cijepa_lite.data.imagenet100 import NAMES, WNIDS
from cijepa_lite.data.parquet import ParquetDataset, ParquetSource, find_shards, write_shard


def test_find_shards_knows_the_hub_names_and_skips_hidden_folders(tmp_path):
    for name in ["data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet",
                 "data/validation-00000-of-00001.parquet", "data/test-00000-of-00001.parquet",
                 "default/val/0000.parquet", ".cache/huggingface/train-x.parquet"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert [p.relative_to(tmp_path).as_posix() for p in find_shards(tmp_path, "train")] == [
        "data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet"]
    assert [p.relative_to(tmp_path).as_posix() for p in find_shards(tmp_path, "val")] == [
        "data/validation-00000-of-00001.parquet", "default/val/0000.parquet"]


def test_string_labels_share_one_sorted_class_list_across_splits(tmp_path):
    write_shard(tmp_path / "train-0.parquet", [solid_jpeg((1, 2, 3))] * 3, ["zebra", "ant", "zebra"])
    write_shard(tmp_path / "validation-0.parquet", [solid_jpeg((1, 2, 3))] * 2, ["moth", "ant"])
    ds = ParquetDataset.open(tmp_path)
    assert ds.classes == ["ant", "moth", "zebra"]
    assert ds.labels["train"].tolist() == [2, 0, 2] and ds.labels["val"].tolist() == [1, 0]


def test_imagenet100_classlabel_in_any_order_maps_to_wnids_by_name(tmp_path):
    shuffled = list(NAMES)
    random.Random(0).shuffle(shuffled)  # a parquet whose ClassLabel order is not CMC's
    robin = shuffled.index("robin, American robin, Turdus migratorius")
    write_shard(tmp_path / "data" / "train-00000-of-00001.parquet", [solid_jpeg((9, 9, 9))] * 2, [robin, 0], shuffled)
    ds = ParquetDataset.open(tmp_path)
    assert ds.classes == list(WNIDS) and ds.class_names == list(NAMES)
    assert ds.labels["train"].tolist() == [WNIDS.index("n01558993"), NAMES.index(shuffled[0])]


def test_imagenet100_folder_gets_the_hub_label_indices(tmp_path):
    for wnid in WNIDS:  # class folders are WordNet ids; sorted order differs from CMC's
        (tmp_path / "train" / wnid).mkdir(parents=True)
    (tmp_path / "val" / "n01558993").mkdir(parents=True)
    (tmp_path / "val" / "n01558993" / "x.JPEG").write_bytes(solid_jpeg((1, 1, 1)))
    ds = FolderDataset.open(tmp_path)
    assert ds.classes == list(WNIDS) and ds.labels["val"].tolist() == [26]  # the Hub's label of "robin"
    assert NAMES[26].startswith("robin")


def test_a_shard_written_by_datasets_reads_with_names_labels_and_file_names(tmp_path):
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["b", "a"])})
    rows = {"image": [{"bytes": solid_jpeg((200, 10, 10)), "path": "n1_1.JPEG"},
                      {"bytes": solid_jpeg((10, 200, 10)), "path": "n1_2.JPEG"}], "label": [1, 0]}
    path = tmp_path / "data" / "train-00000-of-00001.parquet"
    path.parent.mkdir()
    datasets.Dataset.from_dict(rows, features=features).to_parquet(str(path))
    ds = ParquetDataset.open(tmp_path)
    assert ds.classes == ["b", "a"] and ds.labels["train"].tolist() == [1, 0]
    (unit,) = ds.units("train")
    items = list(unit.read())
    assert [w for _, _, w in items] == ["train-00000-of-00001.parquet row 0 (n1_1.JPEG)",
                                        "train-00000-of-00001.parquet row 1 (n1_2.JPEG)"]
    img, label = ParquetSource(ds, "train")[1]
    assert label == 0 and close(mean_color(img), (10, 200, 10))


def test_bad_columns_and_labels_are_named(tmp_path):
    write_shard(tmp_path / "a" / "train-0.parquet", [solid_jpeg((0, 0, 0))], [5], ["x", "y"])
    with pytest.raises(ValueError, match=r"train-0.parquet row 0: label 5 is not one of the 2 classes"):
        ParquetDataset.open(tmp_path / "a")
    write_shard(tmp_path / "b" / "train-0.parquet", [solid_jpeg((0, 0, 0))], [0], ["x"])
    with pytest.raises(ValueError, match=r"no column 'target' \(columns: image, label\)"):
        ParquetDataset.open(tmp_path / "b", label_column="target")
    with pytest.raises(FileNotFoundError, match="no parquet shards named train-"):
        ParquetDataset.open(tmp_path / "c")


def test_plain_int_labels_without_names_become_string_ids(tmp_path):
    write_shard(tmp_path / "train-0.parquet", [solid_jpeg((0, 0, 0))] * 2, [2, 0])
    ds = ParquetDataset.open(tmp_path)
    assert ds.classes == ["0", "1", "2"] and np.array_equal(ds.labels["train"], [2, 0])
