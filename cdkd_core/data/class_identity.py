"""One class identity per task: domains that share a ``task`` share a head, so class ``i``
must mean the same thing in each of them.

The rule (documented in docs/concepts.md#class-identity): class **names** are the identity,
compared as strings exactly (after ``str()``). The first domain of a task (in config order)
fixes the task's class order. Another domain of the task

- with the same names in the same order is used as it is;
- with the same names in another order has its labels (every split) mapped by name to the
  task's order and its ``classes`` replaced by it, with one warning naming both domains and
  both orders;
- with other names, another number of classes, or a name listed twice in a different order
  is refused with a :class:`~cdkd_core.errors.ConfigError` naming both domains, the task and
  both class lists.

Names are all that is compared: two domains whose classes are both ``0, 1`` but mean
opposite things cannot be told apart here; such a domain must name its classes (e.g. a file
domain's ``classes:`` param) so that equal names mean equal classes.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import replace

import torch

from cdkd_core.components.domain import DomainData, Split
from cdkd_core.errors import ConfigError


def _names(data: DomainData) -> list[str]:
    return [str(c) for c in data.classes]


def _mismatch(
    task: str, first: tuple[int, str, list[str]], other: tuple[int, str, list[str]]
) -> ConfigError:
    (i, a, a_names), (j, b, b_names) = first, other
    if len(a_names) != len(b_names):
        why = f"{len(a_names)} classes vs {len(b_names)}"
    elif sorted(a_names) == sorted(b_names):
        why = "a class name listed twice, so they cannot be matched by name"
    else:
        only = sorted(set(b_names) - set(a_names)) or sorted(set(a_names) - set(b_names))
        why = f"class name(s) {only} in one only"
    return ConfigError(
        f"domains.{j}: domain {b!r} shares task {task!r} with domain {a!r} (domains.{i}) but "
        f"not its classes ({why}): {a!r} has {a_names}, {b!r} has {b_names}; class names are "
        "the identity of a task's classes. Give the domains different `task` ids, or relabel "
        "them (a file domain's `classes:` param sets the names and their order)"
    )


def _remapped(data: DomainData, order: list[str]) -> DomainData:
    """``data`` with its labels (every split) mapped by name to ``order``."""
    index = {name: k for k, name in enumerate(order)}
    table = torch.tensor([index[name] for name in _names(data)], dtype=torch.long)
    splits = {
        name: Split(split.teacher_x, split.student_x, table[split.y])
        for name, split in data.splits.items()
    }
    return replace(data, classes=list(order), splits=splits)


def align_classes(domains: Sequence[tuple[str, DomainData]]) -> list[tuple[DomainData, str | None]]:
    """Each ``(name, data)`` of ``domains`` (in config order) with its labels in its task's
    class order, and the note (one line, also warned) when they were mapped; a
    :class:`ConfigError` for domains of one task whose class names differ."""
    first: dict[str, tuple[int, str, list[str]]] = {}
    out: list[tuple[DomainData, str | None]] = []
    for j, (name, data) in enumerate(domains):
        names = _names(data)
        if data.task not in first:
            first[data.task] = (j, name, names)
            out.append((data, None))
            continue
        i, a, order = first[data.task]
        if names == order:
            out.append((data, None))
            continue
        if sorted(names) != sorted(order) or len(set(names)) != len(names):
            raise _mismatch(data.task, first[data.task], (j, name, names))
        note = (
            f"domains.{j}: domain {name!r} lists the classes of task {data.task!r} as {names}, "
            f"domain {a!r} (domains.{i}, the task's first) as {order}; the labels of {name!r} "
            f"are mapped by name to {order}"
        )
        warnings.warn(note, stacklevel=3)
        out.append((_remapped(data, order), note))
    return out
