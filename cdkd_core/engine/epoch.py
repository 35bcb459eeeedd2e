"""One epoch of a fit: every planned example once, in shuffled single-domain batches, with
checkpoints inside the epoch and a stop on request; then the val score, the epoch's
record, model selection and early stopping."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from cdkd_core.engine.batching import draw_batches, process_share
from cdkd_core.engine.distributed import any_across, sum_across
from cdkd_core.engine.fit_state import EpochPosition, LoopSnapshot
from cdkd_core.engine.inference import val_score
from cdkd_core.engine.plans import DomainPlan
from cdkd_core.engine.step import Stepper


@dataclass
class EpochLoop:
    """Runs a fit's epochs with ``stepper``; ``on_epoch`` gets each epoch's record,
    ``on_checkpoint`` the loop's state, ``stop_requested`` asks for a stop (Ctrl-C)."""

    stepper: Stepper
    plans: list[DomainPlan]
    on_epoch: Callable[[dict], None] | None = None
    on_checkpoint: Callable[[LoopSnapshot], None] | None = None
    stop_requested: Callable[[], bool] | None = None

    def run(self, epoch: int) -> None:
        """Train epoch ``epoch``, then score it and checkpoint."""
        sums, steps = self.train(epoch)
        self.close(epoch, sums, steps)

    def train(self, epoch: int) -> tuple[dict[str, Any], int]:
        """The epoch's steps (resuming inside it where the state says so); the loss terms'
        sums over the steps and the number of steps."""
        state, settings = self.stepper.state, self.stepper.settings
        self.stepper.module.train()
        partial = state.in_epoch
        if partial is not None:  # resuming mid-epoch: the same batches as before
            state.generator.set_state(partial.generator)
        epoch_generator = state.generator.get_state()
        batches, order = draw_batches(self.plans, settings.batch_size, state.generator)
        sums: dict[str, Any] = {}
        steps, skip = 0, 0
        if partial is not None:
            sums, steps, skip = dict(partial.sums), partial.steps, partial.position
            torch.set_rng_state(partial.torch_rng)
            state.in_epoch = None
        for position, b in enumerate(order):
            if position < skip:
                continue
            p_idx, idx = batches[b]
            taken = process_share(idx, self.stepper.world)
            if taken is None:
                continue
            idx, share = taken
            terms = self.stepper.step(p_idx, idx, share, epoch)
            if terms is None:
                continue
            for k, v in terms.items():
                v = v.detach() * share if self.stepper.world.distributed else v.detach()
                sums[k] = sums.get(k, 0.0) + v  # no per-step sync
            steps += 1
            state.global_step += 1
            last = position + 1 == len(order)
            self._after_step(epoch, epoch_generator, position, last, sums, steps)
        return sums, steps

    def _after_step(
        self,
        epoch: int,
        epoch_generator: torch.Tensor,
        position: int,
        last: bool,
        sums: dict[str, Any],
        steps: int,
    ) -> None:
        """Checkpoint every ``checkpoint_steps`` steps (not after an epoch's last, which the
        epoch's end checkpoints) and on a stop request; then stop if requested."""
        state, world = self.stepper.state, self.stepper.world
        every = self.stepper.settings.checkpoint_steps
        stop = self.stop_requested is not None and self.stop_requested()
        if world.distributed and self.stop_requested is not None:
            (stop,) = any_across(stop)
        if self.on_checkpoint is not None and (
            stop or (every and state.global_step % every == 0 and not last)
        ):
            in_epoch = EpochPosition(
                generator=epoch_generator,
                position=position + 1,
                sums=sums,
                steps=steps,
                torch_rng=torch.get_rng_state(),
            )
            self.on_checkpoint(state.snapshot(epoch - 1, in_epoch))
        if stop:
            raise KeyboardInterrupt

    def close(self, epoch: int, sums: dict[str, Any], steps: int) -> None:
        """The epoch's record (mean loss terms, val score and metrics), model selection,
        early stopping and the epoch's checkpoint."""
        state, settings = self.stepper.state, self.stepper.settings
        if self.stepper.world.distributed:
            sums = sum_across(sums)
        if settings.select_on_val:
            score, val = val_score(state.model, self.plans, settings)
        else:  # the latest epoch is kept: select keeps it while no score is finite
            score, val = -math.inf, {}
        record = {
            "epoch": epoch,
            "loss": {k: float(v) / max(steps, 1) for k, v in sums.items()},
            "val_score": score,
            "val": val,
        }
        state.best.history.append(record)
        if self.on_epoch is not None:
            self.on_epoch(record)
        state.select(epoch, score, settings.patience)
        if self.on_checkpoint is not None:
            self.on_checkpoint(state.snapshot(epoch))
