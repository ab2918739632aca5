"""The encoder: the recipe's size, the student sees only its context, RoPE at every kept token's true position."""
import torch

from cijepa_lite import rng
from cijepa_lite.config import PRESETS
from cijepa_lite.method import CIJEPA, MaskSampler
from cijepa_lite.method.encoder import VisionTransformer


def count(module):
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def batch(cfg, b=4, step=0):
    g = rng.generator(cfg.seed, rng.MASKS, step)
    images = torch.randn(b, 3, cfg.img_size, cfg.img_size, generator=g)
    context, targets = MaskSampler(cfg)(b, g)
    return images, context, targets


def test_vit_b16_has_the_recipes_parameter_count():
    assert count(VisionTransformer(PRESETS["L200"])) == 85_645_056


def test_student_only_sees_context_tokens(tiny_cfg):
    model = CIJEPA(tiny_cfg)
    images, context, targets = batch(tiny_cfg, b=2)
    hidden = model.student(images, keep=context)
    assert len(hidden) == tiny_cfg.depth and hidden[0].shape == (2, context.shape[1], tiny_cfg.embed_dim)
    # Changing pixels outside the context leaves the student's output unchanged.
    mask = torch.zeros(2, tiny_cfg.num_patches, dtype=torch.bool)
    mask.scatter_(1, context, True)
    pix = mask.view(2, 1, tiny_cfg.grid, 1, tiny_cfg.grid, 1).expand(2, 3, -1, 4, -1, 4).reshape(images.shape)
    noisy = torch.where(pix, images, torch.randn_like(images))
    torch.testing.assert_close(model.student(noisy, keep=context)[-1], hidden[-1])


def test_rope_rotates_each_kept_token_at_its_true_position(tiny_cfg):
    """Encoding a subset equals encoding the full image with attention restricted to that subset."""
    enc = CIJEPA(tiny_cfg).student
    images = torch.randn(1, 3, 32, 32)
    keep = torch.tensor([[0, 5, 9, 17, 40, 63]])
    sub = enc(images, keep=keep)[-1]
    x = enc.patch_embed(images)
    allowed = torch.full((64, 64), float("-inf"))
    allowed[:, keep[0]] = 0.0
    for blk in enc.blocks:
        x = blk(x, rope=enc.rope, attn_mask=allowed)
    torch.testing.assert_close(sub, x[:, keep[0]], rtol=1e-4, atol=1e-5)
    # A wrong position changes the result: positions matter.
    shifted = enc(images.roll(1, dims=-1), keep=keep)[-1]
    assert not torch.allclose(shifted, sub)
