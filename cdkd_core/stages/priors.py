"""Label shift on target domains (``train.label_shift``): each target's class prior (its
labelled rows' class shares, or an estimate from its unlabelled train rows) and the
decision rules of teacher and student on the target moved onto it.

The teacher's head learned a prior of its own: the class frequencies of the rows it was
fitted on (a target's labelled rows for an adapted head, :mod:`cdkd_core.stages.adaptation`;
else the source domains of the task, each weighted as in training). On a target whose class
balance differs, its posteriors carry that prior over. The target's prior is estimated from
the teacher's posteriors on the target's unlabelled train rows (black-box shift
estimation, Lipton et al. 2018, from the held-out val rows the head can be checked on; or
EM, Saerens et al. 2002) -- except on a target whose labelled rows are a stratified
``label_fraction`` of its train split, whose class shares are the prior itself. A prior
from labelled rows corrects the soft labels by Bayes' rule. An estimate moves only the
decision rules: on real domains, where more than the class balance shifts, it is off by
several points, and soft labels moved by it trained worse students on the val split
(benchmarks/few_label.md). After distillation the
student gets a per-domain logit offset so that its mean prediction on the target's train
rows matches the prior (:func:`cdkd_core.engine.label_shift.prior_offsets`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from cdkd_core.data.preparation import PreparedDomain
from cdkd_core.engine.inference import predict
from cdkd_core.engine.label_shift import PriorEstimate, bbse_prior, em_prior, shift_logits
from cdkd_core.engine.label_shift import prior_offsets as matching_offsets
from cdkd_core.engine.plans import TeacherOutputs
from cdkd_core.nets.network import MultiDomainNet
from cdkd_core.nets.reading import read_layer
from cdkd_core.stages.adaptation import teacher_logits
from cdkd_core.stages.context import StageContext


@dataclass(frozen=True)
class TargetPrior:
    """A target's class prior, the prior of the teacher's head it corrects, and whether the
    soft labels were moved onto it (a prior from labelled rows; an estimate moves only the
    decision rules)."""

    prior: torch.Tensor
    reference: torch.Tensor
    soft_labels: bool = True


def class_counts(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """How many rows of each class ``y`` holds (float64)."""
    return torch.bincount(y.long(), minlength=num_classes).double()


def head_prior(ctx: StageContext, d: PreparedDomain) -> torch.Tensor:
    """The class prior the teacher's head for ``d`` was fitted on: ``d``'s labelled train
    rows where it has an adapted head, else the labelled train rows of the source domains
    of its task, each domain's counts times its weight (how the teacher's loss weighs
    them)."""
    heads = ctx.target_heads
    if heads is not None and d.name in heads:
        counts = class_counts(d.train.y[d.labelled], d.num_classes)
    else:
        counts = torch.zeros(d.num_classes, dtype=torch.float64)
        for s in ctx.sources:
            if s.task == d.task:
                counts += s.entry.weight * class_counts(s.train.y[s.labelled], d.num_classes)
    return counts / counts.sum()


def _heldout(ctx: StageContext, d: PreparedDomain) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Held-out labelled rows of the head's training distribution, for BBSE: the target's
    labelled val rows (adapted head) or the task's sources' labelled val rows; the
    teacher's probabilities and labels there."""
    heads = ctx.target_heads
    owners = [d] if heads is not None and d.name in heads else ctx.sources
    probs, labels = [], []
    for s in owners:
        if s.task != d.task or not bool(s.val_labelled.any()):
            continue
        logits = teacher_logits(ctx, s, "val")
        if logits is None:
            continue
        probs.append(torch.softmax(logits.double(), 1)[s.val_labelled])
        labels.append(s.val.y[s.val_labelled])
    if not probs:
        return None
    return torch.cat(probs), torch.cat(labels)


