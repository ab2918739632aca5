"""The ViT encoder (student and EMA teacher): timm blocks, 2-D axial RoPE, no final LayerNorm.

Legend: B batch, N patches (grid x grid), N_ctx context tokens, D width, hd head dim.
Positions are flat patch indices, row-major on the grid; RoPE rotates each kept token at its
true (row, col), so the student can see only its context tokens (SPEC 1).
"""
from __future__ import annotations

from functools import partial

import torch
from timm.layers import PatchEmbed, RotaryEmbeddingCat, trunc_normal_
from timm.models.eva import EvaBlock
from torch import nn

from ..config import Config

LayerNorm = partial(nn.LayerNorm, eps=1e-6)  # [IJ] eps 1e-6


def make_blocks(dim: int, depth: int, num_heads: int, mlp_ratio: float, norm_layer=LayerNorm) -> nn.ModuleList:
    """`depth` pre-LN transformer blocks with RoPE attention, qkv bias, GELU MLP, no layer scale.

    timm's EvaBlock with attn_type="rope" is AttentionRope (a plain fused qkv Linear with bias) plus
    a standard MLP; its "eva" attention would drop the key bias (SPEC 1, last row).
    """
    return nn.ModuleList(
        EvaBlock(dim, num_heads, qkv_bias=True, mlp_ratio=mlp_ratio, num_prefix_tokens=0,
                 attn_type="rope", init_values=None, norm_layer=norm_layer)
        for _ in range(depth)
    )


def rope_table(grid: int, head_dim: int, base: float) -> torch.Tensor:
    """(N, 2*hd) concatenated sin|cos for every grid position, in timm's interleaved layout.

    The first half of each head's dims rotates with the row index, the second with the column
    index; integer patch coordinates; inverse frequencies base^(-k / (hd/4)).
    """
    rope = RotaryEmbeddingCat(head_dim, temperature=base, in_pixels=False, feat_shape=[grid, grid])
    return rope.get_embed()  # (N, 2*hd)


def gather_tokens(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x[b, idx[b, i]] for every b, i.

    Args:
        x: (B, N, C) tokens, or (N, C) shared by the batch.
        idx: (B, K) flat patch indices.
    """
    if x.dim() == 2:
        return x[idx]  # (B, K, C)
    return x.gather(1, idx[..., None].expand(-1, -1, x.shape[-1]))  # (B, K, C)


@torch.no_grad()
def init_weights(module: nn.Module) -> None:
    """[IJ] trunc-normal std 0.02 on Linear and Conv2d weights, zero biases, LayerNorm 1 / 0.

    This is what I-JEPA's code ends up with (its depth rescale is overwritten by a second init).
    """
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class VisionTransformer(nn.Module):
    """ViT with RoPE and no final norm that returns every block's output d_0 .. d_{depth-1}."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.patch_embed = PatchEmbed(cfg.img_size, cfg.patch_size, cfg.in_chans, cfg.embed_dim)
        self.blocks = make_blocks(cfg.embed_dim, cfg.depth, cfg.num_heads, cfg.mlp_ratio)
        head_dim = cfg.embed_dim // cfg.num_heads
        self.register_buffer("rope", rope_table(cfg.grid, head_dim, cfg.rope_base), persistent=False)

    def forward(self, images: torch.Tensor, keep: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Hidden states after every block.

        Args:
            images: (B, C, H, W).
            keep: (B, N_ctx) flat patch indices to encode (the context); None encodes all N patches.
        Returns:
            depth tensors of shape (B, N_ctx or N, D); element i is d_i.
        """
        x = self.patch_embed(images)  # (B, N, D)
        rope = self.rope  # (N, 2*hd), broadcast over batch and heads
        if keep is not None:
            x = gather_tokens(x, keep)  # (B, N_ctx, D)
            rope = gather_tokens(self.rope, keep).unsqueeze(1)  # (B, 1, N_ctx, 2*hd)
        hidden = []
        for block in self.blocks:
            x = block(x, rope=rope)
            hidden.append(x)
        return hidden
