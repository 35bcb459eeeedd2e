"""The training loop every stage uses: single-domain batches from several domains, a
weighted list of loss terms, model selection and early stopping on the val split."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from cdkd_core.components.contracts import check_loss_value
from cdkd_core.components.loss import BatchContext, Loss
from cdkd_core.data.preparation import PreparedDomain
from cdkd_core.engine.distributed import (
    any_across,
    current_world,
    gather_rows,
    shard_bounds,
    sum_across,
)
from cdkd_core.engine.metrics import evaluate
from cdkd_core.errors import TrainingError
from cdkd_core.nets.reading import FeatureHook


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
class TeacherOutputs:
    """Cached teacher outputs on one split of one domain (rows aligned with the split)."""

    logits: torch.Tensor | None = None
    features: torch.Tensor | None = None
    knowledge: torch.Tensor | None = None


@dataclass
class DomainPlan:
    """How one domain takes part in a training stage.

    ``index`` lists the examples iterated each epoch; ``labels`` is -1 where the label may
    not be used (``labelled`` False); ``teacher`` holds cached teacher outputs;
    ``teacher_x`` is the teacher view, for strategies that run the teacher live.
    """

    domain: PreparedDomain
    x: torch.Tensor
    labels: torch.Tensor
    labelled: torch.Tensor
    index: torch.Tensor
    val_x: torch.Tensor
    weight: float = 1.0
    teacher: TeacherOutputs | None = None
    teacher_x: torch.Tensor | None = None


class LiveTeacher(Protocol):
    """A teacher that trains while the student does (e.g. deep mutual learning)."""

    def logits(self, plan: DomainPlan, batch: torch.Tensor) -> torch.Tensor | None:
        """Current teacher logits for the batch (no gradient), or None without a head."""

    def step(
        self,
        plan: DomainPlan,
        batch: torch.Tensor,
        student_logits: torch.Tensor,
        student: nn.Module | None = None,
    ) -> None:
        """Update the teacher after the student's step; ``student`` is the network being
        trained (unwrapped), for strategies that look ahead at it."""


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


@dataclass
class FitResult:
    """What a stage's training gave: the selected epoch, its val score, per-epoch records."""

    best_epoch: int
    best_score: float
    history: list[dict] = field(default_factory=list)


@torch.no_grad()
def predict(
    model: nn.Module, x: torch.Tensor, space: str, task: str, batch_size: int, device
) -> torch.Tensor:
    """Logits for all of ``x`` in eval mode, on the CPU.

    Under torchrun each process predicts its share of the rows and all get the whole
    result, so every process must call it with the same arguments.
    """
    world = current_world()
    lo, hi = shard_bounds(len(x), world) if world.distributed else (0, len(x))
    was_training = model.training
    model.eval()
    out = [
        model(x[i : min(i + batch_size, hi)].to(device), space, task).float().cpu()
        for i in range(lo, hi, batch_size)
    ]
    if not out:  # fewer rows than processes: an empty block of the right width
        out = [model(x[:1].to(device), space, task).float().cpu()[:0]]
    model.train(was_training)
    return gather_rows(torch.cat(out), len(x))


