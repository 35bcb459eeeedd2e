"""Losses: weighted terms of the student's objective, computed on one batch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from cdkd_core.components.base import Component, ComponentConfig

#: What a loss may require of a batch; ``vectors`` and ``graph`` come from the encoder.
REQUIREMENTS = frozenset({"labels", "teacher_logits", "vectors", "graph"})


@dataclass
class BatchContext:
    """Everything a loss may read for one single-domain batch.

    ``labelled`` marks examples whose label the student may use (a target domain's
    ``label_fraction``); ``labels`` holds -1 elsewhere. Teacher tensors are ``None`` where
    the teacher has no stem for the domain's input space (features, knowledge) or no head
    for its task (logits); they are already detached.

    Args:
        domain: The batch's domain.
        task: Its task.
        student_logits: ``[B, classes]``.
        student_features: ``[B, F]``: the student's features at ``student.feature_layer``.
        labels: ``[B]`` class indices, -1 where the label is not to be used.
        labelled: ``[B]`` bool: whose label the student may use.
        teacher_logits: ``[B, classes]`` or ``None``.
        teacher_features: ``[B, F_teacher]`` or ``None``.
        knowledge: ``[B, dim]``: the encoder's vectors of the teacher features, or ``None``.
        example_weights: ``[B]`` per-example weights where the stage weights its examples
            (a feedback strategy's fine-tune of the teacher); ``None``: equal weights.

    Examples:
        >>> import torch
        >>> from cdkd_core.plugin_api import BatchContext
        >>> ctx = BatchContext(domain="toy", task="toy", student_logits=torch.randn(4, 2),
        ...                    student_features=torch.randn(4, 8),
        ...                    labels=torch.tensor([0, 1, -1, -1]),
        ...                    labelled=torch.tensor([True, True, False, False]))
        >>> ctx.labels[ctx.labelled].tolist(), ctx.teacher_logits is None
        ([0, 1], True)
    """

    domain: str
    task: str
    student_logits: torch.Tensor
    student_features: torch.Tensor
    labels: torch.Tensor
    labelled: torch.Tensor
    teacher_logits: torch.Tensor | None = None
    teacher_features: torch.Tensor | None = None
    knowledge: torch.Tensor | None = None
    #: per-example weights where the stage weights its examples (a feedback strategy's
    #: fine-tune of the teacher); None: every example counts the same
    example_weights: torch.Tensor | None = None


class Loss(Component, nn.Module):
    """A term of the student's loss: ``forward(ctx)`` returns a scalar, or ``None`` when the
    batch lacks what it needs (e.g. no teacher head for this domain's task).

    ``requires`` declares what it reads (see :data:`REQUIREMENTS`); a config pairing it with
    an encoder that does not provide ``vectors``/``graph`` is refused at validation.
    Parameters it creates in :meth:`setup` (e.g. a projector) train with the student and
    are dropped at export.

    A loss is an ``nn.Module`` too: call it on a :class:`BatchContext` (``loss(ctx)``).
    A config gives it a ``weight``; the student's objective is the weighted sum.

    Attributes:
        requires: What it reads of a batch: ``labels``, ``teacher_logits``, ``vectors``
            (the encoder's knowledge), ``graph``.

    Examples:
        >>> import torch.nn.functional as F
        >>> from cdkd_core.plugin_api import Loss, check_loss
        >>> class LogitMatch(Loss):
        ...     "Mean squared error between student and teacher logits."
        ...     name = "logit_match"
        ...     requires = frozenset({"teacher_logits"})
        ...     def forward(self, ctx):
        ...         if ctx.teacher_logits is None:
        ...             return None  # no teacher head for this task
        ...         return F.mse_loss(ctx.student_logits, ctx.teacher_logits)
        >>> value = check_loss(LogitMatch())
        >>> value.shape, bool(value > 0)
        (torch.Size([]), True)
    """

    requires: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, config: ComponentConfig | None = None) -> None:
        nn.Module.__init__(self)
        Component.__init__(self, config)

    def setup(self, student_features: int, knowledge_dim: int | None) -> None:
        """Create parameters that depend on the student's feature width or the encoder's dim.

        Called once per round before training; the default creates nothing.

        Args:
            student_features: Width ``F`` of ``ctx.student_features``.
            knowledge_dim: The encoder's ``dim`` (``None`` where there is no encoder).
        """

    def bind(self, encoder: Any) -> None:
        """Read what the loss needs from the round's fitted encoder (e.g. its class graph);
        called after :meth:`setup`. The default does nothing.

        Args:
            encoder: The round's fitted :class:`KnowledgeEncoder`.
        """

    def forward(self, ctx: BatchContext) -> torch.Tensor | None:
        """The loss on one batch.

        Args:
            ctx: What the batch has (student and teacher outputs, labels, knowledge).

        Returns:
            A floating scalar tensor (shape ``[]`` or ``[1]``) that is finite, or ``None``
            when the batch lacks what the loss needs.

        Raises:
            NotImplementedError: Not overridden.
        """
        raise NotImplementedError
