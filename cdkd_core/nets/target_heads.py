"""The teacher's heads for target domains: what adapts it to a target's few labels.

A target's head is *residual*: its logits are the teacher's own logits for the target's task
(zero where the teacher has no head for it), times a fitted scale, plus a linear map of what
the teacher reads and makes of a row -- its features (the feature layer knowledge
extraction reads) joined with its input view, flattened (a float view of at most
:data:`MAX_VIEW_COLUMNS` values; integer ids are not joined). So a head with zero weights
and scale 1 is the source-trained teacher, and with weights it can be at least logistic
regression on the teacher's view (:mod:`cdkd_core.engine.probe` fits them). The heads live
beside the teacher, not inside it: the teacher's own state, checkpoints and
``teacher.checkpoint`` stay as they are.
"""

from __future__ import annotations

import torch
from torch import nn

from cdkd_core.nets.network import module_key

#: the widest flattened teacher view a head reads beside the features
MAX_VIEW_COLUMNS = 4096


def reads_view(x: torch.Tensor) -> bool:
    """Whether a head reads the teacher view ``x`` (rows first) beside the features."""
    width = x[0].numel() if len(x) else 0
    return x.is_floating_point() and width <= MAX_VIEW_COLUMNS


def head_inputs(features: torch.Tensor, x: torch.Tensor | None) -> torch.Tensor:
    """What a head reads: ``features`` [N, F], joined with the flattened view ``x`` [N, ...]
    where given (float32)."""
    features = features.float()
    if x is None:
        return features
    return torch.cat([features, x.reshape(len(x), -1).float().to(features.device)], dim=1)


class TargetHeads(nn.Module):
    """One residual linear head per adapted target domain (``Linear(inputs, classes)``) and
    whether it reads the teacher view beside the features (a buffer)."""

    def __init__(self) -> None:
        super().__init__()
        self.heads = nn.ModuleDict()

    def __contains__(self, domain: object) -> bool:
        return isinstance(domain, str) and module_key(domain) in self.heads

    def set(
        self,
        domain: str,
        weight: torch.Tensor,
        bias: torch.Tensor,
        view: bool,
        scale: float = 1.0,
    ) -> None:
        """Install ``domain``'s head: logits ``scale * teacher's + inputs @ weight.T + bias``,
        its inputs the features joined with the view where ``view``."""
        self.heads[module_key(domain)] = _head(weight.shape[1], weight.shape[0])
        head = self.heads[module_key(domain)]
        with torch.no_grad():
            head.weight.copy_(weight.float())
            head.bias.copy_(bias.float())
            head.view.fill_(view)
            head.scale.fill_(scale)

    def reads_view(self, domain: str) -> bool:
        """Whether ``domain``'s head reads the teacher view beside the features."""
        return bool(self.heads[module_key(domain)].view)

    @torch.no_grad()
    def logits(
        self,
        domain: str,
        features: torch.Tensor,
        x: torch.Tensor | None,
        base: torch.Tensor | None,
    ) -> torch.Tensor:
        """The adapted teacher's logits on ``domain``'s rows, from the teacher's ``features``
        [N, F], its input view ``x`` and its own logits ``base`` [N, C] (None: no head for the
        task), on the CPU."""
        head = self.heads[module_key(domain)]
        inputs = head_inputs(features, x if bool(head.view) else None)
        out = head(inputs.to(head.weight.device)).cpu()
        return out if base is None else out + head.scale * base.float().cpu()

    def load_state_dict(self, state, strict: bool = True, assign: bool = False):  # type: ignore[override]
        """Load heads saved by :meth:`state_dict`, creating each one the state names."""
        for key in {k.split(".")[1] for k in state if k.startswith("heads.")}:
            weight = state[f"heads.{key}.weight"]
            self.heads[key] = _head(weight.shape[1], weight.shape[0])
        return super().load_state_dict(state, strict=strict, assign=assign)


def _head(inputs: int, classes: int) -> nn.Linear:
    head = nn.Linear(inputs, classes).requires_grad_(False)
    head.register_buffer("view", torch.zeros((), dtype=torch.bool))
    head.register_buffer("scale", torch.ones(()))
    return head
