"""Runs command lines in children forked from one pre-imported server process, with faults injected.

Starting Python and importing torch takes seconds (tens on a loaded machine), and forking pytest
itself after it has run torch's thread pools can deadlock the child. So one server process imports
the kit once and never computes; every command runs in a fresh fork of it.
Faults: {"signal_after": [step, signum]} sends a real signal to the child after that optimizer step;
{"worker_signal_after": [step, signum]} sends it to the child's loader workers instead; {"hang_after": n} makes
a loader worker hang (sleep) on its n-th image; {"setup_signal": signum} sends
it to the child while it opens its data (before the first step); {"env": {...}} is set in the child's environment;
{"kill_at": n, "events": path} SIGKILLs it at its n-th file event (an fsync, or just before or after a
rename; n = 0: never) and keeps the count of events so far in the file `path`; with "only": name, only
events on files whose name contains `name` count (e.g. "metrics.jsonl": the rewrites of the metrics log).
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def install_fault(fault: dict | None) -> None:
    """Patch this process (Engine.step, os.fsync, os.replace) to inject `fault`."""
    from cijepa_lite.engine import Engine

    if not fault:
        return
    os.environ.update(fault.get("env", {}))
    if "signal_after" in fault or "worker_signal_after" in fault:
        at, signum = fault.get("signal_after") or fault["worker_signal_after"]
        original_step = Engine.step

        def step_then_signal(self, i, images, *args):
            out = original_step(self, i, images, *args)
            if i == at:
                import psutil

                pids = [os.getpid()] if "signal_after" in fault else [p.pid for p in psutil.Process().children()]
                for pid in pids:
                    os.kill(pid, signum)
            return out

        Engine.step = step_then_signal
    if "setup_signal" in fault:
        import importlib

        train_module = importlib.import_module("cijepa_lite.engine.train")

        original_open = train_module.open_source

        def open_after_signal(*args, **kwargs):
            os.kill(os.getpid(), fault["setup_signal"])
            return original_open(*args, **kwargs)

        train_module.open_source = open_after_signal
    if "hang_after" in fault:
        from cijepa_lite.data import Augmented

        original_item, calls = Augmented.__getitem__, [0]

        def item_or_hang(self, i):
            calls[0] += 1  # counted in each worker (a fork) on its own
            while calls[0] > fault["hang_after"]:
                time.sleep(60)
            return original_item(self, i)

        Augmented.__getitem__ = item_or_hang
    if "kill_at" in fault:
        events, lock, real_fsync, real_replace = [0], threading.Lock(), os.fsync, os.replace

        def event(name: str) -> None:
            if fault.get("only", "") not in Path(name).name:
                return
            with lock:
                events[0] += 1
                Path(fault["events"]).write_text(str(events[0]))
                if events[0] == fault["kill_at"]:
                    os.kill(os.getpid(), signal.SIGKILL)

        def fsync(fd):
            event(os.readlink(f"/proc/self/fd/{fd}"))
            return real_fsync(fd)

        def replace(src, dst):
            event(str(dst))
            real_replace(src, dst)
            event(str(dst))

        os.fsync, os.replace = fsync, replace


def _serve() -> None:
    from cijepa_lite.cli import main

    for line in sys.stdin:
        job = json.loads(line)
        pid = os.fork()
        if pid == 0:
            status = 99
            try:
                out = os.open(job["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
                os.dup2(out, 1)
                os.dup2(out, 2)
                install_fault(job["fault"])
                status = main(job["argv"])
            except BaseException:  # the child reports whatever ended it, then leaves without the server's loop
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(status)
        _, status = os.waitpid(pid, 0)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        sys.__stdout__.write(json.dumps(code) + "\n")
        sys.__stdout__.flush()


class Server:
    """The pre-imported server (a context manager); `run(argv, log, fault)` returns the child's exit status."""

    def __enter__(self) -> "Server":
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        self.proc = subprocess.Popen([sys.executable, __file__], cwd=ROOT, env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        return self

    def run(self, argv: list[str], log: Path, fault: dict | None = None) -> int:
        """Exit status of `python -m cijepa_lite *argv` (-N: killed by signal N); its stdout+stderr go to `log`."""
        self.proc.stdin.write(json.dumps({"argv": argv, "log": str(log), "fault": fault}) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def __exit__(self, *exc) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


if __name__ == "__main__":
    _serve()
