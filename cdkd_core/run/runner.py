"""The pipeline: the four stages in order, feedback closing the loop by rounds.

1. teacher training (multi-task over the source domains, selection on val);
2. knowledge extraction and encoding (forward hooks, cached teacher outputs, encoder fit
   on the train split);
3. student distillation (the configured weighted losses), beside a no-teacher baseline
   with the same architecture, initialisation, labelled subset and epochs;
4. evaluation of teacher, student and baseline on every domain's test split, then the
   feedback strategy; stages 2-4 repeat for the strategy's rounds.
"""

from __future__ import annotations

import copy
import json
import math
import random
import shutil
import signal
import threading
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cdkd_core.artifacts.knowledge_sample import save_knowledge_sample
from cdkd_core.components.contracts import ContractError
from cdkd_core.components.domain import Split
from cdkd_core.components.encoder import KnowledgeEncoder
from cdkd_core.components.feedback import (
    FeedbackContext,
    FeedbackDomain,
    FeedbackStrategy,
    StudentStep,
)
from cdkd_core.components.loss import Loss
from cdkd_core.config.models import PipelineConfig, dump_config, load_config
from cdkd_core.data.preparation import PreparedDomain, prepare_domains
from cdkd_core.data.scratch import ScratchSpace
from cdkd_core.engine.distributed import (
    averaged_gradients,
    broadcast_module,
    broadcast_object,
    current_world,
    process_group,
)
from cdkd_core.engine.fit import (
    DomainPlan,
    FitSettings,
    TeacherOutputs,
    fit,
    predict,
    resolve_device,
)
from cdkd_core.engine.metrics import evaluate
from cdkd_core.engine.progress import Progress
from cdkd_core.errors import CdkdError, ConfigError, PluginError, RunInterrupted
from cdkd_core.host.providers import PROVIDERS, check_providers, provider_record
from cdkd_core.nets.assembly import NetworkSlot, build_network, probe_network, stem_architecture
from cdkd_core.nets.network import MultiDomainNet, count_parameters
from cdkd_core.nets.reading import FeatureHook, find_module
from cdkd_core.nets.token_knowledge import check_token_stems, inject_teacher_tokens
from cdkd_core.nets.weight_init import init_from_teacher, pair_layers, same_view_spaces
from cdkd_core.run.checkpoint import CHECKPOINT, PREVIOUS, load_checkpoint, save_checkpoint
from cdkd_core.run.rundir import (
    atomic_write_json,
    atomic_write_text,
    check_output_root,
    create_run_dir,
    load_weights,
    save_weights,
)
from cdkd_core.run.runlog import open_run_log
from cdkd_core.stages.knowledge import TeacherCache, extract_knowledge

LATENCY_BATCH = 256


@dataclass
class RunResult:
    """Where a run wrote its artifacts, and its summary."""

    run_dir: Path
    summary: dict[str, Any]
    #: False in torchrun's other processes: only process 0 writes and reports
    main: bool = True


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _settings(
    config: PipelineConfig, device: torch.device, *, teacher: bool, seed: int, layer: str
) -> FitSettings:
    t = config.train
    return FitSettings(
        epochs=(t.teacher_epochs or t.epochs) if teacher else t.epochs,
        batch_size=t.batch_size,
        lr=(t.teacher_lr or t.lr) if teacher else t.lr,
        weight_decay=t.weight_decay,
        scheduler=t.scheduler,
        patience=t.patience,
        grad_clip=t.grad_clip,
        eval_batch_size=t.eval_batch_size,
        device=device,
        seed=seed,
        feature_layer=layer,
        checkpoint_steps=t.checkpoint_steps if t.checkpoints else None,
        precision=t.precision,
    )


def _position(stage: str, round_: int | None) -> int:
    """The order of a checkpointed stage in a run: teacher, baseline, then per round the
    student and the feedback after it."""
    if stage in ("teacher", "baseline"):
        return {"teacher": 0, "baseline": 1}[stage]
    assert round_ is not None
    return 2 + 2 * round_ + (1 if stage == "feedback" else 0)


def _check_reachability(domains: list[PreparedDomain]) -> None:
    """Refuse configs whose domains cannot be learned or evaluated."""
    sources = [d for d in domains if d.role == "source"]
    trained = [d for d in domains if d.trained]
    teacher_spaces = {d.space for d in sources}
    teacher_tasks = {d.task for d in sources}
    for d in domains:
        if d.role == "unseen":
            if d.space not in {t.space for t in trained} or d.task not in {t.task for t in trained}:
                raise ConfigError(
                    f"domains: unseen domain {d.name!r} shares no input space ({d.space!r}) "
                    f"and task ({d.task!r}) with a trained domain, so it cannot be evaluated "
                    "zero-shot; give it a shared input_space/task or make it a target"
                )
        if d.role == "target" and d.entry.fraction == 0:
            if d.space not in teacher_spaces or d.task not in teacher_tasks:
                missing = (
                    f"stem for its input space {d.space!r}"
                    if d.space not in teacher_spaces
                    else f"head for its task {d.task!r}"
                )
                raise ConfigError(
                    f"domains: target {d.name!r} has label_fraction 0 but the teacher has no "
                    f"{missing}; an unlabelled target needs the teacher's soft labels"
                )


