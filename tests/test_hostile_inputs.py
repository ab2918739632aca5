"""Hostile and broken inputs on every surface (issue 19): each is one line naming the file/field/value and what
to do, a non-zero exit status, and nothing outside the intended folder changes (a tree listing before and after).

Tables, each row an input: run names (colab), command-line values, hand-edited run files, result files,
exports and encoder.json edits. The memory-bounded ones (decompression bomb, FIFO, huge --n-images) run in a
subprocess whose peak RSS is read back (os.wait4).
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from cijepa_lite import colab
from cijepa_lite.cli import main
from cijepa_lite.config import PRESETS
from cijepa_lite.engine import read_metrics
from cijepa_lite.engine.lock import DirLock, LockBusy
from cijepa_lite.export import export_encoder, load_encoder, timm_encoder

ROOT = Path(__file__).resolve().parents[1]


def tree(root: Path) -> list[tuple[str, int]]:
    """Every path under `root` (links not followed) with its size, -1 for folders: compared before and after."""
    return sorted((str(p.relative_to(root)), -1 if p.is_dir() and not p.is_symlink() else p.lstat().st_size)
                  for p in root.rglob("*"))


def fake_png(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims width x height (8-bit grey) over a few bytes of data: a decompression bomb."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 4096))
                     + chunk(b"IEND", b""))
    return path


@pytest.fixture
def run(tiny_run, tmp_path):
    """A private copy of the tiny run (its files may be damaged here)."""
    shutil.copytree(tiny_run, tmp_path / "run")
    return tmp_path / "run"


def one_line(capsys, argv) -> tuple[int, str]:
    status = main(argv)
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return status, err


# --- 1. run names ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../../escaped", "..", ".", "/abs/run", "a/b", "x" * 65, ".hidden"])  # "": the default name
def test_run_names_that_would_escape_are_refused_before_anything_is_written(tmp_path, monkeypatch, name):
    monkeypatch.setenv(colab.WORKDIR_ENV, str(tmp_path / "root" / "work"))
    monkeypatch.setenv(colab.STORAGE_ENV, str(tmp_path / "root" / "drive"))
    colab.workdir(), colab.storage()  # the two roots exist (made by any notebook's first cell)
    before = tree(tmp_path)
    for call in (lambda: colab.pretrain_run(PRESETS["R-U"], smoke=True, data_dir=tmp_path / "data", name=name),
                 lambda: colab.local_run(name, smoke=True, data_dir=tmp_path / "data")):
        with pytest.raises(ValueError, match="run name") as e:
            call()
        assert "\n" not in str(e.value)
    assert tree(tmp_path) == before


# --- 3, 6. values typed on the command line ----------------------------------------------------------------

CLI = [  # (argv after the command, what the one line must say); {run} is a copy of the tiny run, {tmp} the test dir
    (["pretrain", "--preset", "tiny", "--out", "{tmp}/new", "base_lr=inf"], "base_lr=inf: must be a finite number"),
    (["pretrain", "--preset", "tiny", "--out", "{tmp}/new", "weight_decay=inf"], "weight_decay=inf: must be a finite"),
    (["pretrain", "--preset", "tiny", "--out", "{tmp}/new", "base_lr=nan"], "base_lr=nan: must be a finite number"),
    (["pretrain", "--preset", "tiny", "--out", "{tmp}/new", "run_id="], "run_id='': must be a non-empty name"),
    (["pretrain", "--preset", "tiny", "--out", "{tmp}/new", "alpha=1/0"], "unknown config key 'alpha'"),
    (["pretrain", "--preset", "tiny", "--out", "{tmp}/new", "all_to_last_weight=1/0"], "all_to_last_weight='1/0'"),
    (["probe", "--run", "{run}", "--probe", "recipe", "--epochs", "0"], "probe epochs=0: must be a whole number in [1"),
    (["probe", "--run", "{run}", "--workers", "100000"], "--workers 100000: must be in [0, "),
    (["probe", "--run", "{run}", "--workers", "-1"], "--workers -1: must be in [0, "),
    (["probe", "--run", "{run}", "--seed", "-1"], "--seed -1: must be >= 0"),
    (["inspect", "--run", "{run}", "--n-images", "-1"], "--n-images -1: must be in [1, 32]"),
    (["inspect", "--run", "{run}", "--n-images", "1000000000"], "--n-images 1000000000: must be in [1, 32]"),
    (["inspect", "--run", "{run}", "--max-side", "0"], "--max-side 0: must be in [4, 256] px"),
    (["inspect", "--run", "{run}", "--max-side", "1000000"], "--max-side 1000000: must be in [4, 256] px"),
    (["inspect", "--run", "{run}", "--images", "{tmp}/images"], "pixels exceeds the decompression-bomb bound"),
    (["inspect", "--run", "{run}", "--images", "{tmp}/fifo"], "fifo/pipe.png: not a regular file"),
    (["inspect", "--run", "{run}", "--images", "{tmp}/big"], "exceeds the decompression-bomb bound"),
    (["export", "--run", "{run}", "--out", "{run}"], "is not an earlier export of run 'tiny'"),
    (["export", "--run", "{run}", "--out", "{tmp}/file"], "is a file: give a folder"),
    (["export", "--run", "{run}", "--out", "{tmp}/link"], "is a link: give a folder"),
    (["export", "--run", "{run}", "--out", "{tmp}/new", "--results", "{tmp}/bad-results"], "top1='abc' is not a top-1"),
    (["table", "--results", "{tmp}/bad-results"], "bad-results/runs/r.json: field top1='abc'"),
    (["table", "--results", "{tmp}/results-inf"], "field top1=inf is not a top-1 accuracy"),
    (["table", "--results", "{tmp}/results-nan"], "field top1=nan is not a top-1 accuracy"),
    (["table", "--results", "{tmp}/results-huge"], "field top1=1e+308 is not a top-1 accuracy"),
    (["table", "--results", "{tmp}/results-nodepth"], "field per_depth.d5='x' is not a top-1"),
    (["table", "--results", "{tmp}/empty-results", "--runs", "{tmp}/badconf"], "badconf/config.json: config collect_from"),
    (["table", "--results", "{tmp}/empty-results", "--runs", "{tmp}/listconf"], "listconf/config.json: a saved config"),
]


def make_inputs(tmp: Path, run: Path) -> None:
    """The files the CLI table points at."""
    (tmp / "images").mkdir()
    fake_png(tmp / "images" / "bomb.png", 30000, 30000)
    (tmp / "big").mkdir()
    fake_png(tmp / "big" / "photo.png", 12000, 12000)  # 144 M pixels
    (tmp / "fifo").mkdir()
    os.mkfifo(tmp / "fifo" / "pipe.png")
    (tmp / "file").write_text("x")
    (tmp / "elsewhere").mkdir()
    (tmp / "link").symlink_to(tmp / "elsewhere")
    record = json.loads(next((ROOT / "results" / "runs").glob("*.json")).read_text())
    for folder, top1 in (("bad-results", "abc"), ("results-inf", float("inf")), ("results-nan", float("nan")),
                         ("results-huge", 1e308), ("results-nodepth", 50.0)):
        (tmp / folder / "runs").mkdir(parents=True)
        bad = {**record, "run_id": "tiny", "top1": top1, "pretrain": {**record["pretrain"], "step": 2}}
        if folder == "results-nodepth":
            bad["per_depth"] = {"d5": "x"}
        (tmp / folder / "runs" / "r.json").write_text(json.dumps(bad))
    (tmp / "empty-results").mkdir()
    for name, edit in (("badconf", lambda c: {**c, "collect_from": "x"}), ("listconf", lambda c: [c])):
        shutil.copytree(run, tmp / name)
        (tmp / name / "config.json").write_text(json.dumps(edit(json.loads((run / "config.json").read_text()))))


def test_hostile_command_line_inputs_are_one_line_and_change_nothing(run, tmp_path, capsys, monkeypatch):
    make_inputs(tmp_path, run)
    monkeypatch.chdir(tmp_path)  # inspect's default figures/ would land here
    for argv, says in CLI:
        argv = [a.format(run=run, tmp=tmp_path) for a in argv]
        before = tree(tmp_path)
        status, err = one_line(capsys, argv)
        assert status == 1 and says in err, (argv, err)
        assert tree(tmp_path) == before, argv


# --- 5. hand-edited or damaged run files --------------------------------------------------------------------

def test_a_damaged_metrics_row_is_skipped_naming_file_and_line(run, tmp_path, capsys):
    metrics = run / "metrics.jsonl"
    deep = "[" * 100_000  # json's RecursionError
    metrics.write_text(metrics.read_text() + f'{{"step": Infinity}}\n[1]\n{{"step": 2.5}}\n{deep}\n{{"step": 3, "lo')
    with pytest.warns(UserWarning) as caught:
        rows = read_metrics(run)
    assert [r["step"] for r in rows] == [2]
    said = [str(w.message) for w in caught]
    assert [s.split(":")[0] for s in said] == [f"{metrics} line {n}" for n in (2, 3, 4, 5, 6)], said
    assert "step=inf is not a whole number" in said[0] and "not a JSON row" in said[3] and "not a JSON row" in said[4]
    before = tree(tmp_path)
    with pytest.warns(UserWarning, match="line 2: field step=inf"):
        assert main(["table", "--results", str(ROOT / "results"), "--runs", str(run)]) == 0  # curves drawn from the rest
    assert {p for p, _ in tree(tmp_path)} - {p for p, _ in before} <= {"run/figures", "run/figures/curves.png"}


@pytest.mark.parametrize("record, says", [
    ({"pid": "abc", "host": "h", "locked": 1.0}, "unreadable lock file"),
    ({"pid": 1.5, "host": "h", "locked": 1.0}, "unreadable lock file"),
    ({"pid": 123, "host": ["h"], "locked": 1.0}, "unreadable lock file"),
    ({"pid": 123, "host": "h", "locked": 1e300}, "unreadable lock file"),
    ({"pid": 123, "host": "h", "locked": 1.0, "started": "yesterday"}, "unreadable lock file"),
    ([1, 2], "unreadable lock file"), ("[" * 100_000, "unreadable lock file"),
])
def test_a_damaged_lock_file_is_never_a_traceback(tmp_path, record, says):
    lock = tmp_path / "run.lock"
    lock.write_text(record if isinstance(record, str) else json.dumps(record))
    with pytest.raises(LockBusy, match="being locked by another process right now .*run.lock is damaged"):
        DirLock(lock).acquire()  # fresh: it may be a lock being written right now
    os.utime(lock, (time.time() - 60, time.time() - 60))
    with pytest.warns(UserWarning, match=says):
        DirLock(lock).acquire().release()  # old: a damaged file, taken over
    assert not lock.exists()


# --- 4. exports ---------------------------------------------------------------------------------------------

def test_exports_write_only_into_new_empty_or_same_run_folders_and_replace_them_whole(run, tiny_run, tmp_path):
    out = tmp_path / "export"
    export_encoder(run, out, results_dirs=[tmp_path / "none"])
    (out / "results.json").write_text("[]")  # as if an earlier export had results: gone after the next one
    victim = tmp_path / "victim"
    victim.write_text("keep")
    export_encoder(tiny_run, out, which="student", results_dirs=[tmp_path / "none"])  # the same run (same config)
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "encoder.json", "model.safetensors"]
    assert json.loads((out / "encoder.json").read_text())["which"] == "student"
    (out / ".tmp-README.md-planted").symlink_to(victim)  # a planted link is refused, never written through
    before = tree(tmp_path)
    with pytest.raises(ValueError, match="is not an earlier export of run"):
        export_encoder(run, out, results_dirs=[tmp_path / "none"])
    assert tree(tmp_path) == before and victim.read_text() == "keep"
    (out / ".tmp-README.md-planted").unlink()
    edit(out, lambda m: m["config"].update(seed=5))  # now the export of another run (another config): refused
    before = tree(tmp_path)
    with pytest.raises(ValueError, match="is not an earlier export of run 'tiny'"):
        export_encoder(run, out, results_dirs=[tmp_path / "none"])
    assert tree(tmp_path) == before
    empty = tmp_path / "empty"
    empty.mkdir()
    export_encoder(run, empty, results_dirs=[tmp_path / "none"])
    assert (empty / "model.safetensors").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left


# --- 3. encoder.json edits: checked against the safetensors header before anything is allocated ----------------

def edit(folder: Path, change) -> None:
    meta = json.loads((folder / "encoder.json").read_text())
    change(meta)
    (folder / "encoder.json").write_text(json.dumps(meta))


ENCODER_EDITS = [
    (lambda m: m["config"].update(depth=10**6), "holds 6 blocks, .*encoder.json field config.depth says 1000000"),
    (lambda m: m["config"].update(embed_dim=4096, num_heads=4), "tensor .* describes"),
    (lambda m: m["config"].update(mlp_ratio=1e9), "tensor .* describes"),
    (lambda m: m["config"].update(depth="6"), "field config: config depth='6': must be of type int"),
    (lambda m: m["config"].update(rope_base=float("nan")), "field config: config rope_base=nan: must be a finite"),
    (lambda m: m.update(config=[1]), "field config: a saved config is a JSON object"),
    (lambda m: m.update(format="x"), "field format is not"),
    (lambda m: m.pop("config"), "field config"),
]


@pytest.mark.parametrize("change, says", ENCODER_EDITS)
def test_load_encoder_checks_encoder_json_against_the_weights(run, tmp_path, change, says):
    out = export_encoder(run, tmp_path / "export", results_dirs=[tmp_path / "none"])
    edit(out, change)
    for load in (load_encoder, timm_encoder):
        with pytest.raises(ValueError, match=says) as e:
            load(out)
        assert "\n" not in str(e.value)


def test_load_encoder_refuses_non_finite_weights_and_a_broken_json(run, tmp_path):
    out = export_encoder(run, tmp_path / "export", results_dirs=[tmp_path / "none"])
    weights = load_encoder(out).state_dict()
    weights["blocks.0.attn.qkv.weight"][0, 0] = float("nan")
    save_file({k: v.contiguous() for k, v in weights.items()}, out / "model.safetensors")
    with pytest.raises(ValueError, match="tensor blocks.0.attn.qkv.weight holds non-finite values"):
        load_encoder(out)
    (out / "encoder.json").write_text("{")
    with pytest.raises(ValueError, match="encoder.json is not valid JSON"):
        load_encoder(out)
    assert torch.isnan(weights["blocks.0.attn.qkv.weight"][0, 0])


# --- memory-bounded: a decompression bomb, a FIFO and a huge --n-images in a subprocess ------------------------

# Runs each command with the kit's cli.main in one fresh process and reads VmHWM (its peak RSS) after each: /proc's
# figure is reset at exec, unlike getrusage's ru_maxrss, which keeps the forked pytest process's ~1 GB.
MEASURED = """
import contextlib, io, json, re, sys
from cijepa_lite.cli import main
def peak_kb():
    return int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read())[1])
