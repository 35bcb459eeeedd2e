"""The core's readers of raw input (``cdkd predict``): tables, texts and images, streamed
in chunks. A domain gives a reader its own encoding (a fitted
:class:`~cdkd_core.data.tabular.TabularEncoder`, a tokenizer, an image loader); the reader
does the files: formats, row ids, chunks, and messages naming the file, line and column.
"""

from __future__ import annotations

import codecs
import csv
import json
from collections.abc import Callable, Collection, Iterator
from itertools import islice
from pathlib import Path

import numpy as np
import torch

from cdkd_core.components.raw_input import InputBatch, InputOptions, InputReader
from cdkd_core.data.problems import Problems
from cdkd_core.data.tabular import (
    Table,
    csv_error,
    csv_records,
    raise_field_limit,
    sniff_delimiter,
)
from cdkd_core.errors import DataError

#: Views of a batch computed by a domain: (student view, teacher view or None).
Views = tuple[torch.Tensor, torch.Tensor | None]
#: suffixes read as JSON Lines (one JSON object per line) by :class:`TextReader`
JSONL_SUFFIXES = (".jsonl", ".ndjson")
#: suffixes read as CSV by :class:`TextReader`
CSV_SUFFIXES = (".csv", ".tsv", ".tab")
#: suffixes of tab-separated tables
TAB_SUFFIXES = (".tsv", ".tab")


def _check_file(path: Path) -> Path:
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a directory, not a file")
    if not path.is_file():
        raise DataError(f"input file not found: {path}")
    return path


