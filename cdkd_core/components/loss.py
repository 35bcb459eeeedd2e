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
    """

    requires: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, config: ComponentConfig | None = None) -> None:
        nn.Module.__init__(self)
        Component.__init__(self, config)

    def setup(self, student_features: int, knowledge_dim: int | None) -> None:
        """Create parameters that depend on the student's feature width or the encoder's dim."""

    def bind(self, encoder: Any) -> None:
        """Read what the loss needs from the round's fitted encoder (e.g. its class graph);
        called after :meth:`setup`. The default does nothing."""

    def forward(self, ctx: BatchContext) -> torch.Tensor | None:
        """The loss on one batch."""
        raise NotImplementedError
