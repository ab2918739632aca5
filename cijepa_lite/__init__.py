"""cijepa-lite: a Colab-first reproduction kit for cI-JEPA (constructive I-JEPA)."""

__version__ = "0.1.0"
