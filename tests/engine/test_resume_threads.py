"""A resumed CPU run keeps the torch thread count its checkpoint was written with (so it stays bitwise equal)."""
import torch
from torch.utils.data import Subset

from cijepa_lite.config import get_config
from cijepa_lite.data.sources import Digits
from cijepa_lite.engine import RunDir, train


def test_a_resume_on_cpu_takes_the_checkpoints_thread_count_and_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # tests pin it (conftest); a user's session may not
    before = torch.get_num_threads()
    cfg = get_config("tiny", batch_size=16, base_batch=16, epochs=1, log_every=1, ckpt_minutes=1e9)
    source = Subset(Digits("train"), range(48))
    try:
        torch.set_num_threads(1)
        train(cfg, tmp_path, max_steps=1, source=source, progress=False)
        assert RunDir(tmp_path).latest().meta["torch_threads"] == 1
        torch.set_num_threads(2)  # e.g. cpus.fit_threads on a machine that became idle
        capsys.readouterr()
        train(cfg, tmp_path, max_steps=2, source=source, progress=False)
        line = capsys.readouterr().err
        assert "resuming" in line and "1 CPU threads as before (not 2)" in line
        assert torch.get_num_threads() == 1 and RunDir(tmp_path).latest().meta["torch_threads"] == 1
        monkeypatch.setenv("OMP_NUM_THREADS", "2")  # set by hand (or by torchrun): that wins
        torch.set_num_threads(2)
        train(cfg, tmp_path, max_steps=3, source=source, progress=False)
        assert torch.get_num_threads() == 2 and RunDir(tmp_path).latest().meta["torch_threads"] == 2
    finally:
        torch.set_num_threads(before)
