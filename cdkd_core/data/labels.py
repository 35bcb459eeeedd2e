"""Label values -> class codes: one rule for every domain that reads labels from a user's
files (``tabular`` and the plugins' file and folder domains).

The rule (documented in docs/components.md#labels):

- Labels are stripped of surrounding whitespace.
- Without ``classes``: labels equal as numbers (``1``, ``1.0``, ``+1``, ``1e0``) are one
  class, named by its most frequent spelling (the first seen on a tie). Labels that differ
  only in case or in the separators between words (``Yes``/``yes``, ``no risk``/``no_risk``)
  are *not* merged: they are refused, naming the file, the column and the values, with the
  hint to give ``classes``. The classes are sorted: by value when every class is a number,
  else as strings.
- With ``classes``: their order is the class order. Each label matches a class exactly, else
  as a number, else ignoring case where exactly one class matches; a label matching none is
  an error naming the file and line. A listed class with no example is allowed (a head
  shared with other domains of the task may need it) and warned about.
"""

from __future__ import annotations

import math
import re
import warnings
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
from pydantic import AfterValidator, BeforeValidator

from cdkd_core.data.problems import Problems, where
from cdkd_core.errors import DataError

#: Distinct values shown in a message before "...".
SHOWN = 20


#: A number with a decimal comma whose integer part may group thousands in threes by ``.``
#: or a space (one kind per cell): ``1,5``, ``-1.234,56``, ``1 234 567``, ``1,5e3``.
_COMMA_NUMBER = re.compile(
    r"[+-]?(?:\d+|[1-9]\d{0,2}(?P<sep>[. \u00a0\u202f])\d{3}(?:(?P=sep)\d{3})*)?(?:,\d*)?"
    r"(?:[eE][+-]?\d+)?"
)


def parse_number(text: str, decimal: str = ".") -> float | None:
    """The number a cell spells (stripped; ``inf`` and ``1e400`` give infinities), or None
    for anything else, including ``nan`` and Python's ``1_000``: the core's reading of a
    number in a user's file (:class:`TabularEncoder` reads cells with it).

    With ``decimal=","`` the comma is the decimal mark (``1,5`` is 1.5) and ``.`` or a
    space may group the integer part's thousands in threes (``1.234,5``, ``1 234``); a
    point is then no decimal mark (``1.5`` is not a number, ``1.500`` is 1500).

    Args:
        text: A cell.
        decimal: The decimal mark, ``"."`` or ``","``.

    Returns:
        The number, or None where the cell is not one.

    Raises:
        ValueError: ``decimal`` is neither ``"."`` nor ``","``.

    Examples:
        >>> from cdkd_core.plugin_api import parse_number
        >>> parse_number(" 1.5 "), parse_number("1,5"), parse_number("1_000")
        (1.5, None, None)
        >>> parse_number("1,5", decimal=","), parse_number("-1.234,5", decimal=",")
        (1.5, -1234.5)
        >>> parse_number("1.5", decimal=",") is None
        True
    """
    text = text.strip()
    if not text or "_" in text:
        return None
    if decimal == ",":
        if any(c.isdigit() for c in text):
            match = _COMMA_NUMBER.fullmatch(text)
            if match is None:
                return None
            if match["sep"]:
                text = text.replace(match["sep"], "")
        text = text.replace(",", ".")
    elif decimal != ".":
        raise ValueError(f"decimal must be '.' or ',', got {decimal!r}")
    try:
        value = float(text)
    except ValueError:
        return None
    return None if math.isnan(value) else value


def _finite_number(text: str) -> float | None:
    value = parse_number(text)
    return value if value is not None and math.isfinite(value) else None


def _spelling(text: str) -> str:
    """What two spellings of one value share: case and the separators between words
    (spaces, ``_``, ``-``) ignored."""
    return re.sub(r"(?<=\w)[\s_\-]+(?=\w)", " ", text.casefold())


def _shown(values: Sequence[str]) -> str:
    """Values as plain quoted strings (``'yes'``, never ``np.str_('yes')``), at most SHOWN."""
    head = ", ".join(repr(str(v)) for v in values[:SHOWN])
    more = f", ... ({len(values) - SHOWN} more)" if len(values) > SHOWN else ""
    return f"[{head}{more}]"


