"""The typed run state a checkpoint holds: which stage is in progress, and what it needs.

Every stage of a run has a stable :class:`StageKey`: ``teacher``, ``baseline``, then per
feedback round ``student`` (knowledge extraction, distillation, evaluation) and
``feedback``. A checkpoint names the stage in progress; the stages before it finished,
so a resumed run restores them from the state and runs the rest. The training stages
checkpoint after their epochs (``fit``: the loop's state); each feedback stage as it
starts (``student``, ``torch_rng`` and the student stage's ``fit``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from cdkd_core.stages.keys import StageKey, Weights, stage_order

__all__ = ["RunState", "StageKey"]


@dataclass
class RunState:
    """Where a run stands: the stage in progress (``stage``) and what resuming needs.

    ``fit`` is the training loop's own state inside a training stage; at a feedback
    checkpoint (taken as the feedback stage starts, after the round's student was trained
    and evaluated) what restoring the student stage needs beyond ``student`` and
    ``torch_rng``, which are set there alone.
    """

    stage: StageKey
    teacher: Weights
    baseline: Weights | None = None
    #: the teacher as the stage's round started (a live strategy trains it in the round)
    round_start_teacher: Weights | None = None
    #: the feedback strategy's own state (its ``state_dict()``)
    feedback: Any = None
    #: the results of the rounds finished so far
    round_results: list[dict[str, Any]] = field(default_factory=list)
    fit: dict[str, Any] | None = None
    student: Weights | None = None
    torch_rng: torch.Tensor | None = None

    def finished(self, key: StageKey) -> bool:
        """Whether stage ``key`` finished before this state was taken."""
        return stage_order(key) < stage_order(self.stage)

    def in_progress(self, key: StageKey) -> bool:
        """Whether stage ``key`` is the one this state was taken in."""
        return key == self.stage

    def to_dict(self) -> dict[str, Any]:
        """The checkpoint file's mapping (its keys and their order are the file format)."""
        out: dict[str, Any] = {
            "stage": self.stage.name,
            "round": self.stage.round,
            "teacher": self.teacher,
            "baseline": self.baseline,
            "round_start_teacher": self.round_start_teacher,
            "feedback": self.feedback,
            "round_results": self.round_results,
            "fit": self.fit,
        }
        if self.student is not None:
            out["student"] = self.student
        if self.torch_rng is not None:
            out["torch_rng"] = self.torch_rng
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunState:
        """Inverse of :meth:`to_dict`, for a checkpoint file read back."""
        return cls(
            stage=StageKey(data["stage"], data["round"]),
            teacher=data["teacher"],
            baseline=data.get("baseline"),
            round_start_teacher=data.get("round_start_teacher"),
            feedback=data.get("feedback"),
            round_results=list(data.get("round_results") or []),
            fit=data.get("fit"),
            student=data.get("student"),
            torch_rng=data.get("torch_rng"),
        )
