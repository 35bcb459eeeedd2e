"""Stage 2a: the teacher adapted to each target's labelled train rows (``teacher.adapt``).

After the teacher's features are read (stage 2), every target domain with labelled train
rows gets a residual linear head (:mod:`cdkd_core.nets.target_heads`, fitted by
:func:`cdkd_core.engine.probe.choose_head`): the teacher's own logits for the target's task
(scaled) plus a linear map of its features joined with its input view, fitted on exactly
the target's labelled train rows, its L2 strength chosen on the target's labelled val rows
pooled with cross-validation on the labelled train rows. The
unchanged teacher is a candidate, and so, in effect, is logistic regression on the
teacher's view: adaptation never looks worse than either on those rows.
The soft labels of the target, the gate, the teacher's results and the feedback's view of
the teacher on the target then come from the adapted teacher. The heads are fitted again
every round, from the teacher as the round starts, so a teacher updated by feedback is
adapted afresh; the fit is deterministic (convex, L-BFGS in float64).
"""

from __future__ import annotations

import time
from typing import Any

import torch

from cdkd_core.data.preparation import PreparedDomain
from cdkd_core.engine.inference import predict
from cdkd_core.engine.label_shift import shift_logits
from cdkd_core.engine.plans import TeacherOutputs
from cdkd_core.engine.probe import choose_head, standardization
from cdkd_core.metrics import compute
from cdkd_core.nets.target_heads import TargetHeads, head_inputs, reads_view
from cdkd_core.stages.context import StageContext


def adapted_targets(ctx: StageContext) -> list[PreparedDomain]:
    """The target domains the teacher adapts to: ``teacher.adapt: probe``, at least one
    labelled train row, and a teacher stem for the domain's input space."""
    if ctx.config.teacher.adapt == "none":
        return []
    return [
        d
        for d in ctx.domains
        if d.role == "target" and bool(d.labelled.any()) and ctx.teacher.has_stem(d.space)
    ]


def split_outputs(ctx: StageContext, d: PreparedDomain, split: str) -> TeacherOutputs:
    """The (cached) teacher features and own logits on ``split`` of ``d``."""
    return ctx.cache.outputs(
        ctx.teacher,
        d,
        split,
        ctx.config.teacher.feature_layer,
        ctx.config.train.eval_batch_size,
        ctx.device,
    )


def _score(d: PreparedDomain):
    def score(logits: torch.Tensor, y: torch.Tensor) -> float:
        return compute(d.headline, logits, y)

    return score


def adapt_teacher(
    ctx: StageContext, outputs: dict[str, TeacherOutputs], round_: int, *, log: bool = True
) -> dict[str, dict[str, Any]]:
    """Fit the heads of :func:`adapted_targets` (into ``ctx.target_heads``) and put the
    adapted teacher's logits in ``outputs`` (the targets' train rows); what was chosen,
    per domain (also logged as ``stage: adapt`` unless ``log`` is False)."""
    heads = TargetHeads()
    ctx.target_heads = heads
    records: dict[str, dict[str, Any]] = {}
    for d in adapted_targets(ctx):
        start = time.perf_counter()
        train = outputs[d.name]
        assert train.features is not None
        labelled = d.labelled
        view = reads_view(d.train.teacher_x)
        inputs = head_inputs(torch.as_tensor(train.features), d.train.teacher_x if view else None)
        base = None if train.logits is None else torch.as_tensor(train.logits)
        val = split_outputs(ctx, d, "val")
        mask = d.val_labelled
        val_triple = None
        if bool(mask.any()):
            assert val.features is not None
            val_inputs = head_inputs(
                torch.as_tensor(val.features)[mask], d.val.teacher_x[mask] if view else None
            )
            val_triple = (
                val_inputs,
                None if val.logits is None else torch.as_tensor(val.logits)[mask],
                d.val.y[mask],
            )
        choice = choose_head(
            (
                inputs[labelled],
                None if base is None else base[labelled],
                d.train.y[labelled],
            ),
            val_triple,
            d.num_classes,
            _score(d),
            stats=standardization(inputs),  # unlabelled rows' inputs too: no labels used
        )
        heads.set(d.name, choice.head.weight, choice.head.bias, view, choice.head.scale)
        outputs[d.name] = TeacherOutputs(
            logits=heads.logits(d.name, torch.as_tensor(train.features), d.train.teacher_x, base),
            features=train.features,
            knowledge=train.knowledge,
        )
        record = {
            "method": "probe",
            "labelled": int(labelled.sum()),
            "val_labelled": int(mask.sum()),
            "residual": base is not None,
            "reads_view": view,
            **choice.to_dict(),
        }
        records[d.name] = record
        if log:
            ctx.log.log(
                stage="adapt",
                round=round_,
                domain=d.name,
                wall_s=round(time.perf_counter() - start, 3),
                **record,
            )
    return records


def teacher_logits(ctx: StageContext, d: PreparedDomain, split: str) -> torch.Tensor | None:
    """The teacher's logits on ``split`` of ``d``: through the domain's adapted head where
    it has one, else the teacher's own; its decision rule moved onto the domain's class
    prior where the round set one (:mod:`cdkd_core.stages.priors`; the soft labels move
    too only for a prior from labelled rows). None where it cannot predict ``d``."""
    heads = ctx.target_heads
    if heads is not None and d.name in heads:
        out = split_outputs(ctx, d, split)
        assert out.features is not None
        base = None if out.logits is None else torch.as_tensor(out.logits)
        x = getattr(d, split).teacher_x
        logits = heads.logits(d.name, torch.as_tensor(out.features), x, base)
    elif ctx.teacher.has_stem(d.space) and ctx.teacher.has_head(d.task):
        x = getattr(d, split).teacher_x
        batch_size = ctx.config.train.eval_batch_size
        logits = predict(ctx.teacher, x, d.space, d.task, batch_size, ctx.device)
    else:
        return None
    prior = ctx.priors.get(d.name)  # the decision rule's prior, whatever the soft labels'
    if prior is not None:
        logits = shift_logits(logits, prior.reference, prior.prior)
    return logits
