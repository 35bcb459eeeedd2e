"""The runner: the stages of the method in order, feedback closing the loop by rounds.

1. teacher training (:mod:`cdkd_core.stages.teacher`);
2. knowledge extraction and encoding (:mod:`cdkd_core.stages.knowledge`);
3. student distillation (:mod:`cdkd_core.stages.distillation`), beside the no-teacher
   baseline (:mod:`cdkd_core.stages.baseline`);
4. evaluation (:mod:`cdkd_core.stages.evaluation`), then the feedback strategy
   (:mod:`cdkd_core.stages.feedback`); stages 2-4 repeat for the strategy's rounds.

Every stage has a stable key (:mod:`cdkd_core.stages.keys`) and saves what it owns; a
checkpoint (:class:`~cdkd_core.run.state.RunState`) names the stage in progress, and
:meth:`Runner._run_stage`, the whole of resuming, restores the stages before it, goes on
with it and runs the rest.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from cdkd_core import seeds
from cdkd_core.components.feedback import FeedbackStrategy
from cdkd_core.config.models import PipelineConfig
from cdkd_core.config.validation import auto_exclusions
from cdkd_core.data.preparation import PreparedDomain, prepare_domains
from cdkd_core.data.scratch import ScratchSpace
from cdkd_core.engine.distributed import current_world
from cdkd_core.engine.progress import Progress
from cdkd_core.engine.settings import resolve_device
from cdkd_core.errors import ConfigError
from cdkd_core.files import atomic_write_json
from cdkd_core.nets.assembly import build_network, build_teacher, probe_network, teacher_networks
from cdkd_core.nets.network import MultiDomainNet
from cdkd_core.nets.reading import find_module
from cdkd_core.nets.selected_teacher import SelectedTeacher
from cdkd_core.nets.weight_init import pair_layers, same_view_spaces
from cdkd_core.run.checkpoint import Checkpointer
from cdkd_core.run.layout import write_layout
from cdkd_core.run.provenance import write_providers
from cdkd_core.run.reachability import check_reachability, unreached_targets
from cdkd_core.run.runlog import open_run_log
from cdkd_core.run.state import RunState, StageKey
from cdkd_core.run.summary import build_summary
from cdkd_core.stages.baseline import BaselineStage
from cdkd_core.stages.context import StageContext, StopSignal, seed_everything
from cdkd_core.stages.distillation import DistillationStage, feedback_views
from cdkd_core.stages.evaluation import BaselineReference
from cdkd_core.stages.feedback import FeedbackStage
from cdkd_core.stages.keys import Stage
from cdkd_core.stages.outputs import write_weights
from cdkd_core.stages.teacher import TeacherStage, load_teacher_checkpoint
from cdkd_core.stages.teacher_cache import TeacherCache
from cdkd_core.stages.token_knowledge import check_token_stems

if TYPE_CHECKING:
    from cdkd_core.host.plugin_host import PluginHost


class _NullLog:
    """The metrics log of torchrun's other processes: process 0 alone writes."""

    def log(self, **record: Any) -> None:
        """Drop the record."""

    def close(self) -> None:
        """Nothing to close."""


