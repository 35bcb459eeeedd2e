"""What every stage works with: the run's config, components, domains, teacher and device,
where it logs, and how it asks for a checkpoint or learns of a stop request."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch

from cdkd_core import seeds
from cdkd_core.components.domain import Split
from cdkd_core.components.feedback import FeedbackStrategy
from cdkd_core.config.models import PipelineConfig
from cdkd_core.data.preparation import PreparedDomain
from cdkd_core.engine.distributed import World
from cdkd_core.engine.progress import Progress
from cdkd_core.host.plugin_host import PluginHost
from cdkd_core.nets.network import MultiDomainNet
from cdkd_core.nets.target_heads import TargetHeads
from cdkd_core.stages.keys import StageKey
from cdkd_core.stages.teacher_cache import TeacherCache

#: which input a network reads: the teacher's view of a domain or the student's
View = Literal["teacher", "student"]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch."""
    random.seed(seed)
    np.random.seed(seeds.numpy_seed(seed))
    torch.manual_seed(seed)


def view_x(split: Split, view: View) -> torch.Tensor:
    """The inputs of ``split`` a network of ``view`` reads."""
    return split.teacher_x if view == "teacher" else split.student_x


class RunLog(Protocol):
    """The run's metrics log (``metrics.jsonl`` and any other sinks)."""

    def log(self, **record: Any) -> None:
        """Append one record."""


class StopSignal:
    """Set by the first Ctrl-C: training stages checkpoint after their current step and
    stop."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self) -> bool:
        return self.requested


class CheckpointRequest(Protocol):
    """``checkpoint(key, fit=..., ...)``: save where the run stands, the stage ``key`` in
    progress (the runner's :meth:`~cdkd_core.run.driver.Runner.checkpoint`)."""

    def __call__(self, key: StageKey, **extra: Any) -> None: ...


@dataclass
class StageContext:
    """The run as the stages see it (built by the runner)."""

    config: PipelineConfig
    host: PluginHost
    run_dir: Path
    device: torch.device
    world: World
    log: RunLog
    progress: Progress
    cache: TeacherCache
    feedback: FeedbackStrategy
    checkpoint: CheckpointRequest
    domains: list[PreparedDomain]
    teacher: MultiDomainNet
    stop: StopSignal = field(default_factory=StopSignal)
    #: what the run is doing, for error messages ("teacher training", ...)
    where: str = "setup"
    #: the teacher as the current round started (a live strategy trains it in the round)
    round_start_teacher: dict[str, torch.Tensor] | None = None
    #: the round's heads adapting the teacher to the targets' labels (stage 2a)
    target_heads: TargetHeads | None = None
    #: the round's estimated class prior of each target (``train.label_shift``)
    priors: dict[str, Any] = field(default_factory=dict)
    #: the round's logit offset of the student on each target with an estimated prior
    student_offsets: dict[str, torch.Tensor] = field(default_factory=dict)
    #: the results of the rounds finished so far (``{"round": r, "domains": ...}``, kept in
    #: each checkpoint); each round's feedback stage adds its round's
    round_results: list[dict[str, Any]] = field(default_factory=list)

    @property
    def seed(self) -> int:
        """The teacher's seed (and the run's)."""
        return self.config.seed

    @property
    def student_seed(self) -> int:
        """The seed of the student and the baseline (which share it)."""
        return seeds.student_seed(self.config.seed)

    @property
    def sources(self) -> list[PreparedDomain]:
        """The domains the teacher trains on."""
        return [d for d in self.domains if d.role == "source"]

    @property
    def trained(self) -> list[PreparedDomain]:
        """The domains the student and the baseline train on."""
        return [d for d in self.domains if d.trained]
