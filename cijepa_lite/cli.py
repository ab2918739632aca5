"""Command line: `python -m cijepa_lite <command> ...`, everything a notebook does, off Colab.

This module parses the arguments and turns expected errors into one line; commands.py does the work.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import commands
from .config import PRESETS, UPSTREAM_PRESETS
from .data.cache import DEFAULT_SHORT_SIDE
from .data.imagenet100 import HUB_REPO
from .data.sources import DEFAULT_DATA_DIR
from .eval.results import DEFAULT_RESULTS_DIRS, OWN_RESULTS_DIR

RUN_HELP = ("run directory written by pretrain, or an official I-JEPA checkpoint file (.pth.tar with encoder / "
            "target_encoder state dicts; read weights-only and memory-mapped)")

COMPUTE_COMMANDS = {"pretrain", "demo", "probe", "inspect"}  # they take --threads (cpus.choose_threads)


def _data_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `data` command's options to `parser`."""
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--hub", nargs="?", const=HUB_REPO, default=None, metavar="OWNER/NAME",
                      help=f"download a Hub image dataset's parquet shards (default {HUB_REPO}) and prepare the cache")
    what.add_argument("--parquet-dir", type=Path, help="local parquet shards in the Hub layout")
    what.add_argument("--image-folder", type=Path, help="folder with train/ and val/, one sub-folder per class")
    what.add_argument("--bench", action="store_true", help="measure raw parquet vs cache images/s per core")
    parser.add_argument("--out", type=Path, default=None, help=f"cache folder (default {DEFAULT_DATA_DIR})")
    parser.add_argument("--mirror", type=Path, default=None, help="persistent copy, e.g. a Google Drive folder")
    parser.add_argument("--revision", default=None, help=f"Hub commit or branch to download (default: {HUB_REPO}'s "
                        "pinned commit; other datasets: main, else refs/convert/parquet; the commit is recorded)")
    parser.add_argument("--token", default=None, help="Hugging Face token (default: HF_TOKEN or saved login)")
    parser.add_argument("--download-dir", type=Path, default=None, help="where --hub puts the shards")
    parser.add_argument("--short-side", type=int, default=DEFAULT_SHORT_SIDE, help="cache images' short side")
    parser.add_argument("--workers", type=int, default=None, help="preparation processes (default: cores, <= 8)")
    parser.add_argument("--image-column", default="image", help="parquet column with the encoded images")
    parser.add_argument("--label-column", default=None, help="parquet column with the labels (default: 'label' "
                        "if the shards have it, else unlabelled: pretrain and inspect, no probe)")
    parser.add_argument("--split", default=None, metavar="train=NAME,val=NAME",
                        help="the dataset's split names (default: train, and validation/val/valid)")
    parser.add_argument("--bench-images", type=int, default=300, help="synthetic images for --bench")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m cijepa_lite", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("pretrain", help="pretrain a preset; rerunning the same command resumes",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="Every Config field is a key=value override; list them with their meaning and "
                              "the preset's values:\n  python -m cijepa_lite config --preset ID\n"
                              "Several GPUs or nodes: torchrun ... -m cijepa_lite pretrain ... (docs/multi-node.md).\n"
                              "Exit status (the same on every rank):\n"
                              "  0    done, or stopped as asked (--steps, --time-budget-min)\n"
                              "  1    an expected error, in one line (a bad value, a busy folder, non-finite losses,\n"
                              "       out of memory at micro-batch 1, a rank that died)\n"
                              "  3    the run ended or stopped, but the mirror (mirror_dir) holds no copy of the\n"
                              "       newest checkpoint: copy it there before this machine goes away\n"
                              "  130  stopped by SIGINT (Ctrl-C) after a checkpoint; rerun to resume\n"
                              "  143  stopped by SIGTERM (on any rank) after a checkpoint; rerun to resume")
    p.add_argument("--preset", required=True, choices=sorted([*PRESETS, *UPSTREAM_PRESETS]),
                   help="a run id of the write-up's table, tiny, or ijepa (every upstream switch at I-JEPA's value)")
    p.add_argument("--out", required=True, help="run directory (checkpoints, metrics.jsonl, config.json)")
    p.add_argument("--steps", type=int, default=None, help="stop after this global step (the schedule is unchanged)")
    p.add_argument("--time-budget-min", type=float, default=None, help="stop cleanly after this many minutes")
    p.add_argument("--allow-config-change", action="store_true", help="resume although the config differs")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="Config fields, e.g. all_to_last_weight=0.5")
    p.set_defaults(func=commands.pretrain_command)

    p = sub.add_parser("config", help="list every Config key with the preset's value and its meaning")
    p.add_argument("--preset", default="R-A05-B08", choices=sorted([*PRESETS, *UPSTREAM_PRESETS]),
                   help="a run id of the table, tiny, or ijepa")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="Config fields to change first")
    p.set_defaults(func=commands.config_keys_command)

    p = sub.add_parser("data", help="download ImageNet-100 or read local parquet / an image folder, "
                                    "and prepare the fast local cache (or --bench the input pipeline)")
    _data_arguments(p)
    p.set_defaults(func=commands.data_command)

    p = sub.add_parser("probe", help="linear-probe the newest valid checkpoint of a run and write its results JSON")
    p.add_argument("--run", required=True, help=RUN_HELP)
    p.add_argument("--dataset", default=None, help="probe on this dataset instead of the run's (default: the run's; "
                   "an official checkpoint's is imagenet100)")
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
    p.add_argument("--results", default=str(OWN_RESULTS_DIR),
                   help=f"results directory: the JSON goes to RESULTS/runs/ (default {OWN_RESULTS_DIR}, git-ignored; "
                        "`--results results` writes the repository's tracked results/runs/, for a pull request)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=commands.probe_command)

    p = sub.add_parser("table", help="the write-up's table with the kit's measured numbers beside it")
    p.add_argument("--results", nargs="+", default=None, help=f"results directories (default "
                   f"{' and '.join(map(str, DEFAULT_RESULTS_DIRS))}: the committed results and your probes)")
    p.add_argument("--figures", default=None, help="also write PNG figures into this directory (e.g. runs/figures)")
    p.add_argument("--runs", nargs="*", default=[],
                   help="run folders (or a folder of them) whose training curves to draw: into --figures, or "
                        "without it into each run's figures/curves.png")
    p.set_defaults(func=commands.table_command)

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
    b.set_defaults(func=commands.bench_command)

    p = sub.add_parser("preflight", help="check the GPU path in minutes (dtypes, syncs, memory, speed, compile, "
                                         "input pipeline, checkpoints) and print a PASS/FAIL table")
    p.add_argument("--preset", default=None, choices=sorted(PRESETS), help="default R-A05-B08 on CUDA, tiny on CPU")
    p.add_argument("--json", default=None, help="write every check's record to this JSON file")
    p.add_argument("--quick", action="store_true", help="the short form before training (no compile check, fewer steps)")
    p.set_defaults(func=commands.preflight_command)

    p = sub.add_parser("demo", help="pretrain the tiny preset on the embedded digits placed on a canvas (CPU, minutes) "
                                   "and judge it against raw pixels and random init")
    p.add_argument("--out", default="runs/demo", help="directory for the demo's runs (rerunning reuses them)")
    p.add_argument("--epochs", type=int, default=None, help="override the demo's epochs (DEMO_SETTING)")
    p.add_argument("--no-baseline", action="store_true", help="skip the I-JEPA baseline run")
    p.add_argument("--recipe", action="store_true", help="also run the write-up's AdamW probe (not converged here)")
    p.add_argument("--results", default=None, help="results directory (default OUT/results, untracked; "
                   "`--results results` writes the repository's tracked results/runs/)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=commands.demo_command)

    p = sub.add_parser("export", help="write a run's encoder as safetensors + config + model card "
                                      "(load_encoder reads it)")
    p.add_argument("--run", required=True, help=RUN_HELP)
    p.add_argument("--out", required=True, help="export folder")
    p.add_argument("--which", default="teacher", choices=["teacher", "student"], help="which encoder to export")
    p.add_argument("--results", nargs="+", default=None, help="results directories whose JSONs of this run go on "
                   f"the card (default {' and '.join(map(str, DEFAULT_RESULTS_DIRS))})")
    p.add_argument("--push-to-hub", default=None, metavar="REPO_ID", help="also upload the folder to this Hub repo")
    p.add_argument("--private", action="store_true", help="make a new Hub repo private")
    p.set_defaults(func=commands.export_command)

    p = sub.add_parser("inspect", help="per-depth feature maps (PCA as RGB), continuity and RankMe of a run's teacher "
                                       "vs random init, on its val images or any folder (e.g. screenshots)")
    p.add_argument("--run", required=True, help=RUN_HELP)
    p.add_argument("--images", nargs="+", default=["val"],
                   help="image sets: 'val' (the run's val split) and/or folders")
    p.add_argument("--out", default=None,
                   help="the maps' PNG (default RUN/figures/inspect.png); curves and JSON beside it")
    p.add_argument("--depths", nargs="+", type=int, default=None, help="blocks to show (default: every block)")
    p.add_argument("--max-side", type=int, default=None,
                   help="resize images to a long side of ~N px, keeping their aspect (default: the run's img_size)")
    p.add_argument("--n-images", type=int, default=4, help="images per set")
    p.set_defaults(func=commands.inspect_command)

    p = sub.add_parser("release", help="write every notebook's install cell and the README's Colab links from "
                                       "cijepa_lite/release.py (version, repository); docs/release.md")
    p.add_argument("--check", action="store_true", help="only check: exit 1 naming the files that differ")
    p.set_defaults(func=commands.release_command)
    _campaign_arguments(sub.add_parser(
        "campaign", help="the write-up's whole table (or the rows you list) x seeds, one step per call: probe what "
                         "is pretrained, resume or start the next run that this session can claim, redraw the figures",
        epilog="Rerun the same command after every disconnect; several sessions (tabs, machines sharing a Drive "
               "folder, one process per GPU) may run it at once. Details: docs/campaign.md"))
    for name in COMPUTE_COMMANDS:
        sub.choices[name].add_argument(
            "--threads", default=None, help="torch CPU threads: N, or 'fit' (the CPUs free now: faster beside other "
            "work, but then the weights depend on the load); default torch's own count, the same weights on an idle "
            "or a busy machine (OMP_NUM_THREADS wins; a resume keeps its checkpoint's count)")
    return parser


def _campaign_arguments(p: argparse.ArgumentParser) -> None:
    """Add the `campaign` command's options to `p`."""
    p.add_argument("--root", required=True, help="the campaign folder (on Google Drive in Colab)")
    p.add_argument("--rows", default=None, help="comma-separated table run ids and/or custom supervisions "
                   "(custom-D1-11-rows2-a0.30-b0.90); default: all 12, most informative first (docs/campaign.md)")
    p.add_argument("--seeds", default=None, help="comma-separated seeds, e.g. 0,1,2 (default 0)")
    p.add_argument("--base", default=None, choices=sorted(PRESETS),
                   help="the model and recipe each row's supervision goes on (default R-A05-B08: ViT-B/16); tiny on CPU")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, default=None, help="stop this session after N optimizer steps in total")
    budget.add_argument("--time-budget-min", type=float, default=None,
                        help="this session's wall-time budget (a reserve is kept to checkpoint, mirror and probe)")
    p.add_argument("--no-probe", action="store_true", help="do not probe completed runs in this session")
    p.add_argument("--status", action="store_true", help="print every run's state and the hours; train nothing")
    p.add_argument("--json", action="store_true", help="with --status: print it as JSON")
    p.add_argument("--retry-failed", action="store_true", help="queue the runs marked failed again (they resume)")
    p.add_argument("--local", default=None, help="train in this local folder, mirrored into ROOT/runs (fast disk)")
    p.add_argument("--settle-s", type=float, default=None,
                   help="seconds a claim waits for rival claims to sync in (default 120 on Google Drive, 2 elsewhere)")
    p.add_argument("--no-preflight", action="store_true", help="skip the quick GPU preflight before training")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="Config fields for every run (runtime ones such as data_dir may differ per session)")
    p.set_defaults(func=commands.campaign_command)


