"""Stages 2-4 of a round as one checkpointed stage (``student``): the teacher's knowledge
extracted and encoded, the student distilled with the configured weighted losses, then
teacher, student and baseline evaluated."""

from __future__ import annotations

import copy
from contextlib import nullcontext
from dataclasses import replace

import torch
from torch import nn

from cdkd_core.components.encoder import KnowledgeEncoder
from cdkd_core.components.feedback import FeedbackDomain, FeedbackStrategy, StudentStep
from cdkd_core.components.loss import Loss
from cdkd_core.engine.distributed import averaged_gradients
from cdkd_core.engine.plans import DomainPlan, TeacherOutputs
from cdkd_core.nets.assembly import build_network
from cdkd_core.nets.network import MultiDomainNet
from cdkd_core.nets.reading import read_layer
from cdkd_core.nets.weight_init import init_from_teacher, same_view_spaces
from cdkd_core.stages.adaptation import adapt_teacher, split_outputs
from cdkd_core.stages.context import StageContext, seed_everything
from cdkd_core.stages.evaluation import BaselineReference, evaluate_round
from cdkd_core.stages.gating import (
    Decisions,
    after_training_check,
    apply_after,
    fallen_back,
    gate_decisions,
    withheld,
)
from cdkd_core.stages.keys import SavedRun, student_key
from cdkd_core.stages.knowledge import encode_round
from cdkd_core.stages.knowledge_sample import save_knowledge_sample
from cdkd_core.stages.priors import estimate_priors, live_teacher_logits, student_offsets
from cdkd_core.stages.token_knowledge import inject_teacher_tokens
from cdkd_core.stages.training import TrainSpec, domain_plans, resumed_loop, train_stage

Losses = list[tuple[Loss, float]]


class LiveTeacherAdapter:
    """Adapts a live feedback strategy (one that trains the teacher beside the student)
    to the training loop."""

    def __init__(
        self,
        strategy: FeedbackStrategy,
        teacher: MultiDomainNet,
        views: dict[str, FeedbackDomain],
        device: torch.device,
        gated: frozenset[str] = frozenset(),
        ctx: StageContext | None = None,
    ) -> None:
        self.strategy, self.teacher, self.views, self.device = strategy, teacher, views, device
        self.gated = gated
        self.ctx = ctx

    def logits(self, plan: DomainPlan, batch: torch.Tensor) -> torch.Tensor | None:
        """The teacher's current logits on the batch (None where gated or unreadable)."""
        d = plan.domain
        if d.name in self.gated:
            return None
        x = d.train.teacher_x[batch].to(self.device)
        if self.ctx is not None:  # adapted to a target, moved onto its prior
            return live_teacher_logits(self.ctx, d, x)
        if not (self.teacher.has_stem(d.space) and self.teacher.has_head(d.task)):
            return None
        with torch.no_grad():
            return self.teacher(x, d.space, d.task)

    def step(
        self,
        plan: DomainPlan,
        batch: torch.Tensor,
        student_logits: torch.Tensor,
        student: nn.Module | None = None,
    ) -> None:
        """The strategy's teacher step after the student's."""
        d = plan.domain
        self.strategy.student_step(
            self.teacher,
            StudentStep(
                domain=self.views[d.name],
                teacher_x=d.train.teacher_x[batch].to(self.device),
                labels=plan.labels[batch].to(self.device),
                labelled=plan.labelled[batch].to(self.device),
                student_logits=student_logits,
                student=student,
                student_x=plan.x[batch].to(self.device),
            ),
        )


def feedback_views(ctx: StageContext) -> dict[str, FeedbackDomain]:
    """The trained domains as feedback strategies see them."""
    return {
        d.name: FeedbackDomain(
            d.name, d.role, d.task, d.space, d.num_classes, d.train, d.val, d.quiz, d.labelled
        )
        for d in ctx.domains
        if d.trained
    }


def distillation_losses(
    ctx: StageContext, student: MultiDomainNet, encoder: KnowledgeEncoder
) -> Losses:
    """The configured loss terms, set up for the student's feature width and the
    encoder's knowledge dimension, and bound to the encoder."""
    d = next(d for d in ctx.domains if d.trained)
    layer = ctx.config.student.feature_layer
    features, _ = read_layer(student, layer, d.train.student_x[:2], d.space, d.task)
    width = features.shape[1]
    losses = []
    for ref in ctx.config.losses:
        loss = ctx.host.get("losses", ref.name).from_params(ref.params)
        loss.setup(width, encoder.dim)
        loss.bind(encoder)
        losses.append((loss, ref.weight))
    return losses


