"""An ensemble teacher: K networks of one architecture, read and distilled as one.

Its class probabilities are the mean of its members' (the classic ensemble teacher of
distillation), so its "logits" are ``log(mean_k softmax(z_k))``: a softmax of them gives
the averaged soft labels exactly, and ``kd`` at temperature T softens that average. Its
feature layer, the module ``trunk`` a forward hook reads, joins the members' trunk
features (concatenated, or their mean). Every other layer of a member stays reachable by
its path, e.g. ``members.0.trunk``.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from cdkd_core.nets.network import MultiDomainNet, module_key


class JoinedFeatures(nn.Module):
    """The ensemble's feature layer: the members' features ``[N, F]`` each, concatenated to
    ``[N, K*F]`` or averaged to ``[N, F]``. No parameters."""

    def __init__(self, mode: Literal["concat", "mean"], width: int, members: int) -> None:
        super().__init__()
        self.mode = mode
        self.in_features = width
        self.out_features = width * members if mode == "concat" else width

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        if self.mode == "concat":
            return torch.cat(features, dim=1)
        return torch.stack(features).mean(dim=0)

    def extra_repr(self) -> str:
        return f"mode={self.mode}, out_features={self.out_features}"


class TeacherEnsemble(nn.Module):
    """K :class:`MultiDomainNet` members with one stem per input space and one head per task
    each (built alike, from different seeds), seen as one network: ``forward`` gives the
    log of the members' mean class probabilities, ``features`` their joined trunk features.
    Its size is the sum of its members'."""

    def __init__(
        self, members: list[MultiDomainNet], features: Literal["concat", "mean"] = "concat"
    ) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)
        self.trunk = JoinedFeatures(features, members[0].trunk.out_features, len(members))

    def has_stem(self, space: str) -> bool:
        """Whether inputs of ``space`` can be read (by every member)."""
        return all(m.has_stem(space) for m in self.members)

    def has_head(self, task: str) -> bool:
        """Whether ``task`` can be predicted (by every member)."""
        return all(m.has_head(task) for m in self.members)

    def _member_features(self, x: torch.Tensor, space: str) -> list[torch.Tensor]:
        return [m.features(x, space) for m in self.members]

    def features(self, x: torch.Tensor, space: str) -> torch.Tensor:
        """The members' trunk features of inputs from ``space``, joined."""
        return self.trunk(self._member_features(x, space))

    def forward(self, x: torch.Tensor, space: str, task: str) -> torch.Tensor:
        """``log(mean_k softmax(z_k))`` ``[N, classes(task)]``: its softmax is the members'
        averaged class probabilities. The joined feature layer runs too, so a hook on
        ``trunk`` reads the ensemble's features in the same pass."""
        features = self._member_features(x, space)
        self.trunk(features)
        key = module_key(task)
        return mean_probability_logits(
            [m.heads[key](f) for m, f in zip(self.members, features, strict=True)]
        )


def mean_probability_logits(logits: list[torch.Tensor]) -> torch.Tensor:
    """``log(mean_k softmax(z_k))`` of the members' logits ``z_k`` (in float32): logits
    whose softmax is the members' averaged class probabilities."""
    log_probs = torch.stack([F.log_softmax(z.float(), dim=-1) for z in logits])
    return torch.logsumexp(log_probs, dim=0) - math.log(len(logits))
