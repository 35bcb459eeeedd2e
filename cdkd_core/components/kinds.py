"""The five component kinds, as the hooks and the config name them."""

from __future__ import annotations

#: the component kinds, in the order the host collects them (hook ``register_<kind>``)
KINDS = ("domains", "architectures", "encoders", "losses", "feedback")


def kind_label(kind: str) -> str:
    """The singular noun for a component kind ("loss", "feedback strategy", ...)."""
    return {"feedback": "feedback strategy", "losses": "loss"}.get(kind, kind.removesuffix("s"))
