"""The alpha/beta picker: choose supervision, see the weight matrix w[s, t] and which table row it is.

Uses only the ipywidgets API that 7.7 (Colab's) and 8 share; the logic lives in plain functions
(`supervision_config`, `matching_run_id`, `weights_figure`) so it is tested without a browser.
"""
from __future__ import annotations

import io
from dataclasses import replace

import matplotlib.pyplot as plt

from .config import PRESETS, SUPERVISION, Config
from .method import depth_weights

_SUPERVISION_FIELDS = ("collect_from", "intermediate_rows", "all_to_last_weight", "last_to_last_weight")
_DEPTH_SETS = {"d1..d_last (write-up default)": 1, "d0..d_last": 0, "d_last only (I-JEPA)": -1}


def supervision_config(base: Config, collect_from: int, intermediate_rows: int, alpha: float | None,
                       beta: float | None) -> Config:
    """`base` with the four supervision fields replaced (clamping rows to what D allows)."""
    cfg = replace(base, collect_from=collect_from, intermediate_rows=0, all_to_last_weight=alpha,
                  last_to_last_weight=beta)
    return replace(cfg, intermediate_rows=min(intermediate_rows, cfg.num_depths - 1))


def matching_run_id(cfg: Config) -> str | None:
    """The write-up's run id whose supervision fields `cfg` has, or None for a new combination.

    D is compared as `collect_from`, so a smaller model with the same fields matches the same row;
    epochs only break the L200 / L300 tie.
    """
    same = [rid for rid, sup in SUPERVISION.items()
            if all(_close(getattr(cfg, k), getattr(replace(PRESETS["R-A05-B08"], **sup), k)) for k in _SUPERVISION_FIELDS)]
    exact = [rid for rid in same if PRESETS[rid].epochs == cfg.epochs]
    return (exact or same or [None])[0]


def form_config(run_id: str, depths: str = "", rows: str = "", alpha: str = "", beta: str = "") -> Config:
    """The config a notebook's parameters cell asks for: `run_id`'s preset with the form's supervision fields.

    Args:
        run_id: a table row; everything but the supervision comes from its preset.
        depths: "" (the row's), or a key of the picker's D menu, e.g. "d0..d_last".
        rows: "" (the row's) or the number of intermediate source rows.
        alpha, beta: "" (the row's), "unset", or a number in [0, 1].
    """
    base = PRESETS[run_id]
    collect_from = base.collect_from if depths == "" else _DEPTH_SETS[depths]
    n_rows = base.intermediate_rows if str(rows) == "" else int(rows)
    a = _weight(alpha, base.all_to_last_weight, "ALPHA")
    b = _weight(beta, base.last_to_last_weight, "BETA")
    cfg = supervision_config(base, collect_from, n_rows, a, b)
    return replace(cfg, run_id=run_name(cfg))


def _weight(text: str | float, default: float | None, name: str) -> float | None:
    text = str(text).strip()
    if text == "":
        return default
    if text.lower() == "unset":
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} = {text!r}: expected a number in [0, 1], 'unset' or '' (the run id's)") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} = {value}: expected a number in [0, 1]")
    return value


def run_name(cfg: Config) -> str:
    """The run folder's name: the table row whose supervision `cfg` has, else one spelled from the supervision,
    e.g. 'custom-D1-11-rows2-a0.30-b0.90' ('a-unset' = uniform rows, 'b-unset' = beta follows alpha)."""
    row = matching_run_id(cfg)
    if row is not None:
        return row
    d = cfg.collected_depths
    a, b = cfg.all_to_last_weight, cfg.last_to_last_weight
    return (f"custom-D{d[0]}-{d[-1]}-rows{cfg.intermediate_rows}-" + ("a-unset" if a is None else f"a{a:.2f}")
            + "-" + ("b-unset" if b is None else f"b{b:.2f}"))


def _close(a, b) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) < 1e-6