def estimate_priors(
    ctx: StageContext, outputs: dict[str, TeacherOutputs], round_: int, *, log: bool = True
) -> dict[str, dict[str, Any]]:
    """Set each target's prior (its stratified labelled rows' class shares, else an
    estimate from the teacher's posteriors on its unlabelled train rows) and, for a prior
    from labelled rows, correct its soft labels in ``outputs``; the priors
    (``ctx.priors``) and what is recorded for each target (also logged as ``stage:
    label_shift`` unless ``log`` is False)."""
    method = ctx.config.train.label_shift
    ctx.priors = {}
    records: dict[str, dict[str, Any]] = {}
    if method == "none":
        return records
    for d in ctx.domains:
        out = outputs.get(d.name)
        if d.role != "target" or out is None or out.logits is None:
            continue
        unlabelled = ~d.labelled
        if not bool(unlabelled.any()):
            continue  # every train label is known: nothing to estimate
        logits = torch.as_tensor(out.logits)
        reference = head_prior(ctx, d)
        if d.entry.label_fraction:  # a stratified labelled subset: its class shares are the prior
            counts = class_counts(d.train.y[d.labelled], d.num_classes)
            estimate = PriorEstimate(counts / counts.sum(), "labelled", 0, True)
        else:
            probs = torch.softmax(logits.double()[unlabelled], 1)
            heldout = _heldout(ctx, d) if method == "bbse" else None
            if heldout is not None:
                estimate = bbse_prior(heldout[0], heldout[1], probs, reference)
            else:  # em, or bbse without held-out rows
                estimate = em_prior(probs, reference)
        # an estimate from unlabelled rows is uncertain: it moves decision rules only
        known = estimate.method == "labelled"
        ctx.priors[d.name] = TargetPrior(estimate.prior, reference, known)
        if known:
            outputs[d.name] = TeacherOutputs(
                logits=shift_logits(logits, reference, estimate.prior),
                features=out.features,
                knowledge=out.knowledge,
            )
        records[d.name] = {
            **estimate.to_dict(),
            "reference_prior": [round(float(p), 6) for p in reference],
            "rows": int(unlabelled.sum()),
            "soft_labels_corrected": known,
        }
        if log:
            ctx.log.log(stage="label_shift", round=round_, domain=d.name, **records[d.name])
    return records


def student_offsets(ctx: StageContext, student: MultiDomainNet) -> dict[str, torch.Tensor]:
    """Per target with an estimated prior: the logit offset that moves the student's mean
    prediction on the target's train rows onto the estimate (its decision rule on that
    domain)."""
    out = {}
    for d in ctx.domains:
        estimate = ctx.priors.get(d.name)
        if estimate is None or not (student.has_stem(d.space) and student.has_head(d.task)):
            continue
        logits = predict(
            student,
            d.train.student_x,
            d.space,
            d.task,
            ctx.config.train.eval_batch_size,
            ctx.device,
        )
        out[d.name] = matching_offsets(logits, estimate.prior).float()
    return out


@torch.no_grad()
def live_teacher_logits(
    ctx: StageContext, d: PreparedDomain, x: torch.Tensor
) -> torch.Tensor | None:
    """The teacher's soft-label logits on a batch ``x`` of ``d``'s teacher view, from the
    teacher as it is now (a live feedback strategy trains it during the round): through
    the target's adapted head where it has one, moved onto the target's estimated prior
    where there is one; None where the teacher cannot predict ``d``."""
    heads = ctx.target_heads
    teacher = ctx.teacher
    if heads is not None and d.name in heads:
        task = d.task if teacher.has_head(d.task) else None
        layer = ctx.config.teacher.feature_layer
        features, base = read_layer(teacher, layer, x, d.space, task)
        logits = heads.logits(d.name, features, x, base).to(x.device)
    elif teacher.has_stem(d.space) and teacher.has_head(d.task):
        logits = teacher(x, d.space, d.task)
    else:
        return None
    prior = ctx.priors.get(d.name)
    if prior is not None and prior.soft_labels:
        logits = shift_logits(logits, prior.reference, prior.prior)
    return logits
