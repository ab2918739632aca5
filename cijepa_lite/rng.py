"""Counter-based randomness: every draw comes from a generator keyed on (seed, stream, step, ...).

Nothing depends on global RNG state, so a run resumed at any step draws exactly what the
uninterrupted run drew, on any number of GPUs and with any data-loader worker count.
"""
from __future__ import annotations

import numpy as np
import torch

# Stream tags keep the draws of different consumers independent.
INIT, MASKS, SOURCES, DATA_ORDER, AUGMENT, PROBE = range(6)


def derive_seed(*keys: int) -> int:
    """A 63-bit seed that depends on every key (non-negative ints)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1, np.uint64)[0] >> 1)


def generator(*keys: int) -> torch.Generator:
    """A CPU torch.Generator seeded from `keys`, e.g. generator(cfg.seed, MASKS, step)."""
    return torch.Generator().manual_seed(derive_seed(*keys))
