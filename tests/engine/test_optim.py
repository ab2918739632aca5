"""AdamW's parameter groups and the warmup + cosine schedule (SPEC 5)."""
import math

import pytest

from cijepa_lite.config import get_config
from cijepa_lite.engine.optim import learning_rate, make_optimizer
from cijepa_lite.method import CIJEPA


def test_lr_warms_up_from_a_fifth_of_peak_over_2_5_percent_then_cosines_to_1e_6():
    cfg = get_config("R-A05-B08")
    peak, total = 1e-3 * 256 / 2048, 1000  # warmup = round(0.025 * 1000) = 25 steps
    lr = lambda step: learning_rate(cfg, step, total)  # noqa: E731
    assert lr(0) == pytest.approx(0.2 * peak)
    assert lr(12) == pytest.approx(0.2 * peak + 0.8 * peak * 12 / 25)
    assert lr(24) < peak and lr(25) == pytest.approx(peak)
    assert lr(25 + 487) == pytest.approx((peak + 1e-6) / 2)  # half-way through the cosine (974 steps long)
    assert lr(25 + 243) == pytest.approx(1e-6 + (peak - 1e-6) * 0.5 * (1 + math.cos(math.pi * 243 / 974)))
    assert lr(total - 1) == pytest.approx(1e-6, abs=1e-15)
    assert all(lr(s) >= lr(s + 1) for s in range(25, total - 1))  # monotone after the warmup
    assert learning_rate(cfg, 0, 10) == pytest.approx(0.2 * peak) and learning_rate(cfg, 1, 10) == pytest.approx(peak)


def test_weight_decay_skips_biases_and_1d_parameters_and_the_frozen_teacher():
    cfg = get_config("tiny")
    model = CIJEPA(cfg)
    decay, no_decay = make_optimizer(cfg, model).param_groups
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    exempt = {names[id(p)] for p in no_decay["params"]}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert decayed | exempt == trainable and not decayed & exempt
    assert not any(n.startswith("teacher.") for n in decayed | exempt)
    assert all(n.endswith(".bias") or "norm" in n for n in exempt)
    assert "student.blocks.0.attn.qkv.weight" in decayed and "student.blocks.0.norm1.weight" in exempt
    assert "predictors.d5.mask_token" in decayed  # (1, 1, P): not 1-D, decayed as in I-JEPA's groups


def test_weight_decay_is_constant_by_default_and_a_cosine_to_final_weight_decay_when_set():
    from cijepa_lite.engine.optim import weight_decay

    cfg = get_config("tiny")
    assert {weight_decay(cfg, s, 100) for s in range(100)} == {cfg.weight_decay}
    cos = get_config("tiny", weight_decay=0.04, final_weight_decay=0.4)
    wds = [weight_decay(cos, s, 100) for s in range(100)]
    assert wds[0] == pytest.approx(0.04) and wds[-1] == pytest.approx(0.4) and wds == sorted(wds)
    up = get_config("tiny", weight_decay=0.04, final_weight_decay=0.4, ipe_scale=1.25)  # stepped before the step
    assert weight_decay(up, 0, 100) > 0.04 and weight_decay(up, 99, 100) < 0.4
