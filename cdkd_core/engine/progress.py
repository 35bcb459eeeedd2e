"""Progress display for training stages (rich), silent when quiet."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Progress:
    """One bar per stage; ``quiet=True`` shows nothing."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self._progress: Any = None

    def __enter__(self) -> Progress:
        if not self.quiet:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
            )
            from rich.progress import Progress as RichProgress

            self._progress = RichProgress(
                TextColumn("{task.description:<32}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def message(self, text: str) -> None:
        """A line of text above the bars."""
        if self._progress is not None:
            self._progress.console.print(text)

    @contextmanager
    def stage(self, description: str, total: int) -> Iterator[Any]:
        """A bar advanced by calling the yielded function with a status string."""
        if self._progress is None:
            yield lambda status="": None
            return
        task = self._progress.add_task(description, total=total, status="")

        def advance(status: str = "") -> None:
            self._progress.update(task, advance=1, status=status)

        try:
            yield advance
        finally:
            self._progress.update(task, completed=self._progress.tasks[task].total)
