"""The base every plugin component shares: a name, a pydantic ``Config`` and a docstring."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import ConfigDict

from cdkd_core.components.strict_numbers import NoBoolNumbers


class ComponentConfig(NoBoolNumbers):
    """Base for a component's parameters; unknown keys are errors, and so is a boolean
    where a number is wanted.

    A pydantic model, frozen (a component's params do not change once built), with no
    ``inf``/``nan`` numbers. A component declares its params as a nested ``Config``
    subclass; ``cdkd validate`` checks a config's ``params`` against it before anything
    trains, and ``cdkd schema`` includes it. Give each field a ``description``: it is what
    ``cdkd components`` shows.

    Examples:
        >>> from pydantic import Field, ValidationError
        >>> from cdkd_core.plugin_api import ComponentConfig
        >>> class Config(ComponentConfig):
        ...     width: int = Field(8, ge=1, description="Hidden units.")
        >>> Config(width=16).width
        16
        >>> for bad in ({"widht": 16}, {"width": True}):
        ...     try:
        ...         Config(**bad)
        ...     except ValidationError as exc:
        ...         print(exc.errors()[0]["type"])
        extra_forbidden
        value_error
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Component:
    """A named, configurable building block registered by a plugin.

    Subclasses set ``name`` (lowercase, unique within its kind), a nested ``Config``
    (a :class:`ComponentConfig` subclass) and a docstring. They are built from validated
    params with :meth:`from_params`; heavy imports belong in methods, not at module level.

    Args:
        config: The validated params (default: ``Config()``, every default); the
            component reads them as ``self.config``.

    Examples:
        >>> from pydantic import Field
        >>> from cdkd_core.plugin_api import ComponentConfig, Loss
        >>> class ScaledLoss(Loss):
        ...     "Mean squared student logits, scaled."
        ...     name = "scaled"
        ...     class Config(ComponentConfig):
        ...         scale: float = Field(1.0, gt=0, description="The factor.")
        ...     def forward(self, ctx):
        ...         return self.config.scale * ctx.student_logits.pow(2).mean()
        >>> ScaledLoss.from_params({"scale": 2.0}).config.scale
        2.0
        >>> ScaledLoss.summary()
        'Mean squared student logits, scaled.'
    """

    name: ClassVar[str] = ""
    Config: ClassVar[type[ComponentConfig]] = ComponentConfig

    def __init__(self, config: ComponentConfig | None = None) -> None:
        self.config = config if config is not None else self.Config()

    @classmethod
    def from_params(cls, params: dict[str, Any] | None = None) -> Component:
        """Validate ``params`` against ``Config`` and build the component.

        Args:
            params: The ``params`` of the component's config entry (default: none).

        Returns:
            The component, with ``self.config`` the validated ``Config``.

        Raises:
            pydantic.ValidationError: ``params`` do not fit ``Config`` (an unknown key,
                a wrong type, a value out of range).
        """
        return cls(cls.Config.model_validate(params or {}))

    @classmethod
    def summary(cls) -> str:
        """The first line of the component's docstring.

        Returns:
            What ``cdkd components`` shows for the component (empty without a docstring).
        """
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""
