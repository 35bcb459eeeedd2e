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
    """What a strategy may see of one domain: train, val and quiz splits, never test.

    Args:
        name: The domain's name.
        role: ``"source"`` or ``"target"``.
        task: Its task.
        space: Its input space.
        num_classes: The task's number of classes.
        train: The train split (without the quiz rows).
        val: The val split.
        quiz: Rows held out of train for the strategy (``needs_quiz``), else ``None``.
        labelled: ``[len(train)]`` bool: whose train label may be used (a target's
            ``label_fraction``).

    Examples:
        >>> import torch
        >>> from cdkd_core.plugin_api import FeedbackDomain, Split
        >>> split = Split.single_view(torch.randn(6, 3), torch.tensor([0, 1] * 3))
        >>> domain = FeedbackDomain(name="toy", role="source", task="toy", space="toy",
        ...                         num_classes=2, train=split, val=split, quiz=None,
        ...                         labelled=torch.ones(6, dtype=torch.bool))
        >>> int(domain.labelled.sum()), domain.quiz is None
        (6, True)
    """

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

    Args:
        domain: The batch's domain.
        teacher_x: ``[B, ...]``: the batch's teacher view.
        labels: ``[B]`` class indices (-1 where unknown).
        labelled: ``[B]`` bool: whose label may be used.
        student_logits: ``[B, classes]``, detached.
        student: The student network after the step, or ``None``.
        student_x: ``[B, ...]``: the batch's student view, or ``None``.

    Examples:
        >>> import torch
        >>> from cdkd_core.plugin_api import FeedbackDomain, Split, StudentStep
        >>> split = Split.single_view(torch.randn(4, 3), torch.tensor([0, 1, 0, 1]))
        >>> domain = FeedbackDomain("toy", "source", "toy", "toy", 2, split, split, None,
        ...                         torch.ones(4, dtype=torch.bool))
        >>> step = StudentStep(domain=domain, teacher_x=split.teacher_x, labels=split.y,
        ...                    labelled=domain.labelled, student_logits=torch.zeros(4, 2))
        >>> step.student is None
        True
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

    Args:
        round: The round that ended (0-based).
        teacher: The teacher network (change it in place).
        student: The round's student.
        domains: Domain name -> what the strategy may see of it.
        val_results: Domain -> ``"teacher"``/``"student"`` -> metric name -> value.
        predict: ``predict(model, domain, split)``: logits of ``teacher`` or ``student``
            on a domain's ``"train"``, ``"val"`` or ``"quiz"`` split.
        finetune_teacher: ``finetune_teacher(batches, epochs, lr)``.
        log: ``log(**fields)`` writes a record to the run's log.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from cdkd_core.plugin_api import FeedbackContext
        >>> ctx = FeedbackContext(
        ...     round=0, teacher=nn.Linear(3, 2), student=nn.Linear(3, 2), domains={},
        ...     val_results={"toy": {"teacher": {"accuracy": 0.9}, "student": {"accuracy": 0.7}}},
        ...     predict=lambda model, domain, split: torch.zeros(1, 2),
        ...     finetune_teacher=lambda batches, epochs, lr: None)
        >>> {d: round(r["teacher"]["accuracy"] - r["student"]["accuracy"], 2)
        ...  for d, r in ctx.val_results.items()}
        {'toy': 0.2}
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

    Attributes:
        live_teacher: Whether it trains the teacher alongside the student
            (:meth:`begin_round`, :meth:`student_step`).
        updates_teacher: Whether it may change the teacher's weights (a classical
            teacher, which has none, refuses such a strategy at validation).
        needs_quiz: Whether the pipeline holds a quiz split out of each source's train.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from cdkd_core.plugin_api import FeedbackContext, FeedbackStrategy
        >>> class Watch(FeedbackStrategy):
        ...     "Logs the student's val accuracy each round; never changes the teacher."
        ...     name = "watch"
        ...     updates_teacher = False
        ...     def after_round(self, ctx):
        ...         for domain, results in ctx.val_results.items():
        ...             ctx.log(domain=domain, student=results["student"]["accuracy"])
        ...         return False
        >>> strategy = Watch.from_params({"rounds": 2})
        >>> strategy.rounds, strategy.describe()
        (2, {'name': 'watch', 'rounds': 2})
        >>> ctx = FeedbackContext(
        ...     round=0, teacher=nn.Linear(3, 2), student=nn.Linear(3, 2), domains={},
        ...     val_results={"toy": {"teacher": {"accuracy": 0.9}, "student": {"accuracy": 0.7}}},
        ...     predict=lambda model, domain, split: torch.zeros(1, 2),
        ...     finetune_teacher=lambda batches, epochs, lr: None,
        ...     log=lambda **fields: print(fields))
        >>> strategy.after_round(ctx)
        {'domain': 'toy', 'student': 0.7}
        False
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
        """Before the student trains in a round (live strategies create optimizers here).

        Args:
            teacher: The teacher network.
            domains: Domain name -> what the strategy may see of it.
        """

    def student_step(self, teacher: nn.Module, step: StudentStep) -> None:
        """After each student step (live strategies only).

        Args:
            teacher: The teacher network (a live strategy may train it here).
            step: The batch and the student's outputs on it.
        """

    def after_round(self, ctx: FeedbackContext) -> bool:
        """After evaluation; returns whether the teacher was changed.

        Args:
            ctx: The round's models, val results and helpers.

        Returns:
            True when the teacher was changed (its knowledge is extracted again).
        """
        return False

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint must keep to resume mid-round (e.g. a live strategy's
        optimiser state); tensors, numbers, strings, lists and dicts only.

        Returns:
            The state (default: empty).
        """
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (called after :meth:`begin_round` on resume).

        Args:
            state: What :meth:`state_dict` returned.
        """

    def describe(self) -> dict[str, Any]:
        """Anything worth logging about the strategy.

        Returns:
            A JSON-ready dict (default: its name and params).
        """
        return {"name": self.name, **self.config.model_dump()}
