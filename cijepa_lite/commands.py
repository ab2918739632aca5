"""What each command of `python -m cijepa_lite` does (cli.py parses the arguments and reports errors)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .config import get_config, parse_overrides


def pretrain_command(args: argparse.Namespace) -> int:
    """Train; 3 when the mirror holds no copy of the newest checkpoint at exit (see `pretrain --help`)."""
    from .engine import train
    from .engine.interrupt import MIRROR_MISSING

    cfg = get_config(args.preset, **parse_overrides(args.overrides))  # a bad key or value: one line from main()
    if args.steps is not None and args.steps < 1:
        raise ValueError(f"--steps {args.steps}: must be >= 1")
    summary = train(cfg, args.out, max_steps=args.steps, allow_config_change=args.allow_config_change,
                    time_budget_s=args.time_budget_min * 60 if args.time_budget_min else None,
                    progress=not args.no_progress)
    if summary.get("rank", 0) == 0:  # several ranks: rank 0 speaks
        print(json.dumps({k: v for k, v in summary.items() if k != "last"}, indent=1))
        if summary.get("mirror_summary"):
            print(f"warning: {summary['mirror_summary']}", file=sys.stderr)
    if summary.get("mirror_has_newest") is False:
        if summary.get("rank", 0) == 0:
            print(f"error: the mirror holds no copy of the newest checkpoint {summary['checkpoint']} "
                  f"({summary.get('mirror_status', '')}); copy it there before this machine goes away",
                  file=sys.stderr)
        return MIRROR_MISSING
    return 0


def probe_command(args: argparse.Namespace) -> int:
    from .data.loading import usable_cpus
    from .eval.probe import ProbeRecipe
    from .eval.results import write_result
    from .evaluate import evaluate_run

    cpus = usable_cpus()  # each of the train and val loaders starts this many workers at most
    if args.workers is not None and not 0 <= args.workers <= cpus:
        raise ValueError(f"--workers {args.workers}: must be in [0, {cpus}] (the CPUs usable here)")
    if args.seed < 0:
        raise ValueError(f"--seed {args.seed}: must be >= 0")
    record = evaluate_run(args.run, probe=args.probe, encoder=args.encoder, per_depth=args.per_depth, seed=args.seed,
                          recipe=ProbeRecipe(epochs=args.epochs), num_workers=args.workers,
                          progress=not args.no_progress, random_init=args.random_init, dataset=args.dataset)
    path = write_result(record, args.results)
    depths = "".join(f"\n  {k}: {v:.2f}" for k, v in record["per_depth"].items())
    print(f"{record['run_id']} step {record['pretrain']['step']}, {record['probe']['name']} probe "
          f"({record['probe']['chosen']}) on the {args.encoder}: "
          f"top-1 {record['top1']:.2f}%{depths}\nwrote {path}")
    return 0


def table_command(args: argparse.Namespace) -> int:
    """Print the table; draw figures into --figures, or only the --runs' curves into each run's figures/."""
    from .engine import read_config
    from .eval.results import DEFAULT_RESULTS_DIRS, load_results_from, results_table
    from .plots import save_curves, save_figures

    dirs = args.results or DEFAULT_RESULTS_DIRS
    missing = [d for d in args.results or [] if not Path(d).is_dir()]
    if missing or not any(Path(d).is_dir() for d in dirs):
        print(f"table: no results folder {' or '.join(map(str, missing or dirs))} (give --results DIR, the folder "
              "`probe --results DIR` wrote)", file=sys.stderr)
        return 1
    try:
        runs = _run_dirs(args.runs)
    except FileNotFoundError as e:
        print(f"table: {e}", file=sys.stderr)
        return 1
    for run in runs:  # a damaged config.json is one line naming it, before anything is drawn
        read_config(run)
    records = load_results_from(dirs)
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


def config_keys_command(args: argparse.Namespace) -> int:
    """Print every Config field of a preset: key = value  # its comment (the keys pretrain accepts as key=value)."""
    import inspect
    import re

    from .config import Config

    comments = dict(re.findall(r"^\s+(\w+): [^#\n]*#\s*(.*)$", inspect.getsource(Config), re.M))
    values = get_config(args.preset, **parse_overrides(args.overrides)).to_dict()
    for key, value in values.items():
        print(f"{key} = {value!r}" + (f"  # {comments[key]}" if key in comments else ""))
    return 0


def bench_command(args: argparse.Namespace) -> int:
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


def preflight_command(args: argparse.Namespace) -> int:
    from .preflight import main as preflight

    return preflight(args.preset, args.json, args.quick)


def demo_command(args: argparse.Namespace) -> int:
    from .demo import format_summary, run_demo

    summary = run_demo(args.out, epochs=args.epochs, baseline=not args.no_baseline, recipe=args.recipe,
                       results_dir=args.results, progress=not args.no_progress)
    print(format_summary(summary))
    return 0


