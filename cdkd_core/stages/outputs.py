"""The weights files of the run directory (``teacher.safetensors``,
``baseline.safetensors``, ...), written by process 0. A stage writes its network's as it
finishes running; a stage restored from a checkpoint wrote them before the stop, so
restoring writes none."""

from __future__ import annotations

from cdkd_core.files import save_weights
from cdkd_core.stages.context import StageContext
from cdkd_core.stages.keys import Weights


def write_weights(ctx: StageContext, name: str, state: Weights) -> None:
    """Write ``<name>.safetensors`` in the run directory (process 0 only)."""
    if ctx.world.main:
        save_weights(ctx.run_dir / f"{name}.safetensors", state)
