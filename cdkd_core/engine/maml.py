"""Meta-learning a :class:`~cdkd_core.nets.network.MultiDomainNet` over its domains as tasks.

Two first-order algorithms, so that the shared stems and trunk become a starting point
that adapts to a new domain in a few steps (``teacher.maml`` in the config):

- **Reptile** (Nichol, Achiam & Schulman 2018, "On First-Order Meta-Learning
  Algorithms", Algorithm 2, the batched version): for each task sampled, copy the
  weights ``theta``, take ``k`` optimiser steps on batches of that task, giving
  ``theta_i``; then ``theta <- theta + epsilon * mean_i(theta_i - theta)``.
- **First-order MAML** (Finn, Abbeel & Levine 2017, "Model-Agnostic Meta-Learning for
  Fast Adaptation of Deep Networks", Algorithm 2 with the first-order approximation of
  section 5.2): adapt on a support batch, ``theta_i = U^k(theta)``; the meta-gradient is
  the query-batch gradient *at the adapted weights*, ``g_i = grad L_query(theta_i)``
  (the second-order term through ``U`` dropped); the meta-optimiser (Adam, as in the
  paper) steps ``theta`` along ``mean_i g_i``.

A task is one domain: its stem (input space), the shared trunk and its task's head. The
inner loop updates exactly those parameters and the meta update applies to what was
adapted; a parameter adapted by several of a step's tasks (the trunk, a shared stem or
head) gets the mean of their updates. Batches are drawn from a task's labelled rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cdkd_core.errors import TrainingError
from cdkd_core.nets.network import MultiDomainNet, module_key


@dataclass
class MetaTask:
    """One task of meta-training: a domain's inputs and labels.

    ``labels`` is -1 where a label may not be used; ``index`` lists the rows batches are
    drawn from (labelled ones).
    """

    name: str
    space: str
    task: str
    x: torch.Tensor
    labels: torch.Tensor
    index: torch.Tensor


@dataclass
class MetaSettings:
    """How :func:`meta_train` runs (see ``MamlConfig`` for the meaning of each)."""

    algorithm: str
    meta_steps: int
    inner_steps: int
    inner_lr: float
    meta_lr: float
    inner_optimizer: str = "adam"
    meta_lr_schedule: str = "linear"
    tasks_per_step: int | None = None
    support_size: int = 32
    query_size: int = 32
    grad_clip: float | None = None
    device: torch.device | str = "cpu"
    seed: int = 0
    log_every: int = 10


def adapted_parameters(model: MultiDomainNet, task: MetaTask) -> dict[str, nn.Parameter]:
    """The parameters a task's inner loop adapts: its stem, the trunk and its head, by
    their names in ``model.named_parameters()``."""
    prefixes = (f"stems.{module_key(task.space)}.", "trunk.", f"heads.{module_key(task.task)}.")
    return {n: p for n, p in model.named_parameters() if n.startswith(prefixes)}


def _loss(model: MultiDomainNet, task: MetaTask, rows: torch.Tensor, device) -> torch.Tensor:
    x = task.x[rows].to(device)
    y = task.labels[rows].to(device)
    return F.cross_entropy(model(x, task.space, task.task), y)


def inner_loop(
    model: MultiDomainNet,
    task: MetaTask,
    batches: list[torch.Tensor],
    *,
    lr: float,
    optimizer: str = "sgd",
    grad_clip: float | None = None,
    device: torch.device | str = "cpu",
) -> list[float]:
    """Adapt ``model`` to ``task`` in place: one optimiser step per batch of row indices,
    on :func:`adapted_parameters` only (a fresh optimiser: ``sgd``, or ``adam`` with
    betas (0, 0.999) as in the Reptile paper). Returns the loss before each step."""
    params = list(adapted_parameters(model, task).values())
    if optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(params, lr=lr)
    elif optimizer == "adam":
        opt = torch.optim.Adam(params, lr=lr, betas=(0.0, 0.999))
    else:
        raise ValueError(f"inner optimizer {optimizer!r}: choose sgd or adam")
    losses = []
    for rows in batches:
        opt.zero_grad(set_to_none=True)
        loss = _loss(model, task, rows, device)
        loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        opt.step()
        losses.append(float(loss.detach()))
    opt.zero_grad(set_to_none=True)
    return losses


def _snapshot(params: dict[str, nn.Parameter]) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in params.items()}


@torch.no_grad()
def _restore(params: dict[str, nn.Parameter], saved: dict[str, torch.Tensor]) -> None:
    for n, p in params.items():
        p.copy_(saved[n])


def reptile_update(
    model: MultiDomainNet,
    tasks: list[MetaTask],
    batches: list[list[torch.Tensor]],
    *,
    meta_lr: float,
    inner_lr: float,
    optimizer: str = "sgd",
    grad_clip: float | None = None,
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """One (batched) Reptile meta step, in place: for each task ``i``, adapt a copy of the
    weights on ``batches[i]`` (one inner step per batch) to ``theta_i``; then
    ``theta <- theta + meta_lr * mean_i(theta_i - theta)`` over the tasks that adapted
    each parameter. Returns the mean loss before and after adaptation."""
    deltas: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}
    before, after = [], []
    for task, rows in zip(tasks, batches, strict=True):
        params = adapted_parameters(model, task)
        theta = _snapshot(params)
        losses = inner_loop(
            model, task, rows, lr=inner_lr, optimizer=optimizer, grad_clip=grad_clip, device=device
        )
        before.append(losses[0])
        after.append(losses[-1])
        with torch.no_grad():
            for n, p in params.items():
                step = p.detach() - theta[n]
                deltas[n] = deltas[n] + step if n in deltas else step
                counts[n] = counts.get(n, 0) + 1
        _restore(params, theta)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n in deltas:
                p.add_(deltas[n], alpha=meta_lr / counts[n])
    return {"loss_before": sum(before) / len(before), "loss_after": sum(after) / len(after)}


def fomaml_meta_gradient(
    model: MultiDomainNet,
    task: MetaTask,
    support: torch.Tensor,
    query: torch.Tensor,
    *,
    inner_steps: int,
    inner_lr: float,
    optimizer: str = "sgd",
    grad_clip: float | None = None,
    device: torch.device | str = "cpu",
) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """First-order MAML's meta-gradient of one task: adapt on the ``support`` rows
    (``inner_steps`` steps on that batch), then the gradient of the loss on the ``query``
    rows at the adapted weights, by parameter name. ``model`` is left as it was.
    Returns the gradients and the support loss before and the query loss after."""
    params = adapted_parameters(model, task)
    theta = _snapshot(params)
    losses = inner_loop(
        model,
        task,
        [support] * inner_steps,
        lr=inner_lr,
        optimizer=optimizer,
        grad_clip=grad_clip,
        device=device,
    )
    names = list(params)
    query_loss = _loss(model, task, query, device)
    grads = torch.autograd.grad(query_loss, [params[n] for n in names], allow_unused=True)
    out = {
        n: torch.zeros_like(params[n]) if g is None else g.detach()
        for n, g in zip(names, grads, strict=True)
    }
    _restore(params, theta)
    return out, {"loss_before": losses[0], "loss_after": float(query_loss.detach())}


def _split_rows(
    index: torch.Tensor, support: int, query: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Disjoint support and query rows drawn from ``index`` (shrunk in proportion when the
    task has fewer rows; with one row, it is both)."""
    perm = index[torch.randperm(len(index), generator=generator)]
    n = len(perm)
    if n >= support + query:
        return perm[:support], perm[support : support + query]
    if n < 2:
        return perm, perm
    n_support = min(n - 1, max(1, round(n * support / (support + query))))
    return perm[:n_support], perm[n_support:]


