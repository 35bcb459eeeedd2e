"""Feedback strategies: the student's results flow back into the teacher between rounds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from pydantic import Field
from torch import nn

from cdkd_core.components.base import Component, ComponentConfig
from cdkd_core.components.domain import Split


@dataclass
class FeedbackDomain:
    """What a strategy may see of one domain: train, val and quiz splits, never test."""

    name: str
    role: str
    task: str
    space: str
    num_classes: int
    train: Split
    val: Split
    quiz: Split | None
    labelled: torch.Tensor


@dataclass
class StudentStep:
    """One student step, passed to strategies that train the teacher alongside the student.

    ``student_logits`` are detached. ``student`` is the student network as it is after the
    step (not wrapped in DistributedDataParallel) and ``student_x`` the batch's student
    view, for strategies that look ahead at the student (``meta``); they must not change
    it. Both are given by the pipeline and may be None where a caller has no student.
    """

    domain: FeedbackDomain
    teacher_x: torch.Tensor
    labels: torch.Tensor
    labelled: torch.Tensor
    student_logits: torch.Tensor
    student: nn.Module | None = None
    student_x: torch.Tensor | None = None


@dataclass
class FeedbackContext:
    """The end of a round: models, the val results of teacher and student, and helpers.

    ``val_results[domain]["teacher"|"student"]`` are metric dicts on the val split.
    ``predict(model, domain, split)`` returns logits for ``"train"|"val"|"quiz"``;
    ``finetune_teacher(batches, epochs, lr)`` trains the teacher on weighted examples:
    ``batches`` maps a domain name to ``(split, per-example weights)``.
    """

    round: int
    teacher: nn.Module
    student: nn.Module
    domains: dict[str, FeedbackDomain]
    val_results: dict[str, dict[str, dict[str, float]]]
    predict: Callable[[nn.Module, str, str], torch.Tensor]
    finetune_teacher: Callable[[dict[str, tuple[Split, torch.Tensor]], int, float], None]
    log: Callable[..., None] = field(default=lambda **_: None)


class FeedbackStrategy(Component):
    """Updates the teacher from the student's results (val/quiz data only).

    ``after_round`` runs after each round's evaluation and may change the teacher in
    place (return True) or leave it (return False). Strategies with ``live_teacher = True``
    also get :meth:`student_step` on every student step and :meth:`begin_round` before it.
    ``needs_quiz = True`` makes the pipeline carve a quiz split from each source domain's
    training data (neither teacher nor student trains on it).
    """

    live_teacher: ClassVar[bool] = False
    #: whether it may change the teacher's weights (a classical teacher, which has none,
    #: refuses such a strategy at validation); a strategy that never does sets False
    updates_teacher: ClassVar[bool] = True
    needs_quiz: ClassVar[bool] = False

    class Config(ComponentConfig):
        """Rounds of stages 2-4 (the student is re-initialised each round)."""

        rounds: int = Field(1, ge=1, le=100, description="Rounds of extract-distill-evaluate.")

    @property
    def rounds(self) -> int:
        """How many rounds the pipeline runs."""
        return int(self.config.rounds)

    @property
    def quiz_fraction(self) -> float:
        """Fraction of each source domain's train split held out as quiz (``needs_quiz``)."""
        return float(getattr(self.config, "quiz_fraction", 0.1)) if self.needs_quiz else 0.0

    def begin_round(self, teacher: nn.Module, domains: dict[str, FeedbackDomain]) -> None:
        """Before the student trains in a round (live strategies create optimizers here)."""

    def student_step(self, teacher: nn.Module, step: StudentStep) -> None:
        """After each student step (live strategies only)."""

    def after_round(self, ctx: FeedbackContext) -> bool:
        """After evaluation; returns whether the teacher was changed."""
        return False

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint must keep to resume mid-round (e.g. a live strategy's
        optimiser state); tensors, numbers, strings, lists and dicts only."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (called after :meth:`begin_round` on resume)."""

    def describe(self) -> dict[str, Any]:
        """Anything worth logging about the strategy."""
        return {"name": self.name, **self.config.model_dump()}
