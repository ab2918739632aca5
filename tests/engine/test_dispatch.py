import pytest
import torch

from cijepa_lite.config import get_config
from cijepa_lite.engine import Engine
from cijepa_lite.engine.dispatch import audit_dtypes, count_ops, step_op_count
from cijepa_lite.engine.distributed import Dist

CPU = Dist(rank=0, world=1, device=torch.device("cpu"))


def test_every_matmul_and_attention_of_a_cijepa_step_runs_in_bf16_and_targets_and_mse_in_fp32():
    """A whole engine step (3 vmapped predictors) under bf16 autocast: no fp32 input reaches a matmul or SDPA."""
    cfg = get_config("tiny", precision="bf16", batch_size=8)
    assert cfg.intermediate_rows == 2  # the batched (vmapped) predictor path
    engine = Engine(cfg, CPU, total_steps=100)
    images = torch.randn(8, 3, cfg.img_size, cfg.img_size)
    audit = audit_dtypes(lambda: engine.step(0, images), cfg.embed_dim)
    names = {op for op, _ in audit.low}
    assert {"addmm", "mm", "bmm"} <= names and any(n.startswith("_scaled_dot_product") for n in names)
    assert sum(n for (op, _), n in audit.fp32.items() if op == "native_layer_norm") == cfg.num_depths
    S = 1 + cfg.intermediate_rows
    assert sum(n for (op, _), n in audit.fp32.items() if op == "pow") == 2 * S  # each row's MSE and its backward
    assert audit.offenders() == []


def test_the_audit_catches_an_fp32_matmul():
    audit = audit_dtypes(lambda: torch.nn.Linear(4, 4)(torch.randn(2, 4)), 4)
    assert audit.offenders() and "addmm" in audit.offenders()[0]


def test_count_ops_counts_non_view_ops():
    x = torch.randn(3, 4)
    counts = count_ops(lambda: (x.view(12) + 1).t().exp())  # view and t are views: not counted
    assert counts == {"add": 1, "exp": 1}


def test_op_count_of_a_step_on_the_meta_device_is_deterministic():
    cfg = get_config("tiny", precision="bf16", batch_size=8, micro_batch_size=4)
    first, second = step_op_count(cfg), step_op_count(cfg)
    assert first == second and sum(first.values()) > 100
    assert first["_fused_adamw_"] == 2  # one fused kernel per parameter group


@pytest.mark.gpu
def test_on_cuda_every_matmul_and_attention_of_a_cijepa_step_runs_in_bf16():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    cfg = get_config("tiny", precision="bf16", batch_size=8)
    engine = Engine(cfg, Dist(rank=0, world=1, device=torch.device("cuda")), total_steps=100)
    images = torch.randint(0, 256, (8, 3, cfg.img_size, cfg.img_size), dtype=torch.uint8)  # as the loader gives
    audit = audit_dtypes(lambda: engine.step(0, images), cfg.embed_dim)
    assert any(op.startswith("_scaled_dot_product") for op, _ in audit.low)
    assert audit.offenders() == []