def _draw(index: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    return index[torch.randperm(len(index), generator=generator)[:size]]


def _reptile_step(
    model: MultiDomainNet,
    chosen: list[MetaTask],
    settings: MetaSettings,
    lr: float,
    generator: torch.Generator,
) -> dict[str, float]:
    """One Reptile meta step over ``chosen``: ``inner_steps`` support batches drawn for
    each task (task by task), then :func:`reptile_update` with outer step size ``lr``."""
    batches = [
        [_draw(t.index, settings.support_size, generator) for _ in range(settings.inner_steps)]
        for t in chosen
    ]
    return reptile_update(
        model,
        chosen,
        batches,
        meta_lr=lr,
        inner_lr=settings.inner_lr,
        optimizer=settings.inner_optimizer,
        grad_clip=settings.grad_clip,
        device=settings.device,
    )


def _fomaml_step(
    model: MultiDomainNet,
    chosen: list[MetaTask],
    settings: MetaSettings,
    lr: float,
    generator: torch.Generator,
    meta_opt: torch.optim.Optimizer,
) -> dict[str, float]:
    """One first-order MAML meta step over ``chosen``: each task's meta-gradient on its
    support and query rows, their mean per parameter, one ``meta_opt`` step at ``lr``."""
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}
    before, after = [], []
    for t in chosen:
        support, query = _split_rows(t.index, settings.support_size, settings.query_size, generator)
        grads, s = fomaml_meta_gradient(
            model,
            t,
            support,
            query,
            inner_steps=settings.inner_steps,
            inner_lr=settings.inner_lr,
            optimizer=settings.inner_optimizer,
            grad_clip=settings.grad_clip,
            device=settings.device,
        )
        before.append(s["loss_before"])
        after.append(s["loss_after"])
        for n, g in grads.items():
            sums[n] = sums[n] + g if n in sums else g
            counts[n] = counts.get(n, 0) + 1
    meta_opt.zero_grad(set_to_none=True)
    for n, p in model.named_parameters():
        if n in sums:  # untouched parameters keep no gradient: Adam skips them
            p.grad = sums[n] / counts[n]
    if settings.grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
    for group in meta_opt.param_groups:
        group["lr"] = lr
    meta_opt.step()
    meta_opt.zero_grad(set_to_none=True)
    return {"loss_before": sum(before) / len(before), "loss_after": sum(after) / len(after)}


