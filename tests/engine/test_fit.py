import warnings

import pytest
import torch

from cijepa_lite.config import get_config
from cijepa_lite.engine.fit import PrecisionWarning, check_bf16, measured_micro_batch
from cijepa_lite.method import CIJEPA

CUDA = torch.device("cuda", 0)


@pytest.mark.parametrize("capability, name, native", [((7, 5), "Tesla T4", False), ((7, 0), "Tesla V100", False),
                                                      ((8, 0), "NVIDIA A100", True), ((9, 0), "NVIDIA H100", True)])
def test_bf16_on_a_gpu_without_native_bf16_warns_and_says_what_to_pick(monkeypatch, capability, name, native):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    if native:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert check_bf16(get_config("L200"), CUDA)
        return
    with pytest.warns(PrecisionWarning, match=r"(?s)no native bf16.*A100, L4, H100.*precision=fp32") as caught:
        assert not check_bf16(get_config("L200"), CUDA)
    assert name in str(caught[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_bf16(get_config("L200", precision="fp32"), CUDA)  # fp32 asks nothing of the GPU
        assert check_bf16(get_config("L200"), torch.device("cpu"))


@pytest.mark.gpu
def test_the_measured_micro_batch_is_at_least_the_analytic_one_and_divides_the_batch():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    cfg = get_config("R-A05-B08")
    model = CIJEPA(cfg).to(CUDA)
    micro = measured_micro_batch(cfg, model, 256, 16, CUDA)
    assert micro >= 16 and 256 % micro == 0
    assert all(p.grad is None for p in model.parameters())
