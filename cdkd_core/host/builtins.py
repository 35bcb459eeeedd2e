"""The core's own components, registered through the same hooks as any installed plugin.

The built-in features are listed here explicitly, in registration order. Each is a module
of :mod:`cdkd_core.builtins` with one ``@hookimpl register_<kind>`` per kind it provides,
so a feature spanning kinds registers all of its components itself (the knowledge graph
registers an encoder and a loss). Users see one built-in plugin per kind, ``cdkd.<kind>``
(in ``cdkd plugins list``, ``cdkd components`` and the ``cdkd.<kind>:<name>`` clash
syntax): its hook calls that kind's hook of every feature, in the order listed.
"""

from __future__ import annotations

from importlib import import_module
from types import SimpleNamespace

from cdkd_core.host.hookspecs import Register, hookimpl

#: The built-in feature modules, in registration order.
FEATURES = (
    "cdkd_core.builtins.domains",
    "cdkd_core.builtins.architectures",
    "cdkd_core.builtins.estimators",
    "cdkd_core.builtins.encoders",
    "cdkd_core.builtins.losses",
    "cdkd_core.builtins.knowledge_graph",
    "cdkd_core.builtins.feedback",
)


def builtin_plugins(kinds: tuple[str, ...]) -> dict[str, str]:
    """The built-in plugins' names (``cdkd.<kind>``) and the module each reports (the one
    holding the kind's own components)."""
    return {f"cdkd.{kind}": f"cdkd_core.builtins.{kind}" for kind in kinds}


def kind_plugin(kind: str) -> object:
    """The built-in plugin of ``kind``: a plugin object whose ``register_<kind>`` hook calls
    that hook of each feature providing ``kind``. Imports the features."""
    hook_name = f"register_{kind}"
    hooks = [
        getattr(module, hook_name)
        for module in map(import_module, FEATURES)
        if hasattr(module, hook_name)
    ]

    def register_kind(register: Register) -> None:
        for hook in hooks:
            hook(register=register)

    register_kind.__name__ = register_kind.__qualname__ = hook_name
    return SimpleNamespace(**{hook_name: hookimpl(register_kind)})
