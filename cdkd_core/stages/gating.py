"""``train.teacher_gate: val``: withhold the teacher's soft labels from the domains on
which it does worse than the no-teacher baseline."""

from __future__ import annotations

import math

from cdkd_core.nets.network import MultiDomainNet
from cdkd_core.stages.context import StageContext
from cdkd_core.stages.evaluation import val_headline


def gated_domains(ctx: StageContext, baseline: MultiDomainNet, round_: int) -> frozenset[str]:
    """The trained domains whose labelled val examples the teacher scores below the
    no-teacher baseline (their soft labels are withheld this round)."""
    gated = set()
    for d in ctx.domains:
        if not d.trained:
            continue
        teacher = val_headline(ctx, ctx.teacher, "teacher", d)
        base = val_headline(ctx, baseline, "student", d)
        if math.isnan(teacher) or math.isnan(base):
            continue
        keep = teacher >= base
        ctx.log.log(
            stage="gate",
            round=round_,
            domain=d.name,
            teacher_val=teacher,
            baseline_val=base,
            soft_labels=keep,
        )
        if not keep:
            gated.add(d.name)
    return frozenset(gated)
