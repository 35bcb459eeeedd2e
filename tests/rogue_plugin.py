"""An in-process test plugin whose components misbehave in ways a plugin's own exceptions
do not cover: a domain whose ``load`` returns something that is not ``DomainData`` or calls
``sys.exit()``, a stem, a trunk and a loss that produce NaN, hooks that exit; to check
that each failure is reported against the plugin and its component."""

from __future__ import annotations

import dataclasses
import sys

import torch
from torch import nn

from cdkd_core import Loss, hookimpl
from cdkd_core.builtins.architectures import MLP, Trunk
from cdkd_core.builtins.domains import Wine
from cdkd_core.components.domain import Split


class NoneWine(Wine):
    """The wine data, but ``load`` forgets to return it."""

    name = "rogue.none"

    def load(self, seed: int):
        """Returns None (a missing ``return``)."""
        super().load(seed)


class DictWine(Wine):
    """The wine data, returned as a dict of its splits."""

    name = "rogue.dict"

    def load(self, seed: int):
        """Returns the splits, not a DomainData."""
        return dict(super().load(seed).splits)


class ExitingWine(Wine):
    """The wine data, but ``load`` calls ``sys.exit(4)``."""

    name = "rogue.exiting"

    def load(self, seed: int):
        """Exits, as a script's error handling might."""
        sys.exit(4)


class LeakyWine(Wine):
    """Wine whose test split is also in train."""

    name = "test.leaky"

    def load(self, seed):
        data = super().load(seed)
        train, test = data.splits["train"], data.splits["test"]
        joined = Split.single_view(
            torch.cat([train.student_x, test.student_x[:3]]), torch.cat([train.y, test.y[:3]])
        )
        return dataclasses.replace(data, splits={**data.splits, "train": joined})


class NaNLayer(nn.Module):
    """Multiplies its input by NaN."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * float("nan")


class NaNStem(MLP):
    """An mlp whose stem returns NaN."""

    name = "rogue.nan_stem"
    default_for = ()

    def build_stem(self, input_shape, out_features):
        """The mlp stem, then NaN."""
        return nn.Sequential(super().build_stem(input_shape, out_features), NaNLayer())


class NaNTrunk(MLP):
    """An mlp whose trunk returns NaN."""

    name = "rogue.nan_trunk"
    default_for = ()

    def build_trunk(self):
        """The mlp trunk, then NaN."""
        width = self.config.width
        return Trunk(width, width, super().build_trunk(), NaNLayer())


class NaNLoss(Loss):
    """A loss that is NaN from the first batch (on finite inputs)."""

    name = "rogue.nan"
    requires = frozenset({"labels"})

    def forward(self, ctx):
        """NaN, with a gradient."""
        return ctx.student_logits.sum() * float("nan")


class Plugin:
    """The plugin object."""

    @hookimpl
    def register_domains(self, register) -> None:
        for cls in (NoneWine, DictWine, ExitingWine):
            register(cls)

    @hookimpl
    def register_architectures(self, register) -> None:
        register(NaNStem)
        register(NaNTrunk)

    @hookimpl
    def register_losses(self, register) -> None:
        register(NaNLoss)


def make_host(version: str | None = "0.1"):
    """A host with the built-ins and this plugin (given a version, as an installed one has)."""
    from cdkd_core.host.plugin_host import PluginHost

    host = PluginHost(entry_points=False, plugins=[("rogue", Plugin())])
    host.plugins["rogue"].version = version
    return host
