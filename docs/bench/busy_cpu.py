"""How a CPU run slows down beside one busy process, with torch's default threads and with cpus.fit_threads.

"default" is the kit's default since issue 29 (the same weights whatever the load); "fit" is `--threads fit`,
the default before it (the CPUs free at start: faster beside other work, weights that depend on the load).

Each measurement is a fresh process that pretrains `--steps` steps of the `tiny` preset (the demo's model, on the
digits) and reports the wall time of train(); "beside" runs it next to `python -c "while True: pass"`. The modes
and conditions are interleaved, pair after pair, so a drift in the machine's speed hits all of them alike.
Run it on an otherwise idle machine, from the repository root:

    PYTHONPATH=. python docs/bench/busy_cpu.py --pairs 3 --steps 40 --json docs/bench/busy_cpu.json

It prints one line per measurement and, per mode, the ratio beside / alone of every pair and their median.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

CHILD = """
import json, sys, tempfile, time
import torch
from cijepa_lite.config import get_config
from cijepa_lite.cpus import fit_threads
from cijepa_lite.engine import train
mode, steps = sys.argv[1], int(sys.argv[2])
note = fit_threads() if mode == "fit" else None
with tempfile.TemporaryDirectory() as run:
    start = time.perf_counter()
    train(get_config("tiny", ckpt_minutes=1e9), run, max_steps=steps, progress=False)
    seconds = time.perf_counter() - start
print(json.dumps({"threads": torch.get_num_threads(), "seconds": seconds, "note": note}))
"""


def measure(mode: str, steps: int, beside: bool) -> dict:
    """One fresh process's train() wall time for `steps` tiny steps in `mode`, alone or beside a busy process."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env["PYTHONPATH"] = os.path.abspath(env.get("PYTHONPATH") or ".")  # the child runs in the temp folder
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if beside else None
    try:
        if busy:
            time.sleep(1.0)  # the busy process is running before the child looks at the load
        out = subprocess.run([sys.executable, "-c", CHILD, mode, str(steps)], env=env, check=True,
                             capture_output=True, text=True, cwd=tempfile.gettempdir()).stdout
    finally:
        if busy:
            busy.kill()
            busy.wait()
    return {"mode": mode, "beside": beside, **json.loads(out.splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=3, help="alone/beside pairs per mode")
    parser.add_argument("--steps", type=int, default=40, help="tiny pretraining steps per measurement")
    parser.add_argument("--modes", nargs="+", default=["default", "fit"], choices=["default", "fit"])
    parser.add_argument("--json", default=None, help="write every measurement and the ratios here")
    args = parser.parse_args()
    rows = []
    for pair in range(args.pairs):
        for mode in args.modes:
            for beside in (False, True):
                rows.append({"pair": pair, **measure(mode, args.steps, beside)})
                print(json.dumps(rows[-1]), flush=True)
    ratios = {}
    for mode in args.modes:
        time_of = {(r["pair"], r["beside"]): r["seconds"] for r in rows if r["mode"] == mode}
        ratios[mode] = [round(time_of[p, True] / time_of[p, False], 3) for p in range(args.pairs)]
        print(f"{mode}: beside/alone per pair {ratios[mode]}, median {statistics.median(ratios[mode]):.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"steps": args.steps, "cpus": os.cpu_count(), "rows": rows, "ratios": ratios}, f, indent=1)


if __name__ == "__main__":
    main()