def _encoding(path: Path) -> str:
    """``utf-16`` where the file starts with its byte-order mark, else ``utf-8-sig``."""
    with path.open("rb") as f:
        start = f.read(2)
    return "utf-16" if start in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) else "utf-8-sig"


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` of a text file, decoded as the tables are (a
    :class:`DataError` naming the line where it is not UTF-8)."""
    with path.open(encoding=_encoding(path), newline="") as f:
        number = 0
        try:
            for number, line in enumerate(f, start=1):
                yield number, line
        except UnicodeDecodeError as exc:
            raise DataError(
                f"{path}, line {number + 1}: not UTF-8 text ({exc.reason}); save the file as UTF-8"
            ) from None


def _open_csv(path: Path, delimiter: str | None) -> tuple[Iterator[list[str]], list[str], str]:
    """A CSV reader positioned after the header, the header, and the delimiter (sniffed on
    the first lines unless given)."""
    path = _check_file(path)
    if delimiter is not None and len(delimiter) != 1:
        raise DataError(f"{path}: the delimiter must be one character, got {delimiter!r}")
    stream = _lines(path)
    head = list(islice(stream, 200))
    sample = "".join(line for _, line in head)
    if not sample.strip():
        raise DataError(f"{path}: the file is empty")
    if delimiter is None:
        delimiter = sniff_delimiter(sample)

    def joined() -> Iterator[str]:
        for _, line in head:
            yield line
        for _, line in stream:
            yield line

    raise_field_limit()
    reader = csv.reader(joined(), delimiter=delimiter)
    try:
        header = [h.strip() for h in next(reader)]
    except csv.Error as exc:
        raise DataError(f"{path}, line 1: in the header, {csv_error(exc)}") from None
    if len(set(header)) != len(header):
        duplicates = sorted({h for h in header if header.count(h) > 1})
        raise DataError(f"{path}: duplicate column names in the header: {duplicates}")
    return reader, header, delimiter


def csv_chunks(path: Path, delimiter: str | None = None, chunk_size: int = 4096) -> Iterator[Table]:
    """A CSV with a header row as :class:`~cdkd_core.data.tabular.Table` chunks of at most
    ``chunk_size`` rows (each with the header and the file's line numbers), read as it
    streams: the whole file is never in memory. The delimiter is sniffed on the first lines
    unless given; rows with another number of fields than the header are reported (a
    :class:`DataError`); blank lines are skipped.

    Args:
        path: The CSV file.
        delimiter: One character; ``None`` sniffs it.
        chunk_size: The most rows a chunk holds.

    Yields:
        :class:`~cdkd_core.data.tabular.Table` chunks, in file order.

    Raises:
        DataError: The file is missing, empty, malformed, or has no data rows.

    Examples:
        >>> from pathlib import Path
        >>> from cdkd_core.plugin_api import csv_chunks
        >>> _ = Path("big.csv").write_text("x,y\\n" + "".join(f"{i},{2 * i}\\n" for i in range(5)))
        >>> [(len(t.rows), t.lines[0]) for t in csv_chunks(Path("big.csv"), chunk_size=2)]
        [(2, 2), (2, 4), (1, 6)]
    """
    path = Path(path)
    reader, header, delimiter = _open_csv(path, delimiter)
    problems = Problems(path)
    rows: list[list[str]] = []
    lines: list[int] = []
    seen = False
    try:
        for line, row in csv_records(reader, len(header), delimiter, problems):
            rows.append(row)
            lines.append(line)
            if len(rows) == chunk_size:
                problems.raise_if_any()
                seen = True
                yield Table(path, header, rows, lines)
                rows, lines = [], []
    except csv.Error as exc:
        problems.add(csv_error(exc), reader.line_num)  # type: ignore[attr-defined]
    problems.raise_if_any()
    if rows:
        yield Table(path, header, rows, lines)
    elif not seen:
        raise DataError(f"{path}: no data rows after the header")


def _ids(table: Table, id_column: str | None) -> list[str]:
    if id_column is None:
        return [str(line) for line in table.lines]
    if id_column not in table.header:
        raise DataError(f"{table.path}: no id column {id_column!r}; columns are {table.header}")
    return table.column(id_column)


def _count_lines(path: Path) -> int | None:
    """The newlines of a file, counted in binary blocks: cheap enough for a progress bar's
    total; None for a file that cannot be read."""
    try:
        with Path(path).open("rb") as f:
            lines = sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 20), b""))
    except OSError:
        return None
    return max(lines, 0)


class TableReader(InputReader):
    """Raw rows from a CSV with the training columns, encoded by the domain's own function
    (e.g. a fitted :meth:`~cdkd_core.data.tabular.TabularEncoder.encode`); other columns,
    such as the label, are ignored.

    Args:
        columns: the columns the domain reads (each must be in the input's header).
        encode: a chunk of the CSV -> its student view ``[N, F]`` (float32; numpy or torch).
        teacher: a chunk -> its teacher view; default: the student view (one view).
        delimiter: the training file's delimiter, used unless the options give one.

    Examples:
        >>> from pathlib import Path
        >>> import numpy as np
        >>> from cdkd_core.plugin_api import InputOptions, TableReader, TabularEncoder, read_csv
        >>> _ = Path("train.csv").write_text("age,job,label\\n30,nurse,yes\\n41,cook,no\\n")
        >>> encoder = TabularEncoder(["age", "job"]).fit(read_csv(Path("train.csv")), np.arange(2))
        >>> reader = TableReader(encoder.columns, encoder.encode)
        >>> _ = Path("new.csv").write_text("age,job\\n35,cook\\n,pilot\\n")
        >>> batch = next(reader.batches(Path("new.csv"), InputOptions(), chunk_size=100))
        >>> batch.ids, batch.student_x.tolist()  # ids: line numbers; pilot: unseen in training
        (['2', '3'], [[35.0, 1.0, 0.0], [35.5, 0.0, 0.0]])
    """

    accepts = "a CSV with the training columns (a label column is ignored)"

    def __init__(
        self,
        columns: list[str],
        encode: Callable[[Table], np.ndarray | torch.Tensor],
        teacher: Callable[[Table], np.ndarray | torch.Tensor] | None = None,
        delimiter: str | None = None,
    ) -> None:
        self.columns = list(columns)
        self.encode = encode
        self.teacher = teacher
        self.delimiter = delimiter

    def batches(self, source: Path, options: InputOptions, chunk_size: int) -> Iterator[InputBatch]:
        """The CSV's rows, encoded, ``chunk_size`` at a time.

        Args:
            source: The CSV.
            options: ``delimiter``, ``id_column``, ``teacher``.
            chunk_size: The most rows a batch holds.

        Yields:
            The encoded batches.

        Raises:
            DataError: A feature column is absent, or a cell is bad.
        """
        delimiter = options.delimiter or self.delimiter
        for table in csv_chunks(source, delimiter, chunk_size):
            table.require(self.columns, "feature column")
            student = torch.as_tensor(self.encode(table))
            teacher = None
            if options.teacher:
                teacher = student if self.teacher is None else torch.as_tensor(self.teacher(table))
            yield InputBatch(_ids(table, options.id_column), student, teacher)

    def count(self, source: Path, options: InputOptions) -> int | None:
        """The file's lines after the header (blank lines included).

        Args:
            source: The CSV.
            options: Not used.

        Returns:
            The count, or ``None`` when the file cannot be read.
        """
        lines = _count_lines(source)
        return None if lines is None else max(lines - 1, 0)


class TextReader(InputReader):
    """Raw texts: a text file (one text per line, blank lines skipped), a CSV column
    (``--column``, default ``text`` or the only column) or JSON Lines (one object per line,
    its text under ``--column``, default ``text``), turned into views by the domain's own
    function.

    Args:
        encode: ``(texts, teacher)`` -> ``(student view, teacher view or None)``; the teacher
            view is wanted only where ``teacher`` is true.
        column: the text's column or key where the options name none (default: ``text``,
            or a CSV's only column), e.g. the column a domain's own files keep it in.

    Examples:
        >>> from pathlib import Path
        >>> import torch
        >>> from cdkd_core.plugin_api import InputOptions, TextReader
        >>> def encode(texts, teacher):  # a domain's tokenizer; here: the texts' lengths
        ...     return torch.tensor([[float(len(t))] for t in texts]), None
        >>> reader = TextReader(encode)
        >>> _ = Path("reviews.txt").write_text("great\\n\\nnot good at all\\n")
        >>> batch = next(reader.batches(Path("reviews.txt"), InputOptions(), 256))
        >>> batch.ids, batch.student_x.flatten().tolist()
        (['1', '3'], [5.0, 15.0])
    """

    accepts = "a text file (one text per line), a CSV with a text column, or JSON Lines"

    def __init__(
        self, encode: Callable[[list[str], bool], Views], column: str | None = None
    ) -> None:
        self.encode = encode
        self.column = column

    def texts(self, texts: list[str], options: InputOptions) -> InputBatch:
        """``texts`` as one batch, ids ``0..N-1``.

        Args:
            texts: The texts.
            options: ``teacher``: whether the teacher view is wanted.

        Returns:
            The batch.

        Raises:
            DataError: ``texts`` is not a list of strings.
        """
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise DataError("texts must be a list of strings")
        student, teacher = self.encode(list(texts), options.teacher)
        return InputBatch([str(i) for i in range(len(texts))], student, teacher)

    def _rows(self, path: Path, options: InputOptions) -> Iterator[tuple[str, str]]:
        suffix = path.suffix.lower()
        if suffix in JSONL_SUFFIXES:
            yield from self._jsonl(path, options)
        elif suffix in CSV_SUFFIXES:
            yield from self._csv(path, options)
        else:
            if options.column is not None or options.id_column is not None:
                raise DataError(
                    f"{path}: a plain text file has no columns; --column and --id-column "
                    f"read a CSV ({', '.join(CSV_SUFFIXES)}) or JSON Lines "
                    f"({', '.join(JSONL_SUFFIXES)})"
                )
            for number, line in _lines(path):
                text = line.rstrip("\r\n")
                if text.strip():
                    yield str(number), text

    def _jsonl(self, path: Path, options: InputOptions) -> Iterator[tuple[str, str]]:
        key = options.column or self.column or "text"
        for number, line in _lines(path):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}, line {number}: not JSON ({exc.msg})") from None
            if not isinstance(record, dict) or key not in record:
                raise DataError(
                    f"{path}, line {number}: no key {key!r} (give the text's key with --column)"
                )
            if not isinstance(record[key], str):
                raise DataError(f"{path}, line {number}: {key!r} is not a string")
            if options.id_column is None:
                row_id = str(number)
            elif options.id_column in record:
                row_id = str(record[options.id_column])
            else:
                raise DataError(f"{path}, line {number}: no id key {options.id_column!r}")
            yield row_id, record[key]

    def _csv(self, path: Path, options: InputOptions) -> Iterator[tuple[str, str]]:
        delimiter = options.delimiter or ("\t" if path.suffix.lower() in TAB_SUFFIXES else None)
        for table in csv_chunks(path, delimiter):
            column = options.column or self.column
            if column is None:
                column = "text" if "text" in table.header or len(table.header) != 1 else None
                column = column or table.header[0]
            if column not in table.header:
                raise DataError(
                    f"{path}: no text column {column!r}; columns are {table.header} (give it "
                    "with --column)"
                )
            yield from zip(_ids(table, options.id_column), table.column(column), strict=True)

    def batches(self, source: Path, options: InputOptions, chunk_size: int) -> Iterator[InputBatch]:
        """The texts of ``source``, ``chunk_size`` at a time.

        Args:
            source: A text file, a CSV (``.csv``, ``.tsv``) or JSON Lines (``.jsonl``,
                ``.ndjson``).
            options: ``column``, ``id_column``, ``delimiter``, ``teacher``.
            chunk_size: The most rows a batch holds.

        Yields:
            The encoded batches (ids: line numbers unless ``id_column`` is given).

        Raises:
            DataError: The file is missing or bad (named with its line).
        """
        rows = self._rows(_check_file(source), options)
        while chunk := list(islice(rows, chunk_size)):
            ids, texts = (list(v) for v in zip(*chunk, strict=True))
            student, teacher = self.encode(texts, options.teacher)
            yield InputBatch(ids, student, teacher)

    def count(self, source: Path, options: InputOptions) -> int | None:
        """The file's lines (an upper bound where blank lines are skipped).

        Args:
            source: The file.
            options: Not used.

        Returns:
            The count, or ``None`` when the file cannot be read.
        """
        return _count_lines(source)


class ImageReader(InputReader):
    """Raw images: one image file, or a folder searched recursively for files with one of
    ``suffixes`` (in sorted path order; ids are paths relative to the folder), turned into
    views by the domain's own loader.

    Args:
        load: ``(paths, teacher)`` -> ``(student view, teacher view or None)``.
        suffixes: the file suffixes the domain reads (lowercase, with the dot).

    Examples:
        >>> from pathlib import Path
        >>> import torch
        >>> from cdkd_core.plugin_api import ImageReader, InputOptions
        >>> def load(paths, teacher):  # a domain's image loader; here: the files' sizes
        ...     return torch.tensor([[float(p.stat().st_size)] for p in paths]), None
        >>> Path("scans/a").mkdir(parents=True, exist_ok=True)
        >>> _ = Path("scans/a/1.png").write_bytes(b"12345")
        >>> _ = Path("scans/2.png").write_bytes(b"1")
        >>> reader = ImageReader(load, suffixes=[".png"])
        >>> [(b.ids, b.student_x.flatten().tolist())
        ...  for b in reader.batches(Path("scans"), InputOptions(), 10)]
        [(['2.png', 'a/1.png'], [1.0, 5.0])]
    """

    accepts = "an image file or a folder of images"

    def __init__(self, load: Callable[[list[Path], bool], Views], suffixes: Collection[str]):
        self.load = load
        self.suffixes = tuple(s.lower() for s in suffixes)

    def files(self, source: Path) -> tuple[Path, list[Path]]:
        """The folder ids are relative to, and the image files of ``source``.

        Args:
            source: An image file or a folder.

        Returns:
            ``(root, files)``: the folder, and the files in sorted path order.

        Raises:
            DataError: No such file or folder, a file of another suffix, or a folder
                without images.
        """
        source = Path(source)
        if source.is_file():
            if source.suffix.lower() not in self.suffixes:
                raise DataError(
                    f"{source}: not an image this domain reads (suffixes: "
                    f"{', '.join(self.suffixes)})"
                )
            return source.parent, [source]
        if not source.is_dir():
            raise DataError(f"input not found: {source}")
        files = sorted(
            p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in self.suffixes
        )
        if not files:
            raise DataError(f"{source}: no image files ({', '.join(self.suffixes)}) in the folder")
        return source, files

    def batches(self, source: Path, options: InputOptions, chunk_size: int) -> Iterator[InputBatch]:
        """The images of ``source``, ``chunk_size`` at a time.

        Args:
            source: An image file or a folder.
            options: ``teacher``; ``column`` and ``id_column`` are refused.
            chunk_size: The most images a batch holds.

        Yields:
            The loaded batches (ids: paths relative to the folder).

        Raises:
            DataError: See :meth:`files`; ``column`` or ``id_column`` given.
        """
        if options.column is not None or options.id_column is not None:
            raise DataError("--column and --id-column read tables and texts, not images")
        root, files = self.files(source)
        for start in range(0, len(files), chunk_size):
            chunk = files[start : start + chunk_size]
            student, teacher = self.load(chunk, options.teacher)
            ids = [p.relative_to(root).as_posix() for p in chunk]
            yield InputBatch(ids, student, teacher)

    def count(self, source: Path, options: InputOptions) -> int | None:
        """The number of image files.

        Args:
            source: An image file or a folder.
            options: Not used.

        Returns:
            The count, or ``None`` when ``source`` holds none.
        """
        try:
            return len(self.files(source)[1])
        except DataError:
            return None


def numeric_columns(
    table: Table, columns: list[str], shape: tuple[int, ...] | None = None
) -> np.ndarray:
    """``columns`` of ``table`` as float32 ``[N, len(columns)]`` (reshaped to ``[N, *shape]``
    where given), every cell a finite number: each other cell is reported with its line and
    column in one :class:`DataError`.

    Args:
        table: A table (or a chunk of one, :func:`csv_chunks`).
        columns: The columns to read, in order.
        shape: The shape of one row's values (e.g. an image's ``(1, 28, 28)``).

    Returns:
        float32 ``[N, len(columns)]``, or ``[N, *shape]``.

    Raises:
        DataError: A column is absent, or cells are not finite numbers.

    Examples:
        >>> from pathlib import Path
        >>> from cdkd_core.plugin_api import numeric_columns, read_csv
        >>> _ = Path("pixels.csv").write_text("p0,p1,p2,p3,label\\n0,1,2,3,a\\n")
        >>> table = read_csv(Path("pixels.csv"))
        >>> numeric_columns(table, ["p0", "p1", "p2", "p3"], shape=(2, 2)).tolist()
        [[[0.0, 1.0], [2.0, 3.0]]]
    """
    from cdkd_core.data.labels import parse_number
    from cdkd_core.data.tabular import FLOAT32_MAX

    table.require(columns, "feature column")
    problems = Problems(table.path)
    x = np.zeros((len(table.rows), len(columns)), dtype=np.float32)
    for j, name in enumerate(columns):
        for i, value in enumerate(table.column(name)):
            number = parse_number(value)
            if number is None or not abs(number) <= FLOAT32_MAX:
                problems.add(f"{value!r} is not a finite number", table.lines[i], name)
            else:
                x[i, j] = number
    problems.raise_if_any()
    return x if shape is None else x.reshape(len(x), *shape)
