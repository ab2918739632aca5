"""The kNN monitor: weighted cosine votes, fixed subsets, its schedule, and the hook in train()."""
import pytest
import torch
from torch.utils.data import Subset

from cijepa_lite.config import get_config
from cijepa_lite.data.sources import Digits
from cijepa_lite.engine import RunDir, read_metrics
from cijepa_lite.engine.train import train
from cijepa_lite.eval import knn
from cijepa_lite.eval.knn import KNNMonitor, fixed_subset, is_due, knn_top1


def small_digits(dataset, split, size, data_dir=None):
    """100 images of a digits split, in place of the whole split (keeps the test to seconds)."""
    subset = Subset(Digits(split, size), range(100))
    subset.classes = Digits.classes
    return subset


def test_votes_are_weighted_by_exp_similarity_over_temperature():
    """One very close neighbour of class 0 outvotes two distant ones of class 1 (a plain majority would not)."""
    bank = torch.tensor([[1.0, 0.0], [0.2, 1.0], [0.2, 1.0], [-1.0, 0.0]])
    labels = torch.tensor([0, 1, 1, 2])
    query = torch.tensor([[1.0, 0.05]])
    assert knn_top1(bank, labels, query, torch.tensor([0]), num_classes=3, k=3) == 100.0
    assert knn_top1(bank, labels, query, torch.tensor([1]), num_classes=3, k=3, temperature=100.0) == 100.0


def test_cosine_neighbours_separate_clusters_and_ignore_scale():
    g = torch.Generator().manual_seed(0)
    centers = torch.eye(4) * 5
    bank = torch.cat([c + torch.randn(30, 4, generator=g) for c in centers])
    labels = torch.arange(4).repeat_interleave(30)
    queries = torch.cat([c + torch.randn(10, 4, generator=g) for c in centers]) * 7.0  # scale must not matter
    q_labels = torch.arange(4).repeat_interleave(10)
    assert knn_top1(bank, labels, queries, q_labels, 4, chunk=7) == 100.0
    assert knn_top1(bank, labels, queries, q_labels.roll(10), 4) == 0.0


class Source(list):
    classes = ["a", "b"]


def test_subsets_are_fixed_by_seed():
    src = Source(range(100))
    a, b, c = fixed_subset(src, 10, 0, 0), fixed_subset(src, 10, 0, 0), fixed_subset(src, 10, 1, 0)
    assert a.indices == b.indices and a.indices != c.indices and len(set(a.indices)) == 10
    assert a.classes == ["a", "b"] and fixed_subset(src, 10, 0, 1).indices != a.indices
    assert fixed_subset(src, 500, 0, 0) is src


def test_due_once_per_period_at_log_steps():
    log_steps = range(2, 25, 2)  # 4 steps per epoch, a reading every 1.5 epochs = 6 steps
    assert [s for prev, s in zip([0, *log_steps], log_steps) if is_due(1.5, prev, s, 4)] == [6, 12, 18, 24]
    log_steps = range(5, 25, 5)  # log steps that straddle the period still read once per period
    assert [s for prev, s in zip([0, *log_steps], log_steps) if is_due(1.5, prev, s, 4)] == [10, 15, 20]


def test_the_monitor_needs_a_period():
    with pytest.raises(ValueError, match="knn_every_epochs=None"):
        KNNMonitor(get_config("tiny", knn_every_epochs=None), torch.device("cpu"))
    with pytest.raises(ValueError, match="knn_every_epochs=0"):
        KNNMonitor(get_config("tiny", knn_every_epochs=0), torch.device("cpu"))


@pytest.mark.slow
def test_train_logs_knn_every_epoch_without_changing_training(tmp_path, monkeypatch):
    monkeypatch.setattr(knn, "open_source", small_digits)
    source = Subset(Digits("train"), range(64))
    base = dict(batch_size=16, base_batch=16, epochs=2, log_every=2, ckpt_minutes=1e9)
    train(get_config("tiny", **base), tmp_path / "off", source=source, progress=False)
    train(get_config("tiny", knn_every_epochs=1, **base), tmp_path / "on", source=source, progress=False)
    rows = read_metrics(tmp_path / "on")
    assert [r["step"] for r in rows if "knn_top1" in r] == [4, 8]
    assert all(0 <= r["knn_top1"] <= 100 for r in rows if "knn_top1" in r)
    assert not any("knn_top1" in r for r in read_metrics(tmp_path / "off"))
    off, on = (RunDir(tmp_path / r).latest() for r in ("off", "on"))
    for part in ("student", "teacher"):
        assert all(torch.equal(getattr(off, part)[k], getattr(on, part)[k]) for k in getattr(off, part))
