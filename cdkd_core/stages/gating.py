"""``train.teacher_gate``: which domains the student learns from the teacher on, decided
every round on their labelled val rows against the no-teacher baseline.

The teacher here is the one the student learns from: on a target it was adapted to, the
adapted teacher (:mod:`cdkd_core.stages.adaptation`). Its headline and the baseline's are
compared on the domain's labelled val rows by a paired bootstrap over those rows (the
same resamples for both, :func:`paired_interval`). The mode of a domain
(:func:`gate_mode`):

- ``above``: the teacher is kept only where it is above the baseline with 90% one-sided
  confidence (the 10th percentile of the bootstrap differences teacher - baseline above
  zero). Elsewhere the domain *falls back to its labels*: no soft labels, no knowledge
  vectors, no live teacher; its labelled rows and cross-entropy alone train the student
  there that round. After the round's student is trained, each domain that kept the
  teacher is checked again (:func:`after_training_check`): where the distilled student's
  val headline is below the baseline's (point estimate), the round's student is trained
  once more, from the same seed, with those domains falling back too (no third pass).
- ``val``: the soft labels are withheld only where the teacher is below the baseline with
  95% confidence (the upper end of the two-sided interval below zero); the labels and the
  knowledge vectors still train the student there. A handful of val rows rarely says that,
  and the teacher keeps the benefit of the doubt; many rows that agree do.
- ``none``: every domain learns from the teacher.
- ``auto`` (the default) is ``above`` on a table and ``none`` on other modalities.

A domain without labelled val rows (an unlabelled target), or whose headline is undefined
on them, is not decided: it keeps the teacher. Every decision is logged (``stage: gate``)
with its numbers and kept in the round's results (``domains.<d>.gate``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from cdkd_core import seeds
from cdkd_core.config.models import PipelineConfig
from cdkd_core.data.preparation import PreparedDomain
from cdkd_core.metrics import compute
from cdkd_core.nets.network import MultiDomainNet
from cdkd_core.stages.context import StageContext
from cdkd_core.stages.evaluation import domain_logits

#: bootstrap resamples of the labelled val rows
REPLICATES = 1000
#: two-sided confidence of the interval (mode ``val``)
CONFIDENCE = 0.95
#: one-sided confidence with which mode ``above`` keeps the teacher
ABOVE_CONFIDENCE = 0.90

Decisions = dict[str, dict[str, Any]]


def bootstrap_differences(
    metric: str,
    a: torch.Tensor,
    b: torch.Tensor,
    y: torch.Tensor,
    seed: int,
    replicates: int = REPLICATES,
) -> tuple[float, list[float]]:
    """``metric(a) - metric(b)`` on rows ``y``, and its value on each bootstrap resample
    of the rows (drawn with replacement, the same rows for both; resamples where the metric
    is undefined, e.g. one class only, are skipped)."""
    diff = compute(metric, a, y) - compute(metric, b, y)
    generator = np.random.default_rng(seed)
    n = len(y)
    fast = _resampled(metric, a, y)
    if fast is not None:  # the same resamples, every one at once
        counts = np.stack(
            [np.bincount(generator.integers(0, n, n), minlength=n) for _ in range(replicates)]
        )
        values = fast(counts) - _resampled(metric, b, y)(counts)  # type: ignore[misc]
        return diff, [float(v) for v in values if not math.isnan(v)]
    draws = []
    for _ in range(replicates):
        idx = torch.from_numpy(generator.integers(0, n, n))
        value = compute(metric, a[idx], y[idx]) - compute(metric, b[idx], y[idx])
        if not math.isnan(value):
            draws.append(value)
    return diff, draws


def _resampled(metric: str, logits: torch.Tensor, y: torch.Tensor):
    """For accuracy and two-class ROC-AUC: a function from bootstrap counts ``[R, n]`` (how
    often each row is drawn) to the metric on each resample, equal to computing it on the
    resampled rows (AUC as the Mann-Whitney statistic, ties counting one half; NaN where a
    resample holds one class); None for other metrics."""
    y_np = y.cpu().numpy()
    if metric == "accuracy":
        correct = (logits.argmax(1) == y).cpu().numpy().astype(np.float64)
        return lambda counts: counts @ correct / len(y_np)
    if metric != "roc_auc" or logits.shape[1] != 2 or len(np.unique(y_np)) != 2:
        return None
    score = torch.softmax(logits.double(), dim=1)[:, 1].cpu().numpy()
    order = np.argsort(score, kind="stable")
    _, starts = np.unique(score[order], return_index=True)  # groups of equal scores
    positive = y_np[order] == 1

    def auc(counts: np.ndarray) -> np.ndarray:
        c = counts[:, order].astype(np.float64)
        pos = np.add.reduceat(c * positive, starts, axis=1)
        neg = np.add.reduceat(c * ~positive, starts, axis=1)
        below = np.cumsum(neg, axis=1) - neg  # negatives with a lower score
        pairs = pos.sum(1) * neg.sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(pairs > 0, (pos * (below + 0.5 * neg)).sum(1) / pairs, np.nan)

    return auc


def paired_interval(
    metric: str,
    a: torch.Tensor,
    b: torch.Tensor,
    y: torch.Tensor,
    seed: int,
    replicates: int = REPLICATES,
    confidence: float = CONFIDENCE,
) -> tuple[float, float, float]:
    """``metric(a) - metric(b)`` on rows ``y`` and its two-sided percentile bootstrap
    interval at ``confidence`` (:func:`bootstrap_differences`). NaN bounds when no
    resample is defined."""
    diff, draws = bootstrap_differences(metric, a, b, y, seed, replicates)
    if not draws:
        return diff, math.nan, math.nan
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return diff, float(low), float(high)


def above_interval(
    metric: str, a: torch.Tensor, b: torch.Tensor, y: torch.Tensor, seed: int
) -> tuple[float, float, float]:
    """``metric(a) - metric(b)`` and the 10th and 90th percentiles of its bootstrap
    (:func:`bootstrap_differences`): ``a`` is above ``b`` with 90% one-sided confidence
    where the first is above zero. NaN bounds when no resample is defined."""
    diff, draws = bootstrap_differences(metric, a, b, y, seed)
    if not draws:
        return diff, math.nan, math.nan
    tail = round((1 - ABOVE_CONFIDENCE) * 100, 6)
    low, high = np.percentile(draws, [tail, 100 - tail])
    return diff, float(low), float(high)


def gate_mode(config: PipelineConfig, d: PreparedDomain) -> str:
    """The gate's mode on domain ``d``: ``train.teacher_gate``, with ``auto`` resolved to
    ``above`` on a table and ``none`` on other modalities."""
    mode = config.train.teacher_gate
    if mode == "auto":
        return "above" if d.modality == "tabular" else "none"
    return mode


def keeps_teacher(mode: str, low: float, high: float) -> bool:
    """Whether a domain keeps the teacher's soft labels, given the bootstrap interval of
    teacher - baseline (:func:`above_interval` for ``above``, :func:`paired_interval` for
    ``val``). ``above``: only where the lower end is above zero (NaN bounds, no defined
    resample: not shown above); ``val``: unless the upper end is below zero (NaN: kept)."""
    if mode == "above":
        return low > 0
    return not (high < 0)


def gate_decisions(
    ctx: StageContext, baseline: MultiDomainNet, round_: int, *, log: bool = True
) -> Decisions:
    """Per trained domain whose mode (:func:`gate_mode`) is ``above`` or ``val``, with
    labelled val rows both can predict: the mode, the teacher's and the baseline's val
    headline, their difference and its interval, and the decision. ``soft_labels`` False:
    withheld this round (``val``: the teacher is significantly below the baseline) or the
    domain falls back to its labels (``above``: the teacher is not significantly above;
    ``fell_back`` is then ``"before"``)."""
    decisions: Decisions = {}
    for d in ctx.domains:
        mask = d.val_labelled
        mode = gate_mode(ctx.config, d)
        if mode == "none" or not d.trained or not bool(mask.any()):
            continue
        teacher = domain_logits(ctx, ctx.teacher, "teacher", d, "val")
        base = domain_logits(ctx, baseline, "student", d, "val")
        if teacher is None or base is None:
            continue
        y = d.val.y[mask]
        seed = seeds.round_seed(ctx.seed, round_)
        interval = above_interval if mode == "above" else paired_interval
        diff, low, high = interval(d.headline, teacher[mask], base[mask], y, seed)
        if math.isnan(diff):
            continue
        kept = keeps_teacher(mode, low, high)
        decisions[d.name] = {
            "mode": mode,
            "teacher_val": compute(d.headline, teacher[mask], y),
            "baseline_val": compute(d.headline, base[mask], y),
            "difference": diff,
            "interval": [low, high],
            "val_rows": int(mask.sum()),
            "soft_labels": kept,
            "decision": "kept" if kept else ("fallback" if mode == "above" else "withheld"),
        }
        if mode == "above":
            decisions[d.name]["fell_back"] = None if kept else "before"
        if log:
            ctx.log.log(stage="gate", round=round_, domain=d.name, **decisions[d.name])
    return decisions


def withheld(decisions: Decisions) -> frozenset[str]:
    """The domains that get no soft labels (mode ``val``) or no teacher at all (``above``)."""
    return frozenset(k for k, v in decisions.items() if not v["soft_labels"])


def fallen_back(decisions: Decisions) -> frozenset[str]:
    """The domains that fall back to their labels (mode ``above``): no teacher outputs."""
    return frozenset(k for k, v in decisions.items() if v.get("fell_back") is not None)


def after_training_check(
    ctx: StageContext,
    student: MultiDomainNet,
    baseline: MultiDomainNet,
    decisions: Decisions,
    round_: int,
) -> Decisions:
    """Mode ``above``, after the round's student is trained: per domain that kept the
    teacher, the student's and the baseline's val headline, their difference and its
    10th-90th percentile bootstrap interval, and whether the domain falls back (the
    student's headline below the baseline's)."""
    after: Decisions = {}
    by_name = {d.name: d for d in ctx.domains}
    for name, decision in decisions.items():
        if decision["mode"] != "above" or not decision["soft_labels"]:
            continue
        d = by_name[name]
        mask = d.val_labelled
        mine = domain_logits(ctx, student, "student", d, "val")
        base = domain_logits(ctx, baseline, "student", d, "val")
        if mine is None or base is None:
            continue
        y = d.val.y[mask]
        diff, low, high = above_interval(
            d.headline, mine[mask], base[mask], y, seeds.round_seed(ctx.seed, round_)
        )
        if math.isnan(diff):
            continue
        after[name] = {
            "student_val": compute(d.headline, mine[mask], y),
            "baseline_val": compute(d.headline, base[mask], y),
            "difference": diff,
            "interval": [low, high],
            "falls_back": diff < 0,
        }
    return after


def apply_after(decisions: Decisions, after: Decisions) -> frozenset[str]:
    """Record the after-training check in ``decisions`` (``after_training``); the domains
    that fall back after training (their decision becomes ``fallback``, ``fell_back``
    ``"after"``)."""
    late = []
    for name, check in after.items():
        decision = decisions[name]
        decision["after_training"] = check
        if check["falls_back"]:
            decision.update(soft_labels=False, decision="fallback", fell_back="after")
            late.append(name)
    return frozenset(late)
