"""A run's logs: ``metrics.jsonl`` always, plus the sinks ``train.log_to`` names
(``tensorboard``: event files in ``RUN_DIR/tb/``), behind one ``log`` / ``close``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cdkd_core.errors import ConfigError
from cdkd_core.run.rundir import MetricsLog

#: what ``train.log_to`` may name
LOG_TARGETS = ("jsonl", "tensorboard")


class FanOutLog:
    """Several logs as one: each record goes to every log, ``close`` closes them all."""

    def __init__(self, logs: Sequence[Any]) -> None:
        self.logs = list(logs)

    def log(self, **record: Any) -> None:
        """Log the record to every log."""
        for log in self.logs:
            log.log(**record)

    def close(self) -> None:
        """Close every log (all of them, even if one fails; the first error is raised)."""
        error: BaseException | None = None
        for log in self.logs:
            try:
                log.close()
            except Exception as exc:
                error = error or exc
        if error is not None:
            raise error


def open_run_log(run_dir: Path, log_to: Sequence[str] = ("jsonl",)) -> MetricsLog | FanOutLog:
    """The run's log: ``metrics.jsonl`` (whatever ``log_to`` says), and TensorBoard event
    files in ``run_dir/tb/`` when ``log_to`` holds ``tensorboard``."""
    unknown = [t for t in log_to if t not in LOG_TARGETS]
    if unknown:
        raise ConfigError(
            f"train.log_to: unknown {', '.join(map(repr, unknown))}; choose from "
            f"{', '.join(LOG_TARGETS)}"
        )
    metrics = MetricsLog(Path(run_dir) / "metrics.jsonl")
    if "tensorboard" not in log_to:
        return metrics
    from cdkd_core.run.tblog import TB_DIR, TensorBoardLog

    try:
        tensorboard = TensorBoardLog(Path(run_dir) / TB_DIR)
    except BaseException:
        metrics.close()
        raise
    return FanOutLog([metrics, tensorboard])
