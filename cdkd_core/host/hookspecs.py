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
"""The decorator that marks a plugin's hook implementations (pluggy's ``HookimplMarker``
for the project ``cdkd``).

A plugin is a module (or an object) with functions named after the hooks,
``register_domains``, ``register_architectures``, ``register_encoders``,
``register_losses`` and ``register_feedback``, each decorated with ``@hookimpl`` and taking
``register`` (a :data:`Register`). A package declares the module as an entry point in the
group ``cdkd``; :func:`~cdkd_core.testing.make_host` loads one in-process.

Examples:
    >>> from cdkd_core.plugin_api import Loss, hookimpl
    >>> class ZeroLoss(Loss):
    ...     "A loss that adds nothing (a placeholder)."
    ...     name = "zero"
    ...     def forward(self, ctx):
    ...         return None
    >>> class Plugin:  # in a package: a module with the function at its top level
    ...     @hookimpl
    ...     def register_losses(self, register):
    ...         register(ZeroLoss)
    >>> from cdkd_core.testing import make_host
    >>> make_host(("zero", Plugin())).components("losses")["zero"].plugin
    'zero'
"""

Register = Callable[[type], None]
"""The type of ``register``, the argument of every hook: call it once per component class.

It records the plugin that registered the class and checks the class: a lowercase
``name``, a pydantic ``Config``, a docstring, the right base class. A class that fails the
check raises, and the plugin is marked failed with the reason (``cdkd plugins list``). A
name another plugin registers too is kept for both: a config selects one by its qualified
name ``<plugin>:<name>``.

Examples:
    >>> from cdkd_core.plugin_api import Domain, Register, hookimpl
    >>> class TableDomain(Domain):
    ...     "A table of mine."
    ...     name = "mine.table"
    >>> @hookimpl
    ... def register_domains(register: Register) -> None:
    ...     register(TableDomain)
"""


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
