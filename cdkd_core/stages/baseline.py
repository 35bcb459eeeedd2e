"""The honest no-teacher baseline: the student's architecture, initialisation, labelled
subset and epochs, trained on labels alone."""

from __future__ import annotations

from cdkd_core.nets.network import MultiDomainNet
from cdkd_core.stages.context import StageContext
from cdkd_core.stages.keys import BASELINE, SavedRun
from cdkd_core.stages.outputs import write_weights
from cdkd_core.stages.training import (
    TrainSpec,
    cross_entropy,
    domain_plans,
    resumed_loop,
    train_stage,
)


class BaselineStage:
    """The baseline as the runner drives it; ``baseline`` is built (and probed) with the
    networks, before any training."""

    key = BASELINE

    def __init__(self, ctx: StageContext, baseline: MultiDomainNet) -> None:
        self.ctx, self.baseline = ctx, baseline

    def run(self, resume: SavedRun | None) -> None:
        """Train the baseline (going on from ``resume``'s loop state where given), then
        write ``baseline.safetensors``."""
        train_stage(
            self.ctx,
            self.baseline,
            domain_plans(self.ctx.trained, "student", use_labels_only=True),
            cross_entropy(self.ctx.host),
            TrainSpec(key=BASELINE, network="student"),
            resumed_loop(resume),
        )
        write_weights(self.ctx, "baseline", self.baseline.state_dict())

    def restore(self, state: SavedRun) -> None:
        """The baseline as it finished."""
        assert state.baseline is not None
        self.baseline.load_state_dict(state.baseline)
