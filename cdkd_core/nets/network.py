"""The multi-domain network: stems per input space, one shared trunk, heads per task."""

from __future__ import annotations

import torch
from torch import nn


def module_key(name: str) -> str:
    """A ``ModuleDict`` key for a domain, input space or task name (no dots allowed)."""
    return name.replace(".", "~")


class MultiDomainNet(nn.Module):
    """``head[task](trunk(stem[space](x)))``.

    The trunk's output is the network's feature layer by default (read by a forward hook
    on the module path ``"trunk"``); stems map each input space to ``trunk.in_features``.
    """

    def __init__(
        self,
        stems: dict[str, nn.Module],
        trunk: nn.Module,
        heads: dict[str, nn.Module],
    ) -> None:
        super().__init__()
        self.stems = nn.ModuleDict({module_key(k): v for k, v in stems.items()})
        self.trunk = trunk
        self.heads = nn.ModuleDict({module_key(k): v for k, v in heads.items()})

    def has_stem(self, space: str) -> bool:
        """Whether inputs of ``space`` can be read."""
        return module_key(space) in self.stems

    def has_head(self, task: str) -> bool:
        """Whether ``task`` can be predicted."""
        return module_key(task) in self.heads

    def features(self, x: torch.Tensor, space: str) -> torch.Tensor:
        """Trunk features ``[N, trunk.out_features]`` of inputs from ``space``."""
        return self.trunk(self.stems[module_key(space)](x))

    def forward(self, x: torch.Tensor, space: str, task: str) -> torch.Tensor:
        """Logits ``[N, classes(task)]``."""
        return self.heads[module_key(task)](self.features(x, space))


def count_parameters(model: nn.Module) -> int:
    """Number of parameters."""
    return sum(p.numel() for p in model.parameters())
