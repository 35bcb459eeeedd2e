"""Several processes under torchrun: joining and leaving the process group, and the few
collectives the pipeline needs besides DistributedDataParallel's gradient averaging.

Every process loads the data and runs the same pipeline with the same seeds, so the
processes agree on every decision (batch order, model selection, feedback) by construction;
the collectives here only split work and combine its results. Process 0 alone writes.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

# torchrun's environment is read with the machine checks (config.machine); re-exported here
from cdkd_core.config.machine import TORCHRUN_ENV as TORCHRUN_ENV
from cdkd_core.config.machine import launched_by_torchrun as launched_by_torchrun


@dataclass(frozen=True)
class World:
    """This process's place among the run's processes (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Whether this process writes the run's artifacts and prints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether more than one process takes part."""
        return self.size > 1


def current_world() -> World:
    """The process group this process belongs to (one process when there is none)."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return World()


def wants_cuda(device: str) -> bool:
    """Whether a ``train.device`` setting resolves to CUDA on this machine."""
    return device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())


@contextmanager
def process_group(device: str) -> Iterator[World]:
    """Join torchrun's process group for the block (NCCL when ``device`` is CUDA, gloo
    otherwise) and leave it cleanly; without torchrun, or with a group already joined by
    the caller, the block runs as it is."""
    if not launched_by_torchrun() or not dist.is_available() or dist.is_initialized():
        yield current_world()
        return
    local_rank = int(os.environ["LOCAL_RANK"])
    cuda = wants_cuda(device)
    if cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if cuda else "gloo")
    ok = False
    try:
        yield current_world()
        ok = True
    finally:
        shutdown(wait=ok)


def shutdown(wait: bool = True) -> None:
    """Leave the process group. Collecting garbage first (so no DDP reducer or gloo
    buffer outlives the group) and waiting for every process at a barrier avoids the
    abort some gloo processes hit at interpreter exit; after an error there is no barrier
    (the other processes may never reach it: torchrun stops them)."""
    gc.collect()
    try:
        if wait:
            dist.barrier()
    finally:
        dist.destroy_process_group()


def _comm_device() -> torch.device:
    """Where tensors of a collective must live: the current GPU for NCCL, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def any_across(*flags: bool) -> tuple[bool, ...]:
    """Each flag OR-ed over the processes (the flags themselves with one process)."""
    if not current_world().distributed:
        return flags
    t = torch.tensor([float(f) for f in flags], device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return tuple(bool(v) for v in t.tolist())


def sum_across(values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Scalar tensors summed over the processes, key by key (all processes hold the same
    keys)."""
    if not current_world().distributed or not values:
        return values
    keys = sorted(values)
    t = torch.stack([torch.as_tensor(values[k]).float().reshape(()) for k in keys])
    t = t.to(_comm_device())
    dist.all_reduce(t)
    return dict(zip(keys, t.cpu().unbind(), strict=True))


def shard_bounds(n: int, world: World) -> tuple[int, int]:
    """The contiguous rows ``[lo, hi)`` of ``n`` this process handles."""
    return n * world.rank // world.size, n * (world.rank + 1) // world.size


def gather_rows(local: torch.Tensor, n: int) -> torch.Tensor:
    """The processes' row blocks (as cut by :func:`shard_bounds`) put back together, on
    every process, on the CPU."""
    world = current_world()
    if not world.distributed:
        return local
    device = _comm_device()
    bounds = [shard_bounds(n, World(r, world.size)) for r in range(world.size)]
    sizes = [hi - lo for lo, hi in bounds]
    width = max(sizes)
    padded = torch.zeros((width, *local.shape[1:]), dtype=local.dtype, device=device)
    padded[: len(local)] = local.to(device)
    blocks = [torch.empty_like(padded) for _ in range(world.size)]
    dist.all_gather(blocks, padded)
    return torch.cat([b[:s] for b, s in zip(blocks, sizes, strict=True)]).cpu()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` as process ``src`` has it, on every process (pickled: small objects only)."""
    if not current_world().distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src, device=_comm_device())
    return box[0]


def broadcast_module(module: nn.Module, src: int = 0) -> None:
    """Overwrite every process's parameters and buffers with process ``src``'s."""
    if not current_world().distributed:
        return
    device = _comm_device()
    with torch.no_grad():
        for tensor in module.state_dict().values():
            buffer = tensor.detach().to(device)
            dist.broadcast(buffer, src=src)
            if buffer is not tensor:
                tensor.copy_(buffer)


@contextmanager
def averaged_gradients(module: nn.Module) -> Iterator[None]:
    """Inside the block, each gradient of ``module``'s parameters is averaged over the
    processes as soon as backward has accumulated it, so an optimiser stepping ``module``
    (a feedback strategy's live teacher, say) keeps it identical everywhere. Every process
    must run the same backward passes."""
    world = current_world()
    if not world.distributed:
        yield
        return
    device = _comm_device()

    def average(param: torch.Tensor) -> None:
        grad = param.grad.to(device)
        dist.all_reduce(grad)
        param.grad.copy_(grad / world.size)

    handles = [
        p.register_post_accumulate_grad_hook(average)
        for p in module.parameters()
        if p.requires_grad
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def run_on_main(fn: Callable[[], Any]) -> Any:
    """``fn()`` run on process 0 alone, its result given to every process."""
    world = current_world()
    return broadcast_object(fn() if world.main else None)
