import pytest
import torch

from cijepa_lite.config import get_config
from cijepa_lite.engine.memory import activation_bytes_per_sample, choose_micro_batch, parameter_counts, static_bytes
from cijepa_lite.method.model import CIJEPA

GiB = 2**30
CUDA = torch.device("cuda")  # only used as a label: free memory is faked


def sizes(cfg):
    with torch.device("meta"):
        model = CIJEPA(cfg)
    return parameter_counts(model)


@pytest.mark.parametrize("rid", ["R-A05-B08", "R-A05-B08-12", "L200"])
def test_a_40gb_a100_runs_vit_b_at_effective_batch_256(rid):
    cfg = get_config(rid)
    trainable, frozen = sizes(cfg)
    free = int(39.4 * GiB)  # what torch.cuda.mem_get_info reports on an idle A100-SXM4-40GB
    micro = choose_micro_batch(cfg, 256, CUDA, free_bytes=free, trainable=trainable, frozen=frozen)
    assert 256 % micro == 0 and micro >= 16
    assert micro * activation_bytes_per_sample(cfg) + static_bytes(cfg, trainable, frozen) <= 0.85 * free
    twice = choose_micro_batch(cfg, 256, CUDA, free_bytes=2 * free, trainable=trainable, frozen=frozen)
    assert twice >= 2 * micro or twice == 256


def test_more_rows_need_more_memory_and_overrides_win():
    a, b = get_config("L200"), get_config("R-A05-B08")
    assert activation_bytes_per_sample(b) > 2 * activation_bytes_per_sample(a)
    assert choose_micro_batch(get_config("tiny", micro_batch_size=32), 128, CUDA, free_bytes=1) == 32
    with pytest.raises(ValueError, match="micro_batch_size=48 does not divide"):
        choose_micro_batch(get_config("tiny", micro_batch_size=48), 128, CUDA)
    assert choose_micro_batch(get_config("tiny"), 128, torch.device("cpu")) == 128
    with pytest.raises(RuntimeError, match="not even one sample fits"):
        choose_micro_batch(b, 256, CUDA, free_bytes=GiB, trainable=10**9, frozen=0)