@torch.no_grad()
def read_features(
    model: nn.Module,
    layer: str,
    x: torch.Tensor,
    space: str,
    task: str | None,
    batch_size: int,
    device,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Features of ``layer`` (by forward hook) and logits (None when ``task`` is None)."""
    was_training = model.training
    model.eval()
    feats, logits = [], []
    with FeatureHook(model, layer) as hook:
        for i in range(0, len(x), batch_size):
            xb = x[i : i + batch_size].to(device)
            if task is None:
                model.features(xb, space)
            else:
                logits.append(model(xb, space, task).float().cpu())
            feats.append(hook.take().float().cpu())
    model.train(was_training)
    return torch.cat(feats), (torch.cat(logits) if logits else None)


def val_score(
    model: nn.Module, plans: list[DomainPlan], settings: FitSettings
) -> tuple[float, dict[str, dict[str, float]]]:
    """Mean headline metric over the plans' labelled val examples (a target's val split is
    cut to its ``label_fraction``; NaNs skipped) and the val metrics per domain."""
    per_domain, scores = {}, []
    for plan in plans:
        d = plan.domain
        mask = d.val_labelled
        if not bool(mask.any()):
            continue
        logits = predict(
            model, plan.val_x[mask], d.space, d.task, settings.eval_batch_size, settings.device
        )
        metrics = evaluate(d.data.metrics, logits, d.val.y[mask])
        per_domain[d.name] = metrics
        if not math.isnan(metrics[d.headline]):
            scores.append(metrics[d.headline])
    return (sum(scores) / len(scores) if scores else -math.inf), per_domain


def _schedule(optimizer, settings: FitSettings, total_steps: int):
    if settings.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total_steps, 1))
    return None


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


def fit(
    model: nn.Module,
    plans: list[DomainPlan],
    losses: list[tuple[Loss, float]],
    settings: FitSettings,
    *,
    live: LiveTeacher | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    on_checkpoint: Callable[[dict], None] | None = None,
    resume: dict | None = None,
    stop_requested: Callable[[], bool] | None = None,
) -> FitResult:
    """Train ``model`` on ``plans`` with the weighted ``losses``; keep the best val epoch.

    Each step is one batch of one domain; an epoch visits every planned example once, the
    batches of all domains shuffled together. A domain's ``weight`` scales its loss.
    ``on_checkpoint`` gets the loop's whole state after every epoch; ``resume`` (such a
    state) continues from it, bit for bit as if the loop had not stopped. When
    ``stop_requested()`` turns true (Ctrl-C), the loop checkpoints after the current step
    and raises :class:`KeyboardInterrupt`.

    Under torchrun every process draws the same batches (same seed) and takes its share
    of each, ``batch[rank::world_size]``; DistributedDataParallel averages the gradients,
    each process's loss scaled by its share of the batch, so a step follows the gradient
    of the whole batch's mean loss, as one process would. A batch smaller than the number
    of processes (an epoch's last, at most) is skipped.
    """
    device = settings.device
    world = current_world()
    model.to(device)
    for loss, _ in losses:
        loss.to(device)
    params = list(model.parameters()) + [p for loss, _ in losses for p in loss.parameters()]
    # foreach: one fused update over all parameters (PyTorch uses it only on CUDA by default)
    optimizer = torch.optim.AdamW(
        params, lr=settings.lr, weight_decay=settings.weight_decay, foreach=True
    )
    generator = torch.Generator().manual_seed(settings.seed)
    autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(settings.precision)
    # loss scaling keeps fp16 gradients from underflowing; disabled, it is a no-op
    scaler = torch.amp.GradScaler(device.type, enabled=settings.precision == "fp16")
    steps_per_epoch = sum(math.ceil(len(p.index) / settings.batch_size) for p in plans)
    scheduler = _schedule(optimizer, settings, steps_per_epoch * settings.epochs)
    best = FitResult(best_epoch=0, best_score=-math.inf)
    best_state = copy.deepcopy(model.state_dict())
    stale, first, stopped = 0, 1, False
    if resume is not None:
        model.load_state_dict(resume["model"])
        for (loss, _), state in zip(losses, resume["losses"], strict=True):
            loss.load_state_dict(state)
        optimizer.load_state_dict(resume["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(resume["scheduler"])
        generator.set_state(resume["generator"])
        if resume.get("scaler"):
            scaler.load_state_dict(resume["scaler"])
        torch.set_rng_state(resume["torch_rng"])
        best = FitResult(resume["best_epoch"], resume["best_score"], list(resume["history"]))
        best_state, stale, stopped = resume["best_state"], resume["stale"], resume["stopped"]
        first = resume["epoch"] + 1
    partial = resume.get("in_epoch") if resume is not None else None
    global_step = resume.get("global_step", 0) if resume is not None else 0
    source = _BatchSource(plans, device)

    def snapshot(done: int, in_epoch: dict | None = None) -> dict:
        """The loop's whole state after ``done`` epochs (and, ``in_epoch``, where it is
        inside the next one), for ``on_checkpoint``."""
        return {
            "epoch": done,
            "model": model.state_dict(),
            "losses": [loss.state_dict() for loss, _ in losses],
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "scaler": scaler.state_dict(),
            "generator": generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "best_epoch": best.best_epoch,
            "best_score": best.best_score,
            "history": best.history,
            "best_state": best_state,
            "stale": stale,
            "stopped": stopped,
            "global_step": global_step,
            "in_epoch": in_epoch,
        }

    # one hook for the whole stage (registering one per step costs a module-tree walk)
    with FeatureHook(model, settings.feature_layer) as hook:
        step_module: nn.Module = TrainStep(model, losses, hook)
        if world.distributed:
            step_module = DistributedDataParallel(
                step_module,
                device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=_leaves_parameters_unused(model, losses),
            )
        for epoch in range(first, settings.epochs + 1):
            if stopped:
                break
            step_module.train()
            if partial is not None:  # resuming mid-epoch: the same batches as before
                generator.set_state(partial["generator"])
            epoch_generator = generator.get_state()
            batches = []
            for p_idx, plan in enumerate(plans):
                order = plan.index[torch.randperm(len(plan.index), generator=generator)]
                batches += [
                    (p_idx, order[i : i + settings.batch_size])
                    for i in range(0, len(order), settings.batch_size)
                ]
            order = torch.randperm(len(batches), generator=generator).tolist()
            sums: dict[str, torch.Tensor] = {}
            steps, skip = 0, 0
            if partial is not None:
                sums, steps, skip = dict(partial["sums"]), partial["steps"], partial["position"]
                torch.set_rng_state(partial["torch_rng"])
                partial = None
            for position, b in enumerate(order):
                if position < skip:
                    continue
                p_idx, idx = batches[b]
                plan = plans[p_idx]
                share = 1.0
                if world.distributed:
                    if len(idx) < world.size:
                        continue
                    share = math.ceil((len(idx) - world.rank) / world.size) / len(idx)
                    idx = idx[world.rank :: world.size]
                d = plan.domain
                with torch.autocast(
                    device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None
                ):
                    terms, student_logits = step_module(
                        *source.batch(p_idx, idx, live), d.name, d.space, d.task, plan.weight
                    )
                total = sum(terms.values()) if terms else None
                finite = total is None or bool(torch.isfinite(total))
                applies, diverged = bool(terms), not finite
                if world.distributed:
                    applies, diverged = any_across(applies, diverged)
                if not applies:
                    continue
                if diverged:
                    raise TrainingError(_divergence(epoch, d.name, terms, finite))
                if total is None:  # no term on this process's share: a zero gradient
                    total = student_logits.sum() * 0.0
                elif world.distributed:
                    total = total * (share * world.size)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(total).backward()
                if settings.grad_clip:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(params, settings.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                if scheduler is not None:
                    scheduler.step()
                if live is not None:
                    live.step(plan, idx, student_logits.detach(), student=model)
                for k, v in terms.items():
                    v = v.detach() * share if world.distributed else v.detach()
                    sums[k] = sums.get(k, 0.0) + v  # no per-step sync
                steps += 1
                global_step += 1
                every = settings.checkpoint_steps
                stop = stop_requested is not None and stop_requested()
                if world.distributed and stop_requested is not None:
                    (stop,) = any_across(stop)
                if on_checkpoint is not None and (
                    stop or (every and global_step % every == 0 and position + 1 < len(order))
                ):
                    on_checkpoint(
                        snapshot(
                            epoch - 1,
                            {
                                "generator": epoch_generator,
                                "position": position + 1,
                                "sums": sums,
                                "steps": steps,
                                "torch_rng": torch.get_rng_state(),
                            },
                        )
                    )
                if stop:
                    raise KeyboardInterrupt
            if world.distributed:
                sums = sum_across(sums)
            score, val = val_score(model, plans, settings)
            record = {
                "epoch": epoch,
                "loss": {k: float(v) / max(steps, 1) for k, v in sums.items()},
                "val_score": score,
                "val": val,
            }
            best.history.append(record)
            if on_epoch is not None:
                on_epoch(record)
            # with no finite val score yet (no labelled val example, or an undefined metric),
            # the latest epoch is kept
            if score > best.best_score or not math.isfinite(best.best_score):
                best.best_score, best.best_epoch, stale = score, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                stale += 1
                stopped = settings.patience is not None and stale >= settings.patience
            if on_checkpoint is not None:
                on_checkpoint(snapshot(epoch))
    model.load_state_dict(best_state)
    return best


def _divergence(epoch: int, domain: str, terms: dict[str, torch.Tensor], finite: bool) -> str:
    """What to say when the loss stops being finite."""
    if finite:  # it diverged on another process's share of the batch
        return (
            f"the loss became non-finite in epoch {epoch} on domain {domain!r} (in another "
            "process); try a lower learning rate (train.lr) or, for kd, a lower temperature"
        )
    total = float(sum(terms.values()).detach())
    return (
        f"the loss became {total} in epoch {epoch} on domain {domain!r} (terms: "
        + ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in terms.items())
        + "); try a lower learning rate (train.lr) or, for kd, a lower temperature"
    )


class _BatchSource:
    """Cuts a step's batch out of a plan's tensors and puts it on the device.

    On a GPU, the plans' tensors (inputs, labels, cached teacher outputs) are moved there
    once when they take under a quarter of its free memory, so a step indexes GPU memory
    instead of copying from the host; otherwise each batch is gathered on the host and
    copied.
    """

    def __init__(self, plans: list[DomainPlan], device: torch.device) -> None:
        self.plans, self.device = plans, device
        self.tensors = [self._tensors(plan) for plan in plans]
        if device.type == "cuda":
            size = sum(t.nbytes for ts in self.tensors for t in ts.values() if t is not None)
            free, _ = torch.cuda.mem_get_info(device)
            if size < free // 4:
                self.tensors = [
                    {k: None if t is None else t.to(device) for k, t in ts.items()}
                    for ts in self.tensors
                ]

    @staticmethod
    def _tensors(plan: DomainPlan) -> dict[str, torch.Tensor | None]:
        t = plan.teacher
        return {
            "x": plan.x,
            "labels": plan.labels,
            "labelled": plan.labelled,
            "teacher_logits": t.logits if t is not None else None,
            "teacher_features": t.features if t is not None else None,
            "knowledge": t.knowledge if t is not None else None,
        }

    def batch(
        self, p_idx: int, idx: torch.Tensor, live: LiveTeacher | None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor | None]]:
        """The inputs and the rest of the batch context of ``idx`` in plan ``p_idx``."""
        device = self.device
        tensors = self.tensors[p_idx]
        rows = {
            k: None if t is None else t[idx.to(t.device)].to(device) for k, t in tensors.items()
        }
        if live is not None:
            fresh = live.logits(self.plans[p_idx], idx)
            if fresh is not None:
                rows["teacher_logits"] = fresh.to(device)
        return rows.pop("x"), rows
