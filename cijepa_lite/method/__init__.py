"""The method of the write-up, and nothing else: it reads on its own.

encoder.py    the ViT (student and EMA teacher): timm blocks, 2-D RoPE (or sin-cos), no final norm (or one), every depth
predictor.py  one narrow predictor P_s per source depth, with its fused heads H_{s->t}
norm.py       the predictors' LayerNorm, saving only its input under autocast (also vmapped)
masks.py      I-JEPA multi-block masks (upstream-faithful or corrected)
objective.py  the row weights w[s, t], the sampled source rows, layer-normed teacher targets, the loss
ema.py        the EMA teacher update and its momentum schedule
model.py      CIJEPA: all of the above as one module whose forward returns (loss, stats)

It imports nothing of the kit but `config` and the seeded `rng`.
"""
from .ema import ema_momentum, ema_update
from .encoder import VisionTransformer
from .masks import MaskSampler
from .model import CIJEPA, compile_parts, depth_key
from .objective import cijepa_loss, depth_weights, sample_source_depths, teacher_targets
from .predictor import Predictor

__all__ = ["CIJEPA", "MaskSampler", "Predictor", "VisionTransformer", "cijepa_loss", "compile_parts", "depth_key",
           "depth_weights", "ema_momentum", "ema_update", "sample_source_depths", "teacher_targets"]
