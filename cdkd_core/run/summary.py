"""``summary.json``: the last round's results per domain, every round's, the networks'
size and speed, and how the run was made."""

from __future__ import annotations

from typing import Any

import torch

from cdkd_core.nets.network import MultiDomainNet
from cdkd_core.nets.selected_teacher import SelectedTeacher
from cdkd_core.run.footprint import LATENCY_BATCH, latencies, parameter_counts
from cdkd_core.stages.context import StageContext
from cdkd_core.stages.teacher import teacher_training

#: the fields of a domain's last-round results the summary keeps
DOMAIN_FIELDS = (
    "role",
    "metric",
    "teacher",
    "student",
    "baseline",
    "metrics",
    "sizes",
    "shots",
    "reference",
    "adaptation",
    "label_shift",
    "gate",
)


def teacher_selection(teacher: torch.nn.Module) -> dict[str, Any] | None:
    """What ``teacher: auto`` chose per task and on which val scores (None for a teacher
    given by the config)."""
    if not isinstance(teacher, SelectedTeacher):
        return None
    return {k: teacher.selection.get(k) for k in ("choice", "val_scores", "metric", "fitted")}


def build_summary(
    ctx: StageContext,
    student: MultiDomainNet,
    round_results: list[dict[str, Any]],
    warnings: list[str],
) -> dict[str, Any]:
    """The run's summary (its ``wall_s`` is the caller's to add)."""
    final = round_results[-1]["domains"]

    def timed(batch_size: int) -> dict[str, float | None]:
        if not ctx.world.main:  # measured by process 0 alone
            return {"teacher": None, "student": None}
        return latencies(ctx.teacher, student, ctx.domains, batch_size, ctx.device)

    return {
        "domains": {name: {k: r.get(k) for k in DOMAIN_FIELDS} for name, r in final.items()},
        "round_results": round_results,
        "params": parameter_counts(ctx.teacher, student, ctx.domains, ctx.target_heads),
        "latency_ms_per_sample": timed(LATENCY_BATCH),
        "latency_batch_size": LATENCY_BATCH,
        "latency_ms_per_sample_batch1": timed(1),
        "processes": ctx.world.size,
        "rounds": ctx.feedback.rounds,
        "teacher_training": teacher_training(ctx.config, ctx.sources),
        "teacher_selection": teacher_selection(ctx.teacher),
        "seed": ctx.config.seed,
        "device": str(ctx.device),
        "threads": torch.get_num_threads(),
        "teacher_cache": {"hits": ctx.cache.hits, "misses": ctx.cache.misses},
        "warnings": list(warnings),
    }