class Runner:
    """One run of a validated config (:func:`~cdkd_core.run.runner.run_pipeline` is the
    entry point): builds what the stages share, then drives them in order."""

    def __init__(
        self,
        config: PipelineConfig,
        host: PluginHost,
        run_dir: Path,
        progress: Progress,
        resume: RunState | None = None,
        checkpointer: Checkpointer | None = None,
    ) -> None:
        self.config, self.host, self.run_dir, self.progress = config, host, run_dir, progress
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
        self.checkpointer = checkpointer if checkpointer is not None else Checkpointer()
        self.stop = StopSignal()  # set by Ctrl-C: checkpoint after this step, then stop
        self.training_started = False
        self.resume = resume
        #: warnings about the run's data and domains (summary.json "warnings")
        self.warnings: list[str] = []
        self.ctx: StageContext | None = None
        self._where = "setup"
        self._baseline_state: dict[str, torch.Tensor] | None = None

    @property
    def stage(self) -> str:
        """What the run is doing, for error messages ("teacher training", ...)."""
        return self.ctx.where if self.ctx is not None else self._where

    def request_stop(self) -> bool:
        """Ask the training to checkpoint after its current step and stop; False when it
        was asked already."""
        if self.stop.requested:
            return False
        self.stop.requested = True
        return True

    # -- the run -------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Run every stage not finished yet; the summary (also ``summary.json``)."""
        start = time.perf_counter()
        ctx, baseline = self._setup()
        ctx.where = "teacher training"
        self._run_stage(TeacherStage(ctx))
        ctx.where = "baseline"
        self._run_stage(BaselineStage(ctx, baseline))
        self._baseline_state = baseline.state_dict()
        student, predictions = self._rounds(ctx, baseline, BaselineReference(ctx, baseline))
        ctx.where = "saving"
        write_weights(ctx, "student", student.state_dict())
        if ctx.student_offsets:  # its decision rule on targets with an estimated prior
            write_weights(ctx, "student_offsets", ctx.student_offsets)
        if ctx.target_heads is not None and len(ctx.target_heads.heads):
            write_weights(ctx, "target_heads", ctx.target_heads.state_dict())
        write_weights(ctx, "predictions", predictions)
        summary = build_summary(ctx, student, ctx.round_results, self.warnings)
        summary["wall_s"] = round(time.perf_counter() - start, 3)
        if self.world.main:
            atomic_write_json(self.run_dir / "summary.json", summary)
        self.log.close()
        return summary

    def _run_stage(self, stage: Stage) -> None:
        """Restore ``stage`` when the checkpoint was taken after it, else run it (going on
        from the checkpoint when it was taken inside it): the whole of resuming."""
        resume = self.resume
        if resume is not None and resume.finished(stage.key):
            stage.restore(resume)
        else:
            stage.run(resume if resume is not None and resume.in_progress(stage.key) else None)

    def _rounds(
        self, ctx: StageContext, baseline: MultiDomainNet, reference: BaselineReference
    ) -> tuple[MultiDomainNet, dict[str, torch.Tensor]]:
        """Stages 2-4 and the feedback, round by round; the last student and its test
        predictions."""
        views = feedback_views(ctx)
        distil = None
        for round_ in range(ctx.feedback.rounds):
            distil = DistillationStage(ctx, round_, baseline, reference, views)
            self._run_stage(distil)
            self._run_stage(FeedbackStage(ctx, round_, views, distil))
        assert distil is not None and distil.student is not None
        return distil.student, distil.predictions

    # -- before the stages -----------------------------------------------------------------------
    def _setup(self) -> tuple[StageContext, MultiDomainNet]:
        """Load the domains, build and check both networks (and the baseline) before any
        training, write the run's layout; the stages' context and the baseline network."""
        config = self.config
        if config.train.precision == "fp16" and self.device.type != "cuda":
            raise ConfigError(
                f"train.precision: fp16 needs a CUDA device, and this run is on "
                f"{self.device.type}; use bf16 (CPU and GPU) or fp32"
            )
        seed_everything(config.seed)
        domains = self._load_domains()
        sources = [d for d in domains if d.role == "source"]
        trained = [d for d in domains if d.trained]
        # build both networks before any training, so a bad feature layer or inconsistent
        # shapes (a stem or trunk breaking its [N, width] contract) are refused with nothing
        # half-written
        self._where = "building networks"
        teacher = build_teacher(
            config.teacher, sources, self.host, config.seed, auto_exclusions(config, self.host)
        )
        find_module(teacher, config.teacher.feature_layer)
        # an ensemble's members are built alike: probing one checks them all
        for network in teacher_networks(teacher)[:1]:
            probe_network(config.teacher, network, sources, self.host, "teacher")
        baseline = build_network(
            config.student, trained, self.host, "student", seeds.student_seed(config.seed)
        )
        find_module(baseline, config.student.feature_layer)
        probe_network(config.student, baseline, trained, self.host, "student")
        if self.world.main:
            write_providers(self.run_dir, config, self.host, domains)
        if config.student.weight_init == "teacher_pca" and isinstance(teacher, SelectedTeacher):
            raise ConfigError(
                "student.weight_init: teacher_pca starts each stem from one teacher "
                "network's layer, and the teacher of these tables is chosen on val among "
                "candidates (teacher: auto, the default); write the teacher network "
                "(teacher: {trunk: ..., stems: ...}) or use weight_init: random"
            )
        if config.student.weight_init == "teacher_pca":  # refuse unpairable layers now
            pair_layers(
                baseline,
                teacher,
                config.student.weight_init_layers,
                same_view=same_view_spaces(domains),
            )
        elif config.student.weight_init == "teacher_tokens":
            check_token_stems(baseline)
        if config.teacher.checkpoint is not None:
            load_teacher_checkpoint(teacher, Path(config.teacher.checkpoint), domains)
        self.training_started = True
        if self.world.main:
            write_layout(self.run_dir, domains)
        self._log_domains(domains)
        self.ctx = self._context(domains, teacher)
        return self.ctx, baseline

    def _load_domains(self) -> list[PreparedDomain]:
        """The prepared domains, refused when one cannot be learned or evaluated; the
        warnings about them kept for the summary."""
        self._where = "loading domains"
        with self.progress.stage("loading domains", 1) as advance:
            domains = prepare_domains(
                self.config, self.host, self.feedback.quiz_fraction, self.scratch
            )
            advance()
        check_reachability(domains)
        # what the user should know about this run, also kept in summary.json
        self.warnings = [note for d in domains for note in d.notes]
        for line in unreached_targets(domains):
            if self.world.main:  # torchrun's other processes would say it again
                warnings.warn(line, stacklevel=2)
            self.warnings.append(line)
        return domains

    def _context(self, domains: list[PreparedDomain], teacher: MultiDomainNet) -> StageContext:
        return StageContext(
            config=self.config,
            host=self.host,
            run_dir=self.run_dir,
            device=self.device,
            world=self.world,
            log=self.log,
            progress=self.progress,
            cache=self.cache,
            feedback=self.feedback,
            checkpoint=self.checkpoint,
            domains=domains,
            teacher=teacher,
            stop=self.stop,
            where=self._where,
        )

    def _log_domains(self, domains: list[PreparedDomain]) -> None:
        for d in domains:
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
        if self.resume is not None:
            key = self.resume.stage
            self.log.log(event="resumed", stage=key.name, round=key.round)

    # -- checkpoints -----------------------------------------------------------------------------
    def checkpoint(self, key: StageKey, **extra: Any) -> None:
        """Save where the run stands (``checkpoint.safetensors``) for ``cdkd run --resume``:
        the stage ``key`` is in progress; ``extra``: ``fit`` (the training loop's state),
        ``student`` and ``torch_rng``."""
        if not self.config.train.checkpoints or not self.world.main:
            return
        assert self.ctx is not None
        state = RunState(
            stage=key,
            teacher=self.ctx.teacher.state_dict(),
            baseline=self._baseline_state,
            round_start_teacher=self.ctx.round_start_teacher,
            feedback=self.feedback.state_dict(),
            round_results=self.ctx.round_results,
            **extra,
        )
        self.checkpointer.save(self.run_dir, state)
