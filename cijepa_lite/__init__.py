"""cijepa-lite: a Colab-first reproduction kit for cI-JEPA (constructive I-JEPA).

The public surface (SPEC section 9) is importable from here; the modules behind it may move.

    config.py  Config, PRESETS, get_config          method/  the write-up's method, on its own
    data/      sources, transforms, the cache       engine/  train(), checkpoints, the run directory
    eval/      probes, kNN, results as data         front:   cli, colab, picker, demo, bench, plots, evaluate
"""
from .config import PRESETS, Config, get_config
from .engine import train
from .export import load_encoder
from .method import CIJEPA, MaskSampler, depth_weights
from .engine.official import from_ijepa
from .release import VERSION as __version__

__all__ = ["CIJEPA", "PRESETS", "Config", "MaskSampler", "depth_weights", "from_ijepa", "get_config", "load_encoder", "train"]
