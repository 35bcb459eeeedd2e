"""Stage 4: teacher, student and baseline on every domain's test split."""

from __future__ import annotations

from typing import Any

import torch

from cdkd_core.data.preparation import PreparedDomain
from cdkd_core.engine.inference import predict
from cdkd_core.metrics import evaluate
from cdkd_core.nets.network import MultiDomainNet
from cdkd_core.stages.adaptation import teacher_logits
from cdkd_core.stages.context import StageContext, View, view_x

Metrics = dict[str, float]


def domain_logits(
    ctx: StageContext, model: MultiDomainNet, view: View, d: PreparedDomain, split: str = "test"
) -> torch.Tensor | None:
    """``model``'s logits on ``split`` of ``d`` through its ``view`` of the inputs; None
    where it has no stem for the domain's input space or no head for its task. The run's
    teacher answers through its adapted head on a target it was adapted to
    (:func:`~cdkd_core.stages.adaptation.teacher_logits`)."""
    if model is ctx.teacher and view == "teacher":
        return teacher_logits(ctx, d, split)
    if not (model.has_stem(d.space) and model.has_head(d.task)):
        return None
    x = view_x(getattr(d, split), view)
    return predict(model, x, d.space, d.task, ctx.config.train.eval_batch_size, ctx.device)


def domain_metrics(
    ctx: StageContext, model: MultiDomainNet, view: View, d: PreparedDomain, split: str = "test"
) -> Metrics | None:
    """The domain's metrics of ``model`` on ``split`` (None where it cannot predict it)."""
    logits = domain_logits(ctx, model, view, d, split)
    return None if logits is None else evaluate(d.data.metrics, logits, getattr(d, split).y)


class BaselineReference:
    """The baseline's test logits and metrics, computed once and shown in every round.

    An unlabelled target is evaluated through the head and stem it shares with a labelled
    domain: the source-only student, the usual reference for adaptation.
    """

    def __init__(self, ctx: StageContext, baseline: MultiDomainNet) -> None:
        self.logits = {d.name: domain_logits(ctx, baseline, "student", d) for d in ctx.domains}
        self.results: dict[str, Metrics | None] = {
            d.name: None if logits is None else evaluate(d.data.metrics, logits, d.test.y)
            for d, logits in zip(ctx.domains, self.logits.values(), strict=True)
        }


def evaluate_round(
    ctx: StageContext, student: MultiDomainNet, baseline: BaselineReference
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Teacher, student and baseline on every domain's test split: the results per
    domain and the test logits (``predictions.safetensors``)."""
    results, predictions = {}, {}
    for d in ctx.domains:
        student_logits = domain_logits(ctx, student, "student", d)
        offset = ctx.student_offsets.get(d.name)
        if student_logits is not None and offset is not None:  # its decision rule there
            student_logits = student_logits + offset
        logits = {
            "teacher": domain_logits(ctx, ctx.teacher, "teacher", d),
            "student": student_logits,
            "baseline": baseline.logits[d.name],
        }
        predictions[f"{d.name}/labels"] = d.test.y
        for model, value in logits.items():
            if value is not None:
                predictions[f"{d.name}/{model}"] = value
        teacher_m, student_m = (
            None if logits[m] is None else evaluate(d.data.metrics, logits[m], d.test.y)
            for m in ("teacher", "student")
        )
        results[d.name] = _domain_result(d, teacher_m, student_m, baseline.results[d.name])
    return results, predictions


def _domain_result(
    d: PreparedDomain, teacher: Metrics | None, student: Metrics | None, base: Metrics | None
) -> dict[str, Any]:
    """One domain's entry of a round's results (and of ``summary.json``)."""
    return {
        "role": d.role,
        "metric": d.headline,
        "teacher": None if teacher is None else teacher[d.headline],
        "student": None if student is None else student[d.headline],
        "baseline": None if base is None else base[d.headline],
        "metrics": {"teacher": teacher, "student": student, "baseline": base},
        "reference": dict(d.data.reference),
        "shots": d.entry.shots,
        "sizes": {
            "train": len(d.train),
            "labelled": int(d.labelled.sum()),
            "test": len(d.test),
        },
    }