def weights_figure(cfg: Config):
    """Heatmap of w[s, t] (rows: student source depth, columns: teacher target depth)."""
    w = depth_weights(cfg.num_depths, cfg.all_to_last_weight, cfg.last_to_last_weight).numpy()
    names = [f"d{b}" for b in cfg.collected_depths]
    size = 1.2 + 0.42 * len(names)
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    image = ax.imshow(w, cmap="viridis", vmin=0.0, vmax=max(w.max(), 1e-6))
    ax.set_xticks(range(len(names)), names, rotation=90)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("teacher target depth t")
    ax.set_ylabel("student source depth s")
    rows = "last row only" if cfg.intermediate_rows == 0 else f"{cfg.intermediate_rows} random rows + last"
    ax.set_title(f"w[s, t] ({rows}; {matching_run_id(cfg) or 'not in the table'})", fontsize=9)
    for s in range(len(names)):
        for t in range(len(names)):
            if len(names) <= 12:
                ax.text(t, s, f"{w[s, t]:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if w[s, t] < 0.5 * w.max() else "black")
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


class AlphaBetaPicker:
    """Widgets for D, rows, alpha and beta that redraw the weight matrix on every change.

    Built from the parameters cell's config, it shows the values Run all will train; after an edit it
    prints the parameters-cell values that keep the choice through the next Run all (the form is the truth).
    """

    def __init__(self, base: Config):
        import ipywidgets as w

        self.base = base
        self.depths = w.Dropdown(options=list(_DEPTH_SETS), description="D", value=_label_for(base.collect_from))
        self.rows = w.IntSlider(value=base.intermediate_rows, min=0, max=base.depth - 1, description="rows")
        self.alpha_unset = w.Checkbox(value=base.all_to_last_weight is None, description="alpha unset (uniform)")
        self.alpha = w.FloatSlider(value=base.all_to_last_weight or 0.5, min=0.0, max=1.0, step=0.01,
                                   description="alpha")
        self.beta_unset = w.Checkbox(value=base.last_to_last_weight is None, description="beta unset (= alpha)")
        self.beta = w.FloatSlider(value=base.last_to_last_weight or 0.5, min=0.0, max=1.0, step=0.01,
                                  description="beta")
        # The figure as an Image widget's PNG, not an Output widget: classic Jupyter (widgetsnbextension 3.6) fails to
        # build an Output model, which blanks the whole picker (tests/test_browser.py saw it), and a figure drawn into
        # an Output before it is displayed lands outside the picker.
        self.image, self.hint = w.Image(format="png", layout=w.Layout(max_width="560px")), w.Label()  # fits beside
        controls = [self.depths, self.rows, self.alpha_unset, self.alpha, self.beta_unset, self.beta]
        for c in controls:
            c.observe(lambda _change: self.redraw(), names="value")
        column = w.VBox(controls, layout=w.Layout(min_width="380px"))  # else the figure squeezes the slider readouts
        self.widget = w.VBox([w.HBox([column, self.image]), self.hint])
        self.redraw()

    def config(self) -> Config:
        """The base config with the picked supervision, named after it (run_name)."""
        alpha = None if self.alpha_unset.value else self.alpha.value
        beta = None if self.beta_unset.value else self.beta.value
        cfg = supervision_config(self.base, _DEPTH_SETS[self.depths.value], self.rows.value, alpha, beta)
        return replace(cfg, run_id=run_name(cfg))

    def form_values(self) -> str:
        """The parameters-cell line that trains the picked supervision on the next Run all."""
        a = "unset" if self.alpha_unset.value else f"{self.alpha.value:.2f}"
        b = "unset" if self.beta_unset.value else f"{self.beta.value:.2f}"
        return f'D = "{self.depths.value}", ROWS = "{self.rows.value}", ALPHA = "{a}", BETA = "{b}"'

    def redraw(self) -> None:
        """Draw the picked w[s, t] into the widget's image and show the run it names and the parameters-cell values."""
        self.hint.value = (f"picked {run_name(self.config())}. Run all trains the parameters cell's values; "
                           f"to keep this choice set {self.form_values()}")
        fig = weights_figure(self.config())
        png = io.BytesIO()
        fig.savefig(png, format="png")
        plt.close(fig)
        self.image.value = png.getvalue()


def _label_for(collect_from: int) -> str:
    return next((k for k, v in _DEPTH_SETS.items() if v == collect_from), next(iter(_DEPTH_SETS)))