def _unreached_targets(domains: list[PreparedDomain]) -> list[str]:
    """One warning line per target no teacher stem reads: no source shares its input space,
    so it gets no teacher knowledge at all (its teacher result is null)."""
    teacher_spaces = sorted({d.space for d in domains if d.role == "source"})
    return [
        f"domains: target {d.name!r} gets no teacher knowledge: the teacher has no stem for "
        f"its input space {d.space!r} (it reads {teacher_spaces}), so the student learns it "
        "from its own labels alone; to distil into it, give it and a source the same "
        "`input_space` (a domain param), or add a source of that input space"
        for d in domains
        if d.role == "target" and d.space not in teacher_spaces
    ]


class _NullLog:
    """The metrics log of torchrun's other processes: process 0 alone writes."""

    def log(self, **record: Any) -> None:
        """Drop the record."""

    def close(self) -> None:
        """Nothing to close."""


class _LiveTeacher:
    """Adapts a live feedback strategy to the training loop."""

    def __init__(
        self,
        strategy: FeedbackStrategy,
        teacher: MultiDomainNet,
        views: dict[str, FeedbackDomain],
        device: torch.device,
        gated: frozenset[str] = frozenset(),
    ) -> None:
        self.strategy, self.teacher, self.views, self.device = strategy, teacher, views, device
        self.gated = gated

    def logits(self, plan: DomainPlan, batch: torch.Tensor) -> torch.Tensor | None:
        d = plan.domain
        if d.name in self.gated:
            return None
        if not (self.teacher.has_stem(d.space) and self.teacher.has_head(d.task)):
            return None
        with torch.no_grad():
            return self.teacher(d.train.teacher_x[batch].to(self.device), d.space, d.task)

    def step(
        self,
        plan: DomainPlan,
        batch: torch.Tensor,
        student_logits: torch.Tensor,
        student: nn.Module | None = None,
    ) -> None:
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


