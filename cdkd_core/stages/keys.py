"""The stable key of every stage of a run, and what a stage offers the runner.

``teacher`` and ``baseline`` run once, then per feedback round ``student`` (knowledge
extraction, distillation, evaluation) and ``feedback``. A checkpoint names the stage in
progress by its key; the runner restores the stages before it and runs the rest. A key is
the stage's identity in checkpoint files: log and progress labels are derived from it,
never the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch

Weights = dict[str, torch.Tensor]


@dataclass(frozen=True)
class StageKey:
    """A stage's stable name (``round`` None for the teacher and the baseline)."""

    name: str
    round: int | None = None

    def __str__(self) -> str:
        return self.name if self.round is None else f"{self.name}[{self.round}]"


TEACHER = StageKey("teacher")
BASELINE = StageKey("baseline")


def student_key(round_: int) -> StageKey:
    """The key of round ``round_``'s student stage (extraction, distillation, evaluation)."""
    return StageKey("student", round_)


def feedback_key(round_: int) -> StageKey:
    """The key of round ``round_``'s feedback stage."""
    return StageKey("feedback", round_)


def stage_keys(rounds: int) -> list[StageKey]:
    """Every stage key of a run of ``rounds`` rounds, in the order the stages run."""
    keys = [TEACHER, BASELINE]
    for r in range(rounds):
        keys += [student_key(r), feedback_key(r)]
    return keys


def stage_order(key: StageKey) -> tuple[int, int, int]:
    """A key's place in a run: teacher, baseline, then per round student and feedback."""
    if key.round is None:
        return ({"teacher": 0, "baseline": 1}[key.name], 0, 0)
    return (2, key.round, 1 if key.name == "feedback" else 0)


class SavedRun(Protocol):
    """What a stage restores from: the run state of a checkpoint
    (:class:`cdkd_core.run.state.RunState`)."""

    stage: StageKey
    teacher: Weights
    baseline: Weights | None
    round_start_teacher: Weights | None
    feedback: Any
    round_results: list[dict[str, Any]]
    fit: dict[str, Any] | None
    student: Weights | None
    torch_rng: torch.Tensor | None


class Stage(Protocol):
    """A stage as the runner drives it: it saves what it owns (its checkpoints, its files
    in the run directory) as it runs, and takes its outcome back from a checkpoint."""

    key: StageKey

    def run(self, resume: SavedRun | None) -> None:
        """Run the stage; ``resume``: the state of a checkpoint taken inside it."""

    def restore(self, state: SavedRun) -> None:
        """Take up the stage's outcome from the state of a checkpoint taken after it."""