def check_classes(classes: list[str] | None) -> list[str] | None:
    """A ``classes`` param: at least two, stripped, non-empty and distinct (also as numbers:
    ``1`` and ``1.0`` are one class); a ``ValueError`` naming the duplicate otherwise."""
    if classes is None:
        return None
    out = [str(c).strip() for c in classes]
    if len(out) < 2:
        raise ValueError("classes needs at least two class names")
    if any(not c for c in out):
        raise ValueError("classes holds an empty name")
    seen: dict[object, str] = {}
    for name in out:
        number = _finite_number(name)
        key = ("number", number) if number is not None else ("text", name)
        if key in seen:
            raise ValueError(f"classes lists one class twice: {seen[key]!r} and {name!r}")
        seen[key] = name
    return out


def _numbers_as_strings(value: object) -> object:
    """YAML ``classes: [0, 1]`` reads as numbers; class names are strings."""
    if isinstance(value, list | tuple):
        return [
            str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v for v in value
        ]
    return value


ClassList = Annotated[
    list[str] | None, BeforeValidator(_numbers_as_strings), AfterValidator(check_classes)
]
"""The type of a domain's ``classes`` param (``list[str] | None``, numbers accepted).

At least two names, stripped, non-empty and distinct (also as numbers: ``1`` and ``1.0``
are one class); YAML numbers (``classes: [0, 1]``) become strings. Pair it with
:data:`CLASSES_HELP` and pass the value to :func:`encode_labels`.

Examples:
    >>> from pydantic import Field
    >>> from cdkd_core.plugin_api import CLASSES_HELP, ClassList, ComponentConfig
    >>> class Config(ComponentConfig):
    ...     classes: ClassList = Field(None, description=CLASSES_HELP)
    >>> Config(classes=[0, 1]).classes, Config().classes
    (['0', '1'], None)
"""

CLASSES_HELP = (
    "Class names in order (class i is classes[i]); labels match exactly, as numbers, or "
    "ignoring case. Default: the distinct labels, sorted."
)
"""The description of a domain's ``classes`` param (what ``cdkd components`` shows).

Examples:
    >>> from cdkd_core.plugin_api import CLASSES_HELP
    >>> CLASSES_HELP.startswith("Class names in order")
    True
"""


@dataclass
class Labels:
    """Class names and one class code per label (-1 where the label is missing or matches
    no class: a problem was recorded for it)."""

    classes: list[str]
    codes: np.ndarray


def _own_classes(
    values: list[str], valid: list[bool], path: Path | str, column: str, problems: Problems
) -> tuple[list[str], dict[str, int]]:
    """Classes found in the labels themselves, and each spelling's class index."""
    groups: dict[object, Counter[str]] = {}
    for value, ok in zip(values, valid, strict=True):
        if not ok:
            continue
        number = _finite_number(value)
        key = ("number", number) if number is not None else ("text", value)
        groups.setdefault(key, Counter())[value] += 1
    named = [(key, counts.most_common(1)[0][0]) for key, counts in groups.items()]
    texts: dict[str, list[str]] = {}
    for key, name in named:
        if key[0] == "text":
            texts.setdefault(_spelling(name), []).append(name)
    clashes = sorted(name for names in texts.values() if len(names) > 1 for name in names)
    if clashes:
        distinct = sorted({name for _, name in named})
        problems.add(
            f"the label values {_shown(clashes)} differ only in case or separators, so they "
            "may be spellings of one class; they are not merged by guessing. Give the domain "
            "`classes:` (the class names in order; a label then matches a class exactly, as a "
            f"number, or ignoring case), or fix the file. Distinct labels: {_shown(distinct)}",
            column=column,
        )
    if all(key[0] == "number" for key, _ in named):
        named.sort(key=lambda item: item[0][1])  # type: ignore[index]
    else:
        named.sort(key=lambda item: item[1])
    index = {}
    for i, (key, _) in enumerate(named):
        for spelling in groups[key]:
            index[spelling] = i
    return [name for _, name in named], index


