"""The campaign without training: its definition, state from disk, claims, hours, status and one-line errors."""
import json
import os
import socket
import time

import pytest

from cijepa_lite import cli
from cijepa_lite.campaign import ORDER, entries, entry_config, open_campaign, plot_campaign, status
from cijepa_lite.campaign.claim import STALE_S, Claim, live_claims
from cijepa_lite.campaign.hours import projected_hours
from cijepa_lite.campaign.report import row_summary
from cijepa_lite.campaign.session import Budget, run_session
from cijepa_lite.campaign.state import mark_failed
from cijepa_lite.engine.lock import process_started
from cijepa_lite.config import PRESETS, SUPERVISION
from cijepa_lite.picker import matching_run_id
from cijepa_lite.engine.checkpoint import checkpoint_name, writer_tag
from cijepa_lite.files import write_json

TINY = ["epochs=2", "batch_size=16", "base_batch=16"]


def test_the_default_queue_is_every_row_once_most_informative_first():
    assert sorted(ORDER) == sorted(SUPERVISION) and ORDER[:3] == ("R-A05-B08", "L200", "L300")


def test_each_entry_trains_its_rows_supervision_on_the_base_with_its_seed(tmp_path):
    spec = open_campaign(tmp_path / "c", seeds=[0, 2], base="tiny", overrides=TINY)
    ids = [e["id"] for e in entries(spec)]
    assert ids[:2] == ["R-A05-B08-s0", "L200-s0"] and ids[12] == "R-A05-B08-s2" and len(ids) == 24
    for entry in entries(spec):
        cfg = entry_config(spec, entry)
        same = "L200" if entry["row"] == "L300" else entry["row"]  # on tiny, L300 differs from L200 in epochs only
        assert (matching_run_id(cfg), cfg.seed, cfg.embed_dim, cfg.batch_size) == (same, entry["seed"], 64, 16)
        assert cfg.epochs == (3 if entry["row"] == "L300" else 2)  # L300 keeps its 1.5x the epochs
    vit = open_campaign(tmp_path / "v", rows=["L300", "R-B05"])  # on the ViT-B base: exactly the table's presets
    assert [entry_config(vit, e) for e in entries(vit)] == [PRESETS["L300"], PRESETS["R-B05"]]


def test_a_custom_supervision_row_is_parsed_as_the_picker_names_it(tmp_path):
    spec = open_campaign(tmp_path / "c", rows=["custom-D1-5-rows1-a0.30-b-unset"], base="tiny")
    cfg = entry_config(spec, entries(spec)[0])
    assert (cfg.collected_depths, cfg.intermediate_rows, cfg.all_to_last_weight, cfg.last_to_last_weight) == (
        (1, 2, 3, 4, 5), 1, 0.3, None)


def one_line_error(argv, capsys) -> str:
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_expected_errors_are_one_line(tmp_path, capsys):
    root = tmp_path / "c"
    assert "unknown row 'R-X'" in one_line_error(["campaign", "--root", str(root), "--rows", "R-X,L200"], capsys)
    (tmp_path / "file").write_text("")
    assert "is a file" in one_line_error(["campaign", "--root", str(tmp_path / "file"), "--status"], capsys)
    assert "no campaign at" in one_line_error(["campaign", "--root", str(root), "--status"], capsys)
    open_campaign(root, rows=["L200", "R-U"], base="tiny", overrides=TINY)
    err = one_line_error(["campaign", "--root", str(root), "--rows", "L200", "--status"], capsys)
    assert "created with rows ['L200', 'R-U'], not ['L200']" in err
    assert "created with overrides" in one_line_error(["campaign", "--root", str(root), "--status", "epochs=3"], capsys)
    assert "--json goes with --status" in one_line_error(["campaign", "--root", str(root), "--json"], capsys)
    assert "unknown config key" in one_line_error(["campaign", "--root", str(tmp_path / "d"), "epoch=2"], capsys)


