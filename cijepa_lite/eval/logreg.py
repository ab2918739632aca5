"""A converged linear readout for small features: L-BFGS logistic regression on standardised features [K].

Legend: K probed depths, n images in a split, D width.

Why beside the write-up's probe (probe.py): on tiny CPU-sized features the recipe (AdamW 3e-3 for
10 epochs) stops far from its optimum, so its number mostly measures optimisation speed, not the
features (SPEC 10: ~15 points under a converged fit on random-init features). Here both splits go
through the deterministic val transform, features are standardised with the train split's mean and
std, and scikit-learn's multinomial logistic regression is solved to convergence with L-BFGS.
The inverse regularisation C is fixed (never tuned on the val split).
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from .features import default_device, prepare_encoder, split_features

C = 1.0  # inverse L2 strength, fixed in advance
MAX_ITER = 2000


def fit_logistic(train: torch.Tensor, train_labels: torch.Tensor, val: torch.Tensor, val_labels: torch.Tensor,
                 c: float = C) -> tuple[float, float, bool]:
    """Val and train top-1 (%) of a logistic regression fitted on standardised features, and whether L-BFGS converged.

    Args:
        train: (n_train, D) features; val: (n_val, D); labels are (n,) ints.
    """
    # imported here: scikit-learn (and the SciPy and pandas it pulls in) costs every process that imports the
    # engine about a second, and only a probe needs it
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train.numpy())
    x_train, x_val = scaler.transform(train.numpy()), scaler.transform(val.numpy())
    model = LogisticRegression(C=c, max_iter=MAX_ITER, solver="lbfgs")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(x_train, train_labels.numpy())
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    if not converged:  # "converged" is the point of this probe: say so loudly, and record it
        warnings.warn(f"logistic regression did not converge in {MAX_ITER} L-BFGS iterations")
    val_top1 = float(np.mean(model.predict(x_val) == val_labels.numpy()) * 100)
    train_top1 = float(np.mean(model.predict(x_train) == train_labels.numpy()) * 100)
    return val_top1, train_top1, converged


def logistic_probe(encoder: nn.Module, train_source: Dataset, val_source: Dataset, img_size: int, *,
                   depths: tuple[int, ...], device: torch.device | None = None, batch_size: int = 256,
                   num_workers: int = 0, progress: bool = True) -> dict:
    """Converged logistic-regression top-1 on a frozen encoder's mean-pooled features, per depth.

    Args:
        encoder: a VisionTransformer (teacher or student); it is frozen here.
        depths: block indices to read out, e.g. (depth - 1,).
    Returns:
        {"top1": {"d<k>": val %}, "train_top1": {"d<k>": train %}, "converged": bool, "C": C}.
    """
    device = device or default_device()
    encoder = prepare_encoder(encoder, device)
    (train, train_labels), (val, val_labels) = split_features(
        encoder, train_source, val_source, img_size, depths, batch_size=batch_size, device=device,
        num_workers=num_workers, progress=progress)
    return fit_depths(train, train_labels, val, val_labels, depths)


def fit_depths(train: torch.Tensor, train_labels: torch.Tensor, val: torch.Tensor, val_labels: torch.Tensor,
               depths: tuple[int, ...]) -> dict:
    """`fit_logistic` on each depth's features.

    Args:
        train: (K, n_train, D) and val: (K, n_val, D) features of `depths`, in that order.
    Returns:
        {"top1": {"d<k>": val %}, "train_top1": {"d<k>": train %}, "converged": bool, "C": C}.
    """
    fits = [fit_logistic(train[k], train_labels, val[k], val_labels) for k in range(len(depths))]  # (val, train, ok)
    keys = [f"d{d}" for d in depths]
    return {"top1": {key: fit[0] for key, fit in zip(keys, fits)},
            "train_top1": {key: fit[1] for key, fit in zip(keys, fits)},
            "converged": all(fit[2] for fit in fits), "C": C}
