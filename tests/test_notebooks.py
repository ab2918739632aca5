"""The pretrain notebook in smoke mode survives a disconnect: killed mid-run, Run all again resumes it
and ends with the same weights as an uninterrupted run; a custom alpha/beta typed into its parameters cell
is what Run all trains, in a folder named after it. (nbval runs every notebook once as well, 60 s per cell,
and checks there that every figure cell displayed a PNG: notebooks/conftest.py.)"""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import psutil
import pytest

from cijepa_lite.engine import RunDir, read_metrics

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
PRETRAIN = ROOT / "notebooks" / "02_pretrain.ipynb"
# Each kernel talks over IPC sockets in its own folder: two kernels started at once over TCP can draw the
# same free port, and one of them then waits forever for a reply that went to the other. Every cell must finish
# within CELL_TIMEOUT_S (nbclient raises CellTimeoutError naming the cell).
CELL_TIMEOUT_S = 60
RUNNER = ("import sys, nbformat, nbclient, jupyter_client; nb = nbformat.read(sys.argv[1], as_version=4); "
          "km = jupyter_client.KernelManager(kernel_name='python3', transport='ipc', ip=sys.argv[4]); "
          f"nbclient.NotebookClient(nb, km=km, timeout={CELL_TIMEOUT_S}, "
          "resources={'metadata': {'path': sys.argv[2]}}).execute(); nbformat.write(nb, sys.argv[3])")


