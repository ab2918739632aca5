import torch

from cijepa_lite.config import get_config
from cijepa_lite.method.ema import ema_momentum, ema_update
from cijepa_lite.method.model import CIJEPA


def test_vectorised_ema_equals_the_naive_loop():
    cfg = get_config("tiny")
    model = CIJEPA(cfg)
    with torch.no_grad():
        for p in model.student.parameters():
            p.add_(torch.randn_like(p))
    naive = [t.clone() for t in model.teacher.parameters()]
    m = torch.tensor(0.99)
    for t, s in zip(naive, model.student.parameters()):
        t.mul_(m).add_(s * (1 - m))
    ema_update(model.teacher, model.student, 0.99)
    for t, n in zip(model.teacher.parameters(), naive):
        assert torch.equal(t, n)
    assert not torch.equal(next(model.teacher.parameters()), next(model.student.parameters()))
    # momentum 1 (a skipped step) leaves the teacher bitwise untouched
    before = [t.clone() for t in model.teacher.parameters()]
    ema_update(model.teacher, model.student, torch.tensor(1.0))
    assert all(torch.equal(a, b) for a, b in zip(before, model.teacher.parameters()))


def test_momentum_is_linear_from_start_to_end():
    cfg = get_config("L200")
    assert ema_momentum(cfg, 0, 1000) == 0.996
    assert abs(ema_momentum(cfg, 500, 1000) - 0.998) < 1e-12
    assert ema_momentum(cfg, 1000, 1000) == 1.0