def export_command(args: argparse.Namespace) -> int:
    """Run the `export` command; returns the exit status (1 with a one-line reason on bad input)."""
    from .eval.results import DEFAULT_RESULTS_DIRS
    from .export import export_encoder, push_to_hub

    try:
        out = export_encoder(args.run, args.out, args.which, args.results or DEFAULT_RESULTS_DIRS)
        print(f"wrote {out} (model.safetensors, encoder.json, README.md)")
        if args.push_to_hub:
            print(f"uploaded to {push_to_hub(out, args.push_to_hub, private=args.private)}")
    except (FileNotFoundError, ValueError) as e:
        print(f"export: {e}", file=sys.stderr)
        return 1
    return 0


def inspect_command(args: argparse.Namespace) -> int:
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


def data_command(args: argparse.Namespace) -> int:
    """Run the `data` command; returns the exit status (1 with a one-line reason on bad input or no network)."""
    from .data.cache import read_meta
    from .data.hub import HubUnreachable
    from .data.imagenet100 import HUB_REPO
    from .data.prepare import prepare_data

    if args.bench:
        from .data.bench import bench_data

        bench_data(n_images=args.bench_images, short_side=args.short_side)
        return 0
    source = "hub" if args.hub else (args.parquet_dir or args.image_folder)
    try:
        splits = dict(part.partition("=")[::2] for part in args.split.split(",")) if args.split else None
        if splits is not None and (set(splits) - {"train", "val"} or not all(splits.values())):
            raise ValueError(f"--split {args.split}: give train=NAME and/or val=NAME, e.g. --split train=train,val=test")
        out = prepare_data(args.out, source, args.revision, args.token, args.download_dir, args.short_side,
                           args.workers, args.mirror, args.image_column, args.label_column, args.hub or HUB_REPO,
                           splits)
    except (HubUnreachable, FileNotFoundError, FileExistsError, ValueError, RuntimeError) as e:
        print(f"data: {e}", file=sys.stderr)
        return 1
    meta = read_meta(out)
    empty = [split for split, info in meta["splits"].items() if info["count"] == 0]
    if empty:
        how = ("name the dataset's splits: --split train=NAME,val=NAME" if args.hub else
               "check the folder layout (train/ and val/, one sub-folder per class)")
        print(f"data: no images in the {' and '.join(empty)} split(s) of {args.hub or source}: {how}", file=sys.stderr)
        return 1
    for split, info in meta["splits"].items():
        print(f"{split}: {info['count']:,} images, {len(info['skipped'])} skipped, {len(meta['classes'])} classes"
              + ("" if meta["classes"] else " (unlabelled: pretrain and inspect; probe needs labels)"))
        for bad in info["skipped"]:
            print(f"  skipped {bad['where']}: {bad['reason']}")
    print(f"cache ready at {out}" + (f" ({meta['source']} at revision {meta['revision']})" if meta["revision"] else ""))
    return 0


def release_command(args: argparse.Namespace) -> int:
    """Sync the notebooks' install cells and the README's Colab links with release.py, then print the tag step."""
    from . import release

    root = Path(__file__).resolve().parents[1]
    changed = release.sync(root, write=not args.check)
    names = ", ".join(str(p.relative_to(root)) for p in changed)
    if args.check:
        if changed:
            print(f"release: {names} differ from cijepa_lite/release.py ({release.VERSION}, {release.REPOSITORY}): "
                  "run python -m cijepa_lite release", file=sys.stderr)
        return 1 if changed else 0
    print(f"rewrote {names}" if changed else "notebooks and README already agree with cijepa_lite/release.py")
    print(f"next (docs/release.md): commit, then git tag -a {release.tag()} -m 'cijepa-lite {release.VERSION}' "
          f"&& git push origin {release.tag()}")
    return 0


def campaign_command(args: argparse.Namespace) -> int:
    """Run one step of a campaign, or print its status (--status [--json]) without training."""
    from . import campaign
    from .campaign.spec import parse_list

    if args.json and not args.status:
        raise ValueError("--json goes with --status (a campaign step prints its progress as lines)")
    if args.steps is not None and args.steps < 1:
        raise ValueError(f"--steps {args.steps}: must be >= 1")
    rows, seeds = parse_list(args.rows, "--rows"), parse_list(args.seeds, "--seeds", int)
    if args.status:
        campaign.open_campaign(args.root, rows, seeds, args.base, campaign.split_overrides(args.overrides)[0],
                               create=False)
        out = campaign.status(args.root)
        print(json.dumps({k: out[k] for k in ("runs", "totals", "rows", "next")}, indent=1) if args.json
              else campaign.format_status(out))
        return 0
    preflight = None if args.no_preflight else campaign.gpu_preflight()
    campaign.run_session(args.root, rows=rows, seeds=seeds, base=args.base, overrides=args.overrides,
                         steps=args.steps, time_budget_s=args.time_budget_min * 60 if args.time_budget_min else None,
                         probe=not args.no_probe, local=args.local, settle_s=args.settle_s, retry=args.retry_failed,
                         preflight=preflight, progress=not args.no_progress)
    return 0
