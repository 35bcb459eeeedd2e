"""Collecting the problems found in a user's file, so that one run reports them all (up to a
limit) and the user fixes the file in one pass instead of one error per run."""

from __future__ import annotations

from pathlib import Path

from cdkd_core.errors import DataError

#: Problems listed in one error; the rest are counted ("... and N more").
MAX_LISTED = 20


def where(path: Path | str, line: int | None = None, column: str | None = None) -> str:
    """``path, line L, column 'c'`` (the parts that are known)."""
    text = str(path)
    if line is not None:
        text += f", line {line}"
    if column is not None:
        text += f", column {column!r}"
    return text


class Problems:
    """The problems found in one file; :meth:`raise_if_any` raises them as one
    :class:`DataError`: the problem itself where there is one, else a first line naming the
    file and the count, then one ``path, line L, column 'c': what`` line per problem (up to
    ``limit``) and ``... and N more``."""

    def __init__(self, path: Path | str, limit: int = MAX_LISTED) -> None:
        self.path = path
        self.limit = limit
        self.listed: list[str] = []
        self.count = 0

    def add(self, what: str, line: int | None = None, column: str | None = None) -> None:
        """Record one problem at ``line`` (1-based file line) and ``column``, where known."""
        self.count += 1
        if len(self.listed) < self.limit:
            self.listed.append(f"{where(self.path, line, column)}: {what}")

    def __len__(self) -> int:
        return self.count

    def message(self) -> str:
        """The problems as one message (see the class docstring)."""
        if self.count == 1:
            return self.listed[0]
        lines = [f"{self.path}: {self.count} problems (fix them all, then run again):"]
        lines += [f"  {item}" for item in self.listed]
        if self.count > len(self.listed):
            lines.append(f"  ... and {self.count - len(self.listed)} more")
        return "\n".join(lines)

    def raise_if_any(self) -> None:
        """Raise the problems found so far as one :class:`DataError` (none: return)."""
        if self.count:
            raise DataError(self.message())
