"""An in-process test plugin whose components fail at run time (not at registration), to
check that the failure is reported against the plugin and component."""

from __future__ import annotations

from cdkd_core import Loss, hookimpl
from cdkd_core.builtins.domains import Wine


class ExplodingLoss(Loss):
    """A loss that raises on its first batch."""

    name = "testing.exploding"
    requires = frozenset({"labels"})

    def forward(self, ctx):
        """Fails like a buggy plugin would."""
        return _helper(ctx)


def _helper(ctx):
    raise RuntimeError(f"bad batch of {len(ctx.labels)}")


class BrokenWine(Wine):
    """The wine data, but its loader fails with an error no loader should raise."""

    name = "testing.broken_wine"

    def load(self, seed: int):
        """Fails with a KeyError (a bug, not bad data)."""
        raise KeyError("column 'alcohol'")


class NaNAfter(Loss):
    """A loss that turns NaN after ``calls`` batches (a diverging run, made to order)."""

    name = "testing.nan_after"
    requires = frozenset({"labels"})
    calls = 40

    def forward(self, ctx):
        """Zero, then NaN."""
        self.seen = getattr(self, "seen", 0) + 1
        zero = ctx.student_logits.sum() * 0.0
        return zero + float("nan") if self.seen > self.calls else zero


class Plugin:
    """The plugin object."""

    @hookimpl
    def register_losses(self, register) -> None:
        register(ExplodingLoss)
        register(NaNAfter)

    @hookimpl
    def register_domains(self, register) -> None:
        register(BrokenWine)


def make_host(version: str | None = "1.2.3"):
    """A host with the built-ins and this plugin (given a version, as an installed one has)."""
    from cdkd_core.plugins import PluginHost

    host = PluginHost(entry_points=False, plugins=[("faulty", Plugin())])
    host.plugins["faulty"].version = version
    return host
