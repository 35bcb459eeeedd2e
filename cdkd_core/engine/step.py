"""One optimisation step of a fit: the forward pass of a batch through the network and its
weighted losses (in the stage's precision), the divergence check, the backward pass with
loss scaling and gradient clipping, the optimiser and schedule steps, a live teacher's step."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from cdkd_core.components.contracts import check_loss_value
from cdkd_core.components.loss import BatchContext, Loss
from cdkd_core.engine.batching import BatchSource
from cdkd_core.engine.distributed import World, any_across
from cdkd_core.engine.fit_state import FitState
from cdkd_core.engine.non_finite import Diverged, first_non_finite
from cdkd_core.engine.plans import LiveTeacher
from cdkd_core.engine.settings import FitSettings
from cdkd_core.nets.reading import FeatureHook


class TrainStep(nn.Module):
    """A network and its weighted losses as one module: a forward pass gives one batch's
    loss terms. Wrapped in DistributedDataParallel under torchrun, so the gradients of
    every parameter a step trains (the losses' own, e.g. a projector, included) are
    averaged over the processes."""

    def __init__(
        self, model: nn.Module, losses: list[tuple[Loss, float]], hook: FeatureHook
    ) -> None:
        super().__init__()
        self.model = model
        self.losses = nn.ModuleList([loss for loss, _ in losses])
        self.weights = [weight for _, weight in losses]
        self.hook = hook

    def forward(
        self,
        x: torch.Tensor,
        batch: dict[str, torch.Tensor | None],
        domain: str,
        space: str,
        task: str,
        weight: float,
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The weighted loss terms (empty when no term applies) and the student logits;
        ``batch`` holds the rest of :class:`BatchContext` (labels, teacher outputs)."""
        logits = self.model(x, space, task)
        ctx = BatchContext(
            domain=domain,
            task=task,
            student_logits=logits,
            student_features=self.hook.take(),
            **batch,
        )
        terms = {}
        for i, (loss, w) in enumerate(zip(self.losses, self.weights, strict=True)):
            if w == 0:
                continue
            value = loss(ctx)
            check_loss_value(loss, value)  # shape and dtype only: no device sync
            if value is not None:
                terms[f"{i}:{loss.name}"] = weight * w * value
        return terms, logits


def _leaves_parameters_unused(model: nn.Module, losses: list[tuple[Loss, float]]) -> bool:
    """Whether a step may leave some trained parameters without a gradient: the stems and
    heads of the batch's other domains, or a loss's parameters on a batch it skips.
    DistributedDataParallel must then look for them (``find_unused_parameters``)."""
    stems, heads = getattr(model, "stems", ()), getattr(model, "heads", ())
    return (
        len(stems) > 1
        or len(heads) > 1
        or any(any(True for _ in loss.parameters()) for loss, _ in losses)
    )


def step_module(
    model: nn.Module,
    losses: list[tuple[Loss, float]],
    hook: FeatureHook,
    device: torch.device,
    world: World,
) -> nn.Module:
    """The :class:`TrainStep` of ``model`` and ``losses``, in DistributedDataParallel
    under torchrun."""
    module: nn.Module = TrainStep(model, losses, hook)
    if world.distributed:
        module = DistributedDataParallel(
            module,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=_leaves_parameters_unused(model, losses),
        )
    return module


@dataclass
class Stepper:
    """Takes a fit's optimisation steps: ``module`` (the :class:`TrainStep`, maybe in
    DistributedDataParallel) on batches from ``source``, updating ``state``."""

    module: nn.Module
    state: FitState
    source: BatchSource
    settings: FitSettings
    world: World
    live: LiveTeacher | None = None

    def step(
        self, p_idx: int, idx: torch.Tensor, share: float, epoch: int
    ) -> dict[str, torch.Tensor] | None:
        """One optimiser step on rows ``idx`` of plan ``p_idx`` (``share`` of the whole
        batch under torchrun); its weighted loss terms, or None when no term applies on
        any process (no step is taken). Raises :class:`~cdkd_core.engine.non_finite.Diverged`
        (a :class:`TrainingError`) when the loss is not finite (on any process)."""
        state, world = self.state, self.world
        plan = self.source.plans[p_idx]
        d = plan.domain
        args = (*self.source.batch(p_idx, idx, self.live), d.name, d.space, d.task, plan.weight)
        with self._autocast():
            terms, student_logits = self.module(*args)
        total = sum(terms.values()) if terms else None
        finite = total is None or bool(torch.isfinite(total))
        applies, diverged = bool(terms), not finite
        if world.distributed:
            applies, diverged = any_across(applies, diverged)
        if not applies:
            return None
        if diverged:
            raise self._diverged(epoch, d.name, terms, args if not finite else None)
        if total is None:  # no term on this process's share: a zero gradient
            total = student_logits.sum() * 0.0
        elif world.distributed:
            total = total * (share * world.size)
        self._apply(total)
        if self.live is not None:
            self.live.step(plan, idx, student_logits.detach(), student=state.model)
        return terms

    def _autocast(self) -> torch.autocast:
        """The step's precision (mixed precision where the settings ask for it)."""
        settings = self.settings
        autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(settings.precision)
        return torch.autocast(
            settings.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None
        )

    def _diverged(
        self, epoch: int, domain: str, terms: dict[str, torch.Tensor], args: tuple | None
    ) -> Diverged:
        """The error for a non-finite loss; ``args`` (the step's batch, None when it
        diverged on another process's share) is run again to find the first part of the
        step whose values were not finite (only now: nothing of it on the normal path)."""
        if args is None:
            return Diverged(epoch, domain, None)
        values = {k: float(v.detach()) for k, v in terms.items()}
        step = (
            self.module.module if isinstance(self.module, DistributedDataParallel) else self.module
        )
        return Diverged(epoch, domain, values, first_non_finite(step, args, self._autocast))

    def _apply(self, total: torch.Tensor) -> None:
        """Backward (loss-scaled), clip, optimiser and schedule steps."""
        state, grad_clip = self.state, self.settings.grad_clip
        state.optimizer.zero_grad(set_to_none=True)
        state.scaler.scale(total).backward()
        if grad_clip:
            state.scaler.unscale_(state.optimizer)
            torch.nn.utils.clip_grad_norm_(state.params, grad_clip)
        state.scaler.step(state.optimizer)
        state.scaler.update()
        if state.scheduler is not None:
            state.scheduler.step()
