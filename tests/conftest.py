import os

import pytest
import torch

# Tests run on 2 cores; more threads than cores only adds contention.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def tiny_cfg():
    from cijepa_lite.config import get_config

    return get_config("tiny")