def start(folder: Path, notebook: Path = PRETRAIN) -> subprocess.Popen:
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CIJEPA_SMOKE": "1", "CIJEPA_WORKDIR": str(folder / "work"),
           "CIJEPA_STORAGE": str(folder / "drive"), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", RUNNER, str(notebook), str(PRETRAIN.parent), str(folder / "out.ipynb"),
                             str(folder / "kernel")],
                            env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen) -> None:
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL the runner and its kernel, as a Colab disconnect would."""
    family = psutil.Process(proc.pid).children(recursive=True) + [psutil.Process(proc.pid)]
    for p in family:
        p.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)


def run_dir(folder: Path) -> Path:
    return folder / "work" / "runs" / "smoke-R-A05-B08"  # smoke mode says so in the run's name


def final_state(folder: Path) -> dict:
    return vars(RunDir(run_dir(folder)).latest())


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebooks_are_thin_and_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    assert not any(line.lstrip().startswith(("def ", "class ")) for c in code for line in c.source.splitlines())
    assert nb.metadata["accelerator"] == "GPU"
    assert "#@param" in "".join(c.source for c in code) or path.name == "04_results.ipynb"


@pytest.mark.slow
def test_pretrain_notebook_resumes_after_a_kill_with_the_same_final_weights(tmp_path):
    whole = start(tmp_path / "whole")
    cut = start(tmp_path / "cut")
    metrics = RunDir(run_dir(tmp_path / "cut")).metrics_file
    deadline = time.time() + 600
    while time.time() < deadline and cut.poll() is None:
        if metrics.exists() and len(read_metrics(run_dir(tmp_path / 'cut'))) >= 3:
            kill_tree(cut)
            break
        time.sleep(0.2)
    assert cut.returncode == -signal.SIGKILL, "the notebook finished before it could be killed"
    killed_at = read_metrics(run_dir(tmp_path / 'cut'))[-1]["step"]
    again = start(tmp_path / "cut")
    finish(again)
    finish(whole)
    printed = "".join(o.get("text", "") for c in nbformat.read(tmp_path / "cut" / "out.ipynb", 4).cells
                      for o in c.get("outputs", []))
    started = int(printed.split("started at step ")[1].split(",")[0])
    assert 0 < started <= killed_at  # Run all again resumed from a checkpoint, not from step 0
    a, b = final_state(tmp_path / "whole"), final_state(tmp_path / "cut")
    assert a["step"] == b["step"] > killed_at > 0
    resumed = read_metrics(run_dir(tmp_path / 'cut'))
    assert [r["step"] for r in resumed] == sorted({r["step"] for r in resumed})  # no duplicated rows
    for part in ("student", "teacher", "predictors"):
        for key, value in a[part].items():
            assert value.equal(b[part][key]), f"{part}.{key}"
    for key, value in a["optimizer"]["state"].items():
        assert all(v.equal(b["optimizer"]["state"][key][k]) for k, v in value.items())


@pytest.mark.slow
def test_a_custom_alpha_beta_typed_into_the_parameters_cell_is_what_run_all_trains(tmp_path):
    nb = nbformat.read(PRETRAIN, as_version=4)
    params = next(c for c in nb.cells if c.cell_type == "code" and "#@title Parameters" in c.source)
    for name, value in (("ALPHA", "0.30"), ("BETA", "0.90")):  # as a user edits the Colab form
        params.source, n = re.subn(rf'^{name} = "[^"]*"', f'{name} = "{value}"', params.source, flags=re.M)
        assert n == 1, name
    edited = tmp_path / "02_custom.ipynb"
    nbformat.write(nb, edited)
    finish(start(tmp_path, edited))
    runs = [p.name for p in (tmp_path / "work" / "runs").iterdir()]
    assert runs == ["smoke-custom-D1-5-rows2-a0.30-b0.90"]  # never a table row's folder, and it says smoke
    figures = sorted(tmp_path.rglob("*.png"))
    assert len(figures) >= 2 and all(p.name.startswith("smoke-") for p in figures), figures
    saved = json.loads((tmp_path / "work" / "runs" / runs[0] / "config.json").read_text())
    assert (saved["all_to_last_weight"], saved["last_to_last_weight"]) == (0.3, 0.9)
    assert RunDir(tmp_path / "work" / "runs" / runs[0]).latest().config.last_to_last_weight == 0.9


@pytest.mark.slow
def test_the_headless_picker_cell_gives_nbclient_nothing_to_send_on_the_shell_channel(tmp_path, monkeypatch):
    """The cause of the stall after the picker cell: nbclient mirrors an Output widget (the picker's w[s, t] area)
    by sending comm messages on the shell channel while it waits on that channel for the cell's reply
    (jupyter/nbclient#312); the reply can then sit unread until the cell's timeout. Headless (smoke mode outside
    Colab) the picker opens no widget, and the widget picker (second cell) draws into an Image widget, not an Output
    widget: neither sends anything. A cell printing into an Output widget (third cell) is the control."""
    import jupyter_client
    import nbclient
    from nbclient import output_widget

    sent = []
    original = output_widget.OutputWidget.send
    monkeypatch.setattr(output_widget.OutputWidget, "send", lambda self, *a, **k: (sent.append(a), original(self, *a, **k)))
    for key, value in {"CIJEPA_SMOKE": "1", "CIJEPA_WORKDIR": str(tmp_path / "work"), "OMP_NUM_THREADS": "1",
                       "CIJEPA_STORAGE": str(tmp_path / "drive"), "PYTHONPATH": str(ROOT)}.items():
        monkeypatch.setenv(key, value)
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}})
    nb.cells = [nbformat.v4.new_code_cell("from cijepa_lite import colab\nfrom cijepa_lite.config import get_config\n"
                                          "picker = colab.picker(get_config('R-A05-B08'))"),
                nbformat.v4.new_code_cell("from cijepa_lite.picker import AlphaBetaPicker\n"
                                          "AlphaBetaPicker(get_config('R-A05-B08')).widget"),
                nbformat.v4.new_code_cell("import ipywidgets\nout = ipywidgets.Output()\ndisplay(out)\n"
                                          "with out:\n    print('w[s, t]')")]
    km = jupyter_client.KernelManager(kernel_name="python3", transport="ipc", ip=str(tmp_path / "kernel"))
    client = nbclient.NotebookClient(nb, km=km, timeout=CELL_TIMEOUT_S)
    with client.setup_kernel():
        client.execute_cell(nb.cells[0], 0)
        assert sent == [] and ["image/png" in o.get("data", {}) for o in nb.cells[0].outputs] == [True]
        client.execute_cell(nb.cells[1], 1)
        assert sent == [] and any("application/vnd.jupyter.widget-view+json" in o.get("data", {})
                                  for o in nb.cells[1].outputs)
        client.execute_cell(nb.cells[2], 2)
        assert len(sent) >= 1  # the control: an Output widget does make nbclient write to the shell channel


@pytest.mark.parametrize("name", ["01_data", "02_pretrain", "03_probe", "04_results", "06_campaign"])
def test_each_figure_cell_goes_through_colab_show(name):
    """nbval's hook (notebooks/conftest.py) checks that every cell calling colab.show( displayed a PNG: each
    notebook has such a cell, and none returns a bare Figure (shown only as '<Figure size ...>')."""
    code = [c.source for c in nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4).cells
            if c.cell_type == "code"]
    assert any("colab.show(" in src for src in code)
    assert not any(src.rstrip().splitlines()[-1].startswith(("plot_", "colab.sample_grid")) for src in code if src)
