"""Ctrl-C during a run: the first asks the training to checkpoint after its current step
and stop; a second one (or one before training starts) interrupts at once."""

from __future__ import annotations

import signal
import threading
from typing import Any, Protocol


class Interruptible(Protocol):
    """What the watch needs of a run."""

    training_started: bool

    def request_stop(self) -> bool:
        """Ask the run to stop after its current step; False when it was asked already."""


class InterruptWatch:
    """Installs the SIGINT handler for the duration of a run (main thread only)."""

    def __init__(self) -> None:
        self.run: Interruptible | None = None
        self._previous: Any = None

    def _handler(self, signum: int, frame: Any) -> None:
        run = self.run
        if run is None or not run.training_started or not run.request_stop():
            signal.signal(signal.SIGINT, self._previous)
            raise KeyboardInterrupt

    def __enter__(self) -> InterruptWatch:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
