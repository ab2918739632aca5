"""The collapse monitors never raise: non-finite features (a diverged step) read as NaN."""
import math

import torch

from cijepa_lite.eval.monitors import normalized_std, rankme


def test_monitors_read_nan_for_non_finite_features_and_numbers_otherwise():
    good = torch.randn(16, 8, generator=torch.Generator().manual_seed(0))
    assert 1 <= rankme(good) <= 8 and 0 < normalized_std(good) < 1
    for bad in (float("nan"), float("inf")):
        features = good.clone()
        features[3, 2] = bad
        assert math.isnan(rankme(features)) and math.isnan(normalized_std(features))
