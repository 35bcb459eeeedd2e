"""The tabular sections of docs/results.md: the teachers, from
``benchmarks/tabular_distill.json`` (``python -m benchmarks.tabular_distill``), and the
documented defaults, from ``benchmarks/tabular_auto.json`` (``python -m
benchmarks.tabular_auto``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.tabular_distill import HERE, TEACHERS, markdown, size_share
from benchmarks.tabular_teacher import READING

#: the targets of the tabular teachers (issue 18)
KEEP, SIZE, SPEEDUP, FEW_LABEL_GAIN = 0.97, 0.10, 5.0, 0.03


def _speed(row: dict[str, Any]) -> float | None:
    served = row.get("speedup", {}).get("served/256")
    return None if served is None else served["mean"]


def table_targets(data: dict[str, Any]) -> list[dict[str, Any]]:
    """One line per (target, teacher): met or not, and the figures."""
    rows = data["rows"]
    out = []
    for kind in TEACHERS:
        domains = {k.split("/")[0]: r for k, r in rows.items() if k.endswith(f"/{kind}")}
        full = {s: r for s, r in domains.items() if not s.startswith("few")}
        below = [
            f"{s} {100 * r['ci']['teacher_minus_best_reference']['diff']:+.1f} pts"
            for s, r in full.items()
            if r["ci"]["teacher_minus_best_reference"]["ci_high"] < 0
        ]
        out.append(
            {
                "target": f"{kind} teacher not below max(LR, HistGB) beyond its 95% interval",
                "met": not below and bool(full),
                "figures": f"{len(full) - len(below)}/{len(full)} domains"
                + (f"; below: {', '.join(below)}" if below else ""),
            }
        )
        misses = []
        for s, r in full.items():
            keeps = r["student"]["mean"] / r["teacher"]["mean"]
            size, speed = size_share(kind, r), _speed(r)
            why = []
            if keeps < KEEP:
                why.append(f"keeps {keeps:.1%}")
            if size > SIZE:
                why.append(f"size {size:.1%}")
            if speed is None or speed < SPEEDUP:
                why.append("no speed" if speed is None else f"{speed:.1f}x")
            if why:
                misses.append(f"{s} ({', '.join(why)})")
        out.append(
            {
                "target": f"{kind}: student keeps >= 97%, <= 10% of the size, >= 5x faster "
                "at batch 256 as served",
                "met": not misses and bool(full),
                "figures": f"{len(full) - len(misses)}/{len(full)} domains"
                + (f"; missed: {'; '.join(misses)}" if misses else ""),
            }
        )
        few = {s: r for s, r in domains.items() if s.startswith("few")}
        if few:
            gains = {
                s.removeprefix("few"): r["ci"]["student_minus_baseline"] for s, r in few.items()
            }
            out.append(
                {
                    "target": f"{kind}: few-label Default student >= baseline + 3 points",
                    "met": all(g["diff"] >= FEW_LABEL_GAIN for g in gains.values()),
                    "figures": "; ".join(
                        f"{float(f):.0%} labels {100 * g['diff']:+.1f} "
                        f"[{100 * g['ci_low']:+.1f}, {100 * g['ci_high']:+.1f}] pts"
                        for f, g in gains.items()
                    ),
                }
            )
    return out


def tables_section(data: dict[str, Any], number: int) -> list[str]:
    """The section: targets, then the benchmark's own tables (its markdown, headings
    shifted under this section)."""
    lines = [
        f"## {number}. Teachers worth distilling on tables",
        "",
        "From `benchmarks/tabular_distill.json` (`python -m benchmarks.tabular_distill`); the "
        "recipe was chosen on the val split in `benchmarks/tabular_teacher.md`. Each tabular "
        "domain is the only source; three teachers: `mlp` (the default teacher: no "
        "`teacher:` section), `ensemble` (`teacher.ensemble: 5` of it) and `hist_gbm` "
        "(`teacher.model`).",
        "",
        "| target | met | figures |",
        "|---|---|---|",
    ]
    for t in table_targets(data):
        lines.append(f"| {t['target']} | {'yes' if t['met'] else '**no**'} | {t['figures']} |")
    return lines + study_lines(markdown(data), "Mean ± std", HERE / "tabular_distill.md")


def study_lines(text: str, start: str, reading: Path) -> list[str]:
    """A study's markdown ``text`` from its first line starting with ``start``, headings
    shifted one level down, then the hand-written reading kept in ``reading`` below the
    generated tables (where there is one)."""
    body = text.split("\n")
    first = next(i for i, line in enumerate(body) if line.startswith(start))
    lines = ["", *(("#" + line) if line.startswith("## ") else line for line in body[first:])]
    if reading.is_file():
        kept = reading.read_text(encoding="utf-8").partition(READING)[2].strip()
        lines += [("#" + line) if line.startswith("## ") else line for line in kept.split("\n")]
        lines.append("")
    return lines


def defaults_section(data: dict[str, Any], number: int) -> list[str]:
    """The section of the documented defaults on tables (``teacher: auto``): the
    benchmark's tables and targets (headings shifted under this section), and its reading."""
    from benchmarks.tabular_auto import markdown as auto_markdown

    lines = [
        f"## {number}. The documented defaults on tables, two of them held out",
        "",
        "From `benchmarks/tabular_auto.json` (`python -m benchmarks.tabular_auto`): every "
        "config gives only `name`, `seed` and `domains`, so each run gets what a new user "
        "gets: `teacher: auto`, which fits `linear`, `network`, `ensemble` and `hist_gbm` per "
        "task and keeps the best on val, the recipe's training settings, the default student, "
        "losses and `teacher_gate`. Ecdat `Benefits` and AER `SwissLabor` are held out: no "
        "recipe decision of the project has seen them.",
    ]
    return lines + study_lines(auto_markdown(data), "Mean ± std", HERE / "tabular_auto.md")
