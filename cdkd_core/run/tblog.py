"""TensorBoard event files of a run (``train.log_to: [jsonl, tensorboard]``): the scalars of
the metrics log, written to ``RUN_DIR/tb/`` with ``torch.utils.tensorboard``.

Needs the ``tensorboard`` package (``pip install 'cdkd[tensorboard]'``); without it, asking
for TensorBoard is a config error naming that command.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from cdkd_core.config.machine import tensorboard_missing
from cdkd_core.errors import ConfigError

#: the event files' directory in the run directory
TB_DIR = "tb"
TRAINING_STAGES = ("teacher", "baseline", "student")


def _number(value: Any) -> float | None:
    """A finite float of a logged value (bools as 0/1), or None for anything else."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


class TensorBoardLog:
    """The metrics log as TensorBoard scalars, with :class:`~cdkd_core.run.rundir.MetricsLog`'s
    ``log(**record)`` / ``close()`` interface; each record is flushed as it is logged.

    Tags (step in brackets): ``teacher/…``, ``baseline/…`` and ``student/round_<r>/…`` with
    ``loss/<index>:<loss>``, ``val_score`` and ``val/<domain>/<metric>`` (epoch);
    ``test/<domain>/<teacher|student|baseline>``, the headline metric (round);
    ``feedback/<event>/<domain>/<key>`` for what a feedback strategy logs (round);
    ``feedback/round_<r>/finetune_loss`` (fine-tuning epoch); ``gate/<domain>/<key>`` (round).
    """

    def __init__(self, log_dir: Path) -> None:
        missing = tensorboard_missing()
        if missing is not None:
            raise ConfigError(f"train.log_to: {missing}")
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = Path(log_dir)
        self._writer: Any = SummaryWriter(log_dir=str(self.log_dir))
        self._round: int | None = None

    def scalars(self, record: dict[str, Any]) -> list[tuple[str, float, int]]:
        """The ``(tag, value, step)`` scalars of one metrics record (none for records that
        hold no numbers to plot, such as a domain's description)."""
        stage, round_ = record.get("stage"), record.get("round")
        if isinstance(round_, int):
            self._round = round_
        if stage in TRAINING_STAGES and "event" not in record:
            found = _epoch_scalars(stage, record)
        elif stage == "evaluation":
            found = [
                (f"test/{domain}/{model}", value, round_)
                for domain, models in (record.get("domains") or {}).items()
                for model, value in (models or {}).items()
            ]
        elif stage == "feedback":
            where = "/".join(str(record[k]) for k in ("event", "domain") if k in record)
            found = [
                (f"feedback/{where}/{key}" if where else f"feedback/{key}", value, round_)
                for key, value in record.items()
                if key not in ("t", "stage", "round", "event", "domain")
            ]
        elif stage == "feedback_finetune":
            found = [
                (
                    f"feedback/round_{self._round}/finetune_loss",
                    record.get("loss"),
                    record.get("epoch"),
                )
            ]
        elif stage == "gate":
            found = [
                (f"gate/{record.get('domain')}/{key}", value, round_)
                for key, value in record.items()
                if key not in ("t", "stage", "round", "domain")
            ]
        else:
            found = []
        return _plottable(found)

    def log(self, **record: Any) -> None:
        """Write the record's scalars and flush."""
        if self._writer is None:
            return
        scalars = self.scalars(record)
        for tag, value, step in scalars:
            self._writer.add_scalar(tag, value, step)
        if scalars:
            self._writer.flush()

    def close(self) -> None:
        """Flush and close the event file (closing twice is harmless)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _epoch_scalars(stage: str, record: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """A training epoch's loss terms, val score and per-domain val metrics, as tags."""
    prefix = stage if stage != "student" else f"student/round_{record.get('round')}"
    epoch = record.get("epoch")
    found = [
        (f"{prefix}/loss/{term}", value, epoch)
        for term, value in (record.get("loss") or {}).items()
    ]
    found.append((f"{prefix}/val_score", record.get("val_score"), epoch))
    found += [
        (f"{prefix}/val/{domain}/{metric}", value, epoch)
        for domain, metrics in (record.get("val") or {}).items()
        for metric, value in (metrics or {}).items()
    ]
    return found


def _plottable(found: list[tuple[str, Any, Any]]) -> list[tuple[str, float, int]]:
    """The entries with a finite number (bools as 0/1) at an integer step."""
    out = []
    for tag, value, step in found:
        number = _number(value)
        if number is not None and isinstance(step, int):
            out.append((tag, number, step))
    return out
