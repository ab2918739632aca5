"""`python tests/engine/rankmain.py ARGS...`: `python -m cijepa_lite ARGS...` with a fault, for torchrun's workers.

The fault is JSON in $CIJEPA_TEST_FAULT, acted on by the rank it names ("rank", default 0):
  {"after": k, "signal": n, "target": "self" | "group" | "parent"}: after optimizer step k, send signal n to
      this process, its process group (itself and its loader workers) or its parent (torchrun's agent), then
      wait until this process has received a signal (the agent forwards it);
  {"setup_signal": n, "at": "open" | "resume"}: while opening its data, or (rank 0) while choosing its checkpoint
      as the other ranks wait for it in a collective, send signal n to torchrun's agent (which forwards it to
      every rank), then wait until this process has received it;
  {"after": k, "kill": true, "once": path}: SIGKILL this process after step k, unless `path` exists (it is
      created first, so a restarted worker runs on);
  {"after": k, "worker_signal": n}: after optimizer step k, send signal n to this rank's loader workers;
  {"oom_over": n}: every forward of more than n images raises a (simulated) out-of-memory error.
The exit status goes to $CIJEPA_TEST_STATUS/rank<R> (rank<R>-attempt<N> in torchrun's restart N > 0) and is the
process's, so a test reads every rank's.
"""
import json
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch  # noqa: E402

from cijepa_lite.cli import main  # noqa: E402
from cijepa_lite.engine import Engine  # noqa: E402
from cijepa_lite.method.model import CIJEPA  # noqa: E402


def _after_step(at: int, act) -> None:
    original = Engine.step

    def step(self, i, images, *args):
        out = original(self, i, images, *args)
        if i == at:
            act()
        return out

    Engine.step = step


def _signal(fault: dict) -> None:
    def act():
        signum, received = fault["signal"], []
        handler = signal.getsignal(signum)  # the run's (interrupt.StopRequest), wrapped to see the signal arrive

        def seen(s, frame):
            received.append(s)
            handler(s, frame)

        signal.signal(signum, seen)
        if fault["target"] == "group":
            os.killpg(os.getpgrp(), signum)
        else:
            os.kill(os.getppid() if fault["target"] == "parent" else os.getpid(), signum)
        deadline = time.monotonic() + 120
        while not received and time.monotonic() < deadline:
            time.sleep(0.05)

    _after_step(fault["after"], act)


def _setup_signal(signum: int, at: str) -> None:
    import importlib

    from cijepa_lite.engine import RunDir

    owner, name = ((importlib.import_module("cijepa_lite.engine.train"), "open_source") if at == "open" else
                   (RunDir, "latest"))
    original = getattr(owner, name)

    def signal_first(*args, **kwargs):
        os.kill(os.getppid(), signum)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # the agent's forwarded signal ends this wait (SetupStop raises)
            time.sleep(0.05)
        return original(*args, **kwargs)

    setattr(owner, name, signal_first)


def _kill(fault: dict) -> None:
    def act():
        once = Path(fault["once"])
        if not once.exists():
            once.write_text(str(time.time()))
            os.kill(os.getpid(), signal.SIGKILL)

    _after_step(fault["after"], act)


def _worker_signal(fault: dict) -> None:
    def act():
        import psutil

        for child in psutil.Process().children():  # the loader workers
            os.kill(child.pid, fault["worker_signal"])

    _after_step(fault["after"], act)


def _oom(limit: int) -> None:
    original = CIJEPA.forward

    def forward(self, images, *args, **kwargs):
        if images.shape[0] > limit:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return original(self, images, *args, **kwargs)

    CIJEPA.forward = forward


def install(fault: dict) -> None:
    if fault.get("rank", 0) != int(os.environ.get("RANK", "0")):
        return
    if "signal" in fault:
        _signal(fault)
    if "setup_signal" in fault:
        _setup_signal(fault["setup_signal"], fault.get("at", "open"))
    if "kill" in fault:
        _kill(fault)
    if "worker_signal" in fault:
        _worker_signal(fault)
    if "oom_over" in fault:
        _oom(fault["oom_over"])


if __name__ == "__main__":
    install(json.loads(os.environ.get("CIJEPA_TEST_FAULT", "{}")))
    status = main(sys.argv[1:])
    folder = os.environ.get("CIJEPA_TEST_STATUS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        attempt = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
        name = f"rank{os.environ.get('RANK', '0')}" + (f"-attempt{attempt}" if attempt else "")
        (Path(folder) / name).write_text(str(status))
    sys.exit(status)
