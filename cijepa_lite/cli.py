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

    cfg = _config(args.preset, args.overrides)
    summary = train(cfg, args.out, max_steps=args.steps, allow_config_change=args.allow_config_change,
                    time_budget_s=args.time_budget_min * 60 if args.time_budget_min else None,
                    progress=not args.no_progress)
    print(json.dumps({k: v for k, v in summary.items() if k != "last"}, indent=1))
    return 0


def _config(preset: str, overrides: list[str]):
    """The preset with command-line overrides; a bad key or value exits with a one-line message."""
    try:
        return get_config(preset, **parse_overrides(overrides))
    except (KeyError, ValueError) as e:
        raise SystemExit(f"error: {e.args[0] if e.args else e}") from None


def _probe(args: argparse.Namespace) -> int:
    from .eval.probe import ProbeRecipe
    from .eval.results import write_result
    from .evaluate import evaluate_run

    record = evaluate_run(args.run, probe=args.probe, encoder=args.encoder, per_depth=args.per_depth, seed=args.seed,
                          recipe=ProbeRecipe(epochs=args.epochs), num_workers=args.workers,
                          progress=not args.no_progress, random_init=args.random_init)
    path = write_result(record, args.results)
    depths = "".join(f"\n  {k}: {v:.2f}" for k, v in record["per_depth"].items())
    print(f"{record['run_id']} step {record['pretrain']['step']}, {record['probe']['name']} probe "
          f"({record['probe']['chosen']}) on the {args.encoder}: "
          f"top-1 {record['top1']:.2f}%{depths}\nwrote {path}")
    return 0


def _table(args: argparse.Namespace) -> int:
    """Print the table; draw figures into --figures, or only the --runs' curves into each run's figures/."""
    from .eval.results import load_results, results_table
    from .plots import save_curves, save_figures

    if not Path(args.results).is_dir():
        print(f"table: no results folder {args.results} (give --results DIR, the folder `probe --results DIR` wrote)",
              file=sys.stderr)
        return 1
    try:
        runs = _run_dirs(args.runs)
    except FileNotFoundError as e:
        print(f"table: {e}", file=sys.stderr)
        return 1
    records = load_results(args.results)
    print(results_table(records))
    paths = save_figures(args.figures, records, run_dirs=runs) if args.figures else save_curves(runs)
    for path in paths:
        print(f"wrote {path}")
    return 0


def _run_dirs(paths: list[str]) -> list[Path]:
    """Run folders (with a metrics log): each path itself, or the run folders directly inside it."""
    from .engine import RunDir

    found = []
    for path in map(Path, paths):
        inside = sorted(p for p in path.iterdir() if RunDir(p).metrics_file.exists()) if path.is_dir() else []
        if RunDir(path).metrics_file.exists():
            found.append(path)
        elif inside:
            found += inside
        else:
            raise FileNotFoundError(f"{path} is neither a run folder (with {RunDir(path).metrics_file.name}) "
                                    "nor a folder of run folders")
    return found


def _config_keys(args: argparse.Namespace) -> int:
    """Print every Config field of a preset: key = value  # its comment (the keys pretrain accepts as key=value)."""
    import inspect
    import re

    from .config import Config

    comments = dict(re.findall(r"^\s+(\w+): [^#\n]*#\s*(.*)$", inspect.getsource(Config), re.M))
    values = _config(args.preset, args.overrides).to_dict()
    for key, value in values.items():
        print(f"{key} = {value!r}" + (f"  # {comments[key]}" if key in comments else ""))
    return 0


def _bench(args: argparse.Namespace) -> int:
    from .bench import main as bench
    from .bench import recompiles_main

    if args.ops:
        from .bench import ops_main

        ops_main(args.preset, args.json, args.ops, parse_overrides(args.overrides))
        return 0
    if args.recompiles:
        recompiles_main(args.preset, args.json, args.recompiles, args.backend or "eager", parse_overrides(args.overrides))
        return 0
    bench(args.preset, args.json, size=args.size, batch=args.batch, steps=args.steps, warmup=args.warmup,
          dataset=args.dataset, workers=args.workers, memory=not args.no_memory, backend=args.backend,
          overrides=parse_overrides(args.overrides))
    return 0


def _preflight(args: argparse.Namespace) -> int:
    from .preflight import main as preflight

    return preflight(args.preset, args.json, args.quick)