def build_student(ctx: StageContext, round_: int) -> MultiDomainNet:
    """The round's student, initialised as ``student.weight_init`` says."""
    config = ctx.config
    student = build_network(config.student, ctx.trained, ctx.host, "student", ctx.student_seed)
    if config.student.weight_init == "teacher_pca":  # from the teacher as the round starts
        init = init_from_teacher(
            student,
            ctx.teacher,
            config.student.weight_init_layers,
            same_view=same_view_spaces(ctx.domains),
        )
        ctx.log.log(stage="weight_init", round=round_, method="teacher_pca", **init.to_dict())
    elif config.student.weight_init == "teacher_tokens":  # cached after the first round
        stems = inject_teacher_tokens(student, ctx.progress.stage)
        ctx.log.log(stage="weight_init", round=round_, method="teacher_tokens", stems=stems)
    return student


class DistillationStage:
    """One round's ``student`` stage; after it ran (or was restored from its round's
    feedback checkpoint) it holds the student, its test results and predictions. As it
    finishes it saves the round's knowledge sample (``knowledge_sample.safetensors``)."""

    def __init__(
        self,
        ctx: StageContext,
        round_: int,
        baseline: MultiDomainNet,
        reference: BaselineReference,
        views: dict[str, FeedbackDomain],
    ) -> None:
        self.ctx, self.round, self.key = ctx, round_, student_key(round_)
        self.baseline, self.reference, self.views = baseline, reference, views
        self.student: MultiDomainNet | None = None
        self.results: dict = {}
        self.predictions: dict[str, torch.Tensor] = {}
        self.outputs: dict[str, TeacherOutputs] = {}
        self.losses: Losses = []
        self.adaptation: dict[str, dict] = {}
        self.priors: dict[str, dict] = {}
        self.gate: Decisions = {}
        #: the after-training check of the gate's mode ``above`` (what restoring needs)
        self.after: Decisions = {}

    def run(self, resume: SavedRun | None) -> None:
        """Encode, distil (continuing ``resume``'s loop state where given), evaluate. Under
        the gate's mode ``above``, a student whose val headline falls below the baseline's
        on a domain that kept the teacher is trained once more with that domain on its
        labels alone (a resumed second pass goes on with it)."""
        ctx, round_ = self.ctx, self.round
        if resume is not None:
            assert resume.round_start_teacher is not None
            ctx.teacher.load_state_dict(resume.round_start_teacher)
        ctx.round_start_teacher = copy.deepcopy(ctx.teacher.state_dict())
        ctx.where = f"knowledge extraction (round {round_})"
        encoder, outputs = encode_round(ctx, round_)
        ctx.where = f"teacher adaptation (round {round_})"
        self.adaptation = adapt_teacher(ctx, outputs, round_)
        self.priors = estimate_priors(ctx, outputs, round_)
        self.gate = gate_decisions(ctx, self.baseline, round_)
        soft = withheld(self.gate) - fallen_back(self.gate)  # mode val: no soft labels
        self.outputs = {k: replace(v, logits=None) if k in soft else v for k, v in outputs.items()}
        ctx.where = f"distillation (round {round_})"
        second = resume is not None and resume.fit is not None and "gate_after" in resume.fit
        if not second:
            self._distil_pass(encoder, resume, None)
            assert self.student is not None
            self.after = after_training_check(ctx, self.student, self.baseline, self.gate, round_)
            for name, check in self.after.items():
                ctx.log.log(stage="gate", round=round_, domain=name, event="after", **check)
        else:
            assert resume is not None and resume.fit is not None
            self.after = resume.fit["gate_after"]
        if apply_after(self.gate, self.after):
            if not second:
                late = sorted(k for k, v in self.after.items() if v["falls_back"])
                ctx.log.log(stage="gate", round=round_, event="second_pass", fell_back=late)
                ctx.teacher.load_state_dict(ctx.round_start_teacher)  # as the round started
            self._distil_pass(encoder, resume if second else None, {"gate_after": self.after})
        ctx.where = f"evaluation (round {round_})"
        assert self.student is not None
        ctx.student_offsets = student_offsets(ctx, self.student)
        self._evaluate()
        self._save_knowledge_sample()

    def _save_knowledge_sample(self) -> None:
        """The report's sample of the knowledge space: the round's teacher outputs, the
        student's features and its losses' projector (process 0 writes it)."""
        ctx = self.ctx
        assert self.student is not None
        if ctx.world.main:
            save_knowledge_sample(
                ctx.run_dir,
                ctx.domains,
                self.outputs,
                self.student,
                self.losses,
                ctx.config.student.feature_layer,
                ctx.device,
                round_=self.round,
                seed=ctx.seed,
            )

    def _distil_pass(
        self, encoder: KnowledgeEncoder, resume: SavedRun | None, saved: dict | None
    ) -> None:
        """Build the round's student and its losses, and distil it: the gate's withheld
        domains get no soft labels, those falling back no teacher outputs. ``saved``: a
        second pass's after-training check (kept in its checkpoints)."""
        ctx = self.ctx
        if saved is not None:  # the second pass starts as the first did: same seed
            seed_everything(ctx.student_seed)
        self.student = student = build_student(ctx, self.round)
        self.losses = distillation_losses(ctx, student, encoder)
        fallback = fallen_back(self.gate)
        trained = {k: v for k, v in self.outputs.items() if k not in fallback}
        self._distil(resume, withheld(self.gate), trained, saved)

    def _evaluate(self) -> None:
        """Teacher, student and baseline on the test splits, with what the round adapted
        and estimated on each target."""
        assert self.student is not None
        self.results, self.predictions = evaluate_round(self.ctx, self.student, self.reference)
        for name, result in self.results.items():
            result["adaptation"] = self.adaptation.get(name)
            result["label_shift"] = self.priors.get(name)
            result["gate"] = self.gate.get(name)
            offset = self.ctx.student_offsets.get(name)
            if result["label_shift"] is not None and offset is not None:
                result["label_shift"]["student_offset"] = [round(float(v), 6) for v in offset]

    def _distil(
        self,
        resume: SavedRun | None,
        gated: frozenset[str],
        outputs: dict[str, TeacherOutputs],
        saved: dict | None = None,
    ) -> None:
        """Train the student on the teacher's ``outputs`` (beside a live teacher where the
        strategy has one; it gives no logits on the ``gated`` domains)."""
        ctx, feedback = self.ctx, self.ctx.feedback
        live: LiveTeacherAdapter | None = None
        if feedback.live_teacher:
            feedback.begin_round(ctx.teacher, self.views)
            live = LiveTeacherAdapter(feedback, ctx.teacher, self.views, ctx.device, gated, ctx)
        if resume is not None:  # the teacher (and a live strategy) as they were at the stop
            ctx.teacher.load_state_dict(resume.teacher)
            feedback.load_state_dict(resume.feedback)
        # a live teacher trains outside DistributedDataParallel (it is not the model being
        # distilled): its gradients are averaged over the processes as they are computed
        assert self.student is not None
        with averaged_gradients(ctx.teacher) if live is not None else nullcontext():
            train_stage(
                ctx,
                self.student,
                domain_plans(ctx.trained, "student", use_labels_only=False, outputs=outputs),
                self.losses,
                TrainSpec(key=self.key, network="student", live=live, saved=saved),
                resumed_loop(resume),
            )

    def restore(self, state: SavedRun) -> None:
        """From its round's feedback checkpoint: the student trained and evaluated before
        it, evaluated again (deterministic, the gate's decisions too, with the
        after-training check the checkpoint kept: :meth:`saved_state`); the teacher and
        the torch RNG as they were. From a later round's checkpoint: nothing, the round is
        over (its results are restored by its feedback stage)."""
        if state.stage.round != self.round:
            return
        ctx = self.ctx
        assert state.student is not None and state.torch_rng is not None
        student = build_network(
            ctx.config.student, ctx.trained, ctx.host, "student", ctx.student_seed
        )
        student.load_state_dict(state.student)
        # the round's adaptation and prior estimates, fitted again (deterministic) from
        # the teacher as the round started, as the run did before distilling
        assert state.round_start_teacher is not None
        ctx.teacher.load_state_dict(state.round_start_teacher)
        outputs = {
            d.name: split_outputs(ctx, d, "train")
            for d in ctx.domains
            if d.role == "target" and ctx.teacher.has_stem(d.space)
        }
        self.adaptation = adapt_teacher(ctx, outputs, self.round, log=False)
        self.priors = estimate_priors(ctx, outputs, self.round, log=False)
        self.gate = gate_decisions(ctx, self.baseline, self.round, log=False)
        self.after = dict(state.fit.get("gate_after") or {}) if state.fit is not None else {}
        apply_after(self.gate, self.after)
        ctx.teacher.load_state_dict(state.teacher)
        ctx.where = f"evaluation (round {self.round})"
        self.student = student
        ctx.student_offsets = student_offsets(ctx, student)
        self._evaluate()
        torch.set_rng_state(state.torch_rng)

    def saved_state(self) -> dict | None:
        """What restoring the finished stage needs beyond the student's weights (the
        feedback checkpoint keeps it as its ``fit``): the gate's after-training check."""
        return {"gate_after": self.after} if self.after else None
