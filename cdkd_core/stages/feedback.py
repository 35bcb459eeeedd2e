"""Feedback: after each round but the last, the strategy looks at the round's teacher and
student and may change the teacher (fine-tune it on examples it weights) before the next
round; a live strategy trained it beside the student already.

The feedback stage closes its round: as it starts it checkpoints the round's trained
student (``feedback[r]`` in progress) and records the round's results, and when the
teacher changed it rewrites ``teacher.safetensors``."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cdkd_core import seeds
from cdkd_core.components.contracts import check_feedback_result
from cdkd_core.components.domain import Split
from cdkd_core.components.feedback import FeedbackContext, FeedbackDomain
from cdkd_core.components.loss import BatchContext, Loss
from cdkd_core.engine.distributed import broadcast_module
from cdkd_core.engine.fit import fit
from cdkd_core.engine.inference import predict
from cdkd_core.engine.non_finite import Diverged
from cdkd_core.engine.plans import DomainPlan
from cdkd_core.nets.network import MultiDomainNet
from cdkd_core.stages.context import StageContext, View, view_x
from cdkd_core.stages.distillation import DistillationStage
from cdkd_core.stages.evaluation import domain_metrics
from cdkd_core.stages.keys import SavedRun, feedback_key
from cdkd_core.stages.outputs import write_weights
from cdkd_core.stages.training import attribute_divergence, fit_settings

Batches = dict[str, tuple[Split, torch.Tensor]]


class WeightedCrossEntropy(Loss):
    """Cross-entropy weighted per example, the fine-tune's loss (the weights a feedback
    strategy gave, carried by the plans as ``example_weights``)."""

    name = "feedback.weighted_ce"
    requires = frozenset({"labels"})

    def forward(self, ctx: BatchContext) -> torch.Tensor:
        """``sum(w * ce) / sum(w)`` over the batch."""
        assert ctx.example_weights is not None and ctx.labels is not None
        weights = ctx.example_weights
        per_example = F.cross_entropy(ctx.student_logits, ctx.labels, reduction="none")
        return (weights * per_example).sum() / weights.sum()


def finetune_plans(ctx: StageContext, batches: Batches) -> list[DomainPlan]:
    """One plan per domain of ``batches``: every row of its split in the teacher's view,
    weighted as the strategy asks (``example_weights``)."""
    by_name = {d.name: d for d in ctx.domains}
    plans = []
    for name, (split, weights) in batches.items():
        d = by_name[name]
        rows = len(split)
        plans.append(
            DomainPlan(
                domain=d,
                x=split.teacher_x,
                labels=split.y,
                labelled=torch.ones(rows, dtype=torch.bool),
                index=torch.arange(rows),
                val_x=d.val.teacher_x,
                weight=d.entry.weight,
                example_weights=weights,
            )
        )
    return plans


def finetune_teacher(ctx: StageContext, batches: Batches, epochs: int, lr: float) -> None:
    """Weighted cross-entropy fine-tuning of the teacher (``finetune_teacher`` of a
    feedback strategy; ``batches`` maps a domain to a split and a weight per example),
    through the training loop every stage uses (the run's precision and gradient
    clipping; no scheduler). It keeps its last epoch, as the strategy's weighting intends:
    no selection on val."""
    teacher = fit_settings(
        ctx.config,
        ctx.device,
        teacher=True,
        seed=seeds.finetune_seed(ctx.seed),
        layer=ctx.config.teacher.feature_layer,
    )
    settings = replace(
        teacher,
        epochs=epochs,
        lr=lr,
        scheduler="none",
        patience=None,
        checkpoint_steps=None,  # a feedback stage is never checkpointed inside
        select_on_val=False,
    )

    def on_epoch(record: dict) -> None:
        ctx.log.log(
            stage="feedback_finetune", epoch=record["epoch"], loss=sum(record["loss"].values())
        )

    plans = finetune_plans(ctx, batches)
    try:
        fit(ctx.teacher, plans, [(WeightedCrossEntropy(), 1.0)], settings, on_epoch=on_epoch)
    except Diverged as exc:
        stage = f"the teacher's fine-tuning ({ctx.where})"
        attribute_divergence(
            exc, ctx.host, ctx.config.teacher, "teacher", plans, stage, "the teacher"
        )
        raise


class FeedbackStage:
    """One round's ``feedback`` stage, after the round's ``student`` stage ``distil`` (run
    or restored). ``changed`` says, after it ran, whether the teacher changed in the round
    (then every process takes process 0's, and it is saved)."""

    def __init__(
        self,
        ctx: StageContext,
        round_: int,
        views: dict[str, FeedbackDomain],
        distil: DistillationStage,
    ) -> None:
        self.ctx, self.round, self.key, self.views = ctx, round_, feedback_key(round_), views
        self.distil = distil
        self.changed = False

    def run(self, resume: SavedRun | None) -> None:
        """Checkpoint the round (``resume``: the state of that checkpoint, which a resumed
        stage starts from), record its results, then the strategy's ``after_round`` on the
        round's student (all rounds but the last)."""
        ctx, student = self.ctx, self.distil.student
        assert student is not None
        if resume is None:
            ctx.checkpoint(
                self.key,
                student=student.state_dict(),
                torch_rng=torch.get_rng_state(),
                fit=self.distil.saved_state(),  # what restoring the student stage needs
            )
        self._record({"round": self.round, "domains": self.distil.results})
        self.changed = ctx.feedback.live_teacher  # it trained beside the student
        ctx.where = f"feedback (round {self.round})"
        if self.round + 1 < ctx.feedback.rounds:
            self.changed = self._after_round(student) or self.changed
        if self.changed:
            broadcast_module(ctx.teacher)  # every process goes on with process 0's
            write_weights(ctx, "teacher", ctx.teacher.state_dict())

    def restore(self, state: SavedRun) -> None:
        """The round's results as the checkpoint kept them (the teacher it left is the
        later stages' to restore)."""
        (result,) = (r for r in state.round_results if r["round"] == self.round)
        self.ctx.round_results.append(result)  # logged before the stop

    def _record(self, result: dict[str, Any]) -> None:
        """Add the round's ``result`` to the run's, and log it (``evaluation``)."""
        self.ctx.round_results.append(result)
        self.ctx.log.log(
            stage="evaluation",
            round=self.round,
            domains={
                k: {r: v[r] for r in ("teacher", "student", "baseline")}
                for k, v in result["domains"].items()
            },
        )

    def _after_round(self, student: MultiDomainNet) -> bool:
        ctx = self.ctx
        val = {}
        for d in ctx.domains:
            if d.trained:
                val[d.name] = {
                    "teacher": domain_metrics(ctx, ctx.teacher, "teacher", d, "val"),
                    "student": domain_metrics(ctx, student, "student", d, "val"),
                }
        networks: list[tuple[nn.Module, View]] = [(ctx.teacher, "teacher"), (student, "student")]

        def predict_split(model: nn.Module, name: str, split: str) -> torch.Tensor:
            if split not in ("train", "val", "quiz"):
                raise ValueError(f"feedback may read train, val or quiz, not {split!r}")
            d = next(x for x in ctx.domains if x.name == name)
            # the strategy names a network of the context: the teacher reads its view
            view = next((v for net, v in networks if net is model), "student")
            x = view_x(getattr(d, split), view)
            return predict(model, x, d.space, d.task, ctx.config.train.eval_batch_size, ctx.device)

        feedback_ctx = FeedbackContext(
            round=self.round,
            teacher=ctx.teacher,
            student=student,
            domains=self.views,
            val_results=val,
            predict=predict_split,
            finetune_teacher=lambda batches, epochs, lr: finetune_teacher(ctx, batches, epochs, lr),
            log=lambda **r: ctx.log.log(stage="feedback", round=self.round, **r),
        )
        return check_feedback_result(ctx.feedback, ctx.feedback.after_round(feedback_ctx))
