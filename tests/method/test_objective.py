import pytest
import torch

from cijepa_lite import rng
from cijepa_lite.method.objective import cijepa_loss, depth_weights, sample_source_depths, teacher_targets


def test_worked_example_of_the_write_up():
    """L = 11, alpha 0.5, beta 0.8: intermediate rows 0.5 / 0.05, last row 0.8 / 0.02."""
    w = depth_weights(11, alpha=0.5, beta=0.8)
    assert w.shape == (11, 11)
    torch.testing.assert_close(w[:-1, -1], torch.full((10,), 0.5))
    torch.testing.assert_close(w[:-1, :-1], torch.full((10, 10), 0.05))
    assert w[-1, -1].item() == pytest.approx(0.8)
    torch.testing.assert_close(w[-1, :-1], torch.full((10,), 0.02))


@pytest.mark.parametrize("L", [2, 11, 12])
@pytest.mark.parametrize("alpha,beta", [(None, None), (0.5, 0.8), (None, 0.5), (0.8, None), (1 / 11, 1 / 11), (0.5, 1.0)])
def test_rows_sum_to_one(L, alpha, beta):
    torch.testing.assert_close(depth_weights(L, alpha, beta).sum(1), torch.ones(L))


def test_alpha_unset_gives_uniform_rows_and_beta_unset_takes_alpha():
    torch.testing.assert_close(depth_weights(11), torch.full((11, 11), 1 / 11))
    w = depth_weights(11, alpha=None, beta=0.8)  # R-B08
    torch.testing.assert_close(w[:-1], torch.full((10, 11), 1 / 11))
    assert w[-1, -1].item() == pytest.approx(0.8)
    torch.testing.assert_close(depth_weights(11, alpha=0.8), depth_weights(11, alpha=0.8, beta=0.8))
    w12 = depth_weights(12, 0.5, 0.8)  # R-A05-B08-12
    assert w12[0, 0].item() == pytest.approx(0.5 / 11) and w12[-1, 0].item() == pytest.approx(0.2 / 11)
    assert depth_weights(1, None, 1.0).tolist() == [[1.0]]  # I-JEPA


def test_teacher_targets_are_layer_normed_without_affine_on_the_blocks():
    g = torch.Generator().manual_seed(0)
    hidden = [torch.randn(2, 16, 8, generator=g) * (i + 1) + i for i in range(4)]
    targets = torch.tensor([[[0, 1], [5, 6]], [[3, 7], [8, 9]]])  # (B=2, M=2, N_tgt=2)
    y = teacher_targets(hidden, (1, 3), targets)
    assert y.shape == (2, 2, 2, 2, 8)
    h = hidden[3][1, 8]
    torch.testing.assert_close(y[1, 1, 0, 1], (h - h.mean()) / torch.sqrt(h.var(unbiased=False) + 1e-5))
    torch.testing.assert_close(y.mean(-1), torch.zeros(2, 2, 2, 2), atol=1e-5, rtol=0)


def test_cijepa_loss_is_the_weighted_mean_over_rows():
    g = torch.Generator().manual_seed(0)
    y = torch.randn(2, 4, 3, 5, 6, generator=g)
    preds = [torch.randn(2, 4, 3, 5, 6, generator=g) for _ in range(3)]
    w = depth_weights(5, 0.5, 0.8)
    sources = [0, 2, 4]
    loss, mse = cijepa_loss(preds, y, w, sources)
    expected = 0.0
    for p, s in zip(preds, sources):  # the write-up's triple sum, literally
        for m in range(4):
            for t in range(5):
                expected += w[s, t] * ((p[:, m, :, t] - y[:, m, :, t]) ** 2).mean()
    expected /= 4 * 3
    torch.testing.assert_close(loss, expected)
    assert mse.shape == (3, 5)


def test_source_sampling_is_seeded_and_uniform():
    from collections import Counter

    counts = Counter()
    for step in range(3000):
        s = sample_source_depths(11, 2, rng.generator(0, rng.SOURCES, step))
        assert len(s) == 3 and s[-1] == 10 and len(set(s)) == 3 and s == sorted(s)
        counts.update(s[:2])
    assert set(counts) == set(range(10))
    assert max(counts.values()) / min(counts.values()) < 1.25  # ~600 each
    assert sample_source_depths(11, 0, rng.generator(0)) == [10]
    assert sample_source_depths(11, 2, rng.generator(0, 1, 7)) == sample_source_depths(11, 2, rng.generator(0, 1, 7))
