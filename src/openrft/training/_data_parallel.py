"""Data-parallel ranks: one process each, gradients summed with `torch.distributed`.

Every rank runs the same loop on its contiguous share of each step's prompts. Sampling is
keyed by the global prompt index (Decision 13), so a prompt samples the same completions
whichever rank holds it; ranks exchange small Python objects (rewards, lengths, metrics)
and the summed gradients, so after every step each holds the weights one process would.
Rank 0 alone writes to the store. A job of one worker uses `Workers()`, whose exchanges
return their input without touching `torch.distributed`.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

__all__ = ["RankLost", "Rendezvous", "Workers"]

T = TypeVar("T")


class RankLost(RuntimeError):
    """A collective failed: another rank is gone (gloo and NCCL raise a bare RuntimeError,
    "Connection closed by peer", when a peer's process or node dies)."""


@contextlib.contextmanager
def _collective() -> Iterator[None]:
    try:
        yield
    except RuntimeError as exc:
        raise RankLost(str(exc)) from exc


@dataclass(frozen=True)
class Rendezvous:
    """How rank `rank` of `world_size` finds the others: torch.distributed's TCP store
    listens on rank 0's `master_addr:master_port`; `backend` is "gloo" or "nccl"."""

    rank: int
    world_size: int
    master_addr: str
    master_port: int
    backend: str = "gloo"

    def argv(self) -> list[str]:
        """The worker's command-line flags that give this rendezvous."""
        return [
            "--rank", str(self.rank),
            "--world-size", str(self.world_size),
            "--master-addr", self.master_addr,
            "--master-port", str(self.master_port),
            "--backend", self.backend,
        ]  # fmt: skip


def default_backend(local_ranks: int) -> str:
    """NCCL when every rank on this machine has a GPU of its own (NCCL refuses two ranks on
    one device); gloo otherwise, which also sums CUDA tensors."""
    if torch.cuda.is_available() and torch.cuda.device_count() >= local_ranks:
        return "nccl"
    return "gloo"


class Workers:
    """This process's place among the job's data-parallel ranks.

    Parameters: `rank` and `size` (the world size). Build a multi-rank one with `join`."""

    def __init__(self, *, rank: int = 0, size: int = 1) -> None:
        assert 0 <= rank < size, f"rank {rank} outside a world of {size}"
        self.rank, self.size = rank, size

    @classmethod
    def join(cls, rendezvous: Rendezvous, *, timeout_s: float = 1800.0) -> Workers:
        """Join the process group; blocks until every rank has joined."""
        if rendezvous.backend == "nccl":
            torch.cuda.set_device(rendezvous.rank % torch.cuda.device_count())
        dist.init_process_group(
            rendezvous.backend,
            init_method=f"tcp://{rendezvous.master_addr}:{rendezvous.master_port}",
            rank=rendezvous.rank,
            world_size=rendezvous.world_size,
            timeout=datetime.timedelta(seconds=timeout_s),
        )
        return cls(rank=rendezvous.rank, size=rendezvous.world_size)

    def close(self) -> None:
        if self.size > 1 and dist.is_initialized():
            dist.destroy_process_group()

    @property
    def is_leader(self) -> bool:
        return self.rank == 0

    def shard(self, n: int) -> tuple[int, int]:
        """This rank's `[start, stop)` of `n` items: contiguous, sizes differing by at most
        one, so concatenating the ranks' shares in rank order gives the whole in order."""
        return self.rank * n // self.size, (self.rank + 1) * n // self.size

    # -- exchanges (collective: every rank calls each, in the same order) ---------------
    def gather(self, items: list[T]) -> list[T]:
        """Every rank's `items`, concatenated in rank order, on every rank."""
        if self.size == 1:
            return list(items)
        out: list[Any] = [None] * self.size
        with _collective():
            dist.all_gather_object(out, items)
        return [x for part in out for x in part]

    def broadcast(self, value: T) -> T:
        """Rank 0's `value`, on every rank: how the ranks take one decision together."""
        if self.size == 1:
            return value
        box = [value]
        with _collective():
            dist.broadcast_object_list(box, src=0)
        return box[0]

    def sum_gradients(self, params: list[torch.nn.Parameter]) -> None:
        """Replace each parameter's gradient by its sum over the ranks (one flat all-reduce).
        A rank with no share this step contributes zeros."""
        if self.size == 1:
            return
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])  # (P,)
        with _collective():
            dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        offset = 0
        for p in params:
            summed = flat[offset : offset + p.numel()].view_as(p)
            offset += p.numel()
            if p.grad is None:
                p.grad = summed.clone()
            else:
                p.grad.copy_(summed)

    @torch.no_grad()
    def broadcast_parameters(self, params: list[torch.nn.Parameter]) -> None:
        """Rank 0's values of `params` on every rank (a fresh LoRA adapter is random)."""
        if self.size == 1:
            return
        with _collective():
            for p in params:
                dist.broadcast(p.data, src=0)
