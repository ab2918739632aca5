"""The ViT encoder (student and EMA teacher): timm blocks, 2-D axial RoPE, no final LayerNorm.

Upstream switches (cfg.pos_embed="sincos", cfg.final_norm): I-JEPA's fixed 2-D sin-cos embedding
added once after the patch embedding instead of RoPE, and a LayerNorm after the last block.

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


def sincos_table(grid: int | tuple[int, int], dim: int) -> torch.Tensor:
    """(N, dim) fixed 2-D sin-cos positions of a rows x cols grid (row-major) [IJ][MAE].

    The first half of the dims encodes the column index, the second the row index (I-JEPA's meshgrid
    puts w first); each half is [sin(pos * w_k) | cos(pos * w_k)], w_k = 10000^(-k / (dim/4)).
    Computed in float64 and rounded once, as upstream's numpy table is.
    """
    rows, cols = (grid, grid) if isinstance(grid, int) else grid
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim / 4))  # (dim/4,)
    r, c = torch.meshgrid(torch.arange(rows, dtype=torch.float64), torch.arange(cols, dtype=torch.float64),
                          indexing="ij")  # (rows, cols) each

    def axis(pos: torch.Tensor) -> torch.Tensor:
        angles = pos.reshape(-1, 1) * omega  # (N, dim/4)
        return torch.cat([angles.sin(), angles.cos()], dim=1)  # (N, dim/2)

    return torch.cat([axis(c), axis(r)], dim=1).float()  # (N, dim)


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
    """ViT that returns every block's output d_0 .. d_{depth-1}: RoPE and no final norm, or upstream's switches."""

    def __init__(self, cfg: Config):
        super().__init__()
        # strict_img_size=False: any H, W that are whole multiples of the patch (timm still checks that)
        self.patch_embed = PatchEmbed(cfg.img_size, cfg.patch_size, cfg.in_chans, cfg.embed_dim,
                                      strict_img_size=False)
        self.blocks = make_blocks(cfg.embed_dim, cfg.depth, cfg.num_heads, cfg.mlp_ratio)
        self.grid, self.head_dim, self.rope_base = cfg.grid, cfg.embed_dim // cfg.num_heads, cfg.rope_base
        self.sincos = cfg.pos_embed == "sincos"  # [IJ] absolute positions added once; else RoPE in every block
        self.register_buffer("rope", self.position_table((cfg.grid, cfg.grid)), persistent=False)
        self.norm = LayerNorm(cfg.embed_dim) if cfg.final_norm else None  # [IJ] d_last is taken after it
        self.other_grids: dict[tuple, torch.Tensor] = {}  # position tables of other grid shapes, built once each

    def position_table(self, grid: tuple[int, int]) -> torch.Tensor:
        """The position table of a grid: (N, D) sin-cos, or (N, 2*hd) RoPE."""
        if self.sincos:
            return sincos_table(grid, self.patch_embed.proj.out_channels)
        return rope_table(grid, self.head_dim, self.rope_base)

    def rope_for(self, rows: int, cols: int) -> torch.Tensor:
        """(rows * cols, 2*hd) RoPE (or (rows * cols, D) sin-cos) table of a rows x cols grid: the registered
        one for the config's square grid."""
        if (rows, cols) == (self.grid, self.grid):
            return self.rope  # the training grid keeps its registered table: square results are unchanged
        key = (rows, cols, self.rope.device, self.rope.dtype)
        if key not in self.other_grids:
            self.other_grids[key] = self.position_table((rows, cols)).to(self.rope.device, self.rope.dtype)
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
        rope = self.rope_for(rows, cols)  # (N, 2*hd), broadcast over batch and heads; sin-cos: (N, D)
        if self.sincos:
            x, rope = x + rope, None  # (B, N, D): [IJ] added (fp32 buffer) before the context is gathered
        if keep is not None:
            x = gather_tokens(x, keep)  # (B, N_ctx, D)
            rope = None if rope is None else gather_tokens(rope, keep).unsqueeze(1)  # (B, 1, N_ctx, 2*hd)
        hidden = []
        for block in self.blocks:
            x = block(x, rope=rope)
            hidden.append(x)
        if self.norm is not None:
            hidden[-1] = self.norm(x)  # (B, N_ctx or N, D)
        return hidden
