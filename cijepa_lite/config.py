"""One frozen `Config` for every run, and `PRESETS` named after the write-up's table (SPEC section 8).

Source tags in comments: [W] the cI-JEPA write-up, [IJ] I-JEPA's paper or public code, [K] a kit choice.
Derived values (the collected depths, the scaled lr) are properties; nothing is ever written back.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Config:
    run_id: str = "custom"  # name used in results; presets carry the write-up's run ids
    seed: int = 0  # every random draw derives from (seed, step, sample index)

    # --- encoder f_theta (student) and f_xi (EMA teacher), SPEC 1 ---
    img_size: int = 224  # square input side in pixels
    patch_size: int = 16  # 224 / 16 = 14 x 14 grid
    in_chans: int = 3
    embed_dim: int = 768  # ViT-B width
    depth: int = 12  # blocks; hidden states d_0 .. d_{depth-1}
    num_heads: int = 12
    mlp_ratio: float = 4.0
    rope_base: float = 10000.0  # 2-D axial RoPE temperature [W] variant [K]

    # --- predictors P_s and heads H_{s->t}, SPEC 3 ---
    pred_dim: int = 384  # [IJ] narrow predictor width
    pred_depth: int = 6  # [IJ]
    pred_num_heads: int = 12  # [IJ]

    # --- supervision, SPEC 3-4: the only fields the write-up's runs change ---
    collect_from: int = 1  # D = {d_k : collect_from <= k < depth}; -1 keeps only d_last (I-JEPA)
    intermediate_rows: int = 2  # |S| - 1: rows drawn from D \ {d_last} each step; 0 = no deep supervision
    all_to_last_weight: float | None = 0.5  # alpha; None = non-last rows uniform (1/L each)
    last_to_last_weight: float | None = 0.8  # beta, last row only; None = beta takes alpha

    # --- masks, SPEC 2 ---
    mask_mode: str = "upstream"  # "upstream" (faithful to facebookresearch/ijepa) or "corrected"
    num_targets: int = 4  # M target blocks [IJ]
    target_scale: tuple[float, float] = (0.15, 0.2)  # [IJ] fraction of the grid per target block
    target_aspect: tuple[float, float] = (0.75, 1.5)  # [IJ] height / width of a target block
    context_scale: tuple[float, float] = (0.85, 1.0)  # [IJ] context block, aspect 1
    min_keep: int = 10  # [IJ] a context with <= min_keep tokens is redrawn

    # --- optimisation, SPEC 5 ---
    epochs: int = 200  # [W]; the schedule spans epochs * steps_per_epoch steps
    batch_size: int = 256  # [K] images per optimizer step, summed over GPUs and accumulation
    base_lr: float = 1e-3  # [IJ] peak lr at batch base_batch; scaled linearly to batch_size [K]
    base_batch: int = 2048  # [IJ]
    warmup_fraction: float = 0.025  # [W] linear warmup over ~2.5% of total steps
    warmup_start_factor: float = 0.2  # [IJ] warmup starts at 0.2 x peak lr
    final_lr: float = 1e-6  # [IJ] cosine ends here
    weight_decay: float = 0.05  # [W] constant; none on biases and 1-D params [IJ]
    adam_betas: tuple[float, float] = (0.9, 0.999)  # [IJ]
    adam_eps: float = 1e-8  # [IJ]
    ema_start: float = 0.996  # [IJ] teacher momentum m at step 0, linear to ema_end at the last step
    ema_end: float = 1.0  # [IJ]
    precision: str = "bf16"  # "bf16": autocast on any device (bf16 on CUDA [IJ]); "fp32": none. Master weights fp32
    crop_scale: tuple[float, float] = (0.3, 1.0)  # [IJ] RandomResizedCrop scale, no flip, no colour jitter
    pos_embed: str = "rope"  # upstream switch (SPEC 11) [W][K] "rope": 2-D RoPE per block; [IJ] "sincos": fixed, once
    final_norm: bool = False  # [IJ] True: LayerNorm after the last block (d_last is taken after it)
    loss: str = "mse"  # [W] "mse"; [IJ] "smooth_l1" (beta 1)
    final_weight_decay: float | None = None  # [IJ] 0.4: cosine from weight_decay to this; None = constant [W]
    ipe_scale: float | None = None  # None: the kit's schedules; [IJ] upstream's, over ipe_scale x the run's steps

    # --- data ---
    dataset: str = "imagenet100"  # "imagenet100" (prepared cache), "digits" (embedded, no download), or a path

    # --- run management: never changes the maths, so a resume may change these freely ---
    data_dir: str | None = None  # where the prepared dataset lives (None = the default cache dir)
    micro_batch_size: int | None = None  # per-device forward batch; None = the largest that fits
    num_workers: int | None = None  # data loader processes per device; None = usable CPUs minus one (at run time)
    log_every: int = 20  # steps between host syncs for metrics.jsonl
    ckpt_minutes: float = 30.0  # wall-clock minutes between checkpoints (one is always written at the end)
    keep_checkpoints: int = 3  # newest K checkpoints are kept
    mirror_dir: str | None = None  # second copy of every checkpoint (e.g. Google Drive); failures never block
    max_skipped_steps: int = 20  # consecutive non-finite losses tolerated before the run stops
    compile: bool = False  # torch.compile the student, teacher and predictors
    knn_every_epochs: float | None = None  # epochs between kNN readings of the teacher (metrics "knn_top1"); None = off
    wandb: str | None = None  # W&B "PROJECT" or "ENTITY/PROJECT" to log to as well (TensorBoard always); None = no W&B

    def __post_init__(self):
        _validate(self)

    @property
    def grid(self) -> int:  # patches per side
        return self.img_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid**2

    @property
    def collected_depths(self) -> tuple[int, ...]:
        """D: the block indices whose outputs are predicted (and predict), ascending; D[-1] = d_last."""
        return tuple(range(self.collect_from % self.depth, self.depth))

    @property
    def num_depths(self) -> int:
        """L = |D|."""
        return len(self.collected_depths)

    @property
    def peak_lr(self) -> float:
        """base_lr scaled linearly from base_batch to batch_size [K]."""
        return self.base_lr * self.batch_size / self.base_batch

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_HINTS = typing.get_type_hints(Config)  # {field: type}, for validation and the command line's parsing
# Fields that may differ between a checkpoint's config and the resuming run's config.
RUNTIME_FIELDS = frozenset(["data_dir", "micro_batch_size", "num_workers", "log_every", "ckpt_minutes",
                            "keep_checkpoints", "mirror_dir", "max_skipped_steps", "compile", "knn_every_epochs", "wandb"])


# Numeric fields and their allowed ranges (lo, hi), inclusive; None = unbounded on that side.
_RANGES = {
    "seed": (0, None), "img_size": (1, None), "patch_size": (1, None), "in_chans": (1, None), "embed_dim": (1, None),
    "depth": (1, None), "num_heads": (1, None), "mlp_ratio": (0.0, None), "rope_base": (1.0, None),
    "pred_dim": (1, None), "pred_depth": (1, None), "pred_num_heads": (1, None), "num_targets": (1, None),
    "min_keep": (0, None), "epochs": (1, None), "batch_size": (1, None), "base_lr": (0.0, None),
    "base_batch": (1, None), "warmup_fraction": (0.0, 1.0), "warmup_start_factor": (0.0, 1.0),
    "final_lr": (0.0, None), "weight_decay": (0.0, None), "adam_eps": (0.0, None), "final_weight_decay": (0.0, None),
    "log_every": (1, None), "ckpt_minutes": (0.0, None), "keep_checkpoints": (1, None), "ipe_scale": (1.0, None),
    "max_skipped_steps": (0, None), "num_workers": (0, None), "micro_batch_size": (1, None),
    "all_to_last_weight": (0.0, 1.0), "last_to_last_weight": (0.0, 1.0),  # these four may also be None
}
# Pairs (lo, hi) with 0 < lo <= hi (<= 1 for fractions).
_PAIRS = {"target_scale": 1.0, "target_aspect": None, "context_scale": 1.0, "crop_scale": 1.0, "adam_betas": 1.0}


def _type_ok(value, hint) -> bool:
    """Whether `value` has the field type `hint` (int, float, str, bool, tuple[float, float], X | None)."""
    if isinstance(hint, types.UnionType):
        return any(_type_ok(value, h) for h in typing.get_args(hint))
    if typing.get_origin(hint) is tuple:
        return isinstance(value, tuple) and len(value) == 2 and all(_type_ok(v, float) for v in value)
    if hint in (int, float):  # an int is a valid float; a bool is neither
        return not isinstance(value, bool) and isinstance(value, (int, float) if hint is float else int)
    return isinstance(value, hint)


def _validate(cfg: Config) -> None:
    def fail(key, why):
        raise ValueError(f"config {key}={getattr(cfg, key)!r}: {why}")

    for key, hint in _HINTS.items():  # types first: a hand-edited file may hold anything
        if not _type_ok(value := getattr(cfg, key), hint):
            fail(key, f"must be of type {getattr(hint, '__name__', hint)}")
        numbers = [v for v in (value if isinstance(value, tuple) else (value,)) if isinstance(v, float)]
        if key != "ckpt_minutes" and not all(map(math.isfinite, numbers)):  # ckpt_minutes=inf: only the last one
            fail(key, "must be a finite number")
    if not cfg.run_id.strip():
        fail("run_id", "must be a non-empty name")
    for key, (lo, hi) in _RANGES.items():
        if (value := getattr(cfg, key)) is not None and not (value >= lo and (hi is None or value <= hi)):
            fail(key, f"must be {f'>= {lo}' if hi is None else f'in [{lo}, {hi}]'}")
    for key, top in _PAIRS.items():
        if not 0 <= (pair := getattr(cfg, key))[0] <= pair[1] or (top is not None and pair[1] > top):
            fail(key, f"must be a pair (lo, hi) with 0 <= lo <= hi{'' if top is None else f' <= {top}'}")
    if cfg.img_size % cfg.patch_size:
        fail("img_size", f"must be a multiple of patch_size={cfg.patch_size}")
    for dim, heads, key in [(cfg.embed_dim, cfg.num_heads, "num_heads"), (cfg.pred_dim, cfg.pred_num_heads, "pred_num_heads")]:
        if dim % heads or (dim // heads) % 4:
            fail(key, f"must divide the width {dim} into heads whose width is a multiple of 4 "
                      "(2-D RoPE splits each head in row/column pairs)")
    if not -cfg.depth <= cfg.collect_from < cfg.depth:
        fail("collect_from", f"must index a block of depth={cfg.depth}")
    if not 0 <= cfg.intermediate_rows <= cfg.num_depths - 1:
        fail("intermediate_rows", f"must be in [0, L-1] with L={cfg.num_depths} collected depths")
    for key, choices in (("mask_mode", ("upstream", "corrected")), ("precision", ("bf16", "fp32")),
                         ("pos_embed", ("rope", "sincos")), ("loss", ("mse", "smooth_l1"))):
        if getattr(cfg, key) not in choices:
            fail(key, f"must be one of {choices}")
    if not 0.0 <= cfg.ema_start <= cfg.ema_end <= 1.0:
        fail("ema_start", f"need 0 <= ema_start <= ema_end={cfg.ema_end} <= 1")
    if cfg.knn_every_epochs is not None and not cfg.knn_every_epochs > 0:
        fail("knn_every_epochs", "must be > 0 or None")


# --- presets -------------------------------------------------------------------------------------
# The write-up's table (SPEC 8): only the supervision fields (and L300's epochs) differ between runs.
SUPERVISION = {
    "L200": dict(collect_from=-1, intermediate_rows=0, all_to_last_weight=None, last_to_last_weight=1.0),
    "L300": dict(collect_from=-1, intermediate_rows=0, all_to_last_weight=None, last_to_last_weight=1.0, epochs=300),
    "R-U": dict(all_to_last_weight=1 / 11, last_to_last_weight=1 / 11),
    "R-A05-B05": dict(all_to_last_weight=0.5, last_to_last_weight=0.5),
    "R-A08-B08": dict(all_to_last_weight=0.8, last_to_last_weight=0.8),
    "R-A05-B08": dict(all_to_last_weight=0.5, last_to_last_weight=0.8),
    "R-A05-B08-12": dict(collect_from=0, all_to_last_weight=0.5, last_to_last_weight=0.8),
    "R-B05": dict(all_to_last_weight=None, last_to_last_weight=0.5),
    "R-B08": dict(all_to_last_weight=None, last_to_last_weight=0.8),
    "R-A05-B10": dict(all_to_last_weight=0.5, last_to_last_weight=1.0),
    "R-A.-B05": dict(intermediate_rows=0, all_to_last_weight=None, last_to_last_weight=0.5),
    "R-A.-B08": dict(intermediate_rows=0, all_to_last_weight=None, last_to_last_weight=0.8),
}

_VIT_B = Config(dataset="imagenet100")  # defaults are the write-up's recipe with D = {d_1..d_11}

# CPU-sized model for tests and the demo (SPEC 10): digits upscaled to 32 px, patch 4 -> 8 x 8 grid, 6 blocks
# (D = d_1..d_5) of width 64. Tuned on 2 CPU cores so the demo learns visibly in minutes (teacher kNN top-1 57-59%
# at random init -> 72.7% after 40 epochs = 440 steps, `python -m cijepa_lite demo`). Alternatives measured while
# tuning (shorter runs, not committed):
# - mask_mode "corrected": upstream's exclusive bound never lets a block touch the last row or column, which
#   on 8 x 8 leaves 15 of 64 patches out of every context and ~11 context tokens; corrected keeps ~20 (kNN 75 vs 65).
# - ema_start 0.98 -> 1.0 over the run: the teacher must move within ~440 steps (0.99: 57% at step 170, 0.95: 55%,
#   0.98: 64%). base_lr 1e-3 at batch 128 (2e-3 and 5e-4 learned slower); width 64 beat 96 per CPU second.
# min_keep 4 (upstream's constructor default): on 64 tokens a target block has 9-12 tokens.
_TINY = replace(
    _VIT_B, run_id="tiny", img_size=32, patch_size=4, embed_dim=64, depth=6, num_heads=4,
    pred_dim=32, pred_depth=2, pred_num_heads=4, min_keep=4, mask_mode="corrected", dataset="digits", epochs=40,
    batch_size=128, base_lr=1e-3, base_batch=128, ema_start=0.98, precision="fp32", num_workers=0, log_every=10,
    ckpt_minutes=2.0, knn_every_epochs=10.0, **SUPERVISION["R-A05-B08"])

PRESETS: dict[str, Config] = {rid: replace(_VIT_B, run_id=rid, **sup) for rid, sup in SUPERVISION.items()}
PRESETS["tiny"] = _TINY
UPSTREAM_PRESETS: dict[str, Config] = {"ijepa": replace(
    PRESETS["L200"], run_id="ijepa", pos_embed="sincos", final_norm=True, loss="smooth_l1", weight_decay=0.04,
    final_weight_decay=0.4, ipe_scale=1.0, warmup_fraction=40 / 300, epochs=300, batch_size=2048)}


def get_config(run_id: str, /, **overrides) -> Config:
    """The preset `run_id` with `overrides` applied; unknown run ids or keys raise.

    Args:
        run_id: a key of PRESETS (the table's run ids, "tiny") or UPSTREAM_PRESETS ("ijepa": L200 as I-JEPA trains it).
        overrides: Config field values; strings are parsed to the field's type (for the command line).
    """
    if run_id not in (named := PRESETS | UPSTREAM_PRESETS):
        raise KeyError(f"unknown run id {run_id!r}; known: {', '.join(named)}")
    return replace(named[run_id], **_coerce_all(overrides))


def with_supervision(cfg: Config, run_id: str) -> Config:
    """`cfg` (any model size) with the supervision of the table's run `run_id` (e.g. the tiny baseline)."""
    sup = {k: v for k, v in SUPERVISION[run_id].items() if k != "epochs"}
    return replace(cfg, run_id=f"{cfg.run_id}/{run_id}", **sup)


def config_from_dict(values: dict) -> Config:
    """A Config from its `to_dict()` form (JSON turns tuples into lists); unknown keys or bad values: ValueError."""
    if not isinstance(values, dict):
        raise ValueError(f"a saved config is a JSON object, not a {type(values).__name__}")
    if unknown := sorted(set(values) - set(Config.__dataclass_fields__)):
        raise ValueError(f"saved config has keys this version does not know: {unknown}")
    return Config(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def config_changes(old: Config, new: Config) -> dict[str, tuple]:
    """Fields other than RUNTIME_FIELDS whose value differs: {name: (old, new)}."""
    a, b = old.to_dict(), new.to_dict()
    return {k: (a[k], b[k]) for k in a if k not in RUNTIME_FIELDS and a[k] != b[k]}


def parse_overrides(items: list[str]) -> dict:
    """Parse command-line `key=value` strings into typed Config overrides."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r} is not of the form key=value")
        out[key.strip()] = value.strip()
    return _coerce_all(out)


def _coerce_all(overrides: dict) -> dict:
    out = {}
    for key, value in overrides.items():
        if key not in _HINTS:
            close = difflib.get_close_matches(key, _HINTS, n=3)
            raise KeyError(f"unknown config key {key!r}" + (f" (did you mean {', '.join(close)}?)" if close else ""))
        out[key] = _coerce(key, value, _HINTS[key]) if isinstance(value, str) else value
    return out


def _coerce(key: str, text: str, hint) -> object:
    """Parse `text` as type `hint` (int, float, bool, str, tuple[float, float], X | None)."""
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        if text.lower() in ("none", "null", ""):
            return None
        hint = next(a for a in args if a is not type(None))
        args = typing.get_args(hint)
    try:
        if typing.get_origin(hint) is tuple:
            return tuple(args[0](p) for p in text.strip("()[] ").split(","))
        if hint is bool:
            return {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}[text.lower()]
        if hint is float and "/" in text:  # allow alpha=1/11
            return float(text.split("/")[0]) / float(text.split("/")[1])
        return hint(text)
    except (ValueError, TypeError, KeyError, ZeroDivisionError):
        raise ValueError(f"config {key}={text!r}: not a valid {getattr(hint, '__name__', hint)}") from None
