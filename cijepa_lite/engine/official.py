"""Official I-JEPA checkpoints in: `from_ijepa(checkpoint)` -> a CIJEPA in the upstream configuration.

facebookresearch/ijepa saves {"encoder", "predictor", "target_encoder", "opt", "epoch", ...}, each model
a state dict with DDP's "module." prefix. This module reads such a file (weights_only, memory-mapped),
infers the model from its shapes (width, depth, patch, grid; heads from the width by upstream's model
table), renames its keys to the kit's and loads them. A file with only an encoder loads without predictors.
Legend: D width, P predictor width, N patches, p patch size.
"""
from __future__ import annotations

import pickle
import re
from dataclasses import replace
from pathlib import Path

import torch

from ..config import UPSTREAM_PRESETS, Config
from ..method import CIJEPA, Predictor, VisionTransformer, depth_key, depth_weights
from ..method.encoder import sincos_table
from .rundir import Checkpoint

# [IJ] vision_transformer.py: width -> (heads, mlp_ratio) of vit_tiny .. vit_giant.
HEADS = {192: (3, 4.0), 384: (6, 4.0), 768: (12, 4.0), 1024: (16, 4.0), 1280: (16, 4.0), 1408: (16, 48 / 11)}
MODELS = ("encoder", "target_encoder", "predictor")  # the state dicts of an official file
_BLOCK = r"blocks\.\d+\.(norm1|norm2)\.(weight|bias)|blocks\.\d+\.(attn\.qkv|attn\.proj|mlp\.fc1|mlp\.fc2)\.(weight|bias)"
_ENCODER = re.compile(rf"patch_embed\.proj\.(weight|bias)|pos_embed|norm\.(weight|bias)|{_BLOCK}")
_PREDICTOR = {"predictor_embed.": "embed.", "predictor_blocks.": "blocks.", "predictor_norm.": "norm.",
              "predictor_proj.": "heads.", "mask_token": "mask_token", "predictor_pos_embed": "pos_embed"}


def is_official(obj) -> bool:
    """Whether a loaded checkpoint dict is an official I-JEPA one (it has an encoder state dict, no kit keys)."""
    return isinstance(obj, dict) and any(k in obj for k in ("encoder", "target_encoder")) and "student" not in obj


def read_official(path: str | Path) -> dict:
    """An official file as a dict of state dicts, weights_only and memory-mapped (a ViT-H/14 is ~2.5 GB per model)."""
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as e:  # a legacy (pre-zipfile) save cannot be memory-mapped: read it whole
            if "mmap" not in str(e):
                raise
            return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0].split(". ")[0]  # torch's first sentence
        raise ValueError(f"{path}: not a readable torch checkpoint ({first})") from None


def _plain(state: dict, name: str) -> dict[str, torch.Tensor]:
    """`state` without DDP's "module." prefix."""
    if not isinstance(state, dict):
        raise ValueError(f"official checkpoint: '{name}' is a {type(state).__name__}, not a state dict")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _shape_error(name: str, key: str, shape, why: str) -> ValueError:
    return ValueError(f"official checkpoint: {name}.{key} has shape {tuple(shape)}: {why}; "
                      "pass the shape by hand, e.g. from_ijepa(path, num_heads=...)")


def infer_config(encoder: dict, predictor: dict | None, name: str = "encoder", /, **overrides) -> Config:
    """The upstream-preset Config whose shapes are those of the state dicts (overrides win).

    Args:
        encoder: an encoder state dict without prefix (`name` in the file); predictor: the predictor's, or None.
        overrides: Config fields the shapes cannot say (num_heads outside upstream's table, img_size, ...).
    """
    needed = [(name, encoder, k) for k in ("patch_embed.proj.weight", "pos_embed", "blocks.0.mlp.fc1.weight")]
    needed += [("predictor", predictor, "predictor_embed.weight")] if predictor is not None else []
    for part, state, key in needed:
        if key not in state:
            raise ValueError(f"official checkpoint: {part} has no '{key}'; not an I-JEPA ViT {part}")
    width, chans, patch, _ = encoder["patch_embed.proj.weight"].shape  # (D, C, p, p)
    n = encoder["pos_embed"].shape[-2]  # (1, N, D)
    grid = round(n ** 0.5)
    if grid * grid != n:
        raise _shape_error(name, "pos_embed", encoder["pos_embed"].shape, "not a square grid of patches")
    depth = 1 + max(int(k.split(".")[1]) for k in encoder if k.startswith("blocks."))
    heads, mlp = HEADS.get(width, (None, encoder["blocks.0.mlp.fc1.weight"].shape[0] / width))
    if heads is None and "num_heads" not in overrides:
        raise _shape_error(name, "patch_embed.proj.weight", (width, chans, patch, patch),
                           f"width {width} is no upstream model's ({', '.join(map(str, HEADS))})")
    found = dict(img_size=grid * patch, patch_size=patch, in_chans=chans, embed_dim=width, depth=depth,
                 num_heads=heads, mlp_ratio=mlp, final_norm="norm.weight" in encoder)
    if predictor is not None:
        pred_dim = predictor["predictor_embed.weight"].shape[0]  # (P, D)
        found.update(pred_dim=pred_dim, pred_num_heads=overrides.get("num_heads", heads),  # [IJ] encoder's heads
                     pred_depth=1 + max(int(k.split(".")[1]) for k in predictor if k.startswith("predictor_blocks.")))
    try:
        return replace(UPSTREAM_PRESETS["ijepa"], run_id="ijepa-official", **{**found, **overrides})
    except ValueError as e:
        raise ValueError(f"official checkpoint: the inferred shape fits no model: {e}") from None


