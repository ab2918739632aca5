"""The data order: step -> this rank's slice of the global batch, with a seed per sample.

Epoch e visits a permutation drawn from (seed, e); step s takes positions
[(s mod steps_per_epoch) * batch, ...) of it (the last partial batch of an epoch is dropped).
Each sample's augmentation seed derives from (seed, step, position in the global batch), so
neither the number of ranks nor a resume in the middle of an epoch changes what a sample sees.
"""
from __future__ import annotations

import torch
from torch.utils.data import Sampler

from .. import rng


class StepBatches(Sampler):
    """Yields, for steps start .. stop-1, lists of (dataset index, augmentation seed) pairs."""

    def __init__(self, num_samples: int, batch_size: int, seed: int, start: int, stop: int,
                 rank: int = 0, world: int = 1):
        if num_samples < batch_size:
            raise ValueError(f"dataset has {num_samples} samples, fewer than one batch of {batch_size}")
        if batch_size % world:
            raise ValueError(f"batch_size={batch_size} is not divisible by {world} ranks")
        self.num_samples, self.batch_size, self.seed = num_samples, batch_size, seed
        self.start, self.stop, self.rank, self.world = start, stop, rank, world
        self.steps_per_epoch = num_samples // batch_size

    def __len__(self) -> int:
        return max(self.stop - self.start, 0)

    def epoch_order(self, epoch: int) -> torch.Tensor:
        return torch.randperm(self.num_samples, generator=rng.generator(self.seed, rng.DATA_ORDER, epoch))

    def __iter__(self):
        order, order_epoch = None, -1
        share = self.batch_size // self.world
        for step in range(self.start, self.stop):
            epoch, pos = divmod(step, self.steps_per_epoch)
            if epoch != order_epoch:
                order, order_epoch = self.epoch_order(epoch), epoch
            first = pos * self.batch_size + self.rank * share  # this rank's slice of the global batch
            base = rng.derive_seed(self.seed, rng.AUGMENT, step)
            yield [(int(order[first + j]), (base + self.rank * share + j) % (1 << 63)) for j in range(share)]
