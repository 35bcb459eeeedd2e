"""What a fit carries from step to step: the optimiser and its schedule, the random
streams, the best epoch so far (:class:`FitState`); and the snapshot it checkpoints and
resumes from (:class:`LoopSnapshot`, with :class:`EpochPosition` inside an epoch)."""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from cdkd_core.components.loss import Loss
from cdkd_core.engine.plans import DomainPlan
from cdkd_core.engine.settings import FitResult, FitSettings


def _schedule(optimizer: torch.optim.Optimizer, settings: FitSettings, total_steps: int):
    if settings.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total_steps, 1))
    return None


@dataclass(frozen=True)
class EpochPosition:
    """Where a fit stopped inside an epoch: the epoch's batch generator state (its batches
    are drawn again from it), how many of its batches were taken (``position``), the loss
    terms' sums and the steps over them, and the global random state."""

    generator: torch.Tensor
    position: int
    sums: dict[str, Any]
    steps: int
    torch_rng: torch.Tensor

    def to_state(self) -> dict[str, Any]:
        """The checkpoint's form (its keys are the file format)."""
        return {
            "generator": self.generator,
            "position": self.position,
            "sums": self.sums,
            "steps": self.steps,
            "torch_rng": self.torch_rng,
        }

    @classmethod
    def from_state(cls, data: Mapping[str, Any]) -> EpochPosition:
        """Inverse of :meth:`to_state`."""
        return cls(
            generator=data["generator"],
            position=data["position"],
            sums=dict(data["sums"]),
            steps=data["steps"],
            torch_rng=data["torch_rng"],
        )


@dataclass(frozen=True)
class LoopSnapshot:
    """A fit's whole state after ``epoch`` epochs, which it checkpoints and resumes from.

    The model's, the loss terms', the optimiser's, the schedule's (None without one) and the
    loss scaler's state (empty with loss scaling off); the batch generator's and the global
    random state; the best epoch so far (``best_epoch``, ``best_score``, ``best_state``, its
    weights), the epochs' records (``history``), the epochs since the best (``stale``),
    whether early stopping stopped it, the optimiser steps taken (``global_step``) and, in
    a checkpoint taken inside an epoch, where in the next epoch it stopped (``in_epoch``).
    """

    epoch: int
    model: dict[str, Any]
    losses: list[dict[str, Any]]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any] | None
    scaler: dict[str, Any]
    generator: torch.Tensor
    torch_rng: torch.Tensor
    best_epoch: int
    best_score: float
    history: list[dict[str, Any]]
    best_state: dict[str, Any]
    stale: int
    stopped: bool
    global_step: int = 0
    in_epoch: EpochPosition | None = None

    def to_state(self) -> dict[str, Any]:
        """The checkpoint's form: a mapping of 16 keys (the keys and their order are the
        file format)."""
        return {
            "epoch": self.epoch,
            "model": self.model,
            "losses": self.losses,
            "optimizer": self.optimizer,
            "scheduler": self.scheduler,
            "scaler": self.scaler,
            "generator": self.generator,
            "torch_rng": self.torch_rng,
            "best_epoch": self.best_epoch,
            "best_score": self.best_score,
            "history": self.history,
            "best_state": self.best_state,
            "stale": self.stale,
            "stopped": self.stopped,
            "global_step": self.global_step,
            "in_epoch": self.in_epoch.to_state() if self.in_epoch is not None else None,
        }

    @classmethod
    def from_state(cls, data: Mapping[str, Any]) -> LoopSnapshot:
        """Inverse of :meth:`to_state`; keys beside the loop's (what a stage keeps in its
        checkpoints with it) are ignored. A checkpoint from before loss scaling has no
        ``scaler`` (then none is restored), and one from before checkpoints inside an epoch
        no ``global_step`` (0) or ``in_epoch`` (None)."""
        in_epoch = data.get("in_epoch")
        return cls(
            epoch=data["epoch"],
            model=data["model"],
            losses=list(data["losses"]),
            optimizer=data["optimizer"],
            scheduler=data["scheduler"],
            scaler=data.get("scaler") or {},
            generator=data["generator"],
            torch_rng=data["torch_rng"],
            best_epoch=data["best_epoch"],
            best_score=data["best_score"],
            history=list(data["history"]),
            best_state=data["best_state"],
            stale=data["stale"],
            stopped=data["stopped"],
            global_step=data.get("global_step", 0),
            in_epoch=EpochPosition.from_state(in_epoch) if in_epoch is not None else None,
        )


