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


def rope_by_hand(rows, cols, head_dim, base):
    """The sin|cos table of a rows x cols grid written out: per position, hd/4 bands on the row index and hd/4 on
    the column index, each angle repeated for the (even, odd) pair it rotates (timm's interleaved layout)."""
    inv_freq = base ** (-torch.arange(head_dim // 4, dtype=torch.float64) / (head_dim // 4))  # (hd/4,)
    r, c = torch.meshgrid(torch.arange(rows, dtype=torch.float64), torch.arange(cols, dtype=torch.float64),
                          indexing="ij")
    angles = torch.cat([r.reshape(-1, 1) * inv_freq, c.reshape(-1, 1) * inv_freq], dim=1)  # (N, hd/2)
    angles = angles.repeat_interleave(2, dim=1)  # (N, hd)
    return torch.cat([angles.sin(), angles.cos()], dim=1).float()  # (N, 2*hd)


def test_a_non_square_image_runs_at_its_own_grid_with_explicit_rope_positions(tiny_cfg):
    enc = CIJEPA(tiny_cfg).teacher
    images = torch.randn(2, 3, 4 * 5, 4 * 11)  # a 5 x 11 grid of 4-px patches: landscape, not the 8 x 8 of training
    hidden = enc(images)
    assert len(hidden) == tiny_cfg.depth and hidden[-1].shape == (2, 55, tiny_cfg.embed_dim)
    table = rope_by_hand(5, 11, tiny_cfg.embed_dim // tiny_cfg.num_heads, tiny_cfg.rope_base)
    x = enc.patch_embed(images)  # (B, 55, D)
    # patch (r, c) is token r * 11 + c: the conv's output, row-major
    conv = enc.patch_embed.proj(images)  # (B, D, 5, 11)
    torch.testing.assert_close(x, conv.flatten(2).transpose(1, 2))
    for blk, out in zip(enc.blocks, hidden):
        x = blk(x, rope=table)
        torch.testing.assert_close(out, x, rtol=1e-5, atol=1e-5)
    # transposing the grid is a different image: rows and columns rotate different halves of each head
    portrait = enc(images.transpose(-1, -2))[-1]  # 11 x 5
    assert portrait.shape == (2, 55, tiny_cfg.embed_dim)
    assert not torch.allclose(portrait.view(2, 11, 5, -1).transpose(1, 2).reshape(2, 55, -1), hidden[-1], atol=1e-3)


def test_the_training_grid_uses_the_registered_table_bitwise(tiny_cfg):
    enc = CIJEPA(tiny_cfg).teacher
    assert enc.rope_for(tiny_cfg.grid, tiny_cfg.grid) is enc.rope
    head_dim = tiny_cfg.embed_dim // tiny_cfg.num_heads
    torch.testing.assert_close(enc.rope, rope_by_hand(tiny_cfg.grid, tiny_cfg.grid, head_dim, tiny_cfg.rope_base))
    images = torch.randn(2, 3, 32, 32)
    x = enc.patch_embed(images)
    for blk in enc.blocks:
        x = blk(x, rope=enc.rope)
    assert enc(images)[-1].equal(x)  # bitwise: the square path is what it was
    # a table built for another shape is cached and holds the same numbers at the positions the grids share
    wide = enc.rope_for(8, 12)
    assert enc.rope_for(8, 12) is wide
    assert wide.view(8, 12, -1)[:, :8].reshape(64, -1).equal(enc.rope)