def encoder_to_kit(state: dict, name: str = "encoder") -> dict[str, torch.Tensor]:
    """An upstream encoder state dict in the kit's names (pos_embed is checked by the caller, not loaded)."""
    unknown = [k for k in state if not _ENCODER.fullmatch(k)]
    if unknown:
        raise ValueError(f"official checkpoint: unknown key '{name}.{unknown[0]}' (not an I-JEPA ViT encoder)")
    return {k: v for k, v in state.items() if k != "pos_embed"}


def predictor_to_kit(state: dict) -> dict[str, torch.Tensor]:
    """An upstream predictor state dict in the kit's names (predictor_proj -> the single head H_{last->last})."""
    out = {}
    for key, value in state.items():
        prefix = next((p for p in _PREDICTOR if key.startswith(p)), None)
        rest = key[len(prefix):] if prefix else ""
        if prefix is None or (prefix == "predictor_blocks." and not re.fullmatch(_BLOCK, "blocks." + rest)):
            raise ValueError(f"official checkpoint: unknown key 'predictor.{key}' (not an I-JEPA predictor)")
        if prefix != "predictor_pos_embed":
            out[_PREDICTOR[prefix] + rest] = value
    return out


def from_ijepa(checkpoint: str | Path | dict, **shape_overrides) -> CIJEPA:
    """A CIJEPA (upstream configuration, D = {d_last}) holding an official I-JEPA checkpoint's weights.

    Args:
        checkpoint: the path of an official file (.pth.tar), or the dict it loads to: "encoder",
            "predictor", "target_encoder" state dicts, with or without DDP's "module." prefix; a file
            with only "target_encoder" or "encoder" loads without predictors.
        shape_overrides: Config fields the shapes cannot say (e.g. num_heads for a width outside upstream's table).
    Returns:
        the model; model.cfg records what was inferred. The teacher is "target_encoder" (else "encoder"); from a
        file with one encoder, student and teacher share its (memory-mapped) storage: clone before training.
    """
    ckpt = read_official(checkpoint) if isinstance(checkpoint, (str, Path)) else checkpoint
    if not is_official(ckpt):
        keys = ", ".join(map(str, list(ckpt)[:6])) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ValueError(f"official checkpoint: no 'encoder' or 'target_encoder' state dict (has: {keys})")
    models = {m: _plain(ckpt[m], m) for m in MODELS if ckpt.get(m) is not None}
    student = models.get("encoder", models.get("target_encoder"))
    teacher = models.get("target_encoder", student)
    predictor = models.get("predictor")
    cfg = infer_config(teacher, predictor, "target_encoder" if "target_encoder" in models else "encoder",
                       **shape_overrides)
    with torch.device("meta"):
        model = CIJEPA(cfg)
    if predictor is None:
        model.predictors = torch.nn.ModuleDict()  # encoder-only file: for probing and inspection
    model.to_empty(device="cpu")  # no init: every parameter is assigned from the (memory-mapped) file
    _load(model.student, encoder_to_kit(student, "encoder" if "encoder" in models else "target_encoder"), cfg)
    _load(model.teacher, encoder_to_kit(teacher, "target_encoder"), cfg)
    if predictor is not None:
        _load(model.predictors[depth_key(cfg.depth - 1)], predictor_to_kit(predictor), cfg)
    _rebuild_tables(model)
    _check_positions(teacher["pos_embed"], cfg.embed_dim, cfg.grid, "target_encoder.pos_embed")
    if predictor is not None:
        _check_positions(predictor["predictor_pos_embed"], cfg.pred_dim, cfg.grid, "predictor.predictor_pos_embed")
    return model


