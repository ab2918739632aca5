import os

import pytest
import torch

# Tests run on 2 cores; more threads than cores only adds contention.
torch.set_num_threads(min(2, os.cpu_count() or 1))
# A fixed thread count, so no command run in a test picks its own from the load of the moment (cpus.fit_threads
# leaves OMP_NUM_THREADS alone): results and timings do not depend on what else the machine runs.
os.environ.setdefault("OMP_NUM_THREADS", str(torch.get_num_threads()))


@pytest.fixture
def tiny_cfg():
    from cijepa_lite.config import get_config

    return get_config("tiny")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A tiny run directory pretrained for 2 steps on 32 digits (seconds): for the tools that read a run."""
    from torch.utils.data import Subset

    from cijepa_lite.config import get_config
    from cijepa_lite.data.sources import Digits
    from cijepa_lite.engine.train import train

    run = tmp_path_factory.mktemp("tiny-run")
    cfg = get_config("tiny", batch_size=16, base_batch=16, epochs=1, ckpt_minutes=1e9)
    train(cfg, run, max_steps=2, source=Subset(Digits("train"), range(32)), progress=False)
    return run