def _demo(args: argparse.Namespace) -> int:
    from .demo import format_summary, run_demo

    summary = run_demo(args.out, epochs=args.epochs, baseline=not args.no_baseline, recipe=args.recipe,
                       results_dir=args.results, progress=not args.no_progress)
    print(format_summary(summary))
    return 0


def _export(args: argparse.Namespace) -> int:
    """Run the `export` command; returns the exit status (1 with a one-line reason on bad input)."""
    from .export import export_encoder, push_to_hub

    try:
        out = export_encoder(args.run, args.out, args.which, args.results)
        print(f"wrote {out} (model.safetensors, encoder.json, README.md)")
        if args.push_to_hub:
            print(f"uploaded to {push_to_hub(out, args.push_to_hub, private=args.private)}")
    except (FileNotFoundError, ValueError) as e:
        print(f"export: {e}", file=sys.stderr)
        return 1
    return 0


def _inspect(args: argparse.Namespace) -> int:
    """Run the `inspect` command; returns the exit status (1 with a one-line reason on bad input)."""
    from .inspect import inspect_run

    try:
        result = inspect_run(args.run, args.images, out=args.out, depths=args.depths, max_side=args.max_side,
                             n_images=args.n_images)
    except (FileNotFoundError, ValueError) as e:
        print(f"inspect: {e}", file=sys.stderr)
        return 1
    for name, got in result["sets"].items():
        for encoder in ("teacher", "random_init"):
            numbers = got[encoder]
            row = ", ".join(f"{k} {v:.3f}/{numbers['rankme'][k]:.1f}" for k, v in numbers["continuity"].items())
            print(f"{name}, {encoder}: continuity/RankMe per depth: {row}")
    print("wrote " + ", ".join(result["files"].values()))
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
    for split, info in meta["splits"].items():
        print(f"{split}: {info['count']:,} images, {len(info['skipped'])} skipped, {len(meta['classes'])} classes")
        for bad in info["skipped"]:
            print(f"  skipped {bad['where']}: {bad['reason']}")
    print(f"cache ready at {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m cijepa_lite", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("pretrain", help="pretrain a preset; rerunning the same command resumes",
                       epilog="Every Config field is a key=value override; list them with their meaning and "
                              "the preset's values: python -m cijepa_lite config --preset ID")
    p.add_argument("--preset", required=True, choices=sorted(PRESETS), help="a run id of the write-up's table, or tiny")
    p.add_argument("--out", required=True, help="run directory (checkpoints, metrics.jsonl, config.json)")
    p.add_argument("--steps", type=int, default=None, help="stop after this global step (the schedule is unchanged)")
    p.add_argument("--time-budget-min", type=float, default=None, help="stop cleanly after this many minutes")
    p.add_argument("--allow-config-change", action="store_true", help="resume although the config differs")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="Config fields, e.g. all_to_last_weight=0.5")
    p.set_defaults(func=_pretrain)

    p = sub.add_parser("config", help="list every Config key with the preset's value and its meaning")
    p.add_argument("--preset", default="R-A05-B08", choices=sorted(PRESETS), help="a run id of the table, or tiny")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="Config fields to change first")
    p.set_defaults(func=_config_keys)

    p = sub.add_parser("data", help="download ImageNet-100 or read local parquet / an image folder, "
                                    "and prepare the fast local cache (or --bench the input pipeline)")
    _data_arguments(p)
    p.set_defaults(func=_data)

    p = sub.add_parser("probe", help="linear-probe the newest valid checkpoint of a run and write its results JSON")
    p.add_argument("--run", required=True, help="run directory written by pretrain")
    p.add_argument("--per-depth", action="store_true",
                   help="probe every block d_0..d_last of the encoder (one pass per batch), also for L200/L300")
    p.add_argument("--random-init", action="store_true",
                   help="also probe a random-init encoder of the same shape (a reference line; twice the cost)")
    p.add_argument("--probe", default="auto", choices=["auto", "recipe", "logreg"],
                   help="recipe: the write-up's AdamW probe; logreg: converged logistic regression; auto (default): "
                        "recipe from width 384 up, logreg below (the recipe does not converge there)")
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
    p.add_argument("--runs", nargs="*", default=[],
                   help="run folders (or a folder of them) whose training curves to draw: into --figures, or "
                        "without it into each run's figures/curves.png")
    p.set_defaults(func=_table)

    b = sub.add_parser("bench", help="time I-JEPA and a cI-JEPA preset side by side (step time, FLOPs, memory)")
    b.add_argument("--preset", default="R-A05-B08", choices=sorted(PRESETS), help="the cI-JEPA run to compare")
    b.add_argument("--json", default=None, help="write the full result to this JSON file")
    b.add_argument("--size", choices=["cpu", "preset"], default=None,
                   help="cpu: ViT-S-sized fp32 model (default on CPU); preset: the preset's own (default on GPU)")
    b.add_argument("--batch", type=int, default=None, help="images per step (default 8 on CPU, 256 on GPU)")
    b.add_argument("--steps", type=int, default=None, help="timed steps per variant (default 5 on CPU, 20 on GPU)")
    b.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 2 on CPU, 5 on GPU)")
    b.add_argument("--dataset", default=None,
                   help="source for the input-pipeline rate (default: the preset's, e.g. the prepared cache; else digits)")
    b.add_argument("--workers", type=int, default=None, help="loader workers for the pipeline rate (default: num_workers)")
    b.add_argument("--recompiles", type=int, default=0, metavar="N",
                   help="instead: count torch.compile graphs over N steps of the preset as is (e.g. tiny)")
    b.add_argument("--ops", type=int, default=0, metavar="MICRO",
                   help="instead: count the host ops of one optimizer step at micro-batch MICRO (meta device)")
    b.add_argument("--backend", default=None, help="compile backend with compile=true (default inductor) or for "
                                                   "--recompiles (default eager); eager/aot_eager trace alike, cheaply")
    b.add_argument("--no-memory", action="store_true", help="skip the ViT-B activation-memory measurement")
    b.add_argument("overrides", nargs="*", metavar="key=value", help="Config fields for both variants, e.g. compile=true")
    b.set_defaults(func=_bench)

    p = sub.add_parser("preflight", help="check the GPU path in minutes (dtypes, syncs, memory, speed, compile, "
                                         "input pipeline, checkpoints) and print a PASS/FAIL table")
    p.add_argument("--preset", default=None, choices=sorted(PRESETS), help="default R-A05-B08 on CUDA, tiny on CPU")
    p.add_argument("--json", default=None, help="write every check's record to this JSON file")
    p.add_argument("--quick", action="store_true", help="the short form before training (no compile check, fewer steps)")
    p.set_defaults(func=_preflight)

    p = sub.add_parser("demo", help="pretrain the tiny preset on embedded digits (CPU, minutes) and show it learned")
    p.add_argument("--out", default="runs/demo", help="directory for the demo's runs (rerunning reuses them)")
    p.add_argument("--epochs", type=int, default=None, help="override the tiny preset's epochs")
    p.add_argument("--no-baseline", action="store_true", help="skip the I-JEPA baseline run")
    p.add_argument("--recipe", action="store_true", help="also run the write-up's AdamW probe (not converged here)")
    p.add_argument("--results", default=None, help="results directory (default OUT/results, untracked; "
                   "`--results results` writes the repository's tracked results/runs/)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_demo)

    p = sub.add_parser("export", help="write a run's encoder as safetensors + config + model card "
                                      "(load_encoder reads it)")
    p.add_argument("--run", required=True, help="run directory written by pretrain")
    p.add_argument("--out", required=True, help="export folder")
    p.add_argument("--which", default="teacher", choices=["teacher", "student"], help="which encoder to export")
    p.add_argument("--results", default="results", help="results directory whose JSONs of this run go on the card")
    p.add_argument("--push-to-hub", default=None, metavar="REPO_ID", help="also upload the folder to this Hub repo")
    p.add_argument("--private", action="store_true", help="make a new Hub repo private")
    p.set_defaults(func=_export)

    p = sub.add_parser("inspect", help="per-depth feature maps (PCA as RGB), continuity and RankMe of a run's teacher "
                                       "vs random init, on its val images or any folder (e.g. screenshots)")
    p.add_argument("--run", required=True, help="run directory written by pretrain")
    p.add_argument("--images", nargs="+", default=["val"],
                   help="image sets: 'val' (the run's val split) and/or folders")
    p.add_argument("--out", default=None,
                   help="the maps' PNG (default figures/inspect-<run>.png); curves and JSON beside it")
    p.add_argument("--depths", nargs="+", type=int, default=None, help="blocks to show (default: every block)")
    p.add_argument("--max-side", type=int, default=None,
                   help="resize images to a long side of ~N px, keeping their aspect (default: the run's img_size)")
    p.add_argument("--n-images", type=int, default=4, help="images per set")
    p.set_defaults(func=_inspect)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
