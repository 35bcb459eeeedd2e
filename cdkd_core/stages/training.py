"""How a stage trains a network: its fit settings, the domains' plans, the run's logging
and checkpoints around :func:`cdkd_core.engine.fit.fit` (:func:`train_stage`, given a
:class:`TrainSpec`)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from cdkd_core.components.loss import Loss
from cdkd_core.config.models import DEFAULT_TEACHER_TRAIN, ModelSpec, PipelineConfig
from cdkd_core.data.preparation import PreparedDomain
from cdkd_core.engine.fit import fit
from cdkd_core.engine.fit_state import LoopSnapshot
from cdkd_core.engine.non_finite import Diverged
from cdkd_core.engine.plans import DomainPlan, LiveTeacher, TeacherOutputs
from cdkd_core.engine.settings import FitResult, FitSettings
from cdkd_core.host.plugin_host import BUILTIN_PLUGINS, PluginHost, kind_label
from cdkd_core.stages.context import StageContext, View, seed_everything, view_x
from cdkd_core.stages.keys import SavedRun, StageKey


def teacher_train_values(
    config: PipelineConfig, sources: list[PreparedDomain] | None
) -> dict[str, Any]:
    """The teacher's ``lr``, ``epochs`` and ``patience``, and whether the tabular recipe
    gave any of them (``recipe``). Each is the config's ``teacher_*`` where set; else,
    when every source domain is a table and the config leaves the base setting (``lr``,
    ``epochs``, ``patience``) unset, the recipe's
    (:data:`~cdkd_core.config.models.DEFAULT_TEACHER_TRAIN`); else the base setting.
    ``sources`` None (not known): no recipe."""
    t = config.train
    tables = bool(sources) and all(d.modality == "tabular" for d in sources or [])
    values: dict[str, Any] = {"recipe": False}
    for key in ("lr", "epochs", "patience"):
        own = getattr(t, f"teacher_{key}")
        base = getattr(t, key)
        if own is not None:
            values[key] = own
        elif tables and key not in t.model_fields_set:
            values[key] = DEFAULT_TEACHER_TRAIN[f"teacher_{key}"]
            values["recipe"] = True
        else:
            values[key] = base
    return values


def fit_settings(
    config: PipelineConfig,
    device: torch.device,
    *,
    teacher: bool,
    seed: int,
    layer: str,
    sources: list[PreparedDomain] | None = None,
) -> FitSettings:
    """The optimisation settings of the teacher's stage (:func:`teacher_train_values` over
    the source domains ``sources``) or a student's (and baseline's)."""
    t = config.train
    own = (
        teacher_train_values(config, sources)
        if teacher
        else {"lr": t.lr, "epochs": t.epochs, "patience": t.patience}
    )
    return FitSettings(
        epochs=own["epochs"],
        batch_size=t.batch_size,
        lr=own["lr"],
        weight_decay=t.weight_decay,
        scheduler=t.scheduler,
        patience=own["patience"],
        grad_clip=t.grad_clip,
        eval_batch_size=t.eval_batch_size,
        device=device,
        seed=seed,
        feature_layer=layer,
        checkpoint_steps=t.checkpoint_steps if t.checkpoints else None,
        precision=t.precision,
    )


def domain_plans(
    domains: list[PreparedDomain],
    view: View,
    *,
    use_labels_only: bool,
    outputs: dict[str, TeacherOutputs] | None = None,
) -> list[DomainPlan]:
    """How each domain takes part in a stage: its ``view``'s inputs, its labels (-1 where
    unlabelled) and the examples iterated (the labelled ones, or all where ``outputs``
    holds the teacher's and ``use_labels_only`` is False)."""
    plans = []
    for d in domains:
        teacher = outputs.get(d.name) if outputs else None
        labelled = d.labelled
        labels = torch.where(labelled, d.train.y, torch.full_like(d.train.y, -1))
        informative = labelled.clone()
        if teacher is not None and not use_labels_only:
            informative[:] = True
        index = torch.nonzero(informative).flatten()
        if len(index) == 0:
            continue
        plans.append(
            DomainPlan(
                domain=d,
                x=view_x(d.train, view),
                labels=labels,
                labelled=labelled,
                index=index,
                val_x=view_x(d.val, view),
                weight=d.entry.weight,
                teacher=teacher,
                teacher_x=d.train.teacher_x,
            )
        )
    return plans


def cross_entropy(host: PluginHost) -> list[tuple[Loss, float]]:
    """The loss list of a stage trained on labels alone."""
    return [(host.get("losses", "ce")(), 1.0)]


def _component(host: PluginHost, kind: str, component: Any) -> str | None:
    """``architecture 'mlp', built in`` or ``loss 'x' of plugin 'p' 0.1``: a component and
    who provides it (None when the host knows no provider)."""
    info = host.provider(kind, component)
    if info is None:
        return None
    label = f"{kind_label(kind)} {info.name!r}"
    if info.plugin in BUILTIN_PLUGINS:
        return f"{label}, built in"
    return f"{label} of plugin {host.describe(info.plugin)}"


def attribute_divergence(
    exc: Diverged,
    host: PluginHost,
    spec: ModelSpec,
    view: View,
    plans: list[DomainPlan],
    stage: str,
    network: str,
) -> None:
    """Name in ``exc`` the stage, the network (``"the student"``) and the component
    (architecture or loss, with its plugin and version) whose output was the first not to be
    finite; ``spec`` is the network's config (stems, trunk, head) and ``view`` its side."""
    from cdkd_core.nets.assembly import stem_architecture

    culprit, component = exc.culprit, None
    part = culprit.part if culprit is not None else None
    try:
        if part == "stem":
            domain = next(p.domain for p in plans if p.domain.space == culprit.key)
            arch = stem_architecture(spec, domain.modality, host, view)
            component = _component(host, "architectures", arch)
        elif part == "trunk":
            component = _component(
                host, "architectures", host.get("architectures", spec.trunk.name)
            )
        elif part == "head" and spec.head is not None:
            component = _component(host, "architectures", host.get("architectures", spec.head.name))
        elif part == "head":
            component = "a linear layer, built in"
        elif part == "loss":
            component = _component(host, "losses", culprit.loss)
    except Exception:  # naming it is a courtesy: the divergence is the error
        component = None
    exc.attribute(stage, network, component)


@dataclass(frozen=True)
class TrainSpec:
    """What one stage trains and how (:func:`train_stage`).

    ``key``: the stage (its log records and checkpoints are under it); ``network``: which
    network's config (feature layer, components) and training settings apply, the
    teacher's or the student's (the baseline trains a student); ``live``: a teacher
    training beside the student (a live feedback strategy); ``epochs``: instead of the
    settings' own; ``member``: which member of an ensemble teacher the model is (logged,
    and kept in the checkpoint's loop state), trained from its own ``seed`` (default: the
    network's, :attr:`~cdkd_core.stages.context.StageContext.seed` or
    :attr:`~cdkd_core.stages.context.StageContext.student_seed`); ``saved``: what else
    the stage needs to resume, kept in each checkpoint's loop state beside the loop's own.
    """

    key: StageKey
    network: View
    live: LiveTeacher | None = None
    epochs: int | None = None
    member: int | None = None
    seed: int | None = None
    saved: dict[str, Any] | None = None

    @property
    def label(self) -> str:
        """The stage as progress shows it: ``student (round 0)``, ``teacher member 1``."""
        stage, round_ = self.key.name, self.key.round
        label = stage if round_ is None else f"{stage} (round {round_})"
        return label if self.member is None else f"{label} member {self.member}"


def resumed_loop(resume: SavedRun | None) -> LoopSnapshot | None:
    """The training loop's state kept in ``resume``'s checkpoint (None: none was kept, or
    no checkpoint)."""
    if resume is None or resume.fit is None:
        return None
    return LoopSnapshot.from_state(resume.fit)


def train_stage(
    ctx: StageContext,
    model: nn.Module,
    plans: list[DomainPlan],
    losses: list[tuple[Loss, float]],
    spec: TrainSpec,
    resume: LoopSnapshot | None = None,
) -> FitResult:
    """Train ``model`` as ``spec`` says (continuing ``resume``, a checkpointed loop
    state, where given), logging each epoch and checkpointing as the loop asks, under
    ``spec.key``."""
    teacher = spec.network == "teacher"
    config = ctx.config.teacher if teacher else ctx.config.student
    seed = spec.seed
    if seed is None:
        seed = ctx.seed if teacher else ctx.student_seed
    # the loop's batch order follows the run's seed for every stage (as it always has);
    # an ensemble member's own seed draws its order too
    settings = fit_settings(
        ctx.config,
        ctx.device,
        teacher=teacher,
        seed=ctx.seed if spec.member is None else seed,
        layer=config.feature_layer,
        sources=ctx.sources,
    )
    if spec.epochs is not None:
        settings = replace(settings, epochs=spec.epochs)
    stage, round_ = spec.key.name, spec.key.round
    tag = {} if spec.member is None else {"member": spec.member}
    # every stage starts from a known RNG state (dropout, say), so one stage's numbers
    # never depend on what was built or run before it; baseline and student share one
    seed_everything(seed)
    with ctx.progress.stage(spec.label, settings.epochs) as advance:

        def on_epoch(record: dict) -> None:
            ctx.log.log(stage=stage, round=round_, **tag, **record)
            advance(f"val {record['val_score']:.4f}")

        def on_checkpoint(snapshot: LoopSnapshot) -> None:
            ctx.checkpoint(spec.key, fit={**snapshot.to_state(), **tag, **(spec.saved or {})})

        for _ in range(resume.epoch if resume is not None else 0):
            advance("resumed")
        try:
            result = fit(
                model,
                plans,
                losses,
                settings,
                live=spec.live,
                on_epoch=on_epoch,
                on_checkpoint=on_checkpoint,
                resume=resume,
                stop_requested=ctx.stop,
            )
        except Diverged as exc:
            what = f"{stage} training" + (f" (round {round_})" if round_ is not None else "")
            network = (
                "the teacher" if teacher else f"the {stage if stage == 'baseline' else 'student'}"
            )
            attribute_divergence(exc, ctx.host, config, spec.network, plans, what, network)
            raise
    ctx.log.log(
        stage=stage,
        round=round_,
        **tag,
        event="selected",
        epoch=result.best_epoch,
        val_score=result.best_score,
    )
    return result