@dataclass
class FitState:
    """The whole state of one fit.

    ``first`` is the next epoch to run; ``in_epoch``, when resuming mid-epoch, where the
    loop stopped inside it (its generator state, position, loss sums, step count and
    global random state); ``stale`` counts the epochs since the best one.
    """

    model: nn.Module
    losses: list[tuple[Loss, float]]
    params: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    generator: torch.Generator
    best: FitResult
    best_state: dict[str, Any]
    stale: int = 0
    first: int = 1
    stopped: bool = False
    global_step: int = 0
    in_epoch: EpochPosition | None = None

    @classmethod
    def start(
        cls,
        model: nn.Module,
        losses: list[tuple[Loss, float]],
        plans: list[DomainPlan],
        settings: FitSettings,
    ) -> FitState:
        """A fresh state: the model and losses on the device, an AdamW optimiser over both,
        the schedule over every epoch's steps, the batch generator seeded."""
        device = settings.device
        model.to(device)
        for loss, _ in losses:
            loss.to(device)
        params = list(model.parameters()) + [p for loss, _ in losses for p in loss.parameters()]
        # foreach: one fused update over all parameters (PyTorch uses it only on CUDA by default)
        optimizer = torch.optim.AdamW(
            params, lr=settings.lr, weight_decay=settings.weight_decay, foreach=True
        )
        generator = torch.Generator().manual_seed(settings.seed)
        # loss scaling keeps fp16 gradients from underflowing; disabled, it is a no-op
        scaler = torch.amp.GradScaler(device.type, enabled=settings.precision == "fp16")
        steps_per_epoch = sum(math.ceil(len(p.index) / settings.batch_size) for p in plans)
        scheduler = _schedule(optimizer, settings, steps_per_epoch * settings.epochs)
        return cls(
            model=model,
            losses=losses,
            params=params,
            optimizer=optimizer,
            scheduler=scheduler,
            scaler=scaler,
            generator=generator,
            best=FitResult(best_epoch=0, best_score=-math.inf),
            best_state=copy.deepcopy(model.state_dict()),
        )

    def restore(self, resume: LoopSnapshot) -> None:
        """Continue from a :meth:`snapshot`, bit for bit as if the loop had not stopped."""
        self.model.load_state_dict(resume.model)
        for (loss, _), state in zip(self.losses, resume.losses, strict=True):
            loss.load_state_dict(state)
        self.optimizer.load_state_dict(resume.optimizer)
        if self.scheduler is not None:
            self.scheduler.load_state_dict(resume.scheduler)
        self.generator.set_state(resume.generator)
        if resume.scaler:  # empty: loss scaling off (the scaler has no state)
            self.scaler.load_state_dict(resume.scaler)
        torch.set_rng_state(resume.torch_rng)
        self.best = FitResult(resume.best_epoch, resume.best_score, list(resume.history))
        self.best_state, self.stale = resume.best_state, resume.stale
        self.stopped = resume.stopped
        self.first = resume.epoch + 1
        self.in_epoch = resume.in_epoch
        self.global_step = resume.global_step

    def snapshot(self, done: int, in_epoch: EpochPosition | None = None) -> LoopSnapshot:
        """The loop's whole state after ``done`` epochs (and, ``in_epoch``, where it is
        inside the next one), for ``on_checkpoint``."""
        return LoopSnapshot(
            epoch=done,
            model=self.model.state_dict(),
            losses=[loss.state_dict() for loss, _ in self.losses],
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict() if self.scheduler is not None else None,
            scaler=self.scaler.state_dict(),
            generator=self.generator.get_state(),
            torch_rng=torch.get_rng_state(),
            best_epoch=self.best.best_epoch,
            best_score=self.best.best_score,
            history=self.best.history,
            best_state=self.best_state,
            stale=self.stale,
            stopped=self.stopped,
            global_step=self.global_step,
            in_epoch=in_epoch,
        )

    def select(self, epoch: int, score: float, patience: int | None) -> None:
        """Keep ``epoch`` when its val score beats the best so far; otherwise count it
        towards early stopping after ``patience`` stale epochs."""
        # with no finite val score yet (no labelled val example, or an undefined metric),
        # the latest epoch is kept
        if score > self.best.best_score or not math.isfinite(self.best.best_score):
            self.best.best_score, self.best.best_epoch, self.stale = score, epoch, 0
            self.best_state = copy.deepcopy(self.model.state_dict())
        else:
            self.stale += 1
            self.stopped = patience is not None and self.stale >= patience
