"""torch.distributed for torchrun (NCCL on GPU, gloo on CPU): set-up, agreement, a dead rank named; a no-op for one process.

Every decision that changes what a rank does next (skip the update, halve the micro-batch, stop at a
signal) is agreed: each rank's flags are gathered once per step and every rank acts on all of them.
A collective that fails because a peer is gone becomes `RunFailed` naming the ranks whose processes
died (on this node; a rank on another node is named by its host).
"""
from __future__ import annotations

import os
import socket
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Callable

import torch
import torch.distributed as dist

from ..data.loading import LoaderFailed, env_seconds, guarded

TIMEOUT_ENV = "CIJEPA_DIST_TIMEOUT_S"  # seconds a collective may wait for the slowest rank
DEFAULT_TIMEOUT_S = 600.0  # covers rank 0's checkpoint write and kNN reading while the others wait


class RunFailed(RuntimeError):
    """The run (not the user's input) failed in an expected way: non-finite losses, no memory, a dead rank.

    `quiet`: the same failure is reported by rank 0; this rank exits with the same status without a line.
    """

    def __init__(self, message: str, quiet: bool = False):
        super().__init__(message)
        self.quiet = quiet


@dataclass(frozen=True)
class Dist:
    rank: int
    world: int
    device: torch.device
    local_world: int = 1  # processes on this node (torchrun's LOCAL_WORLD_SIZE)
    peers: tuple = field(default=(), compare=False)  # (host, pid) of every rank, for naming a dead one

    @property
    def main(self) -> bool:
        return self.rank == 0


def timeout_s() -> float:
    """The process group's timeout: $CIJEPA_DIST_TIMEOUT_S or DEFAULT_TIMEOUT_S."""
    return env_seconds(TIMEOUT_ENV, DEFAULT_TIMEOUT_S)


