"""Reading a user's CSV into numeric features: column types decided on the whole file by one
rule, categories one-hot encoded, missing values imputed (imputation and categories fitted
on the train split only).

The rules (documented in docs/components.md#tabular):

- A cell is *missing* when, stripped, it equals one of ``na_values`` ignoring case.
- A column is **numeric** when every non-missing cell of the whole file (all splits) parses
  as a number, **categorical** when the cells that are not numbers are more than a few.
  A column whose cells are numbers but for a few stray ones (at most 5% of its non-missing
  cells, or a single cell) is an error listing those cells: one stray ``n/a`` never turns a
  numeric column into categories silently. ``numeric`` / ``categorical`` declare a column's
  type (a declared numeric column's non-number cells are errors).
- Every numeric cell must be finite once cast to float32, the dtype the networks train in
  (``inf``, ``1e39``: errors naming the line and column).
- Numbers are read with one decimal mark, ``decimal`` (``.`` by default, or ``,``; see
  :func:`~cdkd_core.data.labels.parse_number`). A column whose cells are numbers written
  with the *other* mark (all of them, or all but a few strays) is an error naming an example
  cell and the fix (``decimal: ","``): ``1,23`` never turns a column of numbers into
  categories silently. A column of other comma-holding cells (``a,b``; ``1,2`` beside ``x``)
  stays categorical.
- A CSV field may be as long as :data:`FIELD_LIMIT` characters (the ``csv`` module's own
  default, 131,072, is raised by the readers: :func:`raise_field_limit`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
from pydantic import AfterValidator

from cdkd_core.data.labels import parse_number
from cdkd_core.data.problems import Problems
from cdkd_core.errors import DataError

NA_VALUES = ("", "NA", "N/A", "NaN", "null", "None", "?")
"""The default missing-value tokens of the ``tabular`` domain, matched ignoring case after
stripping (so ``na``, ``nan``, ``NULL``, ``none`` and ``n/a`` are missing too).

Examples:
    >>> from cdkd_core.plugin_api import NA_VALUES, TabularEncoder
    >>> encoder = TabularEncoder(["age"], na_values=[*NA_VALUES, "-"])  # "-" means missing too
"""
MISSING = frozenset(v.casefold() for v in NA_VALUES)
""":data:`NA_VALUES` case-folded: a cell ``c`` is missing when ``c.casefold() in MISSING``.

Examples:
    >>> from cdkd_core.plugin_api import MISSING
    >>> [cell for cell in ["3.5", "N/A", "nan", " ", "red"] if cell.strip().casefold() in MISSING]
    ['N/A', 'nan', ' ']
"""
#: The share of a column's non-missing cells that may be stray non-numbers (or one cell)
#: before the column counts as categorical.
STRAY_SHARE = 0.05
#: The largest float32 (values beyond it overflow to infinity).
FLOAT32_MAX = float(np.finfo(np.float32).max)
#: The longest CSV field the readers read, in characters (the largest C ``long`` of every
#: platform; the ``csv`` module's default is 131,072).
FIELD_LIMIT = 2**31 - 1
#: The decimal marks a table may use.
DECIMALS = (".", ",")


def raise_field_limit() -> None:
    """Let the ``csv`` module read fields of up to :data:`FIELD_LIMIT` characters (a long
    text in one cell), as JSON Lines would. The limit is the ``csv`` module's global
    setting: called by the readers before they read, never at import; it is only raised."""
    if csv.field_size_limit() < FIELD_LIMIT:
        csv.field_size_limit(FIELD_LIMIT)


def csv_error(exc: csv.Error) -> str:
    """A ``csv`` module error in words for a user (a field over the limit says what the
    limit is)."""
    if "field larger than field limit" in str(exc):
        return (
            f"a field is longer than {csv.field_size_limit():,} characters, the most a CSV "
            "field may hold here (use JSON Lines for longer texts)"
        )
    return f"malformed CSV: {exc}"


def check_delimiter(value: str | None) -> str | None:
    """A ``delimiter`` param: one character (the ``csv`` module reads no other), or None."""
    if value is not None and len(value) != 1:
        raise ValueError(f"the delimiter must be one character, got {value!r}")
    return value


Delimiter = Annotated[str | None, AfterValidator(check_delimiter)]
"""The type of a ``delimiter`` param of a domain reading a CSV: one character, or ``None``
to sniff it (validated by ``cdkd validate``).