class Pipeline:
    """One run of a validated config; :func:`run_pipeline` is the entry point."""

    def __init__(
        self,
        config: PipelineConfig,
        host,
        run_dir: Path,
        progress: Progress,
        resume: dict[str, Any] | None = None,
    ) -> None:
        self.config, self.host, self.run_dir, self.progress = config, host, run_dir, progress
        #: what the run is doing, for error messages ("teacher training", ...)
        self.stage = "setup"
        self.world = current_world()
        self.device = resolve_device(config.train.device)
        if self.world.distributed and self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", self.world.local_rank)  # a GPU per process
        self.log = open_run_log(run_dir, config.train.log_to) if self.world.main else _NullLog()
        # large derived arrays as memory-mapped files (train.out_of_core); removed at the end.
        # Other processes keep theirs in a temporary directory: on another node the run
        # directory is not there.
        self.scratch = ScratchSpace(
            run_dir / "cache" if self.world.main else None,
            config.train.out_of_core,
            config.train.out_of_core_mb,
        )
        self.cache = TeacherCache(self.scratch)
        self.feedback: FeedbackStrategy = host.get("feedback", config.feedback.name).from_params(
            config.feedback.params
        )
        self.seed = config.seed
        self.student_seed = config.seed + 1
        self.training_started = False
        self.stop_requested = False  # set by Ctrl-C: checkpoint after this step, then stop
        self.resume = resume
        self.round_results: list[dict[str, Any]] = []
        #: warnings about the run's data and domains (summary.json "warnings")
        self.warnings: list[str] = []
        self._baseline_state: dict[str, torch.Tensor] | None = None
        self._round_start_teacher: dict[str, torch.Tensor] | None = None

    # -- helpers -----------------------------------------------------------------------------
    def _train(
        self,
        model: nn.Module,
        plans: list[DomainPlan],
        losses: list[tuple[Loss, float]],
        *,
        stage: str,
        teacher: bool,
        round_: int | None = None,
        live=None,
        resume: dict | None = None,
        epochs: int | None = None,
    ) -> None:
        spec = self.config.teacher if teacher else self.config.student
        settings = _settings(
            self.config, self.device, teacher=teacher, seed=self.seed, layer=spec.feature_layer
        )
        if epochs is not None:
            settings = replace(settings, epochs=epochs)
        label = stage if round_ is None else f"{stage} (round {round_})"
        # every stage starts from a known RNG state (dropout, say), so one stage's numbers
        # never depend on what was built or run before it; baseline and student share one
        seed_everything(self.seed if teacher else self.student_seed)
        with self.progress.stage(label, settings.epochs) as advance:

            def on_epoch(record: dict) -> None:
                self.log.log(stage=stage, round=round_, **record)
                advance(f"val {record['val_score']:.4f}")

            for _ in range(resume["epoch"] if resume is not None else 0):
                advance("resumed")
            result = fit(
                model,
                plans,
                losses,
                settings,
                live=live,
                on_epoch=on_epoch,
                on_checkpoint=lambda fit_state: self._checkpoint(stage, round_, fit=fit_state),
                resume=resume,
                stop_requested=lambda: self.stop_requested,
            )
        self.log.log(
            stage=stage,
            round=round_,
            event="selected",
            epoch=result.best_epoch,
            val_score=result.best_score,
        )

    def _finetune_epochs(self) -> int:
        """Epochs of the multi-task fine-tune after meta-training (``teacher.maml``)."""
        maml, t = self.config.teacher.maml, self.config.train
        assert maml is not None
        if maml.finetune_epochs is not None:
            return maml.finetune_epochs
        return max(1, (t.teacher_epochs or t.epochs) // 2)

    def _meta_train_teacher(self, sources: list[PreparedDomain]) -> None:
        """Stage 1 with ``teacher.maml``: meta-learn the teacher with the source domains as
        tasks (:mod:`cdkd_core.engine.maml`), before its multi-task fine-tune."""
        from cdkd_core.engine.maml import MetaSettings, MetaTask, meta_train

        maml = self.config.teacher.maml
        assert maml is not None
        tasks = [
            MetaTask(p.domain.name, p.domain.space, p.domain.task, p.x, p.labels, p.index)
            for p in self._plans(sources, "teacher", use_labels_only=True)
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
            grad_clip=self.config.train.grad_clip,
            device=self.device,
            seed=self.seed,
            log_every=maml.log_every,
        )
        seed_everything(self.seed)
        start = time.perf_counter()
        with self.progress.stage(f"teacher meta-training ({maml.algorithm})", maml.meta_steps) as (
            advance
        ):
            meta_train(
                self.teacher,
                tasks,
                settings,
                on_log=lambda r: self.log.log(stage="teacher_meta", algorithm=maml.algorithm, **r),
                on_step=lambda _: advance(),
                stop_requested=lambda: self.stop_requested,
            )
        broadcast_module(self.teacher)  # every process goes on with process 0's
        self.log.log(
            stage="teacher_meta",
            event="done",
            algorithm=maml.algorithm,
            meta_steps=maml.meta_steps,
            tasks=[t.name for t in tasks],
            wall_s=round(time.perf_counter() - start, 3),
        )

    def _teacher_training(self) -> dict[str, Any]:
        """How the teacher was trained, for ``summary.json``."""
        teacher, t = self.config.teacher, self.config.train
        if teacher.checkpoint is not None:
            return {"method": "checkpoint", "maml": None}
        if teacher.maml is None:
            return {"method": "multitask", "maml": None, "epochs": t.teacher_epochs or t.epochs}
        return {
            "method": teacher.maml.algorithm,
            "maml": {**teacher.maml.model_dump(mode="json"), "meta_lr": teacher.maml.outer_lr},
            "epochs": self._finetune_epochs(),
        }

    def _plans(
        self,
        domains: list[PreparedDomain],
        view: str,
        *,
        use_labels_only: bool,
        outputs: dict[str, TeacherOutputs] | None = None,
    ) -> list[DomainPlan]:
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
                    x=d.train.teacher_x if view == "teacher" else d.train.student_x,
                    labels=labels,
                    labelled=labelled,
                    index=index,
                    val_x=d.val.teacher_x if view == "teacher" else d.val.student_x,
                    weight=d.entry.weight,
                    teacher=teacher,
                    teacher_x=d.train.teacher_x,
                )
            )
        return plans

    def _ce(self) -> list[tuple[Loss, float]]:
        return [(self.host.get("losses", "ce")(), 1.0)]

    def _losses(
        self,
        student: MultiDomainNet,
        domains: list[PreparedDomain],
        knowledge_dim: int,
        encoder: KnowledgeEncoder | None = None,
    ) -> list[tuple[Loss, float]]:
        d = next(d for d in domains if d.trained)
        with torch.no_grad(), FeatureHook(student, self.config.student.feature_layer) as hook:
            student.eval()
            student(d.train.student_x[:2], d.space, d.task)
            width = hook.take().shape[1]
        losses = []
        for ref in self.config.losses:
            loss = self.host.get("losses", ref.name).from_params(ref.params)
            loss.setup(width, knowledge_dim)
            if encoder is not None:
                loss.bind(encoder)
            losses.append((loss, ref.weight))
        return losses

    def _logits(
        self, model: MultiDomainNet, d: PreparedDomain, split: str = "test"
    ) -> torch.Tensor | None:
        if not (model.has_stem(d.space) and model.has_head(d.task)):
            return None
        s = getattr(d, split)
        x = s.teacher_x if self._is_teacher(model) else s.student_x
        return predict(model, x, d.space, d.task, self.config.train.eval_batch_size, self.device)

    def _evaluate(
        self, model: MultiDomainNet, d: PreparedDomain, split: str = "test"
    ) -> dict[str, float] | None:
        logits = self._logits(model, d, split)
        return None if logits is None else evaluate(d.data.metrics, logits, getattr(d, split).y)

    def _is_teacher(self, model: nn.Module) -> bool:
        return model is self.teacher

    def _views(self, domains: list[PreparedDomain]) -> dict[str, FeedbackDomain]:
        return {
            d.name: FeedbackDomain(
                d.name, d.role, d.task, d.space, d.num_classes, d.train, d.val, d.quiz, d.labelled
            )
            for d in domains
            if d.trained
        }

    def _finetune_teacher(
        self, batches: dict[str, tuple[Split, torch.Tensor]], epochs: int, lr: float
    ) -> None:
        """Weighted cross-entropy fine-tuning of the teacher (used by feedback strategies)."""
        teacher, device = self.teacher, self.device
        by_name = {d.name: d for d in self.domains}
        optimizer = torch.optim.AdamW(
            teacher.parameters(), lr=lr, weight_decay=self.config.train.weight_decay
        )
        generator = torch.Generator().manual_seed(self.seed + 7)
        bs = self.config.train.batch_size
        teacher.train()
        for epoch in range(epochs):
            work = []
            for name, (split, _) in batches.items():
                perm = torch.randperm(len(split), generator=generator)
                work += [(name, perm[i : i + bs]) for i in range(0, len(perm), bs)]
            total = 0.0
            for j in torch.randperm(len(work), generator=generator).tolist():
                name, idx = work[j]
                split, weights = batches[name]
                d = by_name[name]
                logits = teacher(split.teacher_x[idx].to(device), d.space, d.task)
                w = weights[idx].to(device)
                per_example = F.cross_entropy(logits, split.y[idx].to(device), reduction="none")
                loss = (w * per_example).sum() / w.sum() * d.entry.weight
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.item()
            self.log.log(stage="feedback_finetune", epoch=epoch + 1, loss=total / max(len(work), 1))

    # -- the stages --------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        start = time.perf_counter()
        config = self.config
        if config.train.precision == "fp16" and self.device.type != "cuda":
            raise ConfigError(
                f"train.precision: fp16 needs a CUDA device, and this run is on "
                f"{self.device.type}; use bf16 (CPU and GPU) or fp32"
            )
        seed_everything(self.seed)
        self.stage = "loading domains"
        with self.progress.stage("loading domains", 1) as advance:
            self.domains = prepare_domains(
                config, self.host, self.feedback.quiz_fraction, self.scratch
            )
            advance()
        _check_reachability(self.domains)
        # what the user should know about this run, also kept in summary.json
        self.warnings = [note for d in self.domains for note in d.notes]
        for line in _unreached_targets(self.domains):
            if self.world.main:  # torchrun's other processes would say it again
                warnings.warn(line, stacklevel=2)
            self.warnings.append(line)
        sources = [d for d in self.domains if d.role == "source"]
        trained = [d for d in self.domains if d.trained]
        # build both networks before any training, so a bad feature layer or inconsistent
        # shapes (a stem or trunk breaking its [N, width] contract) are refused with nothing
        # half-written
        self.stage = "building networks"
        self.teacher = build_network(config.teacher, sources, self.host, "teacher", self.seed)
        find_module(self.teacher, config.teacher.feature_layer)
        probe_network(config.teacher, self.teacher, sources, self.host, "teacher")
        baseline = build_network(config.student, trained, self.host, "student", self.student_seed)
        find_module(baseline, config.student.feature_layer)
        probe_network(config.student, baseline, trained, self.host, "student")
        if self.world.main:
            self._write_providers(sources, trained)
        if config.student.weight_init == "teacher_pca":  # refuse unpairable layers now
            pair_layers(
                baseline,
                self.teacher,
                config.student.weight_init_layers,
                same_view=same_view_spaces(self.domains),
            )
        elif config.student.weight_init == "teacher_tokens":
            check_token_stems(baseline)
        if config.teacher.checkpoint is not None:
            self._load_teacher(Path(config.teacher.checkpoint))
        self.training_started = True
        if self.world.main:
            self._write_layout(sources, trained)
        for d in self.domains:
            self.log.log(
                event="domain",
                domain=d.name,
                role=d.role,
                task=d.task,
                space=d.space,
                modality=d.modality,
                train=len(d.train),
                val=len(d.val),
                test=len(d.test),
                quiz=len(d.quiz) if d.quiz is not None else 0,
                labelled=int(d.labelled.sum()),
            )

        resume = self.resume
        at = _position(resume["stage"], resume["round"]) if resume is not None else -1
        if resume is not None:
            self.log.log(event="resumed", stage=resume["stage"], round=resume["round"])

        # 1. teacher training (or a teacher loaded from an earlier run)
        self.stage = "teacher training"
        if at > 0:
            self.teacher.load_state_dict(resume["teacher"])
        elif config.teacher.checkpoint is None:
            epochs = None
            if config.teacher.maml is not None:
                if at < 0:  # a resumed teacher stage goes on with its fine-tune
                    self._meta_train_teacher(sources)
                epochs = self._finetune_epochs()
            if epochs != 0:
                self._train(
                    self.teacher,
                    self._plans(sources, "teacher", use_labels_only=True),
                    self._ce(),
                    stage="teacher",
                    teacher=True,
                    resume=resume["fit"] if at == 0 else None,
                    epochs=epochs,
                )
        else:
            self.log.log(stage="teacher", event="loaded", checkpoint=config.teacher.checkpoint)
        if at <= 0:
            self._save("teacher", self.teacher.state_dict())

        # the no-teacher baseline: same student architecture, init, labels and epochs
        self.stage = "baseline"
        if at > 1:
            baseline.load_state_dict(resume["baseline"])
        else:
            self._train(
                baseline,
                self._plans(trained, "student", use_labels_only=True),
                self._ce(),
                stage="baseline",
                teacher=False,
                resume=resume["fit"] if at == 1 else None,
            )
        self._baseline_state = baseline.state_dict()
        self._save("baseline", baseline.state_dict())
        # an unlabelled target is evaluated through the head and stem it shares with a
        # labelled domain: the source-only student, the usual reference for adaptation
        baseline_logits = {d.name: self._logits(baseline, d) for d in self.domains}
        baseline_results = {
            d.name: None if logits is None else evaluate(d.data.metrics, logits, d.test.y)
            for d, logits in zip(self.domains, baseline_logits.values(), strict=True)
        }

        views = self._views(self.domains)
        self.round_results = list(resume["round_results"]) if resume is not None else []
        student = predictions = None
        for round_ in range(self.feedback.rounds):
            if at > _position("feedback", round_):
                continue  # this round, its feedback included, finished before the stop
            if at == _position("feedback", round_):
                # the student was trained and evaluated: evaluate it again (deterministic)
                # and go on with the feedback from the saved state
                student = build_network(
                    config.student, trained, self.host, "student", self.student_seed
                )
                student.load_state_dict(resume["student"])
                self.teacher.load_state_dict(resume["teacher"])
                self.stage = f"evaluation (round {round_})"
                results, predictions = self._evaluate_round(
                    student, baseline_logits, baseline_results
                )
                torch.set_rng_state(resume["torch_rng"])
            else:
                resuming = at == _position("student", round_)
                if resuming:
                    self.teacher.load_state_dict(resume["round_start_teacher"])
                self._round_start_teacher = copy.deepcopy(self.teacher.state_dict())
                student, results, predictions = self._round(
                    round_,
                    trained,
                    views,
                    baseline,
                    baseline_logits,
                    baseline_results,
                    resume if resuming else None,
                )
                self._checkpoint(
                    "feedback",
                    round_,
                    student=student.state_dict(),
                    torch_rng=torch.get_rng_state(),
                )
            self.round_results.append({"round": round_, "domains": results})
            self.log.log(
                stage="evaluation",
                round=round_,
                domains={
                    k: {r: v[r] for r in ("teacher", "student", "baseline")}
                    for k, v in results.items()
                },
            )
            changed = self.feedback.live_teacher  # it trained beside the student
            self.stage = f"feedback (round {round_})"
            if round_ + 1 < self.feedback.rounds:
                changed = self._feedback(round_, student, views) or changed
            if changed:
                broadcast_module(self.teacher)  # every process goes on with process 0's
                self._save("teacher", self.teacher.state_dict())
        round_results = self.round_results
        assert student is not None and predictions is not None
        self.stage = "saving"
        self._save("student", student.state_dict())
        self._save("predictions", predictions)
        final = round_results[-1]["domains"]
        summary = {
            "domains": {
                name: {
                    k: r[k]
                    for k in (
                        "role",
                        "metric",
                        "teacher",
                        "student",
                        "baseline",
                        "metrics",
                        "sizes",
                        "shots",
                        "reference",
                    )
                }
                for name, r in final.items()
            },
            "round_results": round_results,
            "params": self._params(student),
            "latency_ms_per_sample": self._latencies(student, LATENCY_BATCH),
            "latency_batch_size": LATENCY_BATCH,
            "latency_ms_per_sample_batch1": self._latencies(student, 1),
            "processes": self.world.size,
            "rounds": self.feedback.rounds,
            "teacher_training": self._teacher_training(),
            "seed": config.seed,
            "device": str(self.device),
            "threads": torch.get_num_threads(),
            "teacher_cache": {"hits": self.cache.hits, "misses": self.cache.misses},
            "warnings": list(self.warnings),
            "wall_s": round(time.perf_counter() - start, 3),
        }
        if self.world.main:
            atomic_write_json(self.run_dir / "summary.json", summary)
        self.log.close()
        return summary

    def _round(
        self,
        round_: int,
        trained: list[PreparedDomain],
        views: dict[str, FeedbackDomain],
        baseline: MultiDomainNet,
        baseline_logits: dict[str, torch.Tensor | None],
        baseline_results: dict[str, dict[str, float] | None],
        resume: dict[str, Any] | None,
    ) -> tuple[MultiDomainNet, dict[str, Any], dict[str, torch.Tensor]]:
        """Stages 2-4 of one round: encode, distil (continuing ``resume``'s student stage
        where given), evaluate. Returns the student, its results and test predictions."""
        config = self.config
        # 2. knowledge extraction and encoding
        self.stage = f"knowledge extraction (round {round_})"
        encoder = self.host.get("encoders", config.encoder.name).from_params(config.encoder.params)
        with self.progress.stage(f"encoding (round {round_})", 1) as advance:
            outputs = extract_knowledge(
                self.teacher,
                self.domains,
                encoder,
                config.teacher.feature_layer,
                self.cache,
                config.train.eval_batch_size,
                self.device,
            )
            advance()
        if self.world.main:
            encoder.save(self.run_dir)
        self.log.log(
            stage="encoding",
            round=round_,
            encoder=encoder.name,
            dim=encoder.dim,
            domains=sorted(outputs),
        )

        gated: frozenset[str] = frozenset()
        if config.train.teacher_gate == "val":
            gated = self._gate(baseline, round_)
            outputs = {k: replace(v, logits=None) if k in gated else v for k, v in outputs.items()}

        # 3. student distillation
        self.stage = f"distillation (round {round_})"
        student = build_network(config.student, trained, self.host, "student", self.student_seed)
        if config.student.weight_init == "teacher_pca":  # from the teacher as the round starts
            init = init_from_teacher(
                student,
                self.teacher,
                config.student.weight_init_layers,
                same_view=same_view_spaces(self.domains),
            )
            self.log.log(stage="weight_init", round=round_, method="teacher_pca", **init.to_dict())
        elif config.student.weight_init == "teacher_tokens":  # cached after the first round
            stems = inject_teacher_tokens(student, self.progress.stage)
            self.log.log(stage="weight_init", round=round_, method="teacher_tokens", stems=stems)
        losses = self._losses(student, self.domains, encoder.dim, encoder)
        live = None
        if self.feedback.live_teacher:
            self.feedback.begin_round(self.teacher, views)
            live = _LiveTeacher(self.feedback, self.teacher, views, self.device, gated)
        if resume is not None:  # the teacher (and a live strategy) as they were at the stop
            self.teacher.load_state_dict(resume["teacher"])
            self.feedback.load_state_dict(resume["feedback"])
        # a live teacher trains outside DistributedDataParallel (it is not the model being
        # distilled): its gradients are averaged over the processes as they are computed
        with averaged_gradients(self.teacher) if live is not None else nullcontext():
            self._train(
                student,
                self._plans(trained, "student", use_labels_only=False, outputs=outputs),
                losses,
                stage="student",
                teacher=False,
                round_=round_,
                live=live,
                resume=resume["fit"] if resume is not None else None,
            )

        # 4. evaluation
        self.stage = f"evaluation (round {round_})"
        results, predictions = self._evaluate_round(student, baseline_logits, baseline_results)
        if self.world.main:  # for the report's knowledge-space plot
            save_knowledge_sample(
                self.run_dir,
                self.domains,
                outputs,
                student,
                losses,
                config.student.feature_layer,
                self.device,
                round_=round_,
                seed=self.seed,
            )
        return student, results, predictions

    def _evaluate_round(
        self,
        student: MultiDomainNet,
        baseline_logits: dict[str, torch.Tensor | None],
        baseline_results: dict[str, dict[str, float] | None],
    ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """Teacher, student and baseline on every domain's test split: the results per
        domain and the test logits (``predictions.safetensors``)."""
        results, predictions = {}, {}
        for d in self.domains:
            logits = {
                "teacher": self._logits(self.teacher, d),
                "student": self._logits(student, d),
                "baseline": baseline_logits[d.name],
            }
            predictions[f"{d.name}/labels"] = d.test.y
            for model, value in logits.items():
                if value is not None:
                    predictions[f"{d.name}/{model}"] = value
            teacher_m, student_m = (
                None if logits[m] is None else evaluate(d.data.metrics, logits[m], d.test.y)
                for m in ("teacher", "student")
            )
            base_m = baseline_results[d.name]
            results[d.name] = {
                "role": d.role,
                "metric": d.headline,
                "teacher": None if teacher_m is None else teacher_m[d.headline],
                "student": None if student_m is None else student_m[d.headline],
                "baseline": None if base_m is None else base_m[d.headline],
                "metrics": {"teacher": teacher_m, "student": student_m, "baseline": base_m},
                "reference": dict(d.data.reference),
                "shots": d.entry.shots,
                "sizes": {
                    "train": len(d.train),
                    "labelled": int(d.labelled.sum()),
                    "test": len(d.test),
                },
            }
        return results, predictions

    def _save(self, name: str, state: dict[str, torch.Tensor]) -> None:
        """Write ``<name>.safetensors`` in the run directory (process 0 only)."""
        if self.world.main:
            save_weights(self.run_dir / f"{name}.safetensors", state)

    def _write_providers(
        self, sources: list[PreparedDomain], trained: list[PreparedDomain]
    ) -> None:
        """``providers.json``: the plugin and version behind every component the run uses
        (default stems included), checked by ``cdkd run --resume``."""
        stems = {
            type(stem_architecture(spec, d.modality, self.host, view))
            for spec, view, domains in (
                (self.config.teacher, "teacher", sources),
                (self.config.student, "student", trained),
            )
            for d in domains
            if d.modality not in spec.stems
        }
        record = provider_record(self.config, self.host, sorted(stems, key=lambda c: c.name))
        atomic_write_json(self.run_dir / PROVIDERS, record)

    def _checkpoint(self, stage: str, round_: int | None, **extra: Any) -> None:
        """Save where the run stands (``checkpoint.safetensors``) for ``cdkd run --resume``."""
        if not self.config.train.checkpoints or not self.world.main:
            return
        save_checkpoint(
            self.run_dir,
            {
                "stage": stage,
                "round": round_,
                "teacher": self.teacher.state_dict(),
                "baseline": self._baseline_state,
                "round_start_teacher": self._round_start_teacher,
                "feedback": self.feedback.state_dict(),
                "round_results": self.round_results,
                "fit": None,
                **extra,
            },
        )

    def _val_headline(self, model: MultiDomainNet, d: PreparedDomain) -> float:
        """Headline metric on the domain's labelled val examples (NaN where undefined)."""
        mask = d.val_labelled
        if not bool(mask.any()) or not (model.has_stem(d.space) and model.has_head(d.task)):
            return math.nan
        x = (d.val.teacher_x if self._is_teacher(model) else d.val.student_x)[mask]
        logits = predict(model, x, d.space, d.task, self.config.train.eval_batch_size, self.device)
        return evaluate([d.headline], logits, d.val.y[mask])[d.headline]

    def _gate(self, baseline: MultiDomainNet, round_: int) -> frozenset[str]:
        """``train.teacher_gate: val``: the trained domains whose labelled val examples the
        teacher scores below the no-teacher baseline (their soft labels are withheld)."""
        gated = set()
        for d in self.domains:
            if not d.trained:
                continue
            teacher, base = self._val_headline(self.teacher, d), self._val_headline(baseline, d)
            if math.isnan(teacher) or math.isnan(base):
                continue
            keep = teacher >= base
            self.log.log(
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

    def _load_teacher(self, path: Path) -> None:
        """Load ``teacher.checkpoint``, refusing one that does not fit this teacher."""
        where = "teacher.checkpoint"
        if not path.is_file():
            raise ConfigError(f"{where}: no such file: {path}")
        try:
            state = load_weights(path)
        except Exception as exc:  # safetensors raises its own error types
            raise ConfigError(f"{where}: {path} is not a safetensors file ({exc})") from exc
        own = self.teacher.state_dict()
        problems = [f"missing {k}" for k in own if k not in state]
        problems += [f"unexpected {k}" for k in state if k not in own]
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
        self._check_teacher_classes(path)
        self.teacher.load_state_dict(state)

    def _check_teacher_classes(self, path: Path) -> None:
        """Refuse a checkpoint whose run (its ``layout.json`` beside it, when there is one)
        ordered the classes of a task of this teacher otherwise: its head would predict
        another class under each index."""
        try:
            layout = json.loads((path.parent / "layout.json").read_text(encoding="utf-8"))
            theirs = {d["task"]: (n, list(d["classes"])) for n, d in layout["domains"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return  # no layout.json beside it: nothing to compare
        for d in self.domains:
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

    def _write_layout(self, sources: list[PreparedDomain], trained: list[PreparedDomain]) -> None:
        """``layout.json`` (what each network reads and predicts, to rebuild it from its
        weights) and ``preprocessing.safetensors`` (each view's fitted standardisation)."""
        layout = {
            "teacher": [NetworkSlot.of(d, "teacher").to_dict() for d in sources],
            "student": [NetworkSlot.of(d, "student").to_dict() for d in trained],
            "domains": {
                d.name: {
                    "role": d.role,
                    "space": d.space,
                    "task": d.task,
                    "modality": d.modality,
                    "classes": list(d.data.classes),
                    "student_input_shape": list(d.test.student_x.shape[1:]),
                    "student_input_dtype": str(d.test.student_x.dtype).removeprefix("torch."),
                    "standardized": {
                        view: d.standardizers.get(view) is not None
                        for view in ("teacher_x", "student_x")
                    },
                }
                for d in self.domains
            },
        }
        atomic_write_json(self.run_dir / "layout.json", layout)
        stats = {}
        for d in self.domains:
            for view, standardizer in d.standardizers.items():
                if standardizer is not None:
                    stats[f"{d.name}/{view}/mean"] = standardizer.mean
                    stats[f"{d.name}/{view}/std"] = standardizer.std
        self._save("preprocessing", stats)

    def _params(self, student: MultiDomainNet) -> dict[str, int]:
        """Teacher (its network plus the frozen encoders behind its input views, each input
        space counted once) and student parameter counts."""
        views: dict[str, int] = {}
        for d in self.domains:
            if self.teacher.has_stem(d.space):
                views[d.space] = max(views.get(d.space, 0), d.data.teacher_view_params)
        network = count_parameters(self.teacher)
        return {
            "teacher": network + sum(views.values()),
            "student": count_parameters(student),
            "teacher_network": network,
            "teacher_view_encoders": sum(views.values()),
        }

    def _latencies(self, student: MultiDomainNet, batch_size: int) -> dict[str, float | None]:
        """Teacher and student latency on the test inputs of the first domain both predict
        (measured by process 0 alone)."""
        if not self.world.main:
            return {"teacher": None, "student": None}
        for d in self.domains:
            if all(m.has_stem(d.space) and m.has_head(d.task) for m in (self.teacher, student)):
                return {
                    "teacher": measure_latency(
                        self.teacher, d.test.teacher_x, d, batch_size, self.device
                    ),
                    "student": measure_latency(
                        student, d.test.student_x, d, batch_size, self.device
                    ),
                }
        return {"teacher": None, "student": None}

    def _feedback(
        self, round_: int, student: MultiDomainNet, views: dict[str, FeedbackDomain]
    ) -> bool:
        val = {}
        for d in self.domains:
            if d.trained:
                val[d.name] = {
                    "teacher": self._evaluate(self.teacher, d, "val"),
                    "student": self._evaluate(student, d, "val"),
                }

        def predict_split(model: nn.Module, name: str, split: str) -> torch.Tensor:
            if split not in ("train", "val", "quiz"):
                raise ValueError(f"feedback may read train, val or quiz, not {split!r}")
            d = next(x for x in self.domains if x.name == name)
            s = getattr(d, split)
            x = s.teacher_x if model is self.teacher else s.student_x
            return predict(
                model, x, d.space, d.task, self.config.train.eval_batch_size, self.device
            )

        ctx = FeedbackContext(
            round=round_,
            teacher=self.teacher,
            student=student,
            domains=views,
            val_results=val,
            predict=predict_split,
            finetune_teacher=self._finetune_teacher,
            log=lambda **r: self.log.log(stage="feedback", round=round_, **r),
        )
        return bool(self.feedback.after_round(ctx))


@torch.no_grad()
def measure_latency(
    model: MultiDomainNet,
    x: torch.Tensor,
    domain: PreparedDomain,
    batch_size: int,
    device: torch.device,
    min_seconds: float = 0.2,
) -> float:
    """Median milliseconds per sample of a forward pass at ``batch_size`` (inputs repeated to
    fill the batch), over repeats lasting at least ``min_seconds``."""
    model.eval()
    reps = math.ceil(batch_size / len(x))
    x = x[:batch_size].repeat(reps, *([1] * (x.dim() - 1)))[:batch_size].to(device)
    model(x, domain.space, domain.task)  # warm-up
    times: list[float] = []
    while len(times) < 5 or (sum(times) < min_seconds and len(times) < 1000):
        t0 = time.perf_counter()
        model(x, domain.space, domain.task)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return round(float(np.median(times)) * 1000 / batch_size, 6)


def _plugin_error(host, exc: Exception, stage: str | None = None) -> PluginError | None:
    """A :class:`PluginError` naming the plugin (and its version and component) whose code
    raised ``exc``, and the pipeline ``stage`` it was in; None when the error did not come
    from a plugin."""
    from cdkd_core.host.plugin_host import kind_label

    blamed = host.blame(exc)
    if blamed is None:
        return None
    plugin, component = blamed
    version = f" {plugin.version}" if plugin.version else ""
    where = f", {kind_label(component.kind)} {component.name!r}," if component is not None else ""
    during = f" during {stage}" if stage else ""
    return PluginError(
        f"plugin {plugin.name!r}{version}{where} failed{during}: {type(exc).__name__}: {exc} "
        "(run with --debug for the traceback)"
    )


def _attribute(host, exc: ContractError, stage: str | None) -> None:
    """Name the plugin (and version) that provides the component of a broken contract."""
    info = host.provider(exc.kind, exc.cls)
    plugin = host.plugins.get(info.plugin) if info is not None else None
    if plugin is not None:
        exc.attribute(plugin.name, plugin.version, stage)
    else:
        exc.attribute(None, None, stage)


def run_pipeline(
    config: PipelineConfig | dict | str | Path | None = None,
    *,
    output: str | Path = "runs",
    overrides: list[str] | None = None,
    host=None,
    quiet: bool = True,
) -> RunResult:
    """Run a pipeline and write its run directory under ``output``.

    ``config`` is a validated :class:`PipelineConfig`, a mapping, a YAML path, or ``None``
    for the built-in quickstart. Started by torchrun as one of several processes, it joins
    their process group (unless the caller has) and trains with DistributedDataParallel;
    process 0 alone writes the run directory.
    """
    from cdkd_core.host.plugin_host import PluginHost

    host = host if host is not None else PluginHost()
    if not isinstance(config, PipelineConfig) or overrides:
        source = config.model_dump() if isinstance(config, PipelineConfig) else config
        config = load_config(source, overrides, host=host)
    else:
        from cdkd_core.config.validation import validate_components

        validate_components(config, host)
    check_output_root(Path(output))  # on every process: none waits for a failed process 0
    with process_group(config.train.device) as world:

        def new_run_dir() -> Path:
            run_dir = create_run_dir(Path(output), config.name)
            atomic_write_text(run_dir / "config.yaml", dump_config(config))
            return run_dir

        run_dir = broadcast_object(new_run_dir() if world.main else None)
        return _execute(config, host, run_dir, quiet, resume=None, fresh=True)


def resume_run(run_dir: str | Path, *, host=None, quiet: bool = True) -> RunResult:
    """Continue a killed or interrupted run from its last checkpoint (``cdkd run
    --resume``); on CPU it ends with the metrics the run would have had uninterrupted."""
    from cdkd_core.host.plugin_host import PluginHost

    run_dir = Path(run_dir)
    where = f"--resume {run_dir}"
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"{where}: not a run directory (no config.yaml)")
    if (run_dir / "summary.json").is_file():
        raise ConfigError(f"{where}: this run finished already (summary.json exists)")
    host = host if host is not None else PluginHost()
    check_providers(run_dir, host)  # a changed plugin or version is refused
    config = load_config(run_dir / "config.yaml", host=host)
    # no checkpoint yet (stopped in its first epoch): the run starts again in its directory
    state = load_checkpoint(run_dir)
    with process_group(config.train.device):
        return _execute(config, host, run_dir, quiet, resume=state, fresh=False)


class _InterruptWatch:
    """Ctrl-C asks a training pipeline to checkpoint after its current step and stop; a
    second Ctrl-C (or one before training starts) interrupts at once."""

    def __init__(self) -> None:
        self.pipeline: Pipeline | None = None
        self._previous: Any = None

    def _handler(self, signum: int, frame: Any) -> None:
        pipeline = self.pipeline
        if pipeline is None or not pipeline.training_started or pipeline.stop_requested:
            signal.signal(signal.SIGINT, self._previous)
            raise KeyboardInterrupt
        pipeline.stop_requested = True

    def __enter__(self) -> _InterruptWatch:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _execute(
    config: PipelineConfig,
    host,
    run_dir: Path,
    quiet: bool,
    resume: dict[str, Any] | None,
    fresh: bool,
) -> RunResult:
    """Run (or resume) the pipeline in ``run_dir``; a ``fresh`` directory that fails before
    training is removed, so bad input leaves nothing half-written."""
    threads = torch.get_num_threads()
    if config.train.threads is not None:
        torch.set_num_threads(config.train.threads)
    main = current_world().main
    with Progress(quiet=quiet or not main) as progress, _InterruptWatch() as watch:
        try:  # builds the feedback strategy: plugin code
            pipeline = Pipeline(config, host, run_dir, progress, resume=resume)
        except Exception as exc:
            blamed = None if isinstance(exc, CdkdError) else _plugin_error(host, exc, "setup")
            if fresh and main and (blamed is not None or isinstance(exc, CdkdError)):
                shutil.rmtree(run_dir, ignore_errors=True)  # nothing ran: nothing left
            if blamed is None:
                raise
            raise blamed from exc
        watch.pipeline = pipeline
        try:
            try:
                summary = pipeline.run()
            except ContractError as exc:
                _attribute(host, exc, pipeline.stage)
                raise
            except Exception as exc:
                blamed = (
                    None if isinstance(exc, CdkdError) else _plugin_error(host, exc, pipeline.stage)
                )
                if blamed is None:
                    raise
                raise blamed from exc
        except CdkdError:
            pipeline.log.close()
            if fresh and not pipeline.training_started and main:
                shutil.rmtree(run_dir, ignore_errors=True)  # bad data: nothing half-written
            raise
        except KeyboardInterrupt:
            pipeline.log.close()
            if fresh and not pipeline.training_started:
                if main:
                    shutil.rmtree(run_dir, ignore_errors=True)
                raise
            raise RunInterrupted(
                f"interrupted; {run_dir} keeps the last epoch's checkpoint: "
                f"cdkd run --resume {run_dir}"
            ) from None
        finally:
            pipeline.log.close()
            pipeline.scratch.close()
            torch.set_num_threads(threads)
    if main:
        for name in (CHECKPOINT, PREVIOUS):  # a finished run needs no checkpoint
            (run_dir / name).unlink(missing_ok=True)
    return RunResult(run_dir, summary, main)
