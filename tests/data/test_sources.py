import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from imagekit import convertible, hub_dataset, unreadable
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import transforms as T

from cijepa_lite.data.cache import CacheSource, prepare_cache, read_meta
from cijepa_lite.data.folder import FolderDataset, FolderSource
from cijepa_lite.data.images import BadImageWarning
from cijepa_lite.data.parquet import ParquetDataset, ParquetSource
from cijepa_lite.data.sources import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Augmented,
    Digits,
    normalize,
    open_source,
    pretrain_transform,
    probe_train_transform,
    probe_val_transform,
)

CLASSES = ["cat", "dog", "eel"]


@pytest.fixture(autouse=True)
def one_thread():
    """Per-image transforms run on one thread (as in loader workers); two only add contention on a busy host."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


ALL_TRANSFORMS = [lambda: T.Compose([pretrain_transform(224, (0.3, 1.0)), normalize]), lambda: probe_train_transform(224),
                  lambda: probe_val_transform(224)]


def halves(size: int = 300) -> Image.Image:
    """Left half black, right half white: shows flips."""
    a = np.zeros((size, size, 3), np.uint8)
    a[:, size // 2 :] = 255
    return Image.fromarray(a)


@pytest.mark.parametrize("make", ALL_TRANSFORMS)
def test_transforms_give_float32_3x224x224_normalised_with_imagenet_statistics(make):
    color = (200, 100, 30)
    out = make()(Image.new("RGB", (300, 260), color))
    assert out.dtype == torch.float32 and out.shape == (3, 224, 224)
    expected = [(c / 255 - m) / s for c, m, s in zip(color, IMAGENET_MEAN, IMAGENET_STD)]
    assert torch.allclose(out, torch.tensor(expected).view(3, 1, 1).expand(3, 224, 224), atol=1e-5)


def test_pretraining_images_are_uint8_and_normalize_is_bitwise_totensor_then_normalize():
    a = np.random.default_rng(0).integers(0, 256, (40, 36, 3), dtype=np.uint8)
    img = Image.fromarray(a)
    crop = pretrain_transform(32, (0.3, 1.0))
    with torch.random.fork_rng():
        torch.manual_seed(5)
        raw = crop(img)
        torch.manual_seed(5)
        old = T.Compose([T.RandomResizedCrop(32, scale=(0.3, 1.0)), T.ToTensor(),
                         T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])(img)  # the float pipeline before issue 13
    assert raw.dtype == torch.uint8 and raw.shape == (3, 32, 32)
    assert torch.equal(normalize(raw[None])[0], old)


def test_probe_val_is_the_center_crop_of_a_256_resize():
    a = np.random.default_rng(0).integers(0, 256, (256, 300, 3), dtype=np.uint8)  # short side 256: no resize
    out = probe_val_transform(224)(Image.fromarray(a))
    crop = torch.from_numpy(a[16:240, 38:262]).permute(2, 0, 1).float() / 255
    expected = (crop - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(IMAGENET_STD).view(3, 1, 1)
    assert torch.allclose(out, expected, atol=1e-5)


def test_pretraining_never_flips_and_probe_training_does():
    img = halves()
    pre = Augmented([(img, 0)] * 40, pretrain_transform(224, (1.0, 1.0)))  # scale 1 on a square: whole image
    probe = Augmented([(img, 0)] * 40, probe_train_transform(224))
    flipped = lambda x: x[:, :, :112].float().mean() > x[:, :, 112:].float().mean()  # noqa: E731
    assert not any(flipped(pre[i, i][0]) for i in range(40))
    assert 5 < sum(flipped(probe[i, i][0]) for i in range(40)) < 35


def test_augmented_depends_only_on_the_seed_and_leaves_global_rng_alone():
    data = Augmented([(halves(), 3)] * 4, pretrain_transform(224, (0.3, 1.0)))
    state = torch.get_rng_state()
    a, label = data[0, 7]
    torch.manual_seed(123)  # global state must not matter
    assert torch.equal(data[2, 7][0], a) and label == 3
    assert not torch.equal(data[0, 8][0], a)
    torch.set_rng_state(state)
    data[0, 9]
    assert torch.equal(torch.get_rng_state(), state)


def _loader_labels(source, workers: int = 2) -> list[int]:
    keys = [(i, 1000 + i) for i in range(len(source))]
    loader = DataLoader(Augmented(source, pretrain_transform(32, (0.3, 1.0))), batch_size=4, sampler=keys,
                        num_workers=workers)
    labels = []
    for images, y in loader:
        assert images.shape[1:] == (3, 32, 32) and torch.isfinite(images).all()
        labels += y.tolist()
    return labels


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    return root, hub_dataset(root, CLASSES, n_train=10, n_val=4)


def test_raw_parquet_with_bad_images_runs_through_a_two_worker_loader(raw):
    root, truth = raw
    source = open_source(str(root), "train", 224)
    assert isinstance(source, ParquetSource) and len(source) == len(truth["train"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BadImageWarning)  # raised in the workers
        labels = _loader_labels(source)
    # A bad item is replaced by the next readable one (with that one's label); good items keep theirs.
    expected = [y for _, y, _ in truth["train"]]
    bad = [k for k, (c, _, _) in enumerate(truth["train"]) if c is None]
    n = len(expected)
    substitute = [next(j % n for j in range(k, k + n) if j % n not in bad) for k in range(n)]
    assert labels == [expected[j] for j in substitute]


def test_bad_item_substitute_is_deterministic_and_warned_once(raw):
    root, truth = raw
    source = ParquetSource(ParquetDataset.open(root), "train")
    k = [n for _, _, n in truth["train"]].index("html.JPEG")  # followed by bomb.png, then row 0 (wraps)
    with warnings.catch_warnings(record=True) as first:
        warnings.simplefilter("always")
        img, label = source[k]
        again, label2 = source[k]  # a second read of the same bad indices does not warn again
    assert len(first) == 2 and "(html.JPEG)" in str(first[0].message) and "(bomb.png)" in str(first[1].message)
    assert np.array_equal(np.asarray(img), np.asarray(again)) and (label, label2) == (truth["train"][0][1],) * 2
    assert np.array_equal(np.asarray(img), np.asarray(source[0][0]))


def test_image_folder_and_cache_sources_run_through_a_two_worker_loader(tmp_path):
    files = [(name, data) for name, (data, _) in [*convertible().items(), *unreadable().items()]]
    for k, (name, data) in enumerate(files):
        path = tmp_path / "folder" / "train" / CLASSES[k % 3] / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (tmp_path / "folder" / "val" / "cat").mkdir(parents=True)
    (tmp_path / "folder" / "val" / "cat" / "a.png").write_bytes(convertible()["rgba.png"][0])
    (tmp_path / "folder" / "train" / "cat" / "notes.txt").write_text("not an image")
    folder = open_source(str(tmp_path / "folder"), "train", 224)
    assert isinstance(folder, FolderSource) and len(folder) == 10 and folder.classes == CLASSES
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BadImageWarning)
        assert len(_loader_labels(folder)) == 10
        ds = FolderDataset.open(tmp_path / "folder")
        prepare_cache(ds, tmp_path / "cache", "t", short_side=16, workers=0)
    cache = open_source(str(tmp_path / "cache"), "train", 224)
    assert isinstance(cache, CacheSource) and len(cache) == 6
    expected = [y for f, y in zip(ds.files["train"], ds.labels["train"].tolist()) if f.name in convertible()]
    assert _loader_labels(cache) == expected
    skipped = read_meta(tmp_path / "cache")["splits"]["train"]["skipped"]
    assert sorted(Path(s["where"]).name for s in skipped) == sorted(unreadable())


def test_open_source_names(tmp_path, raw):
    assert isinstance(open_source("digits", "val", 32), Digits)
    with pytest.raises(FileNotFoundError, match="python -m cijepa_lite data --hub"):
        open_source("imagenet100", "train", 224, str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="not ImageNet-100"):
        open_source("imagenet100", "train", 224, str(raw[0]))  # 3 classes
    with pytest.raises(ValueError, match="'digits', 'imagenet100' or an existing path"):
        open_source("imagenet1k", "train", 224)
    with pytest.raises(ValueError, match="split"):
        open_source(str(raw[0]), "test", 224)
    with pytest.raises(FileNotFoundError, match="neither parquet shards .* nor an image folder"):
        open_source(str(tmp_path), "train", 224)