def meta_train(
    model: MultiDomainNet,
    tasks: list[MetaTask],
    settings: MetaSettings,
    *,
    on_log: Callable[[dict], None] | None = None,
    on_step: Callable[[int], None] | None = None,
    stop_requested: Callable[[], bool] | None = None,
) -> list[dict]:
    """Meta-train ``model`` in place over ``tasks`` with Reptile or first-order MAML.

    Each meta step samples ``tasks_per_step`` tasks without replacement (default: all),
    adapts to each (``inner_steps`` steps) and updates the meta weights; the outer step
    size decays linearly to 0 with ``meta_lr_schedule: linear`` (Nichol et al.). Every
    ``log_every`` steps (and at the last) a record of the window's mean losses goes to
    ``on_log``; the records are returned. ``stop_requested()`` turning true raises
    :class:`KeyboardInterrupt` after the current step.
    """
    tasks = [t for t in tasks if len(t.index) > 0]
    if not tasks:
        raise ValueError("meta-training needs at least one task with labelled examples")
    if settings.algorithm not in ("reptile", "fomaml"):
        raise ValueError(f"algorithm {settings.algorithm!r}: choose reptile or fomaml")
    model.to(settings.device)
    model.train()
    generator = torch.Generator().manual_seed(settings.seed)
    per_step = min(settings.tasks_per_step or len(tasks), len(tasks))
    meta_opt = None
    if settings.algorithm == "fomaml":
        meta_opt = torch.optim.Adam(model.parameters(), lr=settings.meta_lr)
    records: list[dict] = []
    window: dict[str, list[float]] = {"loss_before": [], "loss_after": []}
    for step in range(settings.meta_steps):
        frac = step / settings.meta_steps
        lr = settings.meta_lr * (1 - frac if settings.meta_lr_schedule == "linear" else 1.0)
        chosen = [tasks[i] for i in torch.randperm(len(tasks), generator=generator)[:per_step]]
        if meta_opt is None:
            stats = _reptile_step(model, chosen, settings, lr, generator)
        else:
            stats = _fomaml_step(model, chosen, settings, lr, generator, meta_opt)
        if not all(math.isfinite(v) for v in stats.values()):
            raise TrainingError(
                f"meta-training diverged at step {step + 1} (loss {stats}); lower "
                "teacher.maml.inner_lr or teacher.maml.meta_lr"
            )
        for k, v in stats.items():
            window[k].append(v)
        if on_step is not None:
            on_step(step + 1)
        if (step + 1) % settings.log_every == 0 or step + 1 == settings.meta_steps:
            record = {
                "step": step + 1,
                "meta_lr": lr,
                **{k: sum(v) / len(v) for k, v in window.items()},
            }
            records.append(record)
            if on_log is not None:
                on_log(record)
            window = {k: [] for k in window}
        if stop_requested is not None and stop_requested():
            raise KeyboardInterrupt
    return records