def test_the_same_definition_again_and_runtime_overrides_per_session_are_accepted(tmp_path):
    spec = open_campaign(tmp_path / "c", rows=["L200"], seeds=[1], base="tiny", overrides=TINY)
    assert open_campaign(tmp_path / "c", rows=["L200"], seeds=[1], base="tiny", overrides=TINY) == spec
    assert entry_config(spec, entries(spec)[0], {"num_workers": "2"}).num_workers == 2


def test_a_new_campaign_is_all_queued_with_its_steps_and_the_next_step_named(tmp_path, capsys):
    root = tmp_path / "c"
    open_campaign(root, rows=["L200", "R-U"], base="tiny", overrides=TINY)
    mark_failed(root, "R-U-s0", "3 consecutive steps had a non-finite loss", 40)
    assert cli.main(["campaign", "--root", str(root), "--status", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    digits_steps = 1437 // 16 * 2  # the digits' train split at batch 16, 2 epochs
    assert [(r["id"], r["seed"], r["state"], r["step"], r["total_steps"], r["top1"], r["reason"]) for r in got["runs"]] \
        == [("L200-s0", 0, "queued", 0, digits_steps, None, None),
            ("R-U-s0", 0, "failed", 0, digits_steps, None, "3 consecutive steps had a non-finite loss")]
    assert got["runs"][0]["hours_kind"] == "unknown" and got["totals"]["hours_left_unknown"] == 1  # CPU, nothing timed
    assert got["next"] == ("next: start L200-s0 at step 0/178; failed (skipped; --retry-failed to retry): R-U-s0")


def rival(root, entry, claimed, host=None, heartbeat=None, pid=None):
    """A claim file of another session (by default a live process on this host: pid 1 started long ago)."""
    import psutil

    pid = pid or os.getppid()
    record = {"session": f"{int(claimed * 1e9)}-rival-{pid}", "entry": entry, "host": host or socket.gethostname(),
              "pid": pid, "process_start": psutil.Process(pid).create_time(), "started": process_started(pid),
              "claimed": claimed,
              "heartbeat": heartbeat or time.time()}
    write_json(root / "claims" / entry / f"{record['session']}.json", record)
    return record


def test_an_earlier_live_claim_wins_and_a_stale_one_from_another_host_is_dropped(tmp_path):
    mine = Claim(tmp_path, "L200-s0", "mine", settle_s=0)
    early = rival(tmp_path, "L200-s0", time.time() - 5)
    assert not mine.acquire() and [c["session"] for c in live_claims(tmp_path, "L200-s0")] == [early["session"]]
    stale = rival(tmp_path, "R-U-s0", time.time() - 2 * STALE_S, host="another-vm", heartbeat=time.time() - STALE_S - 1)
    with Claim(tmp_path, "R-U-s0", "mine", settle_s=0) as claim:
        assert claim.acquire() and claim.still_ours()
        assert not (tmp_path / "claims" / "R-U-s0" / f"{stale['session']}.json").exists()
    assert live_claims(tmp_path, "R-U-s0") == []  # released


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="start times since boot come from Linux's /proc")
def test_a_live_rivals_claim_stays_live_when_the_wall_clock_steps(tmp_path, monkeypatch):
    """Two sessions trained one run on the build machine when psutil's create_time of a live session moved."""
    import psutil

    record = rival(tmp_path, "L200-s0", time.time())
    create_time = psutil.Process.create_time
    monkeypatch.setattr(psutil.Process, "create_time", lambda self: create_time(self) + 3600.0)  # a 1 h step
    assert [r["session"] for r in live_claims(tmp_path, "L200-s0")] == [record["session"]]


def test_a_rival_claim_seen_late_makes_the_session_yield_before_it_writes_into_the_run(tmp_path, monkeypatch):
    """Drive showed the rival's earlier claim only after the settle delay: the re-read before the first write
    into the run directory sees it, and the session passes without creating the run folder."""
    root = tmp_path / "c"
    open_campaign(root, rows=["L200"], base="tiny", overrides=TINY)
    original = Claim.acquire

    def acquire_then_a_late_rival(self):
        won = original(self)
        rival(root, "L200-s0", self.record["claimed"] - 1)  # claimed earlier, arrives now
        return won

    monkeypatch.setattr(Claim, "acquire", acquire_then_a_late_rival)
    said = []
    run_session(root, settle_s=0, progress=False, say=said.append)
    assert "L200-s0: an earlier claim arrived late, passing" in said
    assert not (root / "runs" / "L200-s0").exists()


def test_a_budget_of_steps_or_seconds_runs_out():
    assert Budget(steps=5, steps_done=5).spent() and not Budget(steps=5, steps_done=4).spent()
    assert not Budget(seconds=3600).spent() and Budget(seconds=3600, t0=time.time() - 3600).spent()
    assert 3600 - 400 < Budget(seconds=3600).train_seconds() < 3600 - 300  # 10% kept to checkpoint and probe


def test_projected_hours_match_the_speed_tables_h100_column():
    """docs/speed.md: L200 1.5 H100-hours and R-A05-B08 2.4 at 40% (126,689 images x 200 epochs, batch 256)."""
    steps = 126_689 // 256 * 200
    assert projected_hours(PRESETS["L200"], steps, "H100") == pytest.approx(1.5, rel=0.1)
    assert projected_hours(PRESETS["R-A05-B08"], steps, "H100") == pytest.approx(2.4, rel=0.1)


def test_the_campaign_figure_has_progress_top1_and_hours(tmp_path):
    root = tmp_path / "c"
    open_campaign(root, rows=["L200", "R-U"], seeds=[0, 1], base="tiny", overrides=TINY)
    out = status(root)
    out["runs"][0].update(state="probed", step=178, top1=55.0)
    out["runs"][2].update(state="probed", step=178, top1=61.0)
    fig = plot_campaign(out["runs"], out["totals"])
    progress, top1, hours = fig.axes
    assert [t.get_text() for t in progress.get_yticklabels()] == ["L200-s0", "R-U-s0", "L200-s1", "R-U-s1"]
    assert [t.get_text() for t in top1.get_yticklabels()] == ["L200", "R-U"]
    kit = [p for p in top1.patches if p.get_facecolor()[:3] != top1.patches[0].get_facecolor()[:3]]
    assert [round(p.get_width(), 1) for p in kit] == [58.0]  # mean of the two seeds of L200
    assert not top1.get_lines()  # no reference levels given: none drawn
    (label,) = [t for t in top1.texts if t.get_text() == "58.0 (n=2)"]
    assert label.get_position()[0] > 61.0  # right of the range bar's end (the best seed), not over it
    assert all(ax.get_legend() and ax.get_legend().get_bbox_to_anchor().bounds == ax.bbox.bounds  # by its panel
               for ax in (top1, hours))


def test_the_campaign_figure_draws_pixel_and_random_init_levels_from_the_campaign_root(tmp_path):
    from cijepa_lite.campaign.session import REFERENCES_FILE, campaign_figures

    root = tmp_path / "c"
    open_campaign(root, rows=["L200"], seeds=[0], base="tiny", overrides=TINY)
    write_json(root / REFERENCES_FILE, {"raw pixels": 17.3, "random init (mean of 3)": 48.7})
    top1 = campaign_figures(root, status(root))["campaign.png"].axes[1]
    levels = {ln.get_label(): ln.get_xdata()[0] for ln in top1.get_lines()}
    assert levels == {"raw pixels: 17.3": 17.3, "random init (mean of 3): 48.7": 48.7}
    assert set(levels) <= {t.get_text() for t in top1.get_legend().get_texts()}


def test_the_rows_summary_gives_each_rows_mean_and_range_and_the_rank_correlation_once_three_rows_are_done():
    def entry(row, seed, top1, writeup, state="probed"):
        return {"row": row, "seed": seed, "state": state, "top1": top1 if state == "probed" else None,
                "writeup_top1": writeup}

    states = [entry("A", 0, 80.0, 70.0), entry("A", 1, 84.0, 70.0), entry("B", 0, 70.0, 64.0),
              entry("B", 1, 72.0, 64.0), entry("C", 0, 90.0, 66.0), entry("C", 1, 0.0, 66.0, state="training")]
    out = row_summary(states)
    assert out["rows"][0] == {"row": "A", "writeup_top1": 70.0, "seeds": 2, "n": 2, "mean": 82.0, "min": 80.0,
                              "max": 84.0}
    assert out["rows"][2]["n"] == 1 and (out["spearman"], out["ranked_rows"]) == (None, 2)  # C is not done
    states[-1].update(state="probed", top1=60.0)  # C's mean 75.0: ranks A > C > B, the write-up's A > C > B
    assert row_summary(states)["spearman"] == pytest.approx(1.0)
    states[-1].update(top1=40.0)  # C's mean 65.0: A > B > C against A > C > B
    assert row_summary(states)["spearman"] == pytest.approx(0.5)


@pytest.mark.slow  # a real process, paused
def test_a_paused_session_adds_no_hours(tmp_path):
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from cijepa_lite.campaign.state import hours_spent, seconds_per_step
    from cijepa_lite.engine import read_metrics

    root, run, pause_s = Path(__file__).resolve().parents[1], tmp_path / "run", 20.0
    proc = subprocess.Popen([sys.executable, "-m", "cijepa_lite", "pretrain", "--preset", "tiny", "--out", str(run),
                             "--steps", "12", "--no-progress", "batch_size=16", "base_batch=16", "log_every=1",
                             "ckpt_minutes=1e9", "knn_every_epochs=none"], cwd=root, stderr=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(root)})
    while not (run / "metrics.jsonl").exists() or len(read_metrics(run)) < 4:  # paused mid-run (no time bound)
        assert proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGSTOP)  # a suspended VM, a paused notebook
    time.sleep(pause_s)
    proc.send_signal(signal.SIGCONT)
    assert proc.wait() == 0
    rows = read_metrics(run)
    step_s = seconds_per_step(rows, 16)
    hours = hours_spent(rows, step_s)
    assert hours * 3600 == pytest.approx(12 * step_s)  # steps x the measured step time
    assert rows[-1]["time_s"] >= pause_s and hours * 3600 <= rows[-1]["time_s"] - pause_s  # the wall clock has it


