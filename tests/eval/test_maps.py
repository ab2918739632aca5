"""Feature continuity and the per-depth PCA colouring of patch-feature maps."""
import torch

from cijepa_lite.eval.maps import continuity, pca_rgb, principal_axes


def test_continuity_is_the_mean_cosine_of_4_neighbours():
    assert abs(continuity(torch.ones(3, 4, 5)) - 1) < 1e-6  # one object everywhere
    v = torch.tensor([1.0, 0.0])
    checker = torch.stack([torch.stack([v if (r + c) % 2 else -v for c in range(4)]) for r in range(3)])
    assert abs(continuity(checker) + 1) < 1e-6  # every neighbour points the other way
    stripes = torch.stack([torch.stack([v if c < 2 else torch.tensor([0.0, 1.0]) for c in range(4)])] * 3)
    # 3 x 4 grid: 9 horizontal pairs (3 of them across the edge, cosine 0) and 8 vertical pairs (cosine 1)
    assert abs(continuity(stripes) - 14 / 17) < 1e-6


def test_pca_rgb_shares_its_axes_over_images_and_keeps_each_grid():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(2, 3, 8, generator=g) * 0.01 + torch.tensor([5.0] + [0.0] * 7)  # (2, 3, 8)
    b = torch.randn(4, 1, 8, generator=g) * 0.01 - torch.tensor([5.0] + [0.0] * 7)  # (4, 1, 8): portrait
    rgb_a, rgb_b = pca_rgb([a, b])
    assert rgb_a.shape == (2, 3, 3) and rgb_b.shape == (4, 1, 3)
    assert 0 <= min(rgb_a.min(), rgb_b.min()) and max(rgb_a.max(), rgb_b.max()) <= 1
    # the first component separates the two images: one end of the red channel each
    assert (rgb_a[..., 0] > 0.9).all() and (rgb_b[..., 0] < 0.1).all()
    mean, axes = principal_axes(torch.cat([a.reshape(-1, 8), b.reshape(-1, 8)]))
    assert axes.shape == (8, 3) and abs(axes[0, 0].item() - 1) < 1e-3  # the cluster axis, sign fixed positive
    again = pca_rgb([a, b])
    assert all(x.equal(y) for x, y in zip(again, (rgb_a, rgb_b)))  # deterministic
