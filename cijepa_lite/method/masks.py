"""I-JEPA multi-block masks (SPEC 2), drawn only from the generator passed in.

Legend: B batch, M target blocks, N_ctx context tokens, N_tgt tokens per target block, H = W = grid.

Per batch one target block size and one context block size are drawn; per image M target blocks
(which may overlap each other) and one context block minus the union of the targets. All masks of
a batch are cut to the batch's shortest, keeping the lowest indices, so they stack.

mask_mode="upstream" keeps facebookresearch/ijepa's quirks, which shape the distribution:
  - scale and aspect ratio of a block come from ONE shared uniform draw;
  - heights/widths are clamped to grid-1 and corners use an exclusive upper bound, so no block ever
    touches the last row or column (at 224/16 the context is always the top-left 13 x 13).
mask_mode="corrected" draws scale and aspect independently and lets blocks reach every patch.
"""
from __future__ import annotations

import math

import torch

from ..config import Config

_RELAX_AFTER = 20  # [IJ] failed context draws before one target constraint is dropped


class MaskSampler:
    """`sampler(batch_size, generator) -> (context (B, N_ctx), targets (B, M, N_tgt))`, LongTensors."""

    def __init__(self, cfg: Config):
        self.grid = cfg.grid
        self.upstream = cfg.mask_mode == "upstream"
        self.num_targets = cfg.num_targets
        self.target_scale, self.target_aspect = cfg.target_scale, cfg.target_aspect
        self.context_scale = cfg.context_scale
        self.min_keep = cfg.min_keep
        smallest = min(h * w for h, w in self._possible_sizes(self.target_scale, self.target_aspect))
        if smallest <= self.min_keep:
            raise ValueError(
                f"config min_keep={cfg.min_keep}: a target block can have only {smallest} tokens on the "
                f"{self.grid}x{self.grid} grid (target_scale={cfg.target_scale}); lower min_keep or raise the scale")

    def __call__(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        g = generator
        th, tw = self._block_size(g, self.target_scale, self.target_aspect)  # [IJ] target size first
        ch, cw = self._block_size(g, self.context_scale, (1.0, 1.0))
        target_masks = self._place(g, th, tw, (batch_size, self.num_targets))  # (B, M, H, W) bool
        context = self._context(g, ch, cw, target_masks)  # (B, H, W) bool
        targets = _block_indices(target_masks, th * tw)  # (B, M, N_tgt)
        counts = context.flatten(1).sum(1)  # (B,)
        context = _block_indices(context, int(counts.min()))  # (B, N_ctx), lowest indices kept [IJ]
        return context, targets

    # --- sizes --------------------------------------------------------------------------------

    def _size_from(self, scale_u: float, aspect_u: float, scale, aspect) -> tuple[int, int]:
        n = self.grid
        keep = int(n * n * (scale[0] + scale_u * (scale[1] - scale[0])))
        ratio = aspect[0] + aspect_u * (aspect[1] - aspect[0])
        h, w = int(round(math.sqrt(keep * ratio))), int(round(math.sqrt(keep / ratio)))
        limit = n - 1 if self.upstream else n  # [IJ] `while h >= height: h -= 1`
        return max(1, min(h, limit)), max(1, min(w, limit))

    def _block_size(self, g, scale, aspect) -> tuple[int, int]:
        if self.upstream:
            u = torch.rand(1, generator=g).item()
            return self._size_from(u, u, scale, aspect)  # [IJ] one draw for scale and aspect
        su, au = torch.rand(2, generator=g).tolist()
        return self._size_from(su, au, scale, aspect)

    def _possible_sizes(self, scale, aspect, steps: int = 401):
        us = [i / (steps - 1) for i in range(steps)]
        if self.upstream:
            return {self._size_from(u, u, scale, aspect) for u in us}
        return {self._size_from(su, au, scale, aspect) for su in us[::8] + [1.0] for au in us[::8] + [1.0]}

    # --- placement ----------------------------------------------------------------------------

    def _place(self, g, h: int, w: int, shape: tuple[int, ...]) -> torch.Tensor:
        """Boolean grids (*shape, H, W) with one h x w block each at a random corner."""
        n = self.grid
        slack = 0 if self.upstream else 1  # [IJ] randint(0, n - h) excludes n - h
        top = torch.randint(0, n - h + slack, shape, generator=g)
        left = torch.randint(0, n - w + slack, shape, generator=g)
        rows = torch.arange(n)
        in_rows = (rows >= top[..., None]) & (rows < top[..., None] + h)  # (*shape, H)
        in_cols = (rows >= left[..., None]) & (rows < left[..., None] + w)  # (*shape, W)
        return in_rows[..., :, None] & in_cols[..., None, :]  # (*shape, H, W)

    def _context(self, g, h: int, w: int, target_masks: torch.Tensor) -> torch.Tensor:
        """Context block minus the targets; redrawn while it keeps <= min_keep tokens.

        As upstream, after every 20 failed draws of an image one more target (the last ones first)
        stops constraining its context. Never happens at the recipe's sizes.
        """
        B, M = target_masks.shape[:2]
        context = torch.zeros(B, self.grid, self.grid, dtype=torch.bool)
        pending = torch.arange(B)
        tries = 0
        while len(pending):
            block = self._place(g, h, w, (len(pending),))  # (B', H, W)
            kept = max(M - tries // _RELAX_AFTER, 0)  # targets still constraining
            forbidden = target_masks[pending, :kept].any(dim=1)  # (B', H, W)
            block &= ~forbidden
            ok = block.flatten(1).sum(1) > self.min_keep  # (B',)
            context[pending[ok]] = block[ok]
            pending = pending[~ok]
            tries += 1
        return context


def _block_indices(masks: torch.Tensor, keep: int) -> torch.Tensor:
    """Flat indices of the True cells of each mask, ascending, first `keep` of them.

    Args:
        masks: (..., H, W) bool with at least `keep` True cells each.
    Returns:
        (..., keep) LongTensor.
    """
    flat = masks.flatten(-2)  # (..., N)
    order = torch.argsort((~flat).to(torch.uint8), dim=-1, stable=True)  # True cells first, in index order
    return order[..., :keep]  # (..., keep)
