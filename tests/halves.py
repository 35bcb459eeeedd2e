"""An in-process test plugin: the digits data cut into two disjoint halves that share one
input space and one task, so roles target/unseen and soft labels can be exercised."""

from __future__ import annotations

import numpy as np
import torch
from pydantic import Field

from cdkd_core import ComponentConfig, Domain, DomainData, Split, hookimpl
from cdkd_core.data.splits import stratified_split_indices


class _Half(Domain):
    parity = 0

    class Config(ComponentConfig):
        """Cap on examples."""

        max_examples: int = Field(400, ge=30)
        view_params: int = Field(0, ge=0)
        #: keep only this share of the rows of digits 5-9 (a shifted class prior)
        keep_high: float = Field(1.0, gt=0, le=1)

    def load(self, seed: int) -> DomainData:
        """Every other digit image, stratified splits."""
        from sklearn.datasets import load_digits

        bunch = load_digits()
        x = bunch.data.reshape(-1, 1, 8, 8)[self.parity :: 2][: self.config.max_examples]
        y = bunch.target[self.parity :: 2][: self.config.max_examples]
        if self.config.keep_high < 1:  # every row of 0-4, the first share of each of 5-9
            keep = np.ones(len(y), dtype=bool)
            for c in range(5, 10):
                idx = np.flatnonzero(y == c)
                keep[idx[round(len(idx) * self.config.keep_high) :]] = False
            x, y = x[keep], y[keep]
        index = stratified_split_indices(y, 0.2, 0.2, seed=0)
        xt, yt = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y)
        return DomainData(
            modality="image",
            task="digit",
            classes=[str(c) for c in range(10)],
            splits={k: Split.single_view(xt[v], yt[v]) for k, v in index.items()},
            input_space="digits8x8",
            teacher_view_params=self.config.view_params,
        )


class DigitsA(_Half):
    """Even-indexed half of the digits."""

    name = "testing.digits_a"
    parity = 0


class DigitsB(_Half):
    """Odd-indexed half of the digits."""

    name = "testing.digits_b"
    parity = 1


class Plugin:
    """The plugin object."""

    @hookimpl
    def register_domains(self, register) -> None:
        register(DigitsA)
        register(DigitsB)


def make_host():
    """A host with the built-ins and this plugin."""
    from cdkd_core.host.plugin_host import PluginHost

    return PluginHost(entry_points=False, plugins=[("testing", Plugin())])


__all__ = ["DigitsA", "DigitsB", "Plugin", "make_host", "np"]