def setup() -> Dist:
    """Join the process group torchrun describes in the environment (if any) and pick the device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        timeout = timedelta(seconds=timeout_s())
        store, rank, _ = next(dist.rendezvous("env://", timeout=timeout))
        # torchrun's --max-restarts reuses its store: keys of the failed attempt (a dead rank's address) stay in it
        attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
        dist.init_process_group("nccl" if cuda else "gloo", store=dist.PrefixStore(f"attempt-{attempt}/", store),
                                rank=rank, world_size=world, timeout=timeout)
    if not dist.is_initialized():
        return Dist(rank=0, world=world, device=device, local_world=local_world)
    peers = [None] * world
    dist.all_gather_object(peers, (socket.gethostname(), os.getpid()))
    return Dist(rank=dist.get_rank(), world=world, device=device, local_world=local_world, peers=tuple(peers))


def teardown(d: Dist) -> None:
    """Leave the process group (on every exit, so a later run in the same process starts clean)."""
    if d.world > 1 and dist.is_initialized():
        dist.destroy_process_group()


def _gone(pid: int) -> bool:
    """True if process `pid` has exited (a zombie its parent has not reaped yet counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def dead_ranks(d: Dist) -> str:
    """The ranks whose processes are gone, as words ("rank 1 (pid 123)"; "a rank on host h" off this node); "" if none."""
    here = socket.gethostname()
    gone = [f"rank {rank} (pid {pid})" for rank, (host, pid) in enumerate(d.peers)
            if host == here and rank != d.rank and _gone(pid)]
    others = sorted({host for host, _ in d.peers if host != here})
    if not gone and others:
        return f"a rank on {', '.join(others)}"
    return ", ".join(gone)


@contextmanager
def peers_alive(d: Dist):
    """Turn a collective that fails because a peer died (or timed out) into a one-line RunFailed naming it."""
    try:
        yield
    except RuntimeError as e:
        if d.world == 1 or isinstance(e, (RunFailed, torch.OutOfMemoryError)):
            raise
        who = dead_ranks(d)
        if not who and not isinstance(e, dist.DistError):
            raise
        first = (str(e).strip().splitlines() or [type(e).__name__])[0].split(". ")[0][:200]
        raise RunFailed(f"rank {d.rank}: {who or 'another rank'} stopped answering ({first}); rerun the same "
                        "command to resume from the last checkpoint") from None


def gather_flags(d: Dist, flags: torch.Tensor) -> torch.Tensor:
    """Every rank's (F,) `flags` as a (world, F) host tensor: one collective, and the host waits for it."""
    if d.world == 1:
        return flags[None].cpu()
    parts = [torch.empty_like(flags) for _ in range(d.world)]
    dist.all_gather(parts, flags)
    return torch.stack(parts).cpu()


def broadcast_flags(d: Dist, *flags: bool) -> list[bool]:
    """Rank 0's flags on every rank (time-based decisions must agree across ranks)."""
    if d.world == 1:
        return list(flags)
    t = torch.tensor([float(f) for f in flags], device=d.device)
    dist.broadcast(t, src=0)
    return [bool(v) for v in t.tolist()]


def from_rank_zero(d: Dist, decide: Callable[[], object]):
    """`decide()` run by rank 0 alone; its (small, picklable) result on every rank.

    If it raises on rank 0, rank 0 raises that error and the others a quiet RunFailed (rank 0 reports it).
    """
    if d.world == 1:
        return decide()
    box = [None]
    try:
        if d.main:
            box[0] = (decide(),)
    finally:  # rank 0 sends None when decide() raised
        dist.broadcast_object_list(box, src=0)
    if box[0] is None:
        raise RunFailed("rank 0 failed before the run started (it reports why)", quiet=True)
    return box[0][0]


def gather_objects(d: Dist, obj) -> list:
    """Every rank's (small, picklable) `obj`, in rank order."""
    if d.world == 1:
        return [obj]
    out = [None] * d.world
    dist.all_gather_object(out, obj)
    return out


def all_reduce_mean(d: Dist, tensors: list[torch.Tensor], bucket_bytes: int = 64 << 20) -> None:
    """Average `tensors` (e.g. gradients) over ranks in place, in buckets of about `bucket_bytes`."""
    if d.world == 1:
        return
    bucket, size = [], 0
    for t in tensors + [None]:
        if t is not None:
            bucket.append(t)
            size += t.numel() * t.element_size()
        if bucket and (t is None or size >= bucket_bytes):
            flat = torch.cat([b.reshape(-1) for b in bucket])
            dist.all_reduce(flat)
            flat /= d.world
            offset = 0
            for b in bucket:
                b.copy_(flat[offset:offset + b.numel()].view_as(b))
                offset += b.numel()
            bucket, size = [], 0


def all_gather_rows(d: Dist, t: torch.Tensor) -> torch.Tensor:
    """The (B, ...) tensors of every rank concatenated along rows (same shape on every rank)."""
    if d.world == 1:
        return t
    parts = [torch.empty_like(t) for _ in range(d.world)]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts)


def barrier(d: Dist) -> None:
    if d.world > 1:
        dist.barrier()


class AgreedBatches:
    """A loader's batches while every rank has its own: a dead or hung worker on any rank ends them on all
    (one flag per step is gathered when there are several ranks); `failed` then says why, naming the ranks."""

    def __init__(self, loader, d: Dist):
        self.loader, self.d, self.failed = loader, d, ""

    def __iter__(self):
        batches = guarded(self.loader)
        while True:
            batch, why = None, ""
            try:
                batch = next(batches)
            except StopIteration:
                return  # every rank has the same number of steps
            except LoaderFailed as e:
                why = str(e)
            if self.d.world > 1 and gather_flags(self.d, torch.tensor([float(bool(why))], device=self.d.device)).any():
                why = "; ".join(f"rank {r}: {w}" for r, w in enumerate(gather_objects(self.d, why)) if w)
            if why:
                self.failed = why
                return
            yield batch
