"""The report's learning curves: one curve per training stage and round, read from the
metrics log (``metrics.jsonl``)."""

from __future__ import annotations

from typing import Any

from cdkd_core.artifacts.html import escape, img
from cdkd_core.artifacts.plots import Curve
from cdkd_core.artifacts.run_files import RunFiles

TRAINING_STAGES = ("teacher", "baseline", "student")


def training_curves(records: list[dict[str, Any]]) -> list[Curve]:
    """One :class:`~cdkd_core.artifacts.plots.Curve` per training stage and round (teacher,
    baseline, each round's student, each feedback's teacher fine-tuning), in log order; an
    epoch logged twice (a resumed run) keeps its last record."""
    epochs: dict[tuple[str, Any], dict[int, dict[str, Any]]] = {}
    selected: dict[tuple[str, Any], int] = {}
    last_round: Any = None
    for r in records:
        stage = r.get("stage")
        if isinstance(r.get("round"), int):
            last_round = r["round"]
        if stage in TRAINING_STAGES:
            key = (stage, r.get("round"))
            if r.get("event") == "selected" and isinstance(r.get("epoch"), int):
                selected[key] = r["epoch"]
            elif "event" not in r and isinstance(r.get("epoch"), int):
                losses = r.get("loss") if isinstance(r.get("loss"), dict) else {}
                epochs.setdefault(key, {})[r["epoch"]] = {
                    "losses": losses,
                    "val": r.get("val_score"),
                }
        elif stage == "feedback_finetune" and isinstance(r.get("epoch"), int):
            key = ("feedback_finetune", last_round)
            epochs.setdefault(key, {})[r["epoch"]] = {
                "losses": {"teacher fine-tuning (weighted ce)": r.get("loss")},
                "val": None,
            }
    curves = []
    for (stage, round_), by_epoch in epochs.items():
        order = sorted(by_epoch)
        terms = list(dict.fromkeys(t for e in order for t in by_epoch[e]["losses"]))
        curves.append(
            Curve(
                title=stage_title(stage, round_),
                epochs=order,
                losses={t: [by_epoch[e]["losses"].get(t) for e in order] for t in terms},
                val_scores=[by_epoch[e]["val"] for e in order],
                selected=selected.get((stage, round_)),
            )
        )
    return curves


def stage_title(stage: str, round_: Any) -> str:
    """A curve's title: the stage and, for the student and the fine-tuning, its round."""
    if stage == "teacher":
        return "teacher (source domains)"
    if stage == "baseline":
        return "baseline (student without the teacher)"
    if stage == "student":
        return f"student, round {round_}"
    return f"teacher fine-tuning, feedback after round {round_}"


def curves_section(run: RunFiles) -> str:
    """The "Learning curves" section."""
    from cdkd_core.artifacts import plots as report_plots

    curves = training_curves(run.records)
    loaded = [r for r in run.records if r.get("stage") == "teacher" and r.get("event") == "loaded"]
    notes = []
    if loaded:
        notes.append(
            f"The teacher was loaded from {escape(loaded[-1].get('checkpoint'))}, not trained here."
        )
    if any(r.get("event") == "resumed" for r in run.records):
        notes.append("The run was resumed; an epoch logged twice shows its last record.")
    intro = (
        '<p class="note">Per epoch: the mean of each loss term per step '
        "(<code>&lt;index&gt;:&lt;loss&gt;</code> as configured; left axis, log scale when "
        "the terms span more than a factor 30) and the mean headline metric on the val split "
        "(dashed, right axis). The dotted line marks the epoch whose weights were kept. "
        + " ".join(notes)
        + "</p>"
    )
    if not curves:
        return intro + '<p class="warn">metrics.jsonl holds no training epochs.</p>'
    return intro + img(report_plots.learning_curves(curves), "learning curves")
