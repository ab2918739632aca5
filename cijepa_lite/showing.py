"""Figures in a notebook, and smoke mode: a figure is saved as a PNG and that PNG is displayed.

In smoke mode (CI, or no GPU) every run name and saved figure says so.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from .files import save_figure

SMOKE_ENV = "CIJEPA_SMOKE"  # "1": run every notebook end to end on CPU on locally generated data
SMOKE = "smoke"  # in smoke mode every run name and saved figure says so (the tiny model on digits, not a real run)


def smoke_mode() -> bool:
    """True when CIJEPA_SMOKE is set to a true value, or automatically when no GPU is present."""
    flag = os.environ.get(SMOKE_ENV, "").strip().lower()
    if flag in ("1", "true", "yes"):
        return True
    if flag in ("0", "false", "no"):
        return False
    return not torch.cuda.is_available()


def smoke_named(name: str, smoke: bool) -> str:
    """`name` as smoke mode spells it: prefixed with "smoke-" (unless it says smoke already); unchanged otherwise."""
    return f"{SMOKE}-{name}" if smoke and SMOKE not in name else name


def show(fig, path: str | Path) -> Path:
    """Save `fig` (a matplotlib Figure) as the PNG `path` and display that PNG in the notebook; returns `path`.

    Displaying the saved bytes works in Colab, Jupyter and headless runners alike, whatever the
    matplotlib backend, and what is shown is exactly what is on disk. In smoke mode the file name starts with
    "smoke-" and the title says smoke mode (unless they say so already).
    """
    import matplotlib.pyplot as plt
    from IPython.display import Image, display

    path = smoke_figure(fig, path)
    save_figure(fig, path, dpi=110)
    plt.close(fig)  # a pyplot-managed figure would otherwise be drawn a second time by the inline backend
    display(Image(filename=str(path)))
    return path


def smoke_figure(fig, path: str | Path) -> Path:
    """In smoke mode: mark `fig`'s title and return `path` with its name smoke_named; else `path` as it is."""
    path = Path(path)
    if not smoke_mode():
        return path
    title = fig.get_suptitle()
    if SMOKE not in title:
        fig.suptitle(f"{title}\n" * bool(title) + "SMOKE MODE: the tiny model on digits, not a real run", fontsize=9)
    return path.with_name(smoke_named(path.name, True))


class LivePlot:
    """An `on_log` callback for train(): redraws the run's curves in place every `every` logged rows
    (saved as the run's figures/curves.png and shown from there)."""

    def __init__(self, run_dir: str | Path, every: int = 5):
        self.run_dir, self.every, self.rows, self.handle = Path(run_dir), every, 0, None

    def __call__(self, row: dict) -> None:
        from IPython.display import Image, display

        from .plots import plot_curves

        self.rows += 1
        if self.rows % self.every:
            return
        fig = plot_curves(self.run_dir)
        path = smoke_figure(fig, figure_path(self.run_dir, "curves.png"))
        save_figure(fig, path, dpi=110)
        if self.handle is None:
            self.handle = display(Image(filename=str(path)), display_id=True)
        else:
            self.handle.update(Image(filename=str(path)))


def figure_path(run_dir: str | Path, name: str) -> Path:
    """Where a figure of a run is saved (the run directory's figures/ folder)."""
    from .engine import RunDir

    return RunDir(run_dir).figure_file(name)
