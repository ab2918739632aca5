"""What produced a file: git SHA, library versions, device. Stored in every checkpoint and results file."""
from __future__ import annotations

import platform
import subprocess
from pathlib import Path

import torch


def git_sha() -> str:
    """The kit's git commit (with '-dirty' for uncommitted changes), or 'unknown' outside a checkout."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def versions() -> dict[str, str]:
    import numpy
    import timm
    import torchvision

    found = {"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
             "timm": timm.__version__, "numpy": numpy.__version__}
    return {k: str(v) for k, v in found.items()}  # torch's TorchVersion would not load with weights_only


def device_name(device: torch.device | str | None = None) -> str:
    """'NVIDIA A100-SXM4-40GB', or 'cpu (N threads)'."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def provenance(device: torch.device | str | None = None) -> dict:
    return {"git_sha": git_sha(), "versions": versions(), "device": device_name(device)}
