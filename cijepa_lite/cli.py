"""Command line: `python -m cijepa_lite <command> ...`, everything a notebook does, off Colab."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .config import PRESETS, get_config, parse_overrides
from .data.cache import DEFAULT_SHORT_SIDE
from .data.imagenet100 import HUB_REPO, HUB_REVISION
from .data.sources import DEFAULT_DATA_DIR


def _pretrain(args: argparse.Namespace) -> int:
    from .engine import train

    cfg = get_config(args.preset, **parse_overrides(args.overrides))  # a bad key or value: one line from main()
    if args.steps is not None and args.steps < 1:
        raise ValueError(f"--steps {args.steps}: must be >= 1")
    summary = train(cfg, args.out, max_steps=args.steps, allow_config_change=args.allow_config_change,
                    time_budget_s=args.time_budget_min * 60 if args.time_budget_min else None,
                    progress=not args.no_progress)
    print(json.dumps({k: v for k, v in summary.items() if k != "last"}, indent=1))
    for failure in summary.get("mirror_failures", []):
        print(f"warning: {failure}", file=sys.stderr)
    return 0


def _probe(args: argparse.Namespace) -> int:
    from .eval.probe import ProbeRecipe
    from .eval.results import write_result
    from .evaluate import evaluate_run

    record = evaluate_run(args.run, probe=args.probe, encoder=args.encoder, per_depth=args.per_depth, seed=args.seed,
                          recipe=ProbeRecipe(epochs=args.epochs), num_workers=args.workers,
                          progress=not args.no_progress)
    path = write_result(record, args.results)
    depths = "".join(f"\n  {k}: {v:.2f}" for k, v in record["per_depth"].items())
    print(f"{record['run_id']} step {record['pretrain']['step']}, {args.probe} probe on the {args.encoder}: "
          f"top-1 {record['top1']:.2f}%{depths}\nwrote {path}")
    return 0


def _table(args: argparse.Namespace) -> int:
    from .eval.results import load_results, results_table

    records = load_results(args.results)
    print(results_table(records))
    if args.figures:
        from .plots import save_figures

        for path in save_figures(args.figures, records, run_dirs=args.runs):
            print(f"wrote {path}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from .bench import main as bench
    from .bench import recompiles_main

    if args.recompiles:
        recompiles_main(args.preset, args.json, args.recompiles, args.backend, parse_overrides(args.overrides))
        return 0
    bench(args.preset, args.json, size=args.size, batch=args.batch, steps=args.steps, warmup=args.warmup,
          dataset=args.dataset, workers=args.workers, memory=not args.no_memory,
          overrides=parse_overrides(args.overrides))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import format_summary, run_demo

    summary = run_demo(args.out, epochs=args.epochs, baseline=not args.no_baseline, recipe=args.recipe,
                       results_dir=args.results, progress=not args.no_progress)
    print(format_summary(summary))
    return 0


def _data_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `data` command's options to `parser`."""
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--hub", action="store_true", help=f"download {HUB_REPO} (parquet) and prepare the cache")
    what.add_argument("--parquet-dir", type=Path, help="local parquet shards in the Hub layout")
    what.add_argument("--image-folder", type=Path, help="folder with train/ and val/, one sub-folder per class")
    what.add_argument("--bench", action="store_true", help="measure raw parquet vs cache images/s per core")
    parser.add_argument("--out", type=Path, default=None, help=f"cache folder (default {DEFAULT_DATA_DIR})")
    parser.add_argument("--mirror", type=Path, default=None, help="persistent copy, e.g. a Google Drive folder")
    parser.add_argument("--revision", default=HUB_REVISION, help="Hub commit to download (default: pinned)")
    parser.add_argument("--token", default=None, help="Hugging Face token (default: HF_TOKEN or saved login)")
    parser.add_argument("--download-dir", type=Path, default=None, help="where --hub puts the shards")
    parser.add_argument("--short-side", type=int, default=DEFAULT_SHORT_SIDE, help="cache images' short side")
    parser.add_argument("--workers", type=int, default=None, help="preparation processes (default: cores, <= 8)")
    parser.add_argument("--image-column", default="image", help="parquet column with the encoded images")
    parser.add_argument("--label-column", default="label", help="parquet column with the labels")
    parser.add_argument("--bench-images", type=int, default=300, help="synthetic images for --bench")


