"""Checkpointers that stop a run at a chosen checkpoint, as Ctrl-C would: the resume tests'
way to interrupt a run at a known point (the run raises ``RunInterrupted``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cdkd_core import PluginHost, load_config, run_pipeline
from cdkd_core.errors import RunInterrupted
from cdkd_core.run.checkpoint import Checkpointer
from cdkd_core.run.runner import resume_run


class Stop(KeyboardInterrupt):
    """The interrupt the stopping checkpointers raise."""


class Watching(Checkpointer):
    """Saves each checkpoint (unless ``write`` is False), then hands its state to
    ``after``."""

    def __init__(self, after: Callable[[Any], None], *, write: bool = True) -> None:
        self.after, self.write = after, write

    def save(self, run_dir, state) -> None:
        if self.write:
            super().save(run_dir, state)
        self.after(state)


class StopAt(Checkpointer):
    """Saves each checkpoint and keeps its teacher (``teachers``), then stops the run at
    the ``when``-th checkpoint (an int) or at the first whose state ``when`` picks."""

    def __init__(self, when: int | Callable[[Any], bool]) -> None:
        self.when, self.seen, self.teachers = when, 0, []

    def save(self, run_dir, state) -> None:
        super().save(run_dir, state)
        self.seen += 1
        self.teachers.append(state.teacher)
        if self.seen == self.when if isinstance(self.when, int) else self.when(state):
            raise Stop


#: summary.json keys that are timings (they differ between any two runs)
TIMING = {"wall_s", "latency_ms_per_sample", "latency_ms_per_sample_batch1", "teacher_cache"}


def without_timing(summary: dict) -> dict:
    """A summary without its timings: what an uninterrupted and a resumed run share."""
    return {k: v for k, v in summary.items() if k not in TIMING}


def stopped_and_resumed(
    config: dict, host: PluginHost, output: Path, when: int | Callable[[Any], bool]
):
    """Run ``config`` into ``output``, stop it at a checkpoint (:class:`StopAt`), check that
    it says how to resume, and resume it; the resumed run's result."""
    with pytest.raises(RunInterrupted, match="cdkd run --resume"):
        run_pipeline(
            load_config(config, host=host), host=host, output=output, checkpointer=StopAt(when)
        )
    (run_dir,) = Path(output).iterdir()
    return resume_run(run_dir, host=host)
