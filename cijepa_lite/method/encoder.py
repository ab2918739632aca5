"""The ViT encoder (student and EMA teacher): timm blocks, 2-D axial RoPE, no final LayerNorm.

Legend: B batch, N patches (grid x grid), N_ctx context tokens, D width, hd head dim.
Positions are flat patch indices, row-major on the grid; RoPE rotates each kept token at its
true (row, col), so the student can see only its context tokens (SPEC 1). Training sees the
config's square grid; any image of whole patches (portrait or landscape, rows x cols) runs too:
its RoPE positions come from its own grid (integer row and column indices, nothing rescaled).
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


def rope_table(grid: int | tuple[int, int], head_dim: int, base: float) -> torch.Tensor:
    """(N, 2*hd) concatenated sin|cos for every position of a rows x cols grid (row-major), timm's interleaved layout.

    The first half of each head's dims rotates with the row index, the second with the column
    index; integer patch coordinates; inverse frequencies base^(-k / (hd/4)).

    Args:
        grid: side of a square grid, or (rows, cols).
    """
    rows, cols = (grid, grid) if isinstance(grid, int) else grid
    rope = RotaryEmbeddingCat(head_dim, temperature=base, in_pixels=False, feat_shape=[rows, cols])
    return rope.get_embed()  # (rows * cols, 2*hd)


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
        # strict_img_size=False: any H, W that are whole multiples of the patch (timm still checks that)
        self.patch_embed = PatchEmbed(cfg.img_size, cfg.patch_size, cfg.in_chans, cfg.embed_dim,
                                      strict_img_size=False)
        self.blocks = make_blocks(cfg.embed_dim, cfg.depth, cfg.num_heads, cfg.mlp_ratio)
        self.grid, self.head_dim, self.rope_base = cfg.grid, cfg.embed_dim // cfg.num_heads, cfg.rope_base
        self.register_buffer("rope", rope_table(cfg.grid, self.head_dim, cfg.rope_base), persistent=False)
        self.other_grids: dict[tuple, torch.Tensor] = {}  # RoPE tables of other grid shapes, built once each

    def rope_for(self, rows: int, cols: int) -> torch.Tensor:
        """(rows * cols, 2*hd) RoPE table of a rows x cols grid: the registered one for the config's square grid."""
        if (rows, cols) == (self.grid, self.grid):
            return self.rope  # the training grid keeps its registered table: square results are unchanged
        key = (rows, cols, self.rope.device, self.rope.dtype)
        if key not in self.other_grids:
            table = rope_table((rows, cols), self.head_dim, self.rope_base)
            self.other_grids[key] = table.to(self.rope.device, self.rope.dtype)
        return self.other_grids[key]

    def forward(self, images: torch.Tensor, keep: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Hidden states after every block.

        Args:
            images: (B, C, H, W), H and W whole multiples of the patch size (any aspect ratio).
            keep: (B, N_ctx) flat patch indices to encode (the context); None encodes all N patches.
        Returns:
            depth tensors of shape (B, N_ctx or N, D); element i is d_i; N = (H / patch) * (W / patch), row-major.
        """
        rows, cols = self.patch_embed.dynamic_feat_size(images.shape[-2:])
        x = self.patch_embed(images)  # (B, N, D)
        rope = self.rope_for(rows, cols)  # (N, 2*hd), broadcast over batch and heads
        if keep is not None:
            x = gather_tokens(x, keep)  # (B, N_ctx, D)
            rope = gather_tokens(rope, keep).unsqueeze(1)  # (B, 1, N_ctx, 2*hd)
        hidden = []
        for block in self.blocks:
            x = block(x, rope=rope)
            hidden.append(x)
        return hidden
