"""Same work, same speed? facebookresearch/ijepa's train step vs the kit's Engine.step in the upstream preset.

    OMP_NUM_THREADS=2 python docs/parity/bench_ijepa.py /path/to/ijepa --pairs 12 --json docs/bench/ijepa_same_work_cpu.json

Both sides run the same model from the same weights (upstream's init, loaded into the kit with from_ijepa):
sin-cos positions, final LayerNorm, smooth-L1, the cosine weight decay, fp32, on the CPU, one process.
Each side draws its own masks inside the timed step, as each does in training (upstream's MaskCollator,
which runs in the loader's collate there; the kit's MaskSampler from the (seed, step) generator).
Steps are interleaved (upstream, kit, upstream, kit, ...) after `--warmup` untimed pairs, so a busy machine
slows both alike; the JSON holds every pair's times, the median ratio and its range over the pairs.
Defaults are the earlier RoPE-vs-sin-cos comparison's size (ViT-S/16, predictor 192 x 6, 224 px, batch 8).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the kit of this checkout
from record_ijepa import MEAN, SETUP, STD, UpstreamRun  # noqa: E402  (docs/parity: the same upstream run)

from cijepa_lite.engine.distributed import Dist  # noqa: E402
from cijepa_lite.engine.engine import Engine  # noqa: E402
from cijepa_lite.engine.official import from_ijepa  # noqa: E402


def build(args, path: Path):
    """Upstream's run (its init, collator, optimizer, schedules) and the kit's Engine on the same weights."""
    total = 1000
    setup = dict(SETUP, crop_size=args.img, patch_size=args.patch, embed_dim=args.width, depth=args.depth,
                 num_heads=args.heads, pred_emb_dim=args.pred_width, pred_depth=args.pred_depth, batch_size=args.batch,
                 ipe=total, epochs=1, warmup=0.1, ipe_scale=1.0, ema=(0.996, 1.0))
    run = UpstreamRun(path, setup)
    model = from_ijepa({"encoder": run.encoder.state_dict(), "predictor": run.predictor.state_dict(),
                        "target_encoder": run.target_encoder.state_dict()}, num_heads=args.heads)
    cfg = replace(model.cfg, batch_size=args.batch, base_batch=args.batch, epochs=1, warmup_fraction=0.1,
                  precision="fp32", micro_batch_size=args.batch)
    engine = Engine(cfg, Dist(0, 1, torch.device("cpu")), total_steps=total)
    engine.model.load_state_dict(model.state_dict())
    return run.step, engine  # upstream's step reads its loss back (loss.item()), as its train loop does


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("upstream", type=Path, help="a facebookresearch/ijepa checkout (52c1ae9)")
    for name, default in [("width", 384), ("depth", 12), ("heads", 6), ("patch", 16), ("img", 224), ("pred-width", 192),
                          ("pred-depth", 6), ("batch", 8), ("pairs", 12), ("warmup", 1)]:
        p.add_argument(f"--{name}", type=int, default=default)
    p.add_argument("--json", type=Path, default=None, help="write the measurement here")
    args = p.parse_args()
    upstream_step, engine = build(args, args.upstream.resolve())
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    gen = torch.Generator().manual_seed(0)
    times = {"upstream": [], "kit": []}
    for pair in range(args.warmup + args.pairs):
        images = (torch.rand(args.batch, 3, args.img, args.img, generator=gen) - mean) / std
        for side in ("upstream", "kit"):
            t = time.perf_counter()
            upstream_step(images) if side == "upstream" else engine.step(pair, images)
            if pair >= args.warmup:
                times[side].append(time.perf_counter() - t)
        if pair >= args.warmup:
            print(f"pair {pair - args.warmup}: upstream {times['upstream'][-1]:.3f} s, kit {times['kit'][-1]:.3f} s")
    ratios = [u / k for u, k in zip(times["upstream"], times["kit"])]
    out = {"what": "facebookresearch/ijepa train step vs the kit's Engine.step, upstream preset, same weights",
           "setup": vars(args) | {"upstream": str(args.upstream)}, "threads": torch.get_num_threads(),
           "torch": torch.__version__, "upstream_s": times["upstream"], "kit_s": times["kit"],
           "median_upstream_s": statistics.median(times["upstream"]), "median_kit_s": statistics.median(times["kit"]),
           "upstream_over_kit_median": statistics.median(ratios), "range": [min(ratios), max(ratios)]}
    print(f"upstream / kit step time: median {out['upstream_over_kit_median']:.3f} over {len(ratios)} pairs "
          f"(range {min(ratios):.2f}-{max(ratios):.2f}); > 1 means the kit is faster")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