def _load(module: torch.nn.Module, state: dict, cfg: Config) -> None:
    """load_state_dict with a one-line error naming the first key that does not fit; rebuilds the fixed tables."""
    own = module.state_dict()
    for key, value in state.items():
        if key not in own:
            raise ValueError(f"official checkpoint: unknown key '{key}' for this model")
        if own[key].shape != value.shape:
            raise _shape_error(type(module).__name__, key, value.shape, f"the inferred model wants {tuple(own[key].shape)}")
    missing = sorted(set(own) - set(state))
    if missing:
        raise ValueError(f"official checkpoint: no '{missing[0]}' for the inferred model ({cfg.depth} blocks)")
    module.load_state_dict(state, assign=True)  # parameters keep requires_grad (the teacher's stays off)


@torch.no_grad()
def _rebuild_tables(model: CIJEPA) -> None:
    """The non-persistent buffers that `to_empty` left unset: position tables and the row weights."""
    for m in model.modules():
        if isinstance(m, VisionTransformer):
            m.rope.copy_(m.position_table((m.grid, m.grid)))
        elif isinstance(m, Predictor):
            m.rope.copy_(sincos_table(model.cfg.grid, model.cfg.pred_dim))  # the upstream preset's sin-cos
    cfg = model.cfg
    model.weights.copy_(depth_weights(cfg.num_depths, cfg.all_to_last_weight, cfg.last_to_last_weight))


def _check_positions(table: torch.Tensor, dim: int, grid: int, name: str) -> None:
    """Upstream's fixed positions must be the 2-D sin-cos table the kit computes (they are never trained)."""
    if not torch.allclose(table.reshape(-1, dim).float(), sincos_table(grid, dim), atol=1e-5):
        raise ValueError(f"official checkpoint: {name} is not the fixed 2-D sin-cos table of a {grid}x{grid} grid")


def to_ijepa(model: CIJEPA, prefix: str = "module.") -> dict:
    """The official file layout of a CIJEPA in the upstream configuration (D = {d_last}): for tests and demos.

    Args:
        prefix: prepended to every key ("module." as DDP writes it, or "").
    """
    cfg = model.cfg

    def encoder(m: VisionTransformer) -> dict:
        state = {"pos_embed": sincos_table(cfg.grid, cfg.embed_dim)[None], **m.state_dict()}  # (1, N, D)
        return {prefix + k: v.detach().clone() for k, v in state.items()}

    back = {new: old for old, new in _PREDICTOR.items()}
    out = {"encoder": encoder(model.student), "target_encoder": encoder(model.teacher), "epoch": 0}
    if model.predictors:
        pred = model.predictors[depth_key(cfg.depth - 1)].state_dict()
        state = {"predictor_pos_embed": sincos_table(cfg.grid, cfg.pred_dim)[None]}  # (1, N, P)
        for key, value in pred.items():
            new = next(n for n in back if key.startswith(n))
            state[back[new] + key[len(new):]] = value.detach().clone()
        out["predictor"] = {prefix + k: v for k, v in state.items()}
    return out


# vit_tiny's width (192 -> 3 heads by upstream's table), 2 blocks, 32 px at patch 8 (a 4 x 4 grid), 1-block predictor.
SMALL = dict(img_size=32, patch_size=8, embed_dim=192, num_heads=3, depth=2, pred_dim=48, pred_depth=1,
             pred_num_heads=3, precision="fp32")


def write_small_official(path: str | Path, seed: int = 1) -> Path:
    """A small randomly initialised model saved in the official layout (SMALL): for smoke runs and tests.

    Seed 1: the file loads with the preset's seed 0, so inspect's random-init reference is another model."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(to_ijepa(CIJEPA(replace(UPSTREAM_PRESETS["ijepa"], seed=seed, **SMALL))), path)
    return path


def official_encoders(path: str | Path) -> tuple[dict[str, torch.nn.Module], Checkpoint]:
    """`load_encoders` for an official file: its teacher (target_encoder) and student, and a Checkpoint describing it."""
    ckpt = read_official(path)
    model = from_ijepa(ckpt)
    epoch = ckpt.get("epoch") if isinstance(ckpt.get("epoch"), (int, float)) else None
    info = Checkpoint(step=0, config=model.cfg, student={}, teacher={}, predictors={}, optimizer={},
                      meta={"epoch": epoch, "official": True}, path=Path(path))
    return {"teacher": model.teacher, "student": model.student}, info