Examples:
    >>> from pydantic import Field, ValidationError
    >>> from cdkd_core.plugin_api import ComponentConfig, Delimiter
    >>> class Config(ComponentConfig):
    ...     delimiter: Delimiter = Field(None, description="The CSV's delimiter.")
    >>> Config(delimiter=";").delimiter
    ';'
    >>> try:
    ...     Config(delimiter="::")
    ... except ValidationError as exc:
    ...     print(exc.errors()[0]["msg"])
    Value error, the delimiter must be one character, got '::'
"""


def missing_tokens(na_values: Iterable[str] | None) -> frozenset[str]:
    """The case-folded, stripped set of missing-value tokens (default :data:`NA_VALUES`)."""
    if na_values is None:
        return MISSING
    return frozenset(v.strip().casefold() for v in na_values)


@dataclass
class Table:
    """A CSV as rows of strings, with the file it came from and each row's line number.

    What :func:`read_csv` returns; cells are stripped, blank rows dropped.

    Args:
        path: The file (named in every error).
        header: The column names.
        rows: One list of cells per data row, as long as the header.
        lines: Each row's line number in the file (for messages).

    Examples:
        >>> from pathlib import Path
        >>> from cdkd_core.plugin_api import read_csv
        >>> _ = Path("table.csv").write_text("age,colour,label\\n30,red,yes\\n41,blue,no\\n")
        >>> table = read_csv(Path("table.csv"))
        >>> table.header, table.lines, table.column("colour")
        (['age', 'colour', 'label'], [2, 3], ['red', 'blue'])
    """

    path: Path
    header: list[str]
    rows: list[list[str]]
    lines: list[int]

    def column(self, name: str) -> list[str]:
        """The values of one column.

        Args:
            name: A column of the header.

        Returns:
            Its cells, one per row.

        Raises:
            ValueError: ``name`` is not in the header (:meth:`require` words it for users).
        """
        j = self.header.index(name)
        return [row[j] for row in self.rows]

    def require(self, columns: list[str], what: str = "column") -> None:
        """A :class:`DataError` naming the file unless every one of ``columns`` exists.

        Args:
            columns: The column names the caller needs.
            what: What they are, for the message (``"feature column"``).

        Raises:
            DataError: Some are not in the header (all of them are named).
        """
        unknown = [c for c in columns if c not in self.header]
        if unknown:
            raise DataError(f"{self.path}: {what}(s) {unknown} not in the header {self.header}")

    def labels(self, name: str, na_values: Iterable[str] | None = None) -> list[str]:
        """The label column's values; a :class:`DataError` naming the file (and the lines)
        when the column is absent or labels are missing (one of ``na_values``).

        Args:
            name: The label column.
            na_values: Missing-value tokens (default :data:`NA_VALUES`).

        Returns:
            The labels, one per row (turn them into codes with :func:`encode_labels`).

        Raises:
            DataError: No such column, or a label is missing.
        """
        if name not in self.header:
            raise DataError(f"{self.path}: no label column {name!r}; columns are {self.header}")
        tokens = missing_tokens(na_values)
        values = self.column(name)
        problems = Problems(self.path)
        for value, line in zip(values, self.lines, strict=True):
            if value.casefold() in tokens:
                problems.add(f"label {name!r} is missing", line)
        problems.raise_if_any()
        return values


def _decode(path: Path, raw: bytes) -> str:
    """UTF-8 (a byte-order mark allowed), or UTF-16 where the file starts with its BOM."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise DataError(
                f"{path}: not valid UTF-16 (byte {exc.start}: {exc.reason}); save the file as UTF-8"
            ) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{path}, line {line}: not UTF-8 text (byte {exc.start}: {exc.reason}); "
            "save the file as UTF-8"
        ) from None