def encode_labels(
    values: Sequence[str],
    *,
    path: Path | str,
    column: str,
    lines: Sequence[int | None] | None = None,
    classes: Sequence[str] | None = None,
    missing: Collection[str] = ("",),
    problems: Problems | None = None,
) -> Labels:
    """Class names and codes of ``values`` (one label per example) by the module's rule.

    ``lines`` gives each label's file line for messages; ``missing`` the tokens read as a
    missing label (matched ignoring case). Problems (a missing label, one matching none of
    ``classes``, labels differing only in case) are added to ``problems`` when given (the
    caller raises them with its own), else raised here as one :class:`DataError`. A single
    class without ``classes`` is a :class:`DataError` too.

    The rule: without ``classes``, labels equal as numbers (``1``, ``1.0``) are one class,
    labels differing only in case or separators (``Yes``/``yes``) are refused, and the
    classes are sorted (by value when all are numbers). With ``classes``, their order is
    the class order and a label matches one exactly, else as a number, else ignoring case.

    Args:
        values: One label per example (e.g. ``Table.labels(...)``).
        path: The file, for messages.
        column: The label column, for messages.
        lines: Each label's line in the file, for messages.
        classes: The class names in order (a domain's ``classes`` param), or ``None``.
        missing: Tokens read as a missing label, matched ignoring case.
        problems: Where the core collects a file's problems; leave it ``None``.

    Returns:
        ``Labels``: ``classes`` (the class names) and ``codes`` (an int64 array, one class
        index per value).

    Raises:
        DataError: A label is missing or matches no class, labels differ only in case, or
            one class only (without ``classes``); every problem in one message.

    Examples:
        >>> from cdkd_core.plugin_api import encode_labels
        >>> labels = encode_labels(["1", "0", "1.0", "2"], path="t.csv", column="label")
        >>> labels.classes, labels.codes.tolist()
        (['0', '1', '2'], [1, 0, 1, 2])
        >>> labels = encode_labels(["yes", "No", "no"], path="t.csv", column="label",
        ...                        classes=["no", "yes"])
        >>> labels.codes.tolist()
        [1, 0, 0]
        >>> encode_labels(["yes", "maybe"], path="t.csv", column="label", lines=[2, 3],
        ...               classes=["no", "yes"])
        Traceback (most recent call last):
        ...
        cdkd_core.errors.DataError: t.csv, line 3, column 'label': label 'maybe' is not one...
    """
    own = problems is None
    problems = Problems(path) if problems is None else problems
    before = len(problems)
    values = [str(v).strip() for v in values]
    lines = list(lines) if lines is not None else [None] * len(values)
    tokens = {m.casefold() for m in missing}
    valid = []
    for value, line in zip(values, lines, strict=True):
        ok = value.casefold() not in tokens and bool(value)
        if not ok:
            token = f" ({value!r} is a missing-value token)" if value else ""
            problems.add(f"label {column!r} is missing{token}", line)
        valid.append(ok)
    codes = np.full(len(values), -1, dtype=np.int64)
    if classes is None:
        names, index = _own_classes(values, valid, path, column, problems)
        for i, (value, ok) in enumerate(zip(values, valid, strict=True)):
            if ok:
                codes[i] = index[value]
        if len(names) == 1 and len(problems) == before:
            raise DataError(
                f"{path}: label column {column!r} holds the single value {names[0]!r}; "
                "a task needs at least two classes"
            )
    else:
        names = list(classes)
        exact = {name: i for i, name in enumerate(names)}
        numbers = {_finite_number(name): i for i, name in enumerate(names)}
        numbers.pop(None, None)
        folded: dict[str, list[int]] = {}
        for i, name in enumerate(names):
            folded.setdefault(name.casefold(), []).append(i)
        for i, (value, ok, line) in enumerate(zip(values, valid, lines, strict=True)):
            if not ok:
                continue
            code = exact.get(value)
            if code is None:
                code = numbers.get(_finite_number(value))
            if code is None and len(folded.get(value.casefold(), ())) == 1:
                code = folded[value.casefold()][0]
            if code is None:
                problems.add(
                    f"label {value!r} is not one of the classes {_shown(names)}", line, column
                )
            else:
                codes[i] = code
        absent = [names[c] for c in range(len(names)) if not (codes == c).any()]
        if absent and len(problems) == before:
            warnings.warn(
                f"{where(path, column=column)}: no example of class(es) {_shown(absent)} "
                "listed in classes",
                stacklevel=2,
            )
    if own:
        problems.raise_if_any()
    return Labels([str(n) for n in names], codes)
