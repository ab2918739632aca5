"""Take a trained encoder anywhere: a folder with safetensors weights, a config JSON and a model card.

    <out>/model.safetensors   the encoder's state dict (no pickle anywhere)
    <out>/encoder.json        the run's config, which encoder, step, git SHA, and timm Eva kwargs
    <out>/README.md           the model card: run id, config, git SHA, the run's results beside the write-up's
    <out>/results.json        the run's result records (when the results folder has some)

`load_encoder(path)` rebuilds the encoder from such a folder alone (no run directory): an nn.Module
that returns the hidden state after every block for images of any whole-patch size. `timm_encoder(path)`
builds the same network as timm's `Eva` (RoPE "cat" layout, qkv bias, no layer scale, no class
token, no absolute positions, no final norm, dynamic image size) with identical outputs; per-depth
features then come from `eva.forward_intermediates(x, output_fmt="NLC", intermediates_only=True)`.
`push_to_hub` uploads the folder with huggingface_hub.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save
from timm.models.eva import Eva
from torch import nn

from .config import Config, config_changes, config_from_dict
from .engine import load_encoders
from .eval.results import DEFAULT_RESULTS_DIRS, comparable_row, load_results_from, load_writeup
from .files import write_atomic, write_json
from .method import VisionTransformer
from .method.encoder import LayerNorm, sincos_table
from .provenance import provenance
from .release import REPOSITORY

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "encoder.json"
CARD_FILE = "README.md"
RESULTS_FILE = "results.json"
EXPORT_FILES = (WEIGHTS_FILE, CONFIG_FILE, CARD_FILE, RESULTS_FILE)
FORMAT = "cijepa-lite encoder"
WHICH = ("teacher", "student")
_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}  # torch -> safetensors header


def eva_kwargs(cfg: Config) -> dict:
    """Keyword arguments of `timm.models.eva.Eva` for the kit's encoder (norm_layer aside: timm's default
    LayerNorm already has eps 1e-6). A plain JSON dict, written into encoder.json for users without the kit.
    Upstream's switches: sin-cos positions become Eva's absolute pos_embed (timm_encoder fills it), final_norm its norm."""
    sincos = cfg.pos_embed == "sincos"
    return dict(img_size=cfg.img_size, patch_size=cfg.patch_size, in_chans=cfg.in_chans, num_classes=0,
                global_pool="", embed_dim=cfg.embed_dim, depth=cfg.depth, num_heads=cfg.num_heads,
                mlp_ratio=cfg.mlp_ratio, qkv_bias=True, attn_type="rope", init_values=None, class_token=False,
                use_abs_pos_emb=sincos, use_rot_pos_emb=not sincos, rope_type="cat", rope_temperature=cfg.rope_base,
                use_post_transformer_norm=cfg.final_norm, use_fc_norm=False, dynamic_img_size=True)


def export_encoder(run_dir: str | Path, out: str | Path, which: str = "teacher",
                   results_dirs: Sequence[str | Path] = DEFAULT_RESULTS_DIRS) -> Path:
    """Write the newest checkpoint's `which` encoder of `run_dir` into the folder `out`; returns `out`.

    `out` must be new, empty, or an earlier export of the same run (same config); it is replaced whole: the
    files are written into a fresh sibling folder, which then takes `out`'s place (no stale file of
    another export stays, and a failure leaves `out` as it was).

    Args:
        run_dir: a pretraining run directory.
        out: the export folder.
        which: "teacher" (the EMA encoder the write-up probes) or "student".
        results_dirs: where the run's result JSONs are looked up for the card (<dir>/runs/*.json; default the
            committed results/ and runs/results/, where probe writes).
    """
    if which not in WHICH:
        raise ValueError(f"--which {which!r}: expected one of {WHICH}")
    encoders, ckpt = load_encoders(run_dir)
    out = Path(out)
    check_target(out, ckpt.config)
    records = run_results(ckpt.config, ckpt.step, results_dirs)  # a bad results file fails before any write
    state = {k: v.contiguous() for k, v in encoders[which].state_dict().items()}
    meta = {"format": FORMAT, "run_id": ckpt.config.run_id, "which": which, "step": ckpt.step,
            "git_sha": ckpt.meta.get("git_sha"), "export_provenance": provenance(), "config": ckpt.config.to_dict(),
            "timm_eva_kwargs": eva_kwargs(ckpt.config)}
    out.parent.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".export", dir=out.parent))  # ours alone (0700)
    try:
        write_atomic(fresh / WEIGHTS_FILE, lambda f: f.write(_safetensors_bytes(state, meta)))
        write_json(fresh / CONFIG_FILE, meta)
        if records:
            write_json(fresh / RESULTS_FILE, records)
        text = model_card(meta, records).encode()
        write_atomic(fresh / CARD_FILE, lambda f: f.write(text))
        fresh.chmod(0o755)
        _replace_folder(fresh, out)
    finally:
        shutil.rmtree(fresh, ignore_errors=True)  # only left when something failed
    return out


def check_target(out: Path, cfg: Config) -> None:
    """ValueError unless `out` is new, an empty folder, or an earlier export of a run with config `cfg`."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise ValueError(f"export --out {out} is a {'link' if out.is_symlink() else 'file'}: give a folder")
    held = sorted(p.name for p in out.iterdir()) if out.exists() else []
    if not held:
        return
    try:
        earlier = json.loads((out / CONFIG_FILE).read_text())
        same = earlier.get("format") == FORMAT and not config_changes(cfg, config_from_dict(earlier["config"])) \
            and earlier["config"]["run_id"] == cfg.run_id and set(held) <= set(EXPORT_FILES)
    except (OSError, ValueError, RecursionError, KeyError, TypeError, AttributeError):
        same = False
    if not same:
        raise ValueError(f"export --out {out} holds {held[:4]} and is not an earlier export of run {cfg.run_id!r}: "
                         "give a new or empty folder")


