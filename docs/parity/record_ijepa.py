"""Record facebookresearch/ijepa's own training steps as a fixture the kit's engine must replay.

    python docs/parity/record_ijepa.py /path/to/ijepa [--out docs/parity/ijepa_steps]

The checkout (commit 52c1ae95d05f743e000e8f10a1f3a79b10cff048) is imported from the path given;
nothing of it is copied here. Its own modules build and initialise a small model (`init_model`
on a width-64 ViT registered beside upstream's vit_* constructors), draw the masks (`MaskCollator`),
build AdamW and both schedules (`init_opt`), and the step below repeats src/train.py's train_step
arithmetic with upstream's helpers (`apply_masks`, `repeat_interleave_batch`, the momentum
generator's formula, the EMA loop): fp32, CPU, one process (its AllReduce is the identity there).

Writes <out>.safetensors (initial and final weights with upstream's key names, the first step's
gradients, every step's uint8 images and masks) and <out>.json (the model and schedule, per-step loss, lr, weight decay, momentum).
tests/test_parity.py replays it through the kit's Engine.step with the "ijepa" preset's switches.
"""
from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

UPSTREAM_COMMIT = "52c1ae95d05f743e000e8f10a1f3a79b10cff048"
# The small model and schedule: 80 px at patch 8 is a 10 x 10 grid, where every upstream target block
# (scale 0.15-0.2) has more than min_keep=10 patches, so MaskCollator always returns.
SETUP = dict(crop_size=80, patch_size=8, embed_dim=64, depth=3, num_heads=4, pred_emb_dim=32, pred_depth=2,
             batch_size=4, ipe=6, epochs=2, warmup=1, ipe_scale=1.25, start_lr=2e-4, lr=1e-3, final_lr=1e-6,
             wd=0.04, final_wd=0.4, ema=(0.9, 1.0), seed=0,
             mask=dict(pred_mask_scale=(0.15, 0.2), enc_mask_scale=(0.85, 1.0), aspect_ratio=(0.75, 1.5),
                       nenc=1, npred=4, allow_overlap=False, min_keep=10))
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # [IJ] src/transforms.py Normalize


def upstream(path: Path):
    """Upstream's modules, imported from the checkout at `path` (its code uses `src.` imports)."""
    if not (path / "src" / "helper.py").is_file():
        sys.exit(f"{path}: not a facebookresearch/ijepa checkout (no src/helper.py)")
    sys.path.insert(0, str(path))
    import src.helper as helper
    import src.models.vision_transformer as vit
    from src.masks.multiblock import MaskCollator
    from src.masks.utils import apply_masks
    from src.utils.tensors import repeat_interleave_batch
    return helper, vit, MaskCollator, apply_masks, repeat_interleave_batch


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> ToTensor + Normalize, op for op."""
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    return images.float().div(255).sub(mean).div(std)


class UpstreamRun:
    """Upstream's own model, MaskCollator, AdamW, schedules and momentum generator for a setup (keys of SETUP)."""

    def __init__(self, path: Path, s: dict):
        helper, vit, MaskCollator, self.apply_masks, self.repeat_interleave_batch = upstream(path)
        torch.manual_seed(s["seed"])
        vit.vit_parity = partial(vit.VisionTransformer, embed_dim=s["embed_dim"], depth=s["depth"],
                                 num_heads=s["num_heads"], mlp_ratio=4, qkv_bias=True,
                                 norm_layer=partial(torch.nn.LayerNorm, eps=1e-6))
        self.encoder, self.predictor = helper.init_model(
            device=torch.device("cpu"), patch_size=s["patch_size"], model_name="vit_parity", crop_size=s["crop_size"],
            pred_depth=s["pred_depth"], pred_emb_dim=s["pred_emb_dim"])
        self.target_encoder = copy.deepcopy(self.encoder).requires_grad_(False)
        self.collator = MaskCollator(input_size=s["crop_size"], patch_size=s["patch_size"], **s["mask"])
        self.optimizer, _, self.scheduler, self.wd_scheduler = helper.init_opt(
            encoder=self.encoder, predictor=self.predictor, wd=s["wd"], final_wd=s["final_wd"], start_lr=s["start_lr"],
            ref_lr=s["lr"], final_lr=s["final_lr"], iterations_per_epoch=s["ipe"], warmup=s["warmup"],
            num_epochs=s["epochs"], ipe_scale=s["ipe_scale"], use_bfloat16=False)
        span, ema = s["ipe"] * s["epochs"] * s["ipe_scale"], s["ema"]
        self.momentum = (ema[0] + i * (ema[1] - ema[0]) / span for i in range(int(span) + 1))  # [IJ] train.py

    def step(self, images: torch.Tensor, keep_grads: bool = False) -> dict:
        """Collate `images` (normalised floats) with upstream's masks and run src/train.py's train_step on them."""
        (imgs,), masks_enc, masks_pred = self.collator([(im,) for im in images])
        lr, wd = self.scheduler.step(), self.wd_scheduler.step()
        with torch.no_grad():  # the target: the teacher's last (normed) state, layer-normed, on the target blocks
            h = self.target_encoder(imgs)
            h = F.layer_norm(h, (h.size(-1),))
            h = self.repeat_interleave_batch(self.apply_masks(h, masks_pred), len(h), repeat=len(masks_enc))
        loss = F.smooth_l1_loss(self.predictor(self.encoder(imgs, masks_enc), masks_enc, masks_pred), h)
        loss.backward()
        if keep_grads:  # what this step's AdamW is given, by upstream's key names
            self.grads = {f"{name}.{k}": p.grad.clone() for name, m in (("encoder", self.encoder),
                          ("predictor", self.predictor)) for k, p in m.named_parameters() if p.grad is not None}
        self.optimizer.step()
        self.optimizer.zero_grad()
        with torch.no_grad():
            m = next(self.momentum)
            for param_q, param_k in zip(self.encoder.parameters(), self.target_encoder.parameters()):
                param_k.data.mul_(m).add_((1.0 - m) * param_q.detach().data)
        return dict(loss=loss.item(), lr=lr, wd=wd, momentum=m, context=masks_enc[0], targets=torch.stack(masks_pred, 1))


