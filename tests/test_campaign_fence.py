"""The claim as a fence (campaign/claim.py, engine/train.py `fence=`): two sessions that trained one run before
either saw the other's claim keep their files apart, and a resume follows one lineage."""
import shutil

import pytest
import torch
from torch.utils.data import Subset

from cijepa_lite.campaign.claim import Claim
from cijepa_lite.config import get_config
from cijepa_lite.data.sources import Digits
from cijepa_lite.engine import RunDir, checkpoint, read_metrics, train
from cijepa_lite.engine.train import RunYielded


@pytest.mark.slow  # three short trainings
def test_two_writers_seen_late_keep_their_files_apart_and_the_resume_follows_the_winner_alone(tmp_path, monkeypatch):
    """Session A claims first, session B a little later; Drive shows neither to the other, so both train and
    checkpoint. After B's step 3, Drive syncs: A's claim, checkpoints and metrics rows appear in B's view; B yields
    at its next checkpoint. A's resume passes over B's (newer) checkpoints and keeps A's rows only."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    source = Subset(Digits("train"), range(64))
    cfg = get_config("tiny", batch_size=16, base_batch=16, epochs=2, log_every=1, ckpt_minutes=0,
                     knn_every_epochs=None, num_workers=0)
    views = {"A": tmp_path / "a", "B": tmp_path / "b"}  # each machine's view of the shared campaign folder
    a = Claim(views["A"], "e", "1-a", settle_s=0)
    b = Claim(views["B"], "e", "2-b", settle_s=0)
    a.record["claimed"] -= 1  # A claimed first
    try:
        assert a.acquire() and b.acquire()  # neither sees the other's claim
        train(cfg, views["A"] / "run", max_steps=2, source=source, progress=False, fence=a)
        original = RunDir.save

        def save_then_drive_syncs(self, step, *args, **kwargs):
            path = original(self, step, *args, **kwargs)
            if step == 3:  # A's files reach B's view (same names would have replaced B's)
                shutil.copy(a.path, b.path.parent)
                for pt in (views["A"] / "run" / "checkpoints").iterdir():
                    shutil.copy(pt, self.checkpoint_dir)
                with open(self.metrics_file, "a") as f:
                    f.write((views["A"] / "run" / "metrics.jsonl").read_text())
            return path

        monkeypatch.setattr(RunDir, "save", save_then_drive_syncs)
        with pytest.raises(RunYielded, match="yielded at step 4 without writing it"):
            train(cfg, views["B"] / "run", max_steps=6, source=source, progress=False, fence=b)
        b.record_yield(3)
        monkeypatch.setattr(RunDir, "save", original)
        run = views["B"] / "run"  # from now on the shared folder, as Drive shows it to both
        names = sorted(p.name for p in checkpoint.candidates(run / "checkpoints"))
        tags = {w: checkpoint.writer_tag(c.token) for w, c in (("A", a), ("B", b))}
        assert names == sorted(checkpoint.checkpoint_name(s, tags[w]) for w, n in (("A", 2), ("B", 3))
                               for s in range(1, n + 1)), names  # both writers' files, none replaced
        assert [(r["step"], r["writer"]) for r in read_metrics(run)] == [
            (1, "2-b"), (2, "2-b"), (3, "2-b"), (1, "1-a"), (2, "1-a"), (4, "2-b")]  # mixed, as synced
        a.root, a.path = views["B"], b.path.parent / a.path.name  # A's session, on the synced folder
        summary = train(cfg, run, max_steps=5, source=source, progress=False, fence=a)
        assert summary["start_step"] == 2  # A's step 2, not B's newer step 3
        assert [(r["step"], r["writer"]) for r in read_metrics(run)] == [(s, "1-a") for s in range(1, 6)]
        alone = train(cfg, tmp_path / "alone", max_steps=5, source=source, progress=False)
        assert alone["step"] == 5
        same = RunDir(tmp_path / "alone").latest()
        resumed = RunDir(run).latest()
        assert resumed.meta["writer"] == "1-a" and resumed.meta["lineage"] == [["1-a", 0]]
        assert all(torch.equal(resumed.student[k], same.student[k]) for k in same.student)  # one lineage, bitwise
    finally:
        torch.set_num_threads(threads)
        a.release()
        b.release()