def _replace_folder(fresh: Path, out: Path) -> None:
    """Put the folder `fresh` in the place of `out` (renames; an earlier `out` is removed after the swap)."""
    if not out.exists():
        os.rename(fresh, out)
        return
    old = fresh.with_suffix(".old")
    os.rename(out, old)
    try:
        os.rename(fresh, out)
    except OSError:
        os.rename(old, out)  # put the earlier export back
        raise
    shutil.rmtree(old)


def _safetensors_bytes(state: dict[str, torch.Tensor], meta: dict) -> bytes:
    return save(state, metadata={"format": "pt", "run_id": meta["run_id"], "which": meta["which"],
                                 "step": str(meta["step"])})


def run_results(cfg: Config, step: int, results_dirs: Sequence[str | Path] = DEFAULT_RESULTS_DIRS) -> list[dict]:
    """Result records of this run's config at this checkpoint step (any probe, any encoder)."""
    return [r for r in load_results_from(results_dirs) if r["run_id"] == cfg.run_id and r["pretrain"]["step"] == step
            and not config_changes(cfg, config_from_dict(r["config"]))]


def model_card(meta: dict, records: list[dict]) -> str:
    """The folder's README.md: what the weights are, how to load them, and the run's numbers beside the write-up's."""
    cfg = meta["config"]
    writeup = {w["run_id"]: w["top1"] for w in load_writeup()}
    # the write-up's number only beside a run of its row's recipe (eval.results.comparable_row)
    rows = [f"| {r['probe']['name']} ({r['probe']['encoder']}) | {r['dataset']} | {r['top1']:.2f} | "
            f"{writeup.get(comparable_row(r), '- (not its recipe)')} |" for r in records]
    table = ("| probe | dataset | kit top-1 (%) | write-up top-1 (%) |\n|---|---|---|---|\n" + "\n".join(rows)
             if rows else "No result JSON of this checkpoint was found when it was exported.")
    return f"""---
library_name: timm
pipeline_tag: image-feature-extraction
tags: [cijepa-lite, cI-JEPA, I-JEPA, self-supervised, vision-transformer, rope]
---
# cijepa-lite encoder: {meta['run_id']} ({meta['which']}, step {meta['step']})

The {'EMA teacher' if meta['which'] == 'teacher' else 'online student'} of a cI-JEPA pretraining run of
[cijepa-lite]({REPOSITORY}), run id `{meta['run_id']}`:
a ViT {cfg['depth']}x{cfg['embed_dim']} (patch {cfg['patch_size']}, trained at {cfg['img_size']} px) with 2-D axial
RoPE (base {cfg['rope_base']}), qkv bias, no layer scale, no class token and no final LayerNorm. It returns the hidden state after every
block and runs on images of any size made of whole {cfg['patch_size']}-px patches.

- git SHA of the pretraining: `{meta['git_sha']}`; exported at `{meta['export_provenance']['git_sha']}`
- weights: `{WEIGHTS_FILE}` (safetensors); config: `{CONFIG_FILE}` (the run's whole config)

```python
from cijepa_lite import load_encoder
encoder = load_encoder("path/to/this/folder")  # hidden = encoder(images): one (B, N, D) per block
```
or with timm alone: `timm.models.eva.Eva(**config["timm_eva_kwargs"])`, `load_state_dict` of the safetensors
file, then `eva.forward_intermediates(images, output_fmt="NLC", intermediates_only=True)`.

## Results of this checkpoint (val top-1; the write-up's number is for its ViT-B/16 on ImageNet-100)

{table}

## Config

```json
{json.dumps(cfg, indent=1)}
```
"""


