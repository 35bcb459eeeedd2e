"""Names a module re-exports lazily: each is imported from the module that defines it on
first use, so importing the re-exporting module (``cdkd_core``, ``cdkd_core.plugin_api``,
``cdkd_core.experimental``) stays cheap."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_exports(
    namespace: dict[str, Any], sources: Mapping[str, tuple[str, ...]]
) -> tuple[dict[str, str], Callable[[str], Any], Callable[[], list[str]]]:
    """The lazy name map of a module whose globals are ``namespace``, and the module-level
    ``__getattr__`` and ``__dir__`` (PEP 562) that serve it.

    ``sources`` is the module's one name list: each defining module and the names taken
    from it. A name is looked up once, then kept in ``namespace``."""
    lazy = {name: module for module, names in sources.items() for name in names}
    exporter = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        module = lazy.get(name)
        if module is None:
            raise AttributeError(f"module {exporter!r} has no attribute {name!r}")
        value = getattr(import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(namespace.get("__all__", ())))

    return lazy, __getattr__, __dir__
