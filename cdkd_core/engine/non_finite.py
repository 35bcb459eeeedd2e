"""Where a diverged training step's first non-finite values came from.

Looked for only once a step's loss is not finite (nothing of it runs on the normal path):
the step's batch goes through the network again without gradients, with forward hooks on
its parts in the order they run (the batch's stem, the trunk, the batch's head); then the
batch's cached teacher outputs and each loss term are looked at. The first part whose
output holds a NaN or an infinity is the culprit. :class:`Diverged` (a
:class:`~cdkd_core.errors.TrainingError`) carries what was found; the stage that trains the
network names the component behind it and its plugin (:meth:`Diverged.attribute`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from cdkd_core.errors import TrainingError
from cdkd_core.nets.network import module_key

ADVICE = "try a lower learning rate (train.lr) or, for kd, a lower temperature"

#: the batch's tensors besides the inputs that a loss reads and the network does not make
TEACHER_FIELDS = ("teacher_logits", "teacher_features", "knowledge", "example_weights")


@dataclass(frozen=True)
class NonFinite:
    """The first place a diverged step's values stopped being finite.

    ``part``: ``"input"`` (the batch's inputs), ``"stem"`` (``key``: the input space),
    ``"trunk"``, ``"head"`` (``key``: the task), ``"module"`` (``key``: a top-level module
    of a network that is not stems + trunk + heads), ``"teacher"`` (``key``: the batch
    field holding the cached teacher outputs) or ``"loss"`` (``key``: the loss term,
    ``loss``: its :class:`~cdkd_core.components.loss.Loss`). ``weights_finite`` is False
    when the part's own parameters are no longer finite (the optimiser drove them there).
    """

    part: str
    key: str | None = None
    loss: Any = None
    weights_finite: bool = True

    @property
    def in_network(self) -> bool:
        """Whether it is a part of the network being trained."""
        return self.part in ("stem", "trunk", "head", "module")

    def where(self, network: str = "the network") -> str:
        """What it is, in words (``network``: whose part, e.g. ``"the student"``)."""
        if self.part == "stem":
            return f"{network}'s stem for input space {self.key!r}"
        if self.part == "head":
            return f"{network}'s head for task {self.key!r}"
        if self.part == "trunk":
            return f"{network}'s trunk"
        if self.part == "module":
            return f"{network}'s module {self.key!r}"
        if self.part == "teacher":
            return f"the batch's cached teacher outputs ({self.key})"
        if self.part == "loss":
            return f"loss term {self.key!r}"
        return "the batch's inputs"


class Diverged(TrainingError):
    """Training diverged: a step's loss is not finite. Names the epoch, the domain, the
    loss terms and (where found, :func:`first_non_finite`) the first part of the step whose
    values were not finite; :meth:`attribute` adds the stage and the component behind that
    part (its plugin and version)."""

    def __init__(
        self,
        epoch: int,
        domain: str,
        terms: dict[str, float] | None,
        culprit: NonFinite | None = None,
    ) -> None:
        self.epoch, self.domain, self.terms, self.culprit = epoch, domain, terms, culprit
        self.stage: str | None = None
        self.network = "the network"
        self.component: str | None = None
        super().__init__(self.render())

    def attribute(self, stage: str | None, network: str, component: str | None) -> None:
        """Say which stage trained which network (``"the student"``), and the component
        behind the culprit (``"architecture 'x' of plugin 'p' 0.1"``; None: unknown)."""
        self.stage, self.network, self.component = stage, network, component
        self.args = (self.render(),)

    def render(self) -> str:
        """The message."""
        when = f"in epoch {self.epoch}" + (f" of {self.stage}" if self.stage else "")
        if self.terms is None:  # it diverged on another process's share of the batch
            return (
                f"the loss became non-finite {when} on domain {self.domain!r} (in another "
                f"process); {ADVICE}"
            )
        total = sum(self.terms.values())
        parts = [
            f"the loss became {total} {when} on domain {self.domain!r} (terms: "
            + ", ".join(f"{k}={v:.4g}" for k, v in self.terms.items())
            + ")"
        ]
        advice = ADVICE
        culprit = self.culprit
        if culprit is not None:
            text = culprit.where(self.network)
            if self.component:
                text += f" ({self.component})"
            if not culprit.weights_finite:
                text += ", whose weights are no longer finite"
            parts.append(f"the first non-finite values came from {text}")
            if culprit.weights_finite and (culprit.in_network or culprit.part == "loss"):
                made = "inputs and weights" if culprit.in_network else "inputs"
                advice = f"it made them from finite {made}: look there first, else {ADVICE}"
        parts.append(advice)
        return "; ".join(parts)


def _finite(value: Any) -> bool:
    """Whether every floating tensor in ``value`` (a tensor, or tuples/lists/dicts of them)
    is finite."""
    if isinstance(value, torch.Tensor):
        return not value.is_floating_point() or bool(torch.isfinite(value).all())
    if isinstance(value, (tuple, list)):
        return all(_finite(v) for v in value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    return True


def _parts(model: nn.Module, space: str, task: str) -> Iterator[tuple[str, str | None, nn.Module]]:
    """The parts of ``model`` a batch of ``space`` and ``task`` runs through, as (part,
    key, module): stem, trunk and head of a stems + trunk + heads network, else each
    top-level module."""
    stems, trunk, heads = (getattr(model, a, None) for a in ("stems", "trunk", "heads"))
    if isinstance(stems, nn.ModuleDict) and isinstance(heads, nn.ModuleDict) and trunk is not None:
        if module_key(space) in stems:
            yield "stem", space, stems[module_key(space)]
        yield "trunk", None, trunk
        if module_key(task) in heads:
            yield "head", task, heads[module_key(task)]
        return
    for name, child in model.named_children():
        yield "module", name, child


def first_non_finite(
    step: nn.Module,
    args: tuple[Any, ...],
    autocast: Callable[[], AbstractContextManager[Any]] = nullcontext,
) -> NonFinite | None:
    """Run ``step`` (a :class:`~cdkd_core.engine.step.TrainStep`: ``model``, ``losses``) on
    its batch ``args`` again, without gradients, and say where the first non-finite values
    appear; None when the run is finite this time (or fails). Only called once a step's
    loss is not finite."""
    x, batch, _domain, space, task = args[:5]
    if not _finite(x):
        return NonFinite("input")
    found: list[NonFinite] = []

    def recorder(part: str, key: str | None) -> Callable[..., None]:
        def record(module: nn.Module, inputs: Any, output: Any) -> None:
            if not found and not _finite(output):
                weights = all(_finite(p) for p in module.parameters())
                found.append(NonFinite(part, key, weights_finite=weights))

        return record

    handles = [
        module.register_forward_hook(recorder(part, key))
        for part, key, module in _parts(step.model, space, task)
    ]
    try:
        with torch.no_grad(), autocast():
            terms, _ = step(*args)
    except Exception:  # a loss that needs gradients, say: no finding rather than a new error
        return found[0] if found else None
    finally:
        for handle in handles:
            handle.remove()
    if found:
        return found[0]
    for name in TEACHER_FIELDS:
        if not _finite(batch.get(name)):
            return NonFinite("teacher", name)
    for key, value in terms.items():
        if not _finite(value):
            index = int(key.split(":", 1)[0])
            return NonFinite("loss", key, loss=step.losses[index])
    return None
