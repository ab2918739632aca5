"""torch.distributed set-up for torchrun (NCCL on GPU, gloo on CPU); a no-op for one process."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup() -> Dist:
    """Join the process group torchrun describes in the environment (if any) and pick the device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    return Dist(rank=rank, world=world, device=device)


def broadcast_flags(d: Dist, *flags: bool) -> list[bool]:
    """Rank 0's flags on every rank (time-based decisions must agree across ranks)."""
    if d.world == 1:
        return list(flags)
    t = torch.tensor([float(f) for f in flags], device=d.device)
    dist.broadcast(t, src=0)
    return [bool(v) for v in t.tolist()]


def all_min(d: Dist, flag: torch.Tensor) -> torch.Tensor:
    """A boolean device tensor that is True on every rank only if it is True on all of them."""
    if d.world == 1:
        return flag
    t = flag.float()
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return t.bool()


def barrier(d: Dist) -> None:
    if d.world > 1:
        dist.barrier()
