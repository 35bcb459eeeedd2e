"""Raw input a user gives a trained model (``cdkd predict``): the contract between a domain,
which knows how its files become views, and the core, which runs the model on them.

A domain that can read raw input returns an :class:`InputReader` from
:meth:`~cdkd_core.components.domain.Domain.input_reader`; the reader turns a file (or a
folder) into :class:`InputBatch` chunks of the domain's student view -- and its teacher view
where asked and where it can compute it -- exactly as the domain's ``load`` made them for
training. The core's readers for tables, texts and images
(:mod:`cdkd_core.data.raw_input`) do the file handling; a domain gives them its encoding.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class InputOptions:
    """How to read a raw input file.

    Args:
        column: the CSV column or JSON Lines key holding a text domain's text (default:
            ``text``, or a CSV's only column).
        id_column: the column (CSV) or key (JSON Lines) whose value identifies a row in the
            output (default: the row's line number; an image's path).
        delimiter: a CSV's field delimiter, one character (default: sniffed).
        teacher: whether the batches must carry the teacher view too (``--model teacher``).

    Examples:
        >>> from cdkd_core.plugin_api import InputOptions
        >>> options = InputOptions(column="review", delimiter=";")
        >>> options.id_column, options.teacher
        (None, False)
    """

    column: str | None = None
    id_column: str | None = None
    delimiter: str | None = None
    teacher: bool = False


@dataclass
class InputBatch:
    """A chunk of raw input as a domain's views: one id per row, the student view
    ``[N, ...]`` as the domain's ``load`` makes it (before the run's standardisation), and
    the teacher view where it was asked for and the domain can compute it.

    Args:
        ids: One id per row (written beside each prediction).
        student_x: ``[N, ...]``: the student view.
        teacher_x: ``[N, ...]``: the teacher view, or ``None``.

    Raises:
        ValueError: The ids and the views differ in length.

    Examples:
        >>> import torch
        >>> from cdkd_core.plugin_api import InputBatch
        >>> batch = InputBatch(ids=["7", "8"], student_x=torch.zeros(2, 3))
        >>> InputBatch(ids=["7"], student_x=torch.zeros(2, 3))
        Traceback (most recent call last):
        ...
        ValueError: an input batch has 1 ids but 2 rows
    """

    ids: list[str]
    student_x: torch.Tensor
    teacher_x: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if len(self.ids) != len(self.student_x):
            raise ValueError(
                f"an input batch has {len(self.ids)} ids but {len(self.student_x)} rows"
            )
        if self.teacher_x is not None and len(self.teacher_x) != len(self.student_x):
            raise ValueError(
                f"an input batch's teacher view has {len(self.teacher_x)} rows, its student "
                f"view {len(self.student_x)}"
            )


class InputReader(ABC):
    """Turns raw input files into a domain's views, chunk by chunk (so a file larger than
    memory streams through).

    Most domains return one of the core's readers (:class:`TableReader`,
    :class:`TextReader`, :class:`ImageReader`) with their own encoding; a reader of another
    format subclasses this and implements :meth:`batches`.

    Attributes:
        accepts: What the reader accepts, for messages and ``cdkd predict --help``.

    Examples:
        >>> from pathlib import Path
        >>> import torch
        >>> from cdkd_core.plugin_api import InputBatch, InputOptions, InputReader
        >>> class NumbersReader(InputReader):
        ...     accepts = "a file of numbers, one per line"
        ...     def batches(self, source, options, chunk_size):
        ...         values = [float(v) for v in Path(source).read_text().split()]
        ...         for start in range(0, len(values), chunk_size):
        ...             chunk = values[start : start + chunk_size]
        ...             ids = [str(start + i + 1) for i in range(len(chunk))]
        ...             yield InputBatch(ids, torch.tensor(chunk).unsqueeze(1))
        >>> _ = Path("numbers.txt").write_text("1.5\\n2\\n3\\n")
        >>> [b.ids for b in NumbersReader().batches(Path("numbers.txt"), InputOptions(), 2)]
        [['1', '2'], ['3']]
    """

    #: what the reader accepts, for messages and ``cdkd predict --help``
    accepts: str = "a file"

    @abstractmethod
    def batches(self, source: Path, options: InputOptions, chunk_size: int) -> Iterator[InputBatch]:
        """The rows of ``source`` as batches of at most ``chunk_size`` rows, in file order.
        Bad input raises a :class:`~cdkd_core.errors.DataError` naming the file, and the
        line and column where it can.

        Args:
            source: The file (or folder) the user gave.
            options: How to read it.
            chunk_size: The most rows a batch holds.

        Yields:
            :class:`InputBatch` chunks, in file order.

        Raises:
            DataError: Bad input.
        """

    def count(self, source: Path, options: InputOptions) -> int | None:
        """How many rows ``source`` holds, when that is cheap to know (a progress bar's
        total); ``None`` otherwise.

        Args:
            source: The file (or folder) the user gave.
            options: How to read it.

        Returns:
            The count (an upper bound is fine), or ``None`` (the default).
        """
        return None

    def texts(self, texts: list[str], options: InputOptions) -> InputBatch:
        """Texts given directly (from Python) as one batch, for readers of text; others
        raise a :class:`TypeError`.

        Args:
            texts: The texts, one per row.
            options: How to read them (``teacher``).

        Returns:
            One batch, ids ``0..N-1``.

        Raises:
            TypeError: The reader does not read texts (the default).
        """
        raise TypeError(f"{type(self).__name__} reads {self.accepts}, not a list of texts")
