"""Stage 1: the teacher, trained multi-task over the source domains (selected on val),
meta-trained first with ``teacher.maml``, or loaded from ``teacher.checkpoint``."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cdkd_core.config.models import EnsembleConfig, PipelineConfig
from cdkd_core.data.preparation import PreparedDomain
from cdkd_core.engine.distributed import broadcast_module, broadcast_object
from cdkd_core.engine.plans import DomainPlan
from cdkd_core.errors import ConfigError
from cdkd_core.files import load_weights
from cdkd_core.nets.ensemble import TeacherEnsemble
from cdkd_core.nets.estimator_teacher import (
    EstimatorTeacher,
    load_estimator,
    log_probabilities,
)
from cdkd_core.nets.selected_teacher import SelectedTeacher
from cdkd_core.seeds import member_seed
from cdkd_core.stages.context import StageContext, seed_everything
from cdkd_core.stages.keys import TEACHER, SavedRun
from cdkd_core.stages.outputs import write_weights
from cdkd_core.stages.slot_rows import slot_rows
from cdkd_core.stages.teacher_selection import fit_linear_teacher, select_teacher
from cdkd_core.stages.training import (
    TrainSpec,
    cross_entropy,
    domain_plans,
    resumed_loop,
    train_stage,
)


def finetune_epochs(config: PipelineConfig, sources: list[PreparedDomain] | None = None) -> int:
    """Epochs of the multi-task fine-tune after meta-training (``teacher.maml``): its
    ``finetune_epochs``, else half the teacher's epochs as
    :func:`~cdkd_core.stages.training.teacher_train_values` resolves them over ``sources``
    (the tabular recipe's where it applies)."""
    from cdkd_core.stages.training import teacher_train_values

    maml = config.teacher.maml
    assert maml is not None
    if maml.finetune_epochs is not None:
        return maml.finetune_epochs
    return max(1, teacher_train_values(config, sources)["epochs"] // 2)


def teacher_training(
    config: PipelineConfig, sources: list[PreparedDomain] | None = None
) -> dict[str, Any]:
    """How the teacher was trained, for ``summary.json``: a network teacher's epochs, lr
    and patience as :func:`~cdkd_core.stages.training.teacher_train_values` resolves them
    over the source domains ``sources``, and whether the tabular recipe gave any
    (``recipe``)."""
    from cdkd_core.stages.training import teacher_train_values

    teacher = config.teacher
    if teacher.checkpoint is not None:
        return {"method": "checkpoint", "maml": None}
    if teacher.model is not None:
        return {"method": teacher.model.name, "maml": None}
    values = teacher_train_values(config, sources)
    trained = {"lr": values["lr"], "patience": values["patience"], "recipe": values["recipe"]}
    if teacher.maml is None:
        return {"method": "multitask", "maml": None, "epochs": values["epochs"], **trained}
    return {
        "method": teacher.maml.algorithm,
        "maml": {**teacher.maml.model_dump(mode="json"), "meta_lr": teacher.maml.outer_lr},
        "epochs": finetune_epochs(config, sources),
        **trained,
    }


def meta_train_teacher(ctx: StageContext) -> None:
    """``teacher.maml``: meta-learn the teacher with the source domains as tasks
    (:mod:`cdkd_core.engine.maml`), before its multi-task fine-tune."""
    from cdkd_core.engine.maml import MetaSettings, MetaTask, meta_train

    maml = ctx.config.teacher.maml
    assert maml is not None
    tasks = [
        MetaTask(p.domain.name, p.domain.space, p.domain.task, p.x, p.labels, p.index)
        for p in domain_plans(ctx.sources, "teacher", use_labels_only=True)
    ]
    settings = MetaSettings(
        algorithm=maml.algorithm,
        meta_steps=maml.meta_steps,
        inner_steps=maml.inner_steps,
        inner_lr=maml.inner_lr,
        meta_lr=maml.outer_lr,
        inner_optimizer=maml.inner_optimizer,
        meta_lr_schedule=maml.meta_lr_schedule,
        tasks_per_step=maml.tasks_per_step,
        support_size=maml.support_size,
        query_size=maml.query_size,
        grad_clip=ctx.config.train.grad_clip,
        device=ctx.device,
        seed=ctx.seed,
        log_every=maml.log_every,
    )
    seed_everything(ctx.seed)
    start = time.perf_counter()
    with ctx.progress.stage(f"teacher meta-training ({maml.algorithm})", maml.meta_steps) as (
        advance
    ):
        meta_train(
            ctx.teacher,
            tasks,
            settings,
            on_log=lambda r: ctx.log.log(stage="teacher_meta", algorithm=maml.algorithm, **r),
            on_step=lambda _: advance(),
            stop_requested=ctx.stop,
        )
    broadcast_module(ctx.teacher)  # every process goes on with process 0's
    ctx.log.log(
        stage="teacher_meta",
        event="done",
        algorithm=maml.algorithm,
        meta_steps=maml.meta_steps,
        tasks=[t.name for t in tasks],
        wall_s=round(time.perf_counter() - start, 3),
    )


class TeacherStage:
    """Stage 1 as the runner drives it."""

    key = TEACHER

    def __init__(self, ctx: StageContext) -> None:
        self.ctx = ctx

    def run(self, resume: SavedRun | None) -> None:
        """Train the teacher (a loaded ``teacher.checkpoint`` is only logged; a resumed
        stage goes on with its fine-tune where the checkpoint was taken), then write
        ``teacher.safetensors``."""
        self._train(resume)
        write_weights(self.ctx, "teacher", self.ctx.teacher.state_dict())

    def _train(self, resume: SavedRun | None) -> None:
        ctx, config = self.ctx, self.ctx.config
        if config.teacher.checkpoint is not None:
            ctx.log.log(stage="teacher", event="loaded", checkpoint=config.teacher.checkpoint)
            return
        epochs = None
        if config.teacher.maml is not None:
            if resume is None:  # a resumed teacher stage goes on with its fine-tune
                meta_train_teacher(ctx)
            epochs = finetune_epochs(config, ctx.sources)
        if epochs == 0:
            return
        if isinstance(ctx.teacher, EstimatorTeacher):
            # quick and deterministic: a resumed stage fits it again
            for record in fit_estimator_teacher(ctx, ctx.teacher):
                ctx.log.log(stage="teacher", event="selected", **record)
            return
        if isinstance(ctx.teacher, SelectedTeacher):
            self._fit_candidates(ctx.teacher, resume)
            return
        if isinstance(ctx.teacher, TeacherEnsemble):
            self._train_members(list(ctx.teacher.members), resume, ctx.config.teacher.ensemble)
            return
        train_stage(
            ctx,
            ctx.teacher,
            domain_plans(ctx.sources, "teacher", use_labels_only=True),
            cross_entropy(ctx.host),
            TrainSpec(key=TEACHER, network="teacher", epochs=epochs),
            resumed_loop(resume),
        )

    def _fit_candidates(self, teacher: SelectedTeacher, resume: SavedRun | None) -> None:
        """``teacher: auto``: train the network members, fit the linear and tree candidates,
        then choose per task on val (:mod:`cdkd_core.stages.teacher_selection`)."""
        ctx = self.ctx
        if len(teacher.members):
            self._train_members(list(teacher.members), resume, None)
        fitted = []
        if teacher.linear is not None:
            fitted += fit_linear_teacher(ctx, teacher.linear)
        if teacher.trees is not None:
            fitted += fit_estimator_teacher(ctx, teacher.trees)
        for record in fitted:
            ctx.log.log(stage="teacher", event="selected", **record)
        select_teacher(ctx, teacher, fitted)

    def _train_members(
        self, members: list[nn.Module], resume: SavedRun | None, spec: EnsembleConfig | None
    ) -> None:
        """Train an ensemble's members one after another, each from its own seed (on a
        bootstrap resample of the rows with ``bagging``) and selected on val by itself; a
        resumed stage restores the members trained before the checkpoint and goes on with
        the one it was taken in."""
        ctx = self.ctx
        first = 0
        if resume is not None:
            ctx.teacher.load_state_dict(resume.teacher)  # members before the checkpoint's
            first = int(resume.fit.get("member") or 0) if resume.fit is not None else 0
        plans = domain_plans(ctx.sources, "teacher", use_labels_only=True)
        bagging = spec is not None and spec.bagging
        for k, member, member_plans, seed in member_schedule(members, plans, ctx.seed, bagging):
            if k < first:
                continue
            train_stage(
                ctx,
                member,
                member_plans,
                cross_entropy(ctx.host),
                TrainSpec(key=TEACHER, network="teacher", member=k, seed=seed),
                resumed_loop(resume) if k == first else None,
            )

    def restore(self, state: SavedRun) -> None:
        """The teacher as it finished."""
        self.ctx.teacher.load_state_dict(state.teacher)


def fit_estimator_teacher(ctx: StageContext, teacher: EstimatorTeacher) -> list[dict[str, Any]]:
    """The teacher stage of a classical teacher: process 0 fits it
    (:func:`fit_estimators`), the others take its estimators. What was chosen (process 0;
    empty on the others)."""
    arch = teacher.arch
    records = fit_estimators(teacher, ctx.sources, ctx.seed) if ctx.world.main else []
    fitted = broadcast_object(teacher.estimator_bytes() if ctx.world.main else None)
    if not ctx.world.main:
        by_key = {slot.key: slot for slot in teacher.slots.values()}
        for key, data in fitted.items():
            where = f"teacher.model {arch.name} from process 0"
            teacher.set_estimator(by_key[key], load_estimator(data, arch, where), data)
    return records


def fit_estimators(
    teacher: EstimatorTeacher, sources: list[PreparedDomain], seed: int
) -> list[dict[str, Any]]:
    """Fit a classical teacher: for each (input space, task) one estimator on the labelled
    train rows of the source domains sharing them, its capacity chosen on their val split
    (mean headline metric, as a network teacher is selected). What was chosen, per
    estimator."""
    arch, records = teacher.arch, []
    for slot in teacher.slots.values():
        rows = slot_rows(sources, slot.space, slot.task)

        def score(probs: list[np.ndarray], rows=rows) -> float:
            return rows.mean_headline([torch.from_numpy(log_probabilities(p)) for p in probs])

        estimator, chosen = arch.fit_selected(
            arch.build_estimator(seed),
            rows.x,
            rows.y,
            rows.val_x,
            [d.val.y[m].numpy() for d, m in rows.val],
            score,
        )
        teacher.set_estimator(slot, estimator)
        records.append(rows.record(arch.name, chosen))
    return records


def member_schedule(
    members: list[nn.Module], plans: list[DomainPlan], seed: int, bagging: bool
) -> list[tuple[int, nn.Module, list[DomainPlan], int]]:
    """Each member of an ensemble (its index, itself) with the plans and the seed it trains
    on: :func:`~cdkd_core.seeds.member_seed`, and with ``bagging`` a bootstrap
    resample of ``plans`` drawn from that seed."""
    schedule = []
    for k, member in enumerate(members):
        member_seed_k = member_seed(seed, k)
        member_plans = bootstrap_plans(plans, member_seed_k) if bagging else plans
        schedule.append((k, member, member_plans, member_seed_k))
    return schedule


def bootstrap_plans(plans: list[DomainPlan], seed: int) -> list[DomainPlan]:
    """Each plan with its rows replaced by a bootstrap resample of them (as many rows, drawn
    with replacement; a row drawn twice is seen twice per epoch), drawn from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    out = []
    for plan in plans:
        n = len(plan.index)
        draw = torch.randint(n, (n,), generator=generator)
        out.append(replace(plan, index=plan.index[draw.sort().values]))
    return out


def load_teacher_checkpoint(teacher: nn.Module, path: Path, domains: list[PreparedDomain]) -> None:
    """Load ``teacher.checkpoint``, refusing one that does not fit this teacher."""
    where = "teacher.checkpoint"
    if not path.is_file():
        raise ConfigError(f"{where}: no such file: {path}")
    try:
        state = load_weights(path)
    except Exception as exc:  # safetensors raises its own error types
        raise ConfigError(f"{where}: {path} is not a safetensors file ({exc})") from exc
    if isinstance(teacher, SelectedTeacher):  # the candidates the checkpoint's run chose
        teacher.apply_saved_choice(state)
    own = teacher.state_dict()
    problems = [f"missing {k}" for k in own if k not in state]
    problems += [f"unexpected {k}" for k in state if k not in own]
    if not getattr(teacher, "variable_size_state", False):  # a classical teacher's bytes
        problems += [
            f"{k} has shape {list(state[k].shape)}, expected {list(v.shape)}"
            for k, v in own.items()
            if k in state and state[k].shape != v.shape
        ]
    if problems:
        shown = "; ".join(problems[:5]) + ("; ..." if len(problems) > 5 else "")
        raise ConfigError(
            f"{where}: {path} does not fit this config's teacher ({shown}); it must come "
            "from a run with the same teacher architecture and source domains"
        )
    _check_teacher_classes(path, domains)
    teacher.load_state_dict(state)


def _check_teacher_classes(path: Path, domains: list[PreparedDomain]) -> None:
    """Refuse a checkpoint whose run (its ``layout.json`` beside it, when there is one)
    ordered the classes of a task of this teacher otherwise: its head would predict
    another class under each index."""
    try:
        layout = json.loads((path.parent / "layout.json").read_text(encoding="utf-8"))
        theirs = {d["task"]: (n, list(d["classes"])) for n, d in layout["domains"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return  # no layout.json beside it: nothing to compare
    for d in domains:
        if d.role != "source" or d.task not in theirs:
            continue
        name, classes = theirs[d.task]
        if classes != list(d.data.classes):
            raise ConfigError(
                f"teacher.checkpoint: {path}'s run has the classes of task {d.task!r} as "
                f"{classes} (domain {name!r}), this run as {list(d.data.classes)} (domain "
                f"{d.name!r}); its head would predict other classes. Use a teacher trained "
                "with the same class names and order (the task's first domain fixes it)"
            )