def _data(args: argparse.Namespace) -> int:
    """Run the `data` command; returns the exit status (1 with a one-line reason on bad input or no network)."""
    from .data.cache import read_meta
    from .data.hub import HubUnreachable
    from .data.prepare import prepare_data

    if args.bench:
        from .data.bench import bench_data

        bench_data(n_images=args.bench_images, short_side=args.short_side)
        return 0
    source = "hub" if args.hub else (args.parquet_dir or args.image_folder)
    try:
        out = prepare_data(args.out, source, args.revision, args.token, args.download_dir, args.short_side,
                           args.workers, args.mirror, args.image_column, args.label_column)
    except (HubUnreachable, FileNotFoundError, FileExistsError, ValueError) as e:
        print(f"data: {e}", file=sys.stderr)
        return 1
    meta = read_meta(out)
    empty = [split for split, info in meta["splits"].items() if info["count"] == 0]
    if empty:
        print(f"data: no images in the {' and '.join(empty)} split(s) of {source}: check the folder layout "
              "(train/ and val/, one sub-folder per class)", file=sys.stderr)
        return 1
    for split, info in meta["splits"].items():
        print(f"{split}: {info['count']:,} images, {len(info['skipped'])} skipped, {len(meta['classes'])} classes")
        for bad in info["skipped"]:
            print(f"  skipped {bad['where']}: {bad['reason']}")
    print(f"cache ready at {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m cijepa_lite", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("pretrain", help="pretrain a preset; rerunning the same command resumes")
    p.add_argument("--preset", required=True, choices=sorted(PRESETS), help="a run id of the write-up's table, or tiny")
    p.add_argument("--out", required=True, help="run directory (checkpoints, metrics.jsonl, config.json)")
    p.add_argument("--steps", type=int, default=None, help="stop after this global step (the schedule is unchanged)")
    p.add_argument("--time-budget-min", type=float, default=None, help="stop cleanly after this many minutes")
    p.add_argument("--allow-config-change", action="store_true", help="resume although the config differs")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="Config fields, e.g. all_to_last_weight=0.5")
    p.set_defaults(func=_pretrain)

    p = sub.add_parser("data", help="download ImageNet-100 or read local parquet / an image folder, "
                                    "and prepare the fast local cache (or --bench the input pipeline)")
    _data_arguments(p)
    p.set_defaults(func=_data)

    p = sub.add_parser("probe", help="linear-probe the newest valid checkpoint of a run and write its results JSON")
    p.add_argument("--run", required=True, help="run directory written by pretrain")
    p.add_argument("--per-depth", action="store_true", help="also probe every collected depth (one pass per batch)")
    p.add_argument("--probe", default="recipe", choices=["recipe", "logreg"],
                   help="recipe: the write-up's AdamW probe; logreg: converged logistic regression (small models)")
    p.add_argument("--encoder", default="teacher", choices=["teacher", "student"], help="which encoder to freeze")
    p.add_argument("--epochs", type=int, default=10, help="probe epochs (the write-up's: 10)")
    p.add_argument("--seed", type=int, default=0, help="seed of the probe's data order, augmentation and init")
    p.add_argument("--workers", type=int, default=None, help="data-loader workers (default: the run's num_workers)")
    p.add_argument("--results", default="results", help="results directory (the JSON goes to RESULTS/runs/)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_probe)

    p = sub.add_parser("table", help="the write-up's table with the kit's measured numbers beside it")
    p.add_argument("--results", default="results", help="results directory")
    p.add_argument("--figures", default=None, help="also write PNG figures into this directory")
    p.add_argument("--runs", nargs="*", default=[], help="run directories whose training curves to plot")
    p.set_defaults(func=_table)

    b = sub.add_parser("bench", help="time I-JEPA and a cI-JEPA preset side by side (step time, FLOPs, memory)")
    b.add_argument("--preset", default="R-A05-B08", choices=sorted(PRESETS), help="the cI-JEPA run to compare")
    b.add_argument("--json", default=None, help="write the full result to this JSON file")
    b.add_argument("--size", choices=["cpu", "preset"], default=None,
                   help="cpu: ViT-S-sized fp32 model (default on CPU); preset: the preset's own (default on GPU)")
    b.add_argument("--batch", type=int, default=None, help="images per step (default 8 on CPU, 256 on GPU)")
    b.add_argument("--steps", type=int, default=None, help="timed steps per variant (default 5 on CPU, 20 on GPU)")
    b.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 2 on CPU, 5 on GPU)")
    b.add_argument("--dataset", default="digits", help="source for the input-pipeline rate (data.open_source)")
    b.add_argument("--workers", type=int, default=2, help="data-loader workers for the input-pipeline rate")
    b.add_argument("--recompiles", type=int, default=0, metavar="N",
                   help="instead: count torch.compile graphs over N steps of the preset as is (e.g. tiny)")
    b.add_argument("--backend", default="eager", help="compile backend for --recompiles (eager, aot_eager, inductor)")
    b.add_argument("--no-memory", action="store_true", help="skip the ViT-B activation-memory measurement")
    b.add_argument("overrides", nargs="*", metavar="key=value", help="Config fields for both variants, e.g. compile=true")
    b.set_defaults(func=_bench)

    p = sub.add_parser("demo", help="pretrain the tiny preset on embedded digits (CPU, minutes) and show it learned")
    p.add_argument("--out", default="runs/demo", help="directory for the demo's runs (rerunning reuses them)")
    p.add_argument("--epochs", type=int, default=None, help="override the tiny preset's epochs")
    p.add_argument("--no-baseline", action="store_true", help="skip the I-JEPA baseline run")
    p.add_argument("--recipe", action="store_true", help="also run the write-up's AdamW probe (not converged here)")
    p.add_argument("--results", default=None, help="results directory (default ./results; JSONs go to its runs/)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a command; an expected error (bad value, missing file, busy or full folder, interrupt) is one line on
    stderr and a non-zero status, its traceback only with --debug."""
    from .engine.checkpoint import NoValidCheckpoint
    from .engine.interrupt import RunInterrupted
    from .engine.lock import LockBusy

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except RunInterrupted as e:
        print(f"stopped: {e.args[0]}", file=sys.stderr)
        return e.exit_status
    except (ValueError, KeyError, OSError, LockBusy, NoValidCheckpoint) as e:  # OSError: missing, unwritable or full folders
        if args.debug:
            raise
        print(f"error: {e.args[0] if isinstance(e, KeyError) and e.args else e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
