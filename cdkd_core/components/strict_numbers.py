"""Booleans are not numbers: a base for config models that refuses ``true``/``false`` where
a field wants an int or a float.

pydantic's lax mode reads ``epochs: true`` as 1 (a ``bool`` is an ``int`` in Python), so
a slip in a YAML file would pass validation. Full strict mode would also refuse what a
config legitimately holds — ``lr: 1`` for a float, ``--set train.lr=1e-3`` (PyYAML reads
``1e-3`` as a string) — so only booleans are refused, for every field of every model
deriving from :class:`NoBoolNumbers` (the pipeline config's models and every component's
``Config``), in lists, tuples and mappings of numbers too.
"""

from __future__ import annotations

import types
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationInfo, field_validator

_SEQUENCES = (list, tuple, set, frozenset, Sequence)
_MAPPINGS = (dict, Mapping)


def _members(annotation: Any) -> tuple[Any, ...]:
    """The alternatives of a union (the annotation itself otherwise), ``Annotated`` and
    ``Optional`` unwrapped."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (Union, types.UnionType):
        return tuple(m for a in get_args(annotation) for m in _members(a))
    return (annotation,)


def _takes_bool(annotation: Any) -> bool:
    """Whether a (non-union) annotation accepts a boolean as itself."""
    if annotation is Any or annotation is object or annotation is bool:
        return True
    if get_origin(annotation) is Literal:
        return any(isinstance(v, bool) for v in get_args(annotation))
    return isinstance(annotation, type) and issubclass(annotation, bool)


def _is_number(annotation: Any) -> bool:
    """Whether a (non-union) annotation is an int or float type (or a Literal of them)."""
    if get_origin(annotation) is Literal:
        return any(
            isinstance(v, int | float) and not isinstance(v, bool) for v in get_args(annotation)
        )
    return (
        isinstance(annotation, type)
        and issubclass(annotation, int | float)
        and not issubclass(annotation, bool)
    )


def boolean_for_number(annotation: Any, value: Any) -> str | None:
    """Where ``value`` puts a boolean that ``annotation`` wants as a number: ``""`` for the
    value itself, ``"[2]"`` or ``"['key']"`` inside a container, ``None`` where there is
    none."""
    members = _members(annotation)
    if isinstance(value, bool):
        if any(_takes_bool(m) for m in members):
            return None
        return "" if any(_is_number(m) for m in members) else None
    if isinstance(value, list | tuple) or isinstance(value, Mapping):
        for member in members:
            origin, args = get_origin(member), get_args(member)
            if isinstance(value, Mapping) and origin in _MAPPINGS and len(args) == 2:
                items: Any = ((repr(k), args[1], v) for k, v in value.items())
            elif not isinstance(value, Mapping) and origin in _SEQUENCES and args:
                if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
                    pairs = zip(args, value, strict=False)
                    items = ((str(i), a, v) for i, (a, v) in enumerate(pairs))
                else:
                    items = ((str(i), args[0], v) for i, v in enumerate(value))
            else:
                continue
            for key, inner, item in items:
                where = boolean_for_number(inner, item)
                if where is not None:
                    return f"[{key}]{where}"
    return None


class NoBoolNumbers(BaseModel):
    """A model whose int and float fields refuse ``true``/``false`` (ints are still
    floats, and numeric strings still numbers, as pydantic's lax mode has them)."""

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if field is None or (isinstance(value, str | int | float) and not isinstance(value, bool)):
            return value
        where = boolean_for_number(field.annotation, value)
        if where is not None:
            if where:
                raise ValueError(f"expected a number at {where}, got a boolean")
            raise ValueError(f"expected a number, got a boolean ({str(value).lower()})")
        return value