def main(argv: list[str] | None = None) -> int:
    """Run a command; an expected error (bad value, missing file, busy or full folder, interrupt) is one line on
    stderr and a non-zero status, its traceback only with --debug."""
    from .engine.checkpoint import NoValidCheckpoint
    from .engine.distributed import RunFailed
    from .engine.interrupt import RunInterrupted
    from .engine.lock import LockBusy

    args = build_parser().parse_args(argv)
    try:
        if args.command in COMPUTE_COMMANDS:
            from .cpus import choose_threads

            note = choose_threads(args.threads)  # default: torch's own count, whatever the load; "fit": the free CPUs
            if note:
                print(f"note: {note}", file=sys.stderr)
        return args.func(args)
    except RunInterrupted as e:
        if not e.quiet:  # several ranks: rank 0 says it once
            print(f"stopped: {e.args[0]}", file=sys.stderr)
        return e.exit_status
    except KeyboardInterrupt:  # Ctrl-C before a run took over the signal (imports, parsing)
        print("stopped: SIGINT before the command started", file=sys.stderr)
        return 130
    except RunFailed as e:  # the run's failure, not the input's: still one line, no traceback
        if args.debug:
            raise
        if not e.quiet:
            print(f"error: {e}", file=sys.stderr)
        return 1
    except (ValueError, KeyError, OSError, LockBusy, NoValidCheckpoint) as e:  # OSError: missing, unwritable or full folders
        if args.debug:
            raise
        print(f"error: {e.args[0] if isinstance(e, KeyError) and e.args else e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
