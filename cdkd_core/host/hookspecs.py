"""The hooks a cdkd plugin may implement.

Each hook receives ``register``, a callable owned by the core: call it once per component
class. It records the plugin that registered the component, refuses a name already taken
within the kind (naming both plugins), and checks the class (a lowercase ``name``, a
pydantic ``Config``, a docstring, the right base class). Each plugin's implementation is
called on its own, so a plugin that raises is recorded as failed and the others still
register.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

PROJECT = "cdkd"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

Register = Callable[[type], None]


@hookspec
def register_domains(register: Register) -> None:
    """Register :class:`cdkd_core.Domain` subclasses (named ``<plugin>.<dataset>``)."""


@hookspec
def register_architectures(register: Register) -> None:
    """Register :class:`cdkd_core.Architecture` subclasses (stems, trunks)."""


@hookspec
def register_encoders(register: Register) -> None:
    """Register :class:`cdkd_core.KnowledgeEncoder` subclasses."""


@hookspec
def register_losses(register: Register) -> None:
    """Register :class:`cdkd_core.Loss` subclasses."""


@hookspec
def register_feedback(register: Register) -> None:
    """Register :class:`cdkd_core.FeedbackStrategy` subclasses."""
