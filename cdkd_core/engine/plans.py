"""What a training stage is given for each domain: the plan of its examples, the teacher's
cached outputs, and the protocol of a teacher that trains alongside the student.

A neutral module: stage 2 (knowledge extraction) fills :class:`TeacherOutputs` without
importing the training loop, and :func:`~cdkd_core.engine.fit.fit` reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from cdkd_core.data.preparation import PreparedDomain


@dataclass
class TeacherOutputs:
    """Cached teacher outputs on one split of one domain (rows aligned with the split)."""

    logits: torch.Tensor | None = None
    features: torch.Tensor | None = None
    knowledge: torch.Tensor | None = None


@dataclass
class DomainPlan:
    """How one domain takes part in a training stage.

    ``index`` lists the examples iterated each epoch; ``labels`` is -1 where the label may
    not be used (``labelled`` False); ``teacher`` holds cached teacher outputs;
    ``teacher_x`` is the teacher view, for strategies that run the teacher live.
    """

    domain: PreparedDomain
    x: torch.Tensor
    labels: torch.Tensor
    labelled: torch.Tensor
    index: torch.Tensor
    val_x: torch.Tensor
    weight: float = 1.0
    teacher: TeacherOutputs | None = None
    teacher_x: torch.Tensor | None = None
    #: a weight per example of ``x`` (a feedback strategy's fine-tune); None: all equal
    example_weights: torch.Tensor | None = None


class LiveTeacher(Protocol):
    """A teacher that trains while the student does (e.g. deep mutual learning)."""

    def logits(self, plan: DomainPlan, batch: torch.Tensor) -> torch.Tensor | None:
        """Current teacher logits for the batch (no gradient), or None without a head."""

    def step(
        self,
        plan: DomainPlan,
        batch: torch.Tensor,
        student_logits: torch.Tensor,
        student: nn.Module | None = None,
    ) -> None:
        """Update the teacher after the student's step; ``student`` is the network being
        trained (unwrapped), for strategies that look ahead at it."""
