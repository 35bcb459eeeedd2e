"""An in-process test plugin whose components fail at run time (not at registration), or
break their kind's contract, to check that the failure is reported against the plugin and
component."""

from __future__ import annotations

import pickle

import torch

from cdkd_core import Loss, hookimpl
from cdkd_core.builtins.architectures import MLP
from cdkd_core.builtins.domains import Wine
from cdkd_core.builtins.encoders import PCAEncoder
from cdkd_core.components.feedback import FeedbackStrategy


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


class BadFileWine(Wine):
    """The wine data, but its file cannot be read (bad data, not a bug)."""

    name = "testing.unreadable_wine"

    def load(self, seed: int):
        """Fails as a loader does on a missing file."""
        raise OSError("wine.csv: no such file")


# -- components that break their kind's contract (cdkd_core.components.contracts) ----------


class WideEncoder(PCAEncoder):
    """PCA whose vectors are one column wider than its ``dim``."""

    name = "testing.wide"

    def transform(self, features, domain):
        """One extra column."""
        z = super().transform(features, domain)
        return torch.cat([z, z[:, :1]], dim=1)


class NumpyStateEncoder(PCAEncoder):
    """PCA that keeps a numpy array in its state."""

    name = "testing.numpy_state"

    def state(self):
        """A numpy array among the tensors."""
        tensors, meta = super().state()
        return {**tensors, "mean": tensors["mean"].numpy()}, meta


class PickledStateEncoder(PCAEncoder):
    """PCA that smuggles a pickled object into its state as uint8 bytes."""

    name = "testing.pickled_state"

    def state(self):
        """Pickle bytes in a uint8 tensor."""
        tensors, meta = super().state()
        blob = pickle.dumps({"fitted": [1, 2, 3]})
        return {**tensors, "blob": torch.tensor(list(blob), dtype=torch.uint8)}, meta


class SetMetaEncoder(PCAEncoder):
    """PCA whose metadata holds a set (not JSON)."""

    name = "testing.set_meta"

    def state(self):
        """A set in the metadata."""
        tensors, meta = super().state()
        return tensors, {**meta, "classes": {"a": {1, 2}}}


class PerExampleLoss(Loss):
    """A loss that forgets to reduce: one value per example."""

    name = "testing.per_example"
    requires = frozenset({"labels"})

    def forward(self, ctx):
        """``[N]``, not a scalar."""
        return torch.nn.functional.cross_entropy(
            ctx.student_logits, ctx.labels.clamp_min(0), reduction="none"
        )


class NarrowStem(MLP):
    """An mlp whose stem maps to one column less than the trunk's width."""

    name = "testing.narrow_stem"
    default_for = ()

    def build_stem(self, input_shape, out_features):
        """One column short."""
        return super().build_stem(input_shape, out_features - 1)


class BrokenFeedback(FeedbackStrategy):
    """A feedback strategy that cannot even be built."""

    name = "testing.broken_feedback"

    def __init__(self, config=None):
        """Fails like a buggy constructor would."""
        raise ValueError("no rounds today")


class Plugin:
    """The plugin object."""

    @hookimpl
    def register_feedback(self, register) -> None:
        register(BrokenFeedback)

    @hookimpl
    def register_losses(self, register) -> None:
        register(ExplodingLoss)
        register(NaNAfter)
        register(PerExampleLoss)

    @hookimpl
    def register_domains(self, register) -> None:
        register(BrokenWine)
        register(BadFileWine)

    @hookimpl
    def register_encoders(self, register) -> None:
        for cls in (WideEncoder, NumpyStateEncoder, PickledStateEncoder, SetMetaEncoder):
            register(cls)

    @hookimpl
    def register_architectures(self, register) -> None:
        register(NarrowStem)


def make_host(version: str | None = "1.2.3"):
    """A host with the built-ins and this plugin (given a version, as an installed one has)."""
    from cdkd_core.host.plugin_host import PluginHost

    host = PluginHost(entry_points=False, plugins=[("faulty", Plugin())])
    host.plugins["faulty"].version = version
    return host