def test_a_rival_claim_visible_only_after_training_began_makes_the_session_yield_at_its_next_checkpoint(
        tmp_path, monkeypatch, capsys):
    """Drive showed the rival's earlier claim long after any settle delay, once the session had written its first
    checkpoint: the session writes no further checkpoint, every file it wrote carries its token, and the status
    says who yielded to whom."""
    from cijepa_lite.engine import RunDir, read_metrics

    root = tmp_path / "c"
    open_campaign(root, rows=["L200"], base="tiny", overrides=TINY)
    original = RunDir.save
    late = {}

    def save_then_a_late_rival(self, step, *args, **kwargs):
        path = original(self, step, *args, **kwargs)
        if not late:  # the rival's claim (made earlier) becomes visible after the first checkpoint
            late["rival"] = rival(root, "L200-s0", time.time() - 3600)
        return path

    monkeypatch.setattr(RunDir, "save", save_then_a_late_rival)
    said = []
    run_session(root, settle_s=0, progress=False, say=said.append,
                overrides=["ckpt_minutes=0", "log_every=1", "knn_every_epochs=none"])
    assert any(s.startswith("L200-s0: an earlier claim on ") and "yielded at step 2 without writing it" in s
               for s in said), said
    run = RunDir(root / "runs" / "L200-s0")
    me = run.latest().meta["writer"]
    assert [p.name for p in checkpoint_files(run)] == [checkpoint_name(1, writer_tag(me))]  # the writer in its name
    assert {r["writer"] for r in read_metrics(run.path)} == {me}  # the fencing token in every file it wrote
    assert cli.main(["campaign", "--root", str(root), "--status"]) == 0
    assert f"session {me} yielded at step 1 to {late['rival']['session']}" in capsys.readouterr().out


def checkpoint_files(run):
    from cijepa_lite.engine import checkpoint

    return checkpoint.candidates(run.checkpoint_dir)
