"""One feature identity per input space: domains that share an ``input_space`` share a stem,
so entry ``j`` of their inputs must mean the same thing in each of them.

The rule (documented in docs/components.md#tabular and docs/writing-plugins.md): where two
domains of one input space both name their features (:attr:`DomainData.feature_names`),
the two lists must be equal, entry by entry. Two tables with the same columns but other
categories (``x, y, z`` in one, ``p, q, r`` in the other) have as many one-hot features
and would otherwise be mixed in one stem silently; they are refused with a
:class:`~cdkd_core.errors.DataError` naming both domains (and their files), the column and
both category lists, or, where the columns themselves differ, the first features that
differ. Domains that do not name their features are not compared.
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike

from cdkd_core.components.domain import DomainData
from cdkd_core.config.models import DomainEntry
from cdkd_core.errors import DataError

#: Names shown in a message before "...".
SHOWN = 12


def _shown(names: Sequence[str]) -> str:
    head = ", ".join(repr(n) for n in names[:SHOWN])
    more = f", ... ({len(names) - SHOWN} more)" if len(names) > SHOWN else ""
    return f"[{head}{more}]"


def _categories(names: Sequence[str], column: str) -> list[str]:
    """The categories of one-hot column ``column`` among ``names`` (``column=category``)."""
    prefix = f"{column}="
    return [n[len(prefix) :] for n in names if n.startswith(prefix)]


def _difference(a: str, a_names: list[str], b: str, b_names: list[str]) -> str:
    """What differs between two feature lists, in words."""
    k = next(
        (i for i, (x, y) in enumerate(zip(a_names, b_names, strict=False)) if x != y),
        min(len(a_names), len(b_names)),
    )
    for name in a_names[k : k + 1] + b_names[k : k + 1]:
        column, one_hot, _ = name.partition("=")
        if not one_hot:
            continue
        a_cats, b_cats = _categories(a_names, column), _categories(b_names, column)
        if a_cats and b_cats and a_cats != b_cats:
            return (
                f"column {column!r} has the categories {_shown(a_cats)} in {a} but "
                f"{_shown(b_cats)} in {b} (the categories of each train split)"
            )

    def at(names: list[str]) -> str:
        return repr(names[k]) if k < len(names) else "absent"

    return (
        f"feature {k + 1} is {at(a_names)} in {a} but {at(b_names)} in {b} ({a} has "
        f"{len(a_names)} features {_shown(a_names)}, {b} has {len(b_names)} "
        f"{_shown(b_names)})"
    )


def check_feature_names(domains: Sequence[tuple[str, str | None, str, DomainData]]) -> None:
    """Refuse domains of one input space whose feature names differ.

    Args:
        domains: ``(name, file, input space, data)`` of each loaded domain, in config
            order: its name in results, and the file it read where known (for messages).

    Raises:
        DataError: Two domains of one input space both name their features, differently.
    """
    first: dict[str, tuple[str, str, list[str]]] = {}
    for name, source, space, data in domains:
        if data.feature_names is None:
            continue
        names = list(data.feature_names)
        label = repr(name) + (f" ({source})" if source else "")
        if space not in first:
            first[space] = (repr(name), label, names)
            continue
        a, a_label, a_names = first[space]
        if names != a_names:
            what = _difference(a, a_names, repr(name), names)
            raise DataError(
                f"domains {a_label} and {label} share input space {space!r} (one stem) but "
                f"their features differ: {what}; a shared input space needs the same feature "
                "columns in the same order and, for categorical columns, the same categories: "
                "make them match, or give the domains different input_space values"
            )


def check_domains(entries: Sequence[DomainEntry], loaded: Sequence[DomainData]) -> None:
    """:func:`check_feature_names` on the configured domains (``entries``, in config order)
    and what each loaded; a domain reading a file (a ``path`` param) is named with it.

    Args:
        entries: The config's domain entries.
        loaded: What each domain's ``load`` returned.

    Raises:
        DataError: See :func:`check_feature_names`.
    """
    named = []
    for entry, data in zip(entries, loaded, strict=True):
        path = entry.params.get("path")
        source = str(path) if isinstance(path, str | PathLike) else None
        named.append((entry.key, source, data.input_space or entry.name, data))
    check_feature_names(named)
