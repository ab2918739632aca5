"""Online kNN monitor: weighted k-nearest-neighbour top-1 of the EMA teacher's pooled features [K].

Legend: n_train bank images, n_val query images, D width, C classes.

DINO-style (Caron et al. 2021, eval_knn.py): features are the final-layer patch tokens mean-pooled
(as in the probe) and l2-normalised; each val image takes its k = 20 most cosine-similar bank
images, and each neighbour votes for its label with weight exp(similarity / T), T = 0.07; the class
with the largest summed vote wins. Bank and queries are fixed subsets of the train and val splits
drawn once from the run's seed, both through the deterministic probe val transform, so successive
readings differ only through the encoder. It needs no training, so it is cheap enough to run every
few epochs from the training loop and log as "knn_top1" in metrics.jsonl.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset, Subset

from .. import rng
from ..config import Config
from ..data import open_source
from ..data.loading import auto_workers
from .features import split_features

K = 20
TEMPERATURE = 0.07
_STREAMS = {"train": 0, "val": 1}  # sub-streams of rng.PROBE that pick the kNN subsets


def knn_top1(bank: torch.Tensor, bank_labels: torch.Tensor, queries: torch.Tensor, query_labels: torch.Tensor,
             num_classes: int, k: int = K, temperature: float = TEMPERATURE, chunk: int = 1024) -> float:
    """Top-1 (%) of temperature-weighted cosine kNN votes.

    Args:
        bank: (n_train, D) features with bank_labels (n_train,); queries: (n_val, D) with query_labels (n_val,).
    """
    bank = F.normalize(bank.float(), dim=1)
    correct = 0
    for lo in range(0, len(queries), chunk):  # chunks bound the (n_val, n_train) similarity matrix
        q = F.normalize(queries[lo:lo + chunk].float(), dim=1)  # (b, D)
        sim, idx = (q @ bank.T).topk(min(k, len(bank)), dim=1)  # (b, k)
        votes = torch.zeros(len(q), num_classes, device=q.device)
        votes.scatter_add_(1, bank_labels[idx], (sim / temperature).exp())  # (b, C)
        correct += (votes.argmax(1) == query_labels[lo:lo + chunk]).sum().item()
    return 100.0 * correct / len(queries)


def is_due(every_epochs: float, prev_step: int, step: int, steps_per_epoch: int) -> bool:
    """True if a multiple of `every_epochs` epochs lies in the steps (prev_step, step]."""
    period = every_epochs * steps_per_epoch  # in steps
    return math.floor(step / period + 1e-9) > math.floor(prev_step / period + 1e-9)


def fixed_subset(source: Dataset, size: int, seed: int, stream: int) -> Dataset:
    """At most `size` images of `source` (which has a `classes` list), drawn once from (seed, stream)."""
    if size >= len(source):
        return source
    pick = torch.randperm(len(source), generator=rng.generator(seed, rng.PROBE, stream))[:size]
    subset = Subset(source, sorted(pick.tolist()))
    subset.classes = source.classes
    return subset


class KNNMonitor:
    """Reads the kNN top-1 of an encoder on fixed train/val subsets; `due` says when the loop should.

    The subsets are opened at the first reading, so a run that never reaches one pays nothing.
    """

    def __init__(self, cfg: Config, device: torch.device, bank_size: int = 10_000, query_size: int = 5_000,
                 batch_size: int = 256):
        if not cfg.knn_every_epochs or cfg.knn_every_epochs <= 0:
            raise ValueError(f"config knn_every_epochs={cfg.knn_every_epochs!r}: the monitor needs a positive period")
        self.cfg, self.device, self.batch_size = cfg, device, batch_size
        self.sizes = {"train": bank_size, "val": query_size}
        self.splits: dict[str, Dataset] | None = None

    def due(self, prev_step: int, step: int, steps_per_epoch: int) -> bool:
        """True if a multiple of cfg.knn_every_epochs lies in the steps (prev_step, step]."""
        return is_due(self.cfg.knn_every_epochs, prev_step, step, steps_per_epoch)

    def _open(self) -> dict[str, Dataset]:
        cfg = self.cfg
        splits = {split: fixed_subset(open_source(cfg.dataset, split, cfg.img_size, cfg.data_dir), size, cfg.seed,
                                      _STREAMS[split]) for split, size in self.sizes.items()}
        if not splits["train"].classes:
            raise ValueError(f"the kNN monitor needs labels: dataset {cfg.dataset} is unlabelled; set knn_every_epochs=none")
        return splits

    def __call__(self, encoder: nn.Module) -> float:
        """kNN top-1 (%) of `encoder`'s last block; the encoder's mode and weights are left as they were."""
        self.splits = self.splits or self._open()
        last = [len(encoder.blocks) - 1]
        (bank, bank_labels), (queries, query_labels) = split_features(
            encoder, self.splits["train"], self.splits["val"], self.cfg.img_size, last, batch_size=self.batch_size,
            device=self.device, num_workers=auto_workers(self.cfg.num_workers), progress=False)  # (1, n, D), (n,)
        return knn_top1(bank[0].to(self.device), bank_labels.to(self.device), queries[0].to(self.device),
                        query_labels.to(self.device), len(self.splits["train"].classes))
