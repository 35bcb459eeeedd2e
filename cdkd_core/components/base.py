"""The base every plugin component shares: a name, a pydantic ``Config`` and a docstring."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import ConfigDict

from cdkd_core.components.strict_numbers import NoBoolNumbers


class ComponentConfig(NoBoolNumbers):
    """Base for a component's parameters; unknown keys are errors, and so is a boolean
    where a number is wanted."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Component:
    """A named, configurable building block registered by a plugin.

    Subclasses set ``name`` (lowercase, unique within its kind), a nested ``Config``
    (a :class:`ComponentConfig` subclass) and a docstring. They are built from validated
    params with :meth:`from_params`; heavy imports belong in methods, not at module level.
    """

    name: ClassVar[str] = ""
    Config: ClassVar[type[ComponentConfig]] = ComponentConfig

    def __init__(self, config: ComponentConfig | None = None) -> None:
        self.config = config if config is not None else self.Config()

    @classmethod
    def from_params(cls, params: dict[str, Any] | None = None) -> Component:
        """Validate ``params`` against ``Config`` and build the component."""
        return cls(cls.Config.model_validate(params or {}))

    @classmethod
    def summary(cls) -> str:
        """The first line of the component's docstring."""
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""
