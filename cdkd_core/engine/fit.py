"""The training loop every stage uses: single-domain batches from several domains, a
weighted list of loss terms, model selection and early stopping on the val split.

:func:`fit` puts together the parts: the loop's state (:mod:`~cdkd_core.engine.fit_state`),
its batches (:mod:`~cdkd_core.engine.batching`), one optimisation step
(:mod:`~cdkd_core.engine.step`) and one epoch (:mod:`~cdkd_core.engine.epoch`).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from cdkd_core.components.loss import Loss
from cdkd_core.engine.batching import BatchSource
from cdkd_core.engine.distributed import current_world
from cdkd_core.engine.epoch import EpochLoop
from cdkd_core.engine.fit_state import FitState, LoopSnapshot
from cdkd_core.engine.plans import DomainPlan, LiveTeacher
from cdkd_core.engine.settings import FitResult, FitSettings
from cdkd_core.engine.step import Stepper, step_module
from cdkd_core.nets.reading import FeatureHook


def fit(
    model: nn.Module,
    plans: list[DomainPlan],
    losses: list[tuple[Loss, float]],
    settings: FitSettings,
    *,
    live: LiveTeacher | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    on_checkpoint: Callable[[LoopSnapshot], None] | None = None,
    resume: LoopSnapshot | None = None,
    stop_requested: Callable[[], bool] | None = None,
) -> FitResult:
    """Train ``model`` on ``plans`` with the weighted ``losses``; keep the best val epoch.

    Each step is one batch of one domain; an epoch visits every planned example once, the
    batches of all domains shuffled together. A domain's ``weight`` scales its loss.
    ``on_checkpoint`` gets the loop's whole state after every epoch (a
    :class:`~cdkd_core.engine.fit_state.LoopSnapshot`); ``resume`` (such a state) continues
    from it, bit for bit as if the loop had not stopped. When
    ``stop_requested()`` turns true (Ctrl-C), the loop checkpoints after the current step
    and raises :class:`KeyboardInterrupt`.

    Under torchrun every process draws the same batches (same seed) and takes its share
    of each, ``batch[rank::world_size]``; DistributedDataParallel averages the gradients,
    each process's loss scaled by its share of the batch, so a step follows the gradient
    of the whole batch's mean loss, as one process would. A batch smaller than the number
    of processes (an epoch's last, at most) is skipped.
    """
    world = current_world()
    state = FitState.start(model, losses, plans, settings)
    if resume is not None:
        state.restore(resume)
    source = BatchSource(plans, settings.device)
    # one hook for the whole stage (registering one per step costs a module-tree walk)
    with FeatureHook(model, settings.feature_layer) as hook:
        module = step_module(model, losses, hook, settings.device, world)
        stepper = Stepper(module, state, source, settings, world, live)
        loop = EpochLoop(stepper, plans, on_epoch, on_checkpoint, stop_requested)
        for epoch in range(state.first, settings.epochs + 1):
            if state.stopped:
                break
            loop.run(epoch)
    model.load_state_dict(state.best_state)
    return state.best
