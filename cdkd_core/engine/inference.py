"""A trained network on a whole split, in eval mode: logits (:func:`predict`), a layer's
features (:func:`read_features`) and the val score that selects the best epoch."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from cdkd_core.engine.distributed import current_world, gather_rows, shard_bounds
from cdkd_core.engine.plans import DomainPlan
from cdkd_core.engine.settings import FitSettings
from cdkd_core.metrics import evaluate
from cdkd_core.nets.reading import eval_mode, read_layer


@torch.no_grad()
def predict(
    model: nn.Module, x: torch.Tensor, space: str, task: str, batch_size: int, device: Any
) -> torch.Tensor:
    """Logits for all of ``x`` in eval mode, on the CPU.

    Under torchrun each process predicts its share of the rows and all get the whole
    result, so every process must call it with the same arguments.
    """
    world = current_world()
    lo, hi = shard_bounds(len(x), world) if world.distributed else (0, len(x))
    with eval_mode(model):
        out = [
            model(x[i : min(i + batch_size, hi)].to(device), space, task).float().cpu()
            for i in range(lo, hi, batch_size)
        ]
        if not out:  # fewer rows than processes: an empty block of the right width
            out = [model(x[:1].to(device), space, task).float().cpu()[:0]]
    return gather_rows(torch.cat(out), len(x))


@torch.no_grad()
def read_features(
    model: nn.Module,
    layer: str,
    x: torch.Tensor,
    space: str,
    task: str | None,
    batch_size: int,
    device: Any,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Features of ``layer`` (by forward hook) and logits (None when ``task`` is None)."""
    return read_layer(model, layer, x, space, task, device=device, batch_size=batch_size)


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
