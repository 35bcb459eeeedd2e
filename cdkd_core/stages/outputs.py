"""The weights files a stage writes into the run directory as it finishes
(``teacher.safetensors``, ``baseline.safetensors``; process 0 writes them). A stage
restored from a checkpoint wrote its files before the stop, so restoring writes none."""

from __future__ import annotations

from torch import nn

from cdkd_core.files import save_weights
from cdkd_core.stages.context import StageContext
from cdkd_core.stages.keys import SavedRun, Stage, StageKey, Weights


def write_weights(ctx: StageContext, name: str, state: Weights) -> None:
    """Write ``<name>.safetensors`` in the run directory (process 0 only)."""
    if ctx.world.main:
        save_weights(ctx.run_dir / f"{name}.safetensors", state)


class WritesWeights:
    """``stage``, writing ``network``'s weights as ``<name>.safetensors`` once it ran."""

    def __init__(self, stage: Stage, ctx: StageContext, name: str, network: nn.Module) -> None:
        self.stage, self.ctx, self.name, self.network = stage, ctx, name, network
        self.key: StageKey = stage.key

    def run(self, resume: SavedRun | None) -> None:
        """Run the stage, then write the network's weights."""
        self.stage.run(resume)
        write_weights(self.ctx, self.name, self.network.state_dict())

    def restore(self, state: SavedRun) -> None:
        """Restore the stage (its file was written before the stop)."""
        self.stage.restore(state)
