"""The rows a classical candidate of one (input space, task) is fitted and chosen on: the
labelled train rows of the source domains sharing them, and their labelled val rows. Both
the ``hist_gbm`` teacher and the ``linear`` candidate of ``teacher: auto`` read them."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from cdkd_core.data.preparation import PreparedDomain
from cdkd_core.metrics import compute
from cdkd_core.nets.estimator_teacher import as_rows


@dataclass
class SlotRows:
    """One slot's training rows (``x``, ``y``) and, per source domain with labelled val
    rows, those rows (``val_x``) and their domain and mask (``val``)."""

    space: str
    task: str
    x: np.ndarray
    y: np.ndarray
    val: list[tuple[PreparedDomain, torch.Tensor]]
    val_x: list[np.ndarray]
    start: float = field(default_factory=time.perf_counter)

    def mean_headline(self, logits: list[torch.Tensor]) -> float:
        """The mean val headline of ``logits`` (one tensor per entry of ``val``) over the
        domains where it is defined; ``-inf`` where it is nowhere."""
        scores = [
            compute(d.headline, z, d.val.y[m]) for (d, m), z in zip(self.val, logits, strict=True)
        ]
        scores = [s for s in scores if not math.isnan(s)]
        return sum(scores) / len(scores) if scores else -math.inf

    def record(self, model: str, chosen: dict[str, Any]) -> dict[str, Any]:
        """What was fitted here, for the run log (``wall_s`` since these rows were read)."""
        return {
            "model": model,
            "space": self.space,
            "task": self.task,
            "rows": len(self.x),
            "wall_s": round(time.perf_counter() - self.start, 3),
            **chosen,
        }


def slot_rows(sources: list[PreparedDomain], space: str, task: str) -> SlotRows:
    """The rows of the sources whose input space and task are ``space`` and ``task``."""
    group = [d for d in sources if (d.space, d.task) == (space, task)]
    val = [(d, d.val_labelled) for d in group if bool(d.val_labelled.any())]
    return SlotRows(
        space=space,
        task=task,
        x=np.concatenate([as_rows(d.train.teacher_x[d.labelled]) for d in group]),
        y=torch.cat([d.train.y[d.labelled] for d in group]).numpy(),
        val=val,
        val_x=[as_rows(d.val.teacher_x[m]) for d, m in val],
    )
