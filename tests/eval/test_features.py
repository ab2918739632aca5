import torch

from cijepa_lite.eval import features
from cijepa_lite.method.encoder import VisionTransformer


def test_pooled_features_are_the_mean_over_patch_tokens(tiny_cfg):
    enc = VisionTransformer(tiny_cfg).eval()
    x = torch.randn(3, 3, 32, 32)
    hidden = enc(x)
    out = features.pooled(enc, x, [2, 5])
    assert out.shape == (2, 3, tiny_cfg.embed_dim)
    torch.testing.assert_close(out[1], hidden[5].mean(1))
    torch.testing.assert_close(out[0], hidden[2].mean(1))
