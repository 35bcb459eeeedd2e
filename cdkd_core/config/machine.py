"""Checks of a config's ``train`` settings against the machine it is to run on: the CPU
threads it asks for and the device it names. The schema cannot know the machine, so these
run with the component checks (``cdkd validate``, and before a run writes anything)."""

from __future__ import annotations

import importlib.util
import os
from typing import Any

#: environment variables torchrun sets for every process it starts
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def launched_by_torchrun() -> bool:
    """Whether torchrun started this process as one of several."""
    return all(v in os.environ for v in TORCHRUN_ENV) and int(os.environ["WORLD_SIZE"]) > 1


def tensorboard_missing() -> str | None:
    """Why TensorBoard logging cannot work here (the package is not installed), or None;
    the message is meant to follow ``train.log_to: ``."""
    try:
        found = importlib.util.find_spec("tensorboard") is not None
    except (ImportError, ValueError):
        found = False
    if found:
        return None
    return (
        "'tensorboard' needs the tensorboard package: pip install 'cdkd[tensorboard]' "
        "(or pip install tensorboard)"
    )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def thread_problem(threads: int | None) -> str | None:
    """Why ``train.threads`` cannot be used here (more than the machine's CPUs), or None."""
    cpus = os.cpu_count()
    if threads is None or cpus is None or threads <= cpus:
        return None
    return (
        f"train.threads: {threads} but this machine has {_plural(cpus, 'CPU')} "
        f"(os.cpu_count() = {cpus}); use at most {cpus}, or null for torch's default"
    )


def device_problem(device: str) -> str | None:
    """Why ``train.device`` cannot be used here (no such accelerator, or a CUDA index
    beyond the devices torch sees, or a torchrun process without a GPU of its own), or
    None."""
    import torch

    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            why = (
                "this torch is built without CUDA"
                if torch.version.cuda is None
                else "torch sees no CUDA device"
            )
            return f"train.device: {device} but {why}; use auto or cpu"
        count = torch.cuda.device_count()
        index = int(device[5:]) if device.startswith("cuda:") else None
        if index is not None and index >= count:
            return (
                f"train.device: {device} but torch sees {_plural(count, 'CUDA device')} "
                f"(cuda:0 to cuda:{count - 1}); use one of those, cuda or auto"
            )
    elif device == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            return "train.device: mps but torch sees no MPS (Apple GPU) device; use auto or cpu"
    if device in ("cuda", "auto") and torch.cuda.is_available():
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        count = torch.cuda.device_count()
        if launched_by_torchrun() and local_rank >= count:
            return (
                f"train.device: {device} gives each torchrun process a GPU, but this is local "
                f"process {local_rank} and torch sees {_plural(count, 'CUDA device')}; start "
                f"at most {count} processes per machine (--nproc), or use cpu"
            )
    return None


def machine_problems(train: Any) -> list[str]:
    """What in a config's ``train`` settings this machine cannot do (one line each)."""
    found = [thread_problem(train.threads), device_problem(train.device)]
    return [problem for problem in found if problem is not None]