def sniff_delimiter(text: str) -> str:
    """The delimiter of a CSV's text, sniffed on its first 8 KiB among ``,`` ``;`` tab and
    ``|`` (``,`` when nothing fits)."""
    try:
        return csv.Sniffer().sniff(text[:8192], delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def csv_records(
    reader: Iterator[list[str]], fields: int, delimiter: str, problems: Problems
) -> Iterator[tuple[int, list[str]]]:
    """``(line, stripped cells)`` of each record ``reader`` (a :func:`csv.reader` past the
    header) has left, the line the record starts on; blank records are skipped, and one
    with another number of fields than ``fields`` is added to ``problems`` instead."""
    line_no = reader.line_num + 1  # type: ignore[attr-defined]  # the next record's line
    for row in reader:
        start, line_no = line_no, reader.line_num + 1  # type: ignore[attr-defined]
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != fields:
            problems.add(
                f"{len(row)} fields, the header has {fields} (delimiter {delimiter!r})", start
            )
            continue
        yield start, [cell.strip() for cell in row]


def read_csv(path: Path, delimiter: str | None = None) -> Table:
    """Read a CSV with a header row; the delimiter is sniffed unless given.

    Every row with another number of fields than the header is reported (up to
    :data:`~cdkd_core.data.problems.MAX_LISTED`) in one :class:`DataError`.

    The file is UTF-8 (a byte-order mark allowed) or UTF-16 with its byte-order mark;
    cells are stripped and blank rows skipped.

    Args:
        path: The CSV file.
        delimiter: One character; ``None`` sniffs it among ``,`` ``;`` tab and ``|``.

    Returns:
        The rows as strings, with their line numbers.

    Raises:
        DataError: The file is missing, a directory, empty, not UTF-8/UTF-16, has no data
            rows, duplicate column names, or rows whose number of fields differs from the
            header's.

    Examples:
        >>> from pathlib import Path
        >>> from cdkd_core.plugin_api import read_csv
        >>> _ = Path("table.csv").write_text("age;colour\\n30;red\\n\\n41;blue\\n")
        >>> table = read_csv(Path("table.csv"))
        >>> table.header, table.rows, table.lines
        (['age', 'colour'], [['30', 'red'], ['41', 'blue']], [2, 4])
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a directory, not a file (give the CSV file's path)")
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    if delimiter is not None and len(delimiter) != 1:
        raise DataError(f"{path}: the delimiter must be one character, got {delimiter!r}")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    text = _decode(path, raw)
    if not text.strip():
        raise DataError(f"{path}: the file is empty")
    if delimiter is None:
        delimiter = sniff_delimiter(text)
    raise_field_limit()
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    problems = Problems(path)
    rows, lines = [], []
    try:
        header = [h.strip() for h in next(reader)]
        for line, row in csv_records(reader, len(header), delimiter, problems):
            rows.append(row)
            lines.append(line)
    except csv.Error as exc:
        problems.add(csv_error(exc), reader.line_num)
    problems.raise_if_any()
    if len(set(header)) != len(header):
        duplicates = sorted({h for h in header if header.count(h) > 1})
        raise DataError(f"{path}: duplicate column names in the header: {duplicates}")
    if not rows:
        raise DataError(f"{path}: no data rows after the header")
    return Table(path, header, rows, lines)


class TabularEncoder:
    """Numeric columns: median imputation; other columns: one-hot with a missing category.

    Column types are decided on every row of the table (:meth:`decide_types`); imputation
    and categories are fitted on the train rows only (:meth:`fit`); categories first seen
    outside train encode as all-zero.

    The rule: a column is numeric when every non-missing cell parses as a number, and
    categorical when more than a few cells are not numbers; a column of numbers with a few
    stray non-numbers (at most 5% of its cells, or one) is an error listing them, and so is
    a column of numbers written with the other decimal mark than ``decimal`` (``1,23``
    where the decimal mark is ``.``), naming an example cell and the fix.

    Args:
        columns: The feature columns, in the order of the encoded features.
        na_values: Missing-value tokens, matched ignoring case (default
            :data:`NA_VALUES`).
        numeric: Columns declared numeric (a non-number cell is an error).
        categorical: Columns declared categorical (numbers become categories).
        decimal: The decimal mark of the table's numbers, ``"."`` or ``","`` (with ``","``
            a ``.`` or a space may group thousands: ``1.234,5``); used alike by
            :meth:`decide_types`, :meth:`transform` and :meth:`encode`.

    Examples:
        >>> from pathlib import Path
        >>> import numpy as np
        >>> from cdkd_core.plugin_api import TabularEncoder, read_csv
        >>> _ = Path("table.csv").write_text(
        ...     "age,colour,label\\n30,red,yes\\n41,blue,no\\nNA,red,yes\\n52,green,no\\n")
        >>> table = read_csv(Path("table.csv"))
        >>> encoder = TabularEncoder(["age", "colour"]).fit(table, rows=np.array([0, 1, 2]))
        >>> encoder.types
        {'age': 'numeric', 'colour': 'categorical'}
        >>> encoder.feature_names
        ['age', 'colour=blue', 'colour=red']
        >>> encoder.transform(table).tolist()  # NA: the train median; green: unseen
        [[30.0, 0.0, 1.0], [41.0, 1.0, 0.0], [35.5, 0.0, 1.0], [52.0, 0.0, 0.0]]
        >>> _ = Path("semicolons.csv").write_text("rate;label\\n1,5;yes\\n2,25;no\\n")
        >>> comma = TabularEncoder(["rate"], decimal=",").fit(
        ...     read_csv(Path("semicolons.csv")), rows=np.array([0, 1]))
        >>> comma.types, comma.transform(read_csv(Path("semicolons.csv"))).tolist()
        ({'rate': 'numeric'}, [[1.5], [2.25]])
    """

    def __init__(
        self,
        columns: list[str],
        na_values: Iterable[str] | None = None,
        numeric: Collection[str] = (),
        categorical: Collection[str] = (),
        decimal: str = ".",
    ) -> None:
        if decimal not in DECIMALS:
            raise ValueError(f"decimal must be '.' or ',', got {decimal!r}")
        self.columns = columns
        self.missing = missing_tokens(na_values)
        self.declared_numeric = set(numeric)
        self.declared_categorical = set(categorical)
        self.decimal = decimal
        self.types: dict[str, str] = {}
        self.numeric: dict[str, float] = {}
        self.categories: dict[str, list[str]] = {}
        self._values: dict[str, np.ndarray] = {}

    def decide_types(self, table: Table, problems: Problems | None = None) -> TabularEncoder:
        """Type every column by the module's rule on all rows of ``table``; every bad cell
        (a stray non-number, an infinite or float32-overflowing number) and every column of
        numbers written with the other decimal mark is added to ``problems`` when given,
        else raised as one :class:`DataError`.

        Args:
            table: The whole file (every split).
            problems: Where the core collects a file's problems; leave it ``None``.

        Returns:
            The encoder itself, its ``types`` set (column -> ``"numeric"`` or
            ``"categorical"``).

        Raises:
            DataError: Bad cells (each named with its line and column).
        """
        own = problems is None
        problems = Problems(table.path) if problems is None else problems
        for name in self.columns:
            values = table.column(name)
            missing = [v.casefold() in self.missing for v in values]
            parsed = [
                None if m else parse_number(v, self.decimal)
                for v, m in zip(values, missing, strict=True)
            ]
            bad = [
                i
                for i, (p, m) in enumerate(zip(parsed, missing, strict=True))
                if not m and p is None
            ]
            numbers = len(values) - sum(missing) - len(bad)
            if name in self.declared_categorical:
                self.types[name] = "categorical"
                continue
            if bad and self._other_decimal(table, name, missing, bad, problems):
                self.types[name] = "categorical"  # refused: the problem names the fix
                continue
            if name in self.declared_numeric:
                for i in bad:
                    problems.add(
                        f"{values[i]!r} is not a number (the column is declared numeric; "
                        "add the token to na_values if it means missing)",
                        table.lines[i],
                        name,
                    )
            elif (
                bad
                and numbers > len(bad)
                and len(bad) <= max(1, STRAY_SHARE * (numbers + len(bad)))
            ):
                for i in bad:
                    problems.add(
                        f"{values[i]!r} is not a number, but {numbers} of the column's "
                        f"{numbers + len(bad)} non-missing cells are: add the token to "
                        "na_values if it means missing, list the column in categorical if it "
                        "holds categories, or fix the cell",
                        table.lines[i],
                        name,
                    )
            elif bad:
                self.types[name] = "categorical"
                continue
            self.types[name] = "numeric"
            column = np.asarray([np.nan if p is None else p for p in parsed], dtype=np.float64)
            with np.errstate(over="ignore", invalid="ignore"):
                cast = column.astype(np.float32)
            for i in np.flatnonzero(np.isinf(cast)):
                what = (
                    "is infinite"
                    if np.isinf(column[i])
                    else (f"overflows float32 (beyond ±{FLOAT32_MAX:.4g}), the dtype of training")
                )
                problems.add(f"{values[i]!r} {what}", table.lines[i], name)
            self._values[name] = column
        if own:
            problems.raise_if_any()
        return self

    def _other_decimal(
        self, table: Table, name: str, missing: list[bool], bad: list[int], problems: Problems
    ) -> bool:
        """Whether column ``name`` holds numbers written with the other decimal mark: some of
        its cells that are not numbers (``bad``) are with that mark, and every cell is a
        number with one mark or the other (but for a few strays, as the type rule counts
        them). If so, one problem naming an example cell and the fix is added (a column
        mixing both marks is named as such)."""
        values = table.column(name)
        other = "," if self.decimal == "." else "."
        fixed = [i for i in bad if parse_number(values[i], other) is not None]
        if not fixed:
            return False
        cells = len(values) - sum(missing)
        strays = len(bad) - len(fixed)  # numbers with neither mark
        if strays and not (cells - strays > strays and strays <= max(1, STRAY_SHARE * cells)):
            return False
        marked = [i for i in fixed if other in values[i]] or fixed  # "1,5" before "1 234"
        example, line = values[marked[0]], table.lines[marked[0]]
        not_numbers = set(bad)
        own = next(
            (
                i
                for i, (v, m) in enumerate(zip(values, missing, strict=True))
                if not m and i not in not_numbers and parse_number(v, other) is None
            ),
            None,
        )
        if other not in example:  # "1 234": thousands grouped by spaces, no decimal mark
            what = (
                f"{len(fixed)} of its {cells} cells are numbers whose thousands are grouped by "
                f'spaces (e.g. {example!r}): remove the spaces (only decimal: "," reads such '
                "groups), or list the column in categorical if it holds categories"
            )
        elif own is not None:  # "2.5" beside "1,5": neither setting reads both
            what = (
                f"the column mixes decimal marks: {values[own]!r} (line {table.lines[own]}) is a "
                f'number only with decimal: "{self.decimal}", {example!r} only with decimal: '
                f'"{other}", as {len(fixed)} of its {cells} cells are: write its numbers with '
                "one mark and set decimal to it"
            )
        elif other == ",":
            what = (
                f"{len(fixed)} of its {cells} cells are numbers written with a decimal comma "
                f'(e.g. {example!r}): set decimal: "," for this file ("." or a space may '
                "then group thousands), or list the column in categorical if it holds categories"
            )
        else:
            what = (
                f"{len(fixed)} of its {cells} cells are numbers written with a decimal point "
                f'(e.g. {example!r}), but decimal is "," (a point only groups thousands '
                'there): set decimal: "." if the file\'s numbers use a point, or list the '
                "column in categorical if it holds categories"
            )
        problems.add(what, line, name)
        return True

    def fit(self, table: Table, rows: np.ndarray) -> TabularEncoder:
        """Decide column types (all rows, unless done) and fit imputation and categories on
        ``rows``.

        Args:
            table: The whole file.
            rows: Indices of the train rows (e.g. ``stratified_split_indices(...)["train"]``).

        Returns:
            The encoder itself, fitted: medians of numeric columns, sorted categories (a
            missing cell is the category ``<missing>``).

        Raises:
            DataError: Bad cells (see :meth:`decide_types`).
        """
        if not self.types:
            self.decide_types(table)
        for name in self.columns:
            if self.types[name] == "numeric":
                train = self._values[name][rows]
                train = train[~np.isnan(train)]
                self.numeric[name] = float(np.median(train)) if len(train) else 0.0
            else:
                values = table.column(name)
                seen = {self._category(values[i]) for i in rows}
                self.categories[name] = sorted(seen)
        return self

    def _category(self, value: str) -> str:
        return "<missing>" if value.casefold() in self.missing else value

    def _one_hot(self, name: str, values: list[str]) -> np.ndarray:
        """``values`` of categorical column ``name`` one-hot over its fitted categories (a
        category not among them: all zero)."""
        cats = {c: j for j, c in enumerate(self.categories[name])}
        block = np.zeros((len(values), len(cats)))
        for i, v in enumerate(values):
            j = cats.get(self._category(v))
            if j is not None:
                block[i, j] = 1.0
        return block

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

    def encode(self, table: Table, problems: Problems | None = None) -> np.ndarray:
        """New rows (``table``: another file with the fitted columns, e.g. raw input to
        predict on) encoded with the fitted types, medians and categories, as float32.

        A numeric column's cell that is neither a number nor missing, and a number beyond
        float32, is reported with its line and column (added to ``problems`` when given,
        else raised as one :class:`DataError`); categories never seen in training encode as
        all-zero. Columns other than the fitted ones (a label column) are ignored.

        Args:
            table: The new rows (e.g. a chunk of :func:`csv_chunks`).
            problems: Where the core collects a file's problems; leave it ``None``.

        Returns:
            ``[len(table.rows), len(feature_names)]`` float32.

        Raises:
            DataError: a fitted column is absent from ``table``, or a cell is bad.
            RuntimeError: The encoder is not fitted.
        """
        if not self.categories and not self.numeric:
            raise RuntimeError("TabularEncoder.encode needs a fitted encoder (call fit first)")
        table.require(self.columns, "feature column")
        own = problems is None
        problems = Problems(table.path) if problems is None else problems
        blocks = []
        for name in self.columns:
            values = table.column(name)
            if name in self.numeric:
                column = np.full(len(values), self.numeric[name], dtype=np.float64)
                for i, value in enumerate(values):
                    if value.casefold() in self.missing:
                        continue
                    number = parse_number(value, self.decimal)
                    if number is None:
                        problems.add(
                            f"{value!r} is not a number (the column was numeric in training; "
                            "missing cells may be empty or one of the na_values"
                            f"{self._decimal_hint(value)})",
                            table.lines[i],
                            name,
                        )
                    elif not abs(number) <= FLOAT32_MAX:
                        problems.add(f"{value!r} is not finite in float32", table.lines[i], name)
                    else:
                        column[i] = number
                blocks.append(column[:, None])
            else:
                blocks.append(self._one_hot(name, values))
        if own:
            problems.raise_if_any()
        if not blocks:
            return np.zeros((len(table.rows), 0), dtype=np.float32)
        return np.concatenate(blocks, axis=1).astype(np.float32)

    def _decimal_hint(self, value: str) -> str:
        """``; the decimal mark is ...`` where ``value`` is a number with the other mark."""
        other = "," if self.decimal == "." else "."
        if parse_number(value, other) is None:
            return ""
        return (
            f"; the domain reads numbers with the decimal mark {self.decimal!r} (its decimal param)"
        )

    def transform(self, table: Table) -> np.ndarray:
        """All rows as a float32 matrix (checked finite: a :class:`DataError` names the
        line and column otherwise).

        Args:
            table: The table :meth:`fit` was given.

        Returns:
            ``[len(table.rows), len(feature_names)]`` float32: numeric columns with
            missing cells imputed, categorical ones one-hot.

        Raises:
            DataError: A value is not finite in float32.
        """
        blocks = []
        for name in self.columns:
            if name in self.numeric:
                column = self._values[name]
                blocks.append(np.where(np.isnan(column), self.numeric[name], column)[:, None])
            else:
                values = table.column(name)
                blocks.append(self._one_hot(name, values))
        with np.errstate(over="ignore", invalid="ignore"):
            x = np.concatenate(blocks, axis=1).astype(np.float32)
        bad = np.argwhere(~np.isfinite(x))
        if len(bad):  # decide_types refuses such cells; kept as the last line of defence
            row, j = (int(v) for v in bad[0])
            raise DataError(
                f"{table.path}, line {table.lines[row]}: feature {self.feature_names[j]!r} is "
                "not finite in float32"
            )
        return x
