"""How a stage trains (:class:`FitSettings`), what it gives back (:class:`FitResult`), and
the device it runs on."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then MPS, then CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(name)


@dataclass
class FitSettings:
    """Optimisation settings of one stage."""

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    scheduler: str
    patience: int | None
    grad_clip: float | None
    eval_batch_size: int
    device: torch.device
    seed: int
    feature_layer: str = "trunk"
    #: also call ``on_checkpoint`` every this many optimiser steps within an epoch
    checkpoint_steps: int | None = None
    #: fp32, or mixed precision: bf16 (CPU or GPU) or fp16 (CUDA, with loss scaling)
    precision: str = "fp32"
    #: select the epoch with the best val score (and stop early on ``patience``); False
    #: keeps the last epoch without scoring val (a feedback strategy's fine-tune)
    select_on_val: bool = True


@dataclass
class FitResult:
    """What a stage's training gave: the selected epoch, its val score, per-epoch records."""

    best_epoch: int
    best_score: float
    history: list[dict] = field(default_factory=list)