def load_encoder(path: str | Path, device: torch.device | str | None = None) -> VisionTransformer:
    """The encoder saved in an export folder, in eval mode: `encoder(images)` is the list of every block's output.

    encoder.json is checked against the safetensors header (names, shapes, dtypes) before anything is
    allocated, and the weights for finiteness after reading; a mismatch is a ValueError naming file and field.

    Args:
        path: an export folder (or its model.safetensors).
    """
    folder, meta, cfg = read_export(path)
    state = checked_weights(folder, cfg)  # before the model is built: cfg may describe gigabytes
    encoder = VisionTransformer(cfg)
    encoder.load_state_dict(state)
    return encoder.to(device or "cpu").eval()


def timm_encoder(path: str | Path) -> nn.Module:
    """The exported encoder as timm's Eva (same weights, same outputs), in eval mode."""
    folder, meta, cfg = read_export(path)
    state = checked_weights(folder, cfg)
    if meta.get("timm_eva_kwargs") != eva_kwargs(cfg):
        raise ValueError(f"{folder / CONFIG_FILE}: field timm_eva_kwargs does not match field config")
    eva = Eva(**eva_kwargs(cfg), norm_layer=LayerNorm)
    if cfg.pos_embed == "sincos":  # the kit's fixed table is a buffer, not saved: Eva holds it as its pos_embed
        state["pos_embed"] = sincos_table(cfg.grid, cfg.embed_dim)[None]  # (1, N, D)
    eva.load_state_dict(state)
    return eva.eval()


def read_export(path: str | Path) -> tuple[Path, dict, Config]:
    """(folder, encoder.json, its config) of an export; ValueError naming the file and the field if damaged."""
    folder = _folder(path)
    where = folder / CONFIG_FILE
    try:
        meta = json.loads(where.read_text())
    except (ValueError, RecursionError) as e:
        raise ValueError(f"{where} is not valid JSON ({e}): export the run again") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{where}: field format is not {FORMAT!r}: not an encoder export")
    try:
        return folder, meta, config_from_dict(meta.get("config"))
    except ValueError as e:
        raise ValueError(f"{where}: field config: {e}") from None


def checked_weights(folder: Path, cfg: Config) -> dict[str, torch.Tensor]:
    """The safetensors weights of an export once their header fits the encoder `cfg` describes, all finite."""
    where = folder / WEIGHTS_FILE
    try:
        with safe_open(where, "pt") as f:
            header = {k: (tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype()) for k in f.keys()}
    except (OSError, SafetensorError) as e:
        raise ValueError(f"{where}: unreadable safetensors header ({e})") from None
    blocks = {k.split(".")[1] for k in header if k.startswith("blocks.")}
    if len(blocks) != cfg.depth:  # checked first: the model below is built from cfg (on the meta device)
        raise ValueError(f"{where} holds {len(blocks)} blocks, {folder / CONFIG_FILE} field config.depth "
                         f"says {cfg.depth}")
    with torch.device("meta"):
        expected = {k: (tuple(v.shape), _DTYPES[v.dtype]) for k, v in VisionTransformer(cfg).state_dict().items()}
    wrong = sorted(k for k in expected.keys() | header.keys() if expected.get(k) != header.get(k))
    if wrong:
        k = wrong[0]
        raise ValueError(f"{where}: tensor {k} is {header.get(k, 'missing')}, {folder / CONFIG_FILE} field config "
                         f"describes {expected.get(k, 'no such tensor')} ({len(wrong)} differ)")
    state = load_file(where)
    bad = [k for k, v in state.items() if not torch.isfinite(v).all()]
    if bad:
        raise ValueError(f"{where}: tensor {bad[0]} holds non-finite values ({len(bad)} tensors do)")
    return state


def _folder(path: str | Path) -> Path:
    path = Path(path)
    folder = path.parent if path.name == WEIGHTS_FILE else path
    if not (folder / CONFIG_FILE).is_file() or not (folder / WEIGHTS_FILE).is_file():
        raise FileNotFoundError(f"{folder} is not an exported encoder (needs {WEIGHTS_FILE} and {CONFIG_FILE}): "
                                "write one with python -m cijepa_lite export --run RUN --out DIR")
    return folder


def push_to_hub(folder: str | Path, repo_id: str, token: str | None = None, private: bool = False) -> str:
    """Upload an export folder to the Hugging Face Hub model repo `repo_id` (made if missing); returns its URL."""
    from huggingface_hub import HfApi

    folder, meta, cfg = read_export(folder)
    run_id = cfg.run_id
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model",
                      commit_message=f"cijepa-lite export of {run_id}")
    return f"https://huggingface.co/{repo_id}"
