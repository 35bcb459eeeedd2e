"""``train.teacher_gate: val``: withhold the teacher's soft labels from the domains on
which it does worse than the no-teacher baseline, judged with the uncertainty of the
labelled val rows.

The teacher here is the one the student learns from: on a target it was adapted to, the
adapted teacher (:mod:`cdkd_core.stages.adaptation`). Its headline and the baseline's are
compared on the domain's labelled val rows by a paired bootstrap over those rows (the
same resamples for both): the soft labels are withheld only where the teacher is below the
baseline with 95% confidence (the upper end of the interval of teacher minus baseline
below zero). A handful of val rows rarely says that, and the teacher keeps the benefit of
the doubt; many rows that agree do. Every decision is logged (``stage: gate``) with the
interval.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from cdkd_core.metrics import compute
from cdkd_core.nets.network import MultiDomainNet
from cdkd_core.stages.context import StageContext
from cdkd_core.stages.evaluation import domain_logits

#: bootstrap resamples of the labelled val rows
REPLICATES = 1000
#: two-sided confidence of the interval
CONFIDENCE = 0.95


def paired_interval(
    metric: str,
    a: torch.Tensor,
    b: torch.Tensor,
    y: torch.Tensor,
    seed: int,
    replicates: int = REPLICATES,
) -> tuple[float, float, float]:
    """``metric(a) - metric(b)`` on rows ``y`` and its percentile bootstrap interval
    (rows resampled with replacement, the same rows for both; resamples where the metric
    is undefined, e.g. one class only, are skipped). NaN bounds when none is defined."""
    diff = compute(metric, a, y) - compute(metric, b, y)
    generator = np.random.default_rng(seed)
    n = len(y)
    draws = []
    for _ in range(replicates):
        idx = torch.from_numpy(generator.integers(0, n, n))
        value = compute(metric, a[idx], y[idx]) - compute(metric, b[idx], y[idx])
        if not math.isnan(value):
            draws.append(value)
    if not draws:
        return diff, math.nan, math.nan
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return diff, float(low), float(high)


def gate_decisions(
    ctx: StageContext, baseline: MultiDomainNet, round_: int, *, log: bool = True
) -> dict[str, dict[str, Any]]:
    """Per trained domain with labelled val rows both can predict: the teacher's and the
    baseline's val headline, their difference and its interval, and whether the soft
    labels are kept (``soft_labels`` False: the teacher is significantly below the
    baseline; withheld this round)."""
    decisions: dict[str, dict[str, Any]] = {}
    for d in ctx.domains:
        mask = d.val_labelled
        if not d.trained or not bool(mask.any()):
            continue
        teacher = domain_logits(ctx, ctx.teacher, "teacher", d, "val")
        base = domain_logits(ctx, baseline, "student", d, "val")
        if teacher is None or base is None:
            continue
        y = d.val.y[mask]
        diff, low, high = paired_interval(
            d.headline, teacher[mask], base[mask], y, seed=ctx.seed + round_
        )
        if math.isnan(diff):
            continue
        decisions[d.name] = {
            "teacher_val": compute(d.headline, teacher[mask], y),
            "baseline_val": compute(d.headline, base[mask], y),
            "difference": diff,
            "interval": [low, high],
            "val_rows": int(mask.sum()),
            "soft_labels": not (high < 0),  # NaN bounds (no defined resample): kept
        }
        if log:
            ctx.log.log(stage="gate", round=round_, domain=d.name, **decisions[d.name])
    return decisions