out = [peak_kb()]
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        status = main(argv)
    out.append([status, err.getvalue(), peak_kb()])
print(json.dumps(out))
"""


@pytest.mark.slow
def test_bombs_fifos_and_huge_counts_end_in_one_line_with_bounded_memory(tiny_run, tmp_path):
    (tmp_path / "bomb").mkdir()
    fake_png(tmp_path / "bomb" / "bomb.png", 30000, 30000)  # 900 M pixels claimed by a 4 kB file
    (tmp_path / "fifo").mkdir()
    os.mkfifo(tmp_path / "fifo" / "pipe.png")  # opened blocking, this would hang forever
    inspect = ["inspect", "--run", str(tiny_run), "--out", str(tmp_path / "fig" / "x.png")]
    cases = {"bomb": (["--images", str(tmp_path / "bomb")], "pixels exceeds the decompression-bomb bound"),
             "fifo": (["--images", str(tmp_path / "fifo")], "pipe.png: not a regular file"),
             "n-images": (["--n-images", "1000000000"], "--n-images 1000000000: must be in [1, 32]")}
    p = subprocess.run([sys.executable, "-c", MEASURED, json.dumps([inspect + a for a, _ in cases.values()])],
                       capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
                       timeout=600)  # a hung FIFO would end here
    assert p.returncode == 0, p.stderr
    imported, *results = json.loads(p.stdout)
    for (what, (_, says)), (status, err, peak_kb) in zip(cases.items(), results):
        lines = err.strip().splitlines()
        assert status == 1 and len(lines) == 1 and lines[0].startswith("inspect: ") and says in lines[0], (what, err)
        print(f"{what}: peak RSS {peak_kb / 1024:.0f} MB (after the imports: {imported / 1024:.0f} MB)")
        assert peak_kb < 2 * 1024 * 1024
    assert not (tmp_path / "fig").exists()
