"""``teacher: auto``: fit the candidates of a :class:`~cdkd_core.nets.selected_teacher.
SelectedTeacher` on the sources' train rows and keep, per task, the one with the best val
headline (ties go to the cheaper). The test split is never read here.

The networks (the ensemble's members, member 0 being the single network) train first, as
the teacher stage trains an ensemble (checkpointed per epoch, resumable); the linear
candidate (logistic regression, its L2 strength chosen on val) and ``hist_gbm`` (its
number of trees chosen on val) are fitted after them, quick and deterministic, so a
resumed stage fits them again. Every candidate's val score per task, and the choice, are
logged (``stage: teacher_selection``) and kept in the teacher's state for the summary.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from cdkd_core.data.preparation import PreparedDomain
from cdkd_core.engine.distributed import broadcast_module, broadcast_object
from cdkd_core.engine.inference import predict
from cdkd_core.metrics import compute
from cdkd_core.nets.linear_teacher import LinearTeacher, fit_linear
from cdkd_core.nets.selected_teacher import CANDIDATE_ORDER, SelectedTeacher
from cdkd_core.stages.context import StageContext
from cdkd_core.stages.slot_rows import slot_rows

#: val scores closer than this count as a tie (the cheaper candidate is kept)
TIE = 1e-6


def fit_linear_teacher(ctx: StageContext, linear: LinearTeacher) -> list[dict[str, Any]]:
    """Process 0 fits each (input space, task) regression on the labelled train rows of
    the sources sharing them, its ``C`` chosen on their labelled val rows (mean headline);
    the other processes take its weights. What was chosen, per map."""
    records = []
    if ctx.world.main:
        for slot in linear.slots.values():
            rows = slot_rows(ctx.sources, slot.space, slot.task)

            def score(logits_of, rows=rows) -> float:
                return rows.mean_headline([torch.from_numpy(logits_of(x)) for x in rows.val_x])

            chosen = fit_linear(linear, slot, rows.x, rows.y, rows.val_x, score, ctx.seed)
            records.append(rows.record("linear", chosen))
    broadcast_module(linear)
    return records


def val_scores(
    ctx: StageContext, teacher: SelectedTeacher, sources: list[PreparedDomain]
) -> dict[str, dict[str, float | None]]:
    """Per task, each of its candidates' mean val headline over the task's source domains
    with labelled val rows (None where no such row or the metric is undefined)."""
    batch = ctx.config.train.eval_batch_size
    scores: dict[str, dict[str, float | None]] = {}
    for task, candidates in teacher.candidates.items():
        group = [d for d in sources if d.task == task and bool(d.val_labelled.any())]
        scores[task] = {}
        for name in candidates:
            model = teacher.candidate(name)
            values = []
            for d in group:
                mask = d.val_labelled
                logits = predict(model, d.val.teacher_x[mask], d.space, d.task, batch, ctx.device)
                value = compute(d.headline, logits, d.val.y[mask])
                if not math.isnan(value):
                    values.append(value)
            scores[task][name] = sum(values) / len(values) if values else None
    return scores


def choose(
    candidates: dict[str, list[str]], scores: dict[str, dict[str, float | None]]
) -> dict[str, str]:
    """Per task the candidate with the best val score; among scores within :data:`TIE` of
    the best, the cheapest (:data:`CANDIDATE_ORDER`); without any score, the cheapest
    network candidate (else the cheapest)."""
    choice = {}
    for task, names in candidates.items():
        ordered = [c for c in CANDIDATE_ORDER if c in names]
        known = {c: s for c, s in scores.get(task, {}).items() if s is not None and c in names}
        if known:
            best = max(known.values())
            choice[task] = next(c for c in ordered if c in known and known[c] >= best - TIE)
        else:
            networks = [c for c in ordered if c in ("network", "ensemble")]
            choice[task] = (networks or ordered)[0]
    return choice


def select_teacher(ctx: StageContext, teacher: SelectedTeacher, fitted: list[dict]) -> None:
    """Score the fitted candidates on val, choose per task, drop the rest; logged."""
    start = time.perf_counter()
    scores = val_scores(ctx, teacher, ctx.sources)
    choice = broadcast_object(choose(teacher.candidates, scores) if ctx.world.main else None)
    rounded = {
        t: {c: (None if s is None else round(s, 6)) for c, s in by.items()}
        for t, by in scores.items()
    }
    teacher.choose(
        {
            "choice": choice,
            "val_scores": rounded,
            "fitted": [{k: v for k, v in r.items() if k != "wall_s"} for r in fitted],
            "metric": {d.task: d.headline for d in ctx.sources},
        }
    )
    teacher.to(ctx.device)
    for task, name in choice.items():
        ctx.log.log(
            stage="teacher_selection",
            task=task,
            chosen=name,
            val_scores=rounded[task],
            metric=next(d.headline for d in ctx.sources if d.task == task),
        )
    ctx.log.log(
        stage="teacher_selection",
        event="done",
        choice=choice,
        wall_s=round(time.perf_counter() - start, 3),
    )
