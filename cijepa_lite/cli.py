"""Command line: `python -m cijepa_lite <command> ...`, everything a notebook does, off Colab."""
from __future__ import annotations

import argparse
import json
import sys

from .config import PRESETS, get_config, parse_overrides


def _pretrain(args: argparse.Namespace) -> int:
    from .train import train

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m cijepa_lite", description=__doc__)
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

    from .prepare import add_data_arguments, run_data_command

    p = sub.add_parser("data", help="download ImageNet-100 or read local parquet / an image folder, "
                                    "and prepare the fast local cache (or --bench the input pipeline)")
    add_data_arguments(p)
    p.set_defaults(func=run_data_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
