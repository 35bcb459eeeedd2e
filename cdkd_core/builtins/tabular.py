"""Reading a user's CSV into numeric features: types inferred, categories one-hot encoded,
missing values imputed, all fitted on the train split only."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cdkd_core.errors import DataError

#: Tokens read as a missing number (or label).
MISSING = {"", "na", "nan", "null", "none", "?"}
#: Tokens read as a missing category ("none" is often a real category, e.g. "no guarantor").
CATEGORY_MISSING = MISSING - {"none"}


@dataclass
class Table:
    """A CSV as rows of strings, with the file it came from and each row's line number."""

    path: Path
    header: list[str]
    rows: list[list[str]]
    lines: list[int]

    def column(self, name: str) -> list[str]:
        """The values of one column."""
        j = self.header.index(name)
        return [row[j] for row in self.rows]

    def require(self, columns: list[str], what: str = "column") -> None:
        """A :class:`DataError` naming the file unless every one of ``columns`` exists."""
        unknown = [c for c in columns if c not in self.header]
        if unknown:
            raise DataError(f"{self.path}: {what}(s) {unknown} not in the header {self.header}")

    def labels(self, name: str) -> list[str]:
        """The label column's values; a :class:`DataError` naming the file (and line) when
        the column is absent or a label is missing."""
        if name not in self.header:
            raise DataError(f"{self.path}: no label column {name!r}; columns are {self.header}")
        values = self.column(name)
        for i, value in enumerate(values):
            if value.lower() in MISSING:
                raise DataError(f"{self.path}, line {self.lines[i]}: label {name!r} is missing")
        return values


def read_csv(path: Path, delimiter: str | None = None) -> Table:
    """Read a CSV with a header row; the delimiter is sniffed unless given."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{path}, line {line}: not UTF-8 text (byte {exc.start}: {exc.reason}); "
            "save the file as UTF-8"
        ) from None
    if not text.strip():
        raise DataError(f"{path}: the file is empty")
    if delimiter is None:
        try:
            delimiter = csv.Sniffer().sniff(text[:8192], delimiters=",;\t|").delimiter
        except csv.Error:
            delimiter = ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = [h.strip() for h in next(reader)]
        rows, lines = [], []
        line_no = reader.line_num + 1  # the line the next record starts on
        for row in reader:
            start, line_no = line_no, reader.line_num + 1
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise DataError(
                    f"{path}, line {start}: {len(row)} fields, the header has {len(header)} "
                    f"(delimiter {delimiter!r})"
                )
            rows.append([cell.strip() for cell in row])
            lines.append(start)
    except csv.Error as exc:
        raise DataError(f"{path}, line {reader.line_num}: malformed CSV: {exc}") from None
    if len(set(header)) != len(header):
        raise DataError(f"{path}: duplicate column names in the header")
    if not rows:
        raise DataError(f"{path}: no data rows after the header")
    return Table(path, header, rows, lines)


def _as_float(value: str) -> float | None:
    if value.lower() in MISSING:
        return None
    try:
        return float(value)
    except ValueError:
        return math.nan  # marks "not numeric"


class TabularEncoder:
    """Numeric columns: median imputation; other columns: one-hot with a missing category.

    Fitted on the train rows only; categories first seen outside train encode as all-zero.
    """

    def __init__(self, columns: list[str]) -> None:
        self.columns = columns
        self.numeric: dict[str, float] = {}
        self.categories: dict[str, list[str]] = {}

    def fit(self, table: Table, rows: np.ndarray) -> TabularEncoder:
        """Decide column types and fit imputation and categories on ``rows``."""
        for name in self.columns:
            values = table.column(name)
            parsed = [_as_float(v) for v in values]
            numeric = all(parsed[i] is None or not math.isnan(parsed[i]) for i in rows)
            if numeric:
                for i, p in enumerate(parsed):
                    if p is not None and math.isnan(p):
                        raise DataError(
                            f"{table.path}, line {table.lines[i]}: column {name!r} is numeric "
                            f"in the train split but holds {values[i]!r} here"
                        )
                    if p is not None and math.isinf(p):
                        raise DataError(
                            f"{table.path}, line {table.lines[i]}: column {name!r} is infinite"
                        )
                train = [parsed[i] for i in rows if parsed[i] is not None]
                self.numeric[name] = float(np.median(train)) if train else 0.0
            else:
                seen = sorted(
                    {
                        values[i] if values[i].lower() not in CATEGORY_MISSING else "<missing>"
                        for i in rows
                    }
                )
                self.categories[name] = seen
        return self

    @property
    def feature_names(self) -> list[str]:
        """Names of the encoded features."""
        names = []
        for name in self.columns:
            if name in self.numeric:
                names.append(name)
            else:
                names.extend(f"{name}={c}" for c in self.categories[name])
        return names

    def transform(self, table: Table) -> np.ndarray:
        """All rows as a float32 matrix."""
        blocks = []
        for name in self.columns:
            values = table.column(name)
            if name in self.numeric:
                fill = self.numeric[name]
                col = [(_as_float(v) if _as_float(v) is not None else fill) for v in values]
                blocks.append(np.asarray(col, dtype=np.float64)[:, None])
            else:
                cats = {c: j for j, c in enumerate(self.categories[name])}
                block = np.zeros((len(values), len(cats)))
                for i, v in enumerate(values):
                    key = "<missing>" if v.lower() in CATEGORY_MISSING else v
                    if key in cats:
                        block[i, cats[key]] = 1.0
                blocks.append(block)
        return np.concatenate(blocks, axis=1).astype(np.float32)