def record(path: Path, out: Path) -> None:
    s = SETUP
    run = UpstreamRun(path, s)
    encoder, predictor, target_encoder = run.encoder, run.predictor, run.target_encoder
    tensors = {f"init.{name}.{k}": v.clone() for name, m in (("encoder", encoder), ("predictor", predictor))
               for k, v in m.state_dict().items()}
    images_gen = torch.Generator().manual_seed(s["seed"])
    steps = []
    for step in range(s["ipe"] * s["epochs"]):
        uint8 = torch.randint(0, 256, (s["batch_size"], 3, s["crop_size"], s["crop_size"]), generator=images_gen,
                              dtype=torch.uint8)
        got = run.step(normalize(uint8), keep_grads=step == 0)
        if step == 0:  # the first step's gradients: the kit's model must get the same from the same batch
            tensors.update({f"grad.{k}": v for k, v in run.grads.items()})
        tensors[f"step{step:02d}.images"] = uint8
        tensors[f"step{step:02d}.context"] = got.pop("context")  # (B, N_ctx)
        tensors[f"step{step:02d}.targets"] = got.pop("targets")  # (B, M, N_tgt)
        steps.append(got)
        print(f"step {step}: loss {got['loss']:.6f} lr {got['lr']:.3e} wd {got['wd']:.4f} m {got['momentum']:.4f}")
    for name, m in (("encoder", encoder), ("predictor", predictor), ("target_encoder", target_encoder)):
        tensors.update({f"final.{name}.{k}": v.contiguous() for k, v in m.state_dict().items()})
    save_file({k: v.contiguous() for k, v in tensors.items()}, f"{out}.safetensors")
    meta = dict(upstream=str(path), upstream_commit=UPSTREAM_COMMIT, torch=torch.__version__,
                python=platform.python_version(), setup=SETUP, mean=MEAN, std=STD, steps=steps)
    Path(f"{out}.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {out}.safetensors ({Path(f'{out}.safetensors').stat().st_size / 1e6:.2f} MB) and {out}.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("upstream", type=Path, help=f"a facebookresearch/ijepa checkout at {UPSTREAM_COMMIT[:7]}")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("ijepa_steps"),
                        help="fixture path without suffix (.safetensors and .json are written)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    record(args.upstream.resolve(), args.out)


if __name__ == "__main__":
    main()
