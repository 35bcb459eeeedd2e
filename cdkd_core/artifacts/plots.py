"""The run report's plots: matplotlib figures rendered to PNG ``data:`` URIs.

Figures are built with :class:`matplotlib.figure.Figure` and its Agg canvas directly, never
through ``pyplot``, so no global backend is chosen and no GUI is touched (importing this
module imports no matplotlib at all).
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

#: marker per class index (cycled past the end)
MARKERS = ("o", "^", "s", "D", "v", "P", "X", "*", "<", ">", "h", "p")
DPI = 100


@dataclass
class Curve:
    """One training stage's per-epoch record: loss terms, val score, the selected epoch."""

    title: str
    epochs: list[int]
    #: term name -> one value per epoch (None where the term did not run that epoch)
    losses: dict[str, list[float | None]]
    val_scores: list[float | None] = field(default_factory=list)
    selected: int | None = None


@dataclass
class ScatterGroup:
    """2-D points of one domain: coordinates ``[n, 2]`` and a class index per point."""

    domain: str
    points: Any  # numpy [n, 2]
    classes: Any  # numpy [n]


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def to_data_uri(fig: Any) -> str:
    """The figure as a base64 PNG ``data:`` URI (no metadata naming the software)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _colours(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _finite(values: Sequence[float | None]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def _nan(values: Sequence[float | None]) -> list[float]:
    return [math.nan if v is None else float(v) for v in values]


def learning_curves(curves: Sequence[Curve], columns: int = 3) -> str:
    """Small multiples, one per stage (and round): each loss term per epoch on the left
    axis, the val score on the right one, the selected epoch marked."""
    columns = max(1, min(columns, len(curves)))
    rows = math.ceil(len(curves) / columns)
    fig = _figure(4.6 * columns, 0.4 + 3.3 * rows)
    axes = fig.subplots(rows, columns, squeeze=False)
    terms = sorted({t for c in curves for t in c.losses}, key=_term_order)
    colour = dict(zip(terms, _colours(len(terms)), strict=True))
    legend: dict[str, Any] = {}  # one figure legend: label -> first handle
    for ax, curve in zip(axes.flat, curves, strict=False):
        values = []
        for term in sorted(curve.losses, key=_term_order):
            ys = curve.losses[term]
            values += _finite(ys)
            (line,) = ax.plot(
                curve.epochs, _nan(ys), color=colour[term], lw=1.6, marker=".", label=term
            )
            legend.setdefault(term, line)
        if values and min(values) > 0 and max(values) / min(values) > 30:
            ax.set_yscale("log")
        ax.set_title(curve.title, fontsize=10)
        ax.set_xlabel("epoch", fontsize=8)
        ax.set_ylabel("train loss (mean per step)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if curve.epochs and max(curve.epochs) <= 20:
            ax.set_xticks(curve.epochs)
        if _finite(curve.val_scores):
            twin = ax.twinx()
            (val,) = twin.plot(
                curve.epochs,
                _nan(curve.val_scores),
                color="black",
                ls="--",
                lw=1.2,
                marker="o",
                ms=3,
            )
            twin.set_ylabel("val score (headline metric)", fontsize=8)
            twin.tick_params(labelsize=7)
            legend.setdefault("val score (right axis)", val)
        if curve.selected is not None:
            mark = ax.axvline(curve.selected, color="grey", ls=":", lw=1.4)
            legend.setdefault("selected epoch", mark)
    for ax in list(axes.flat)[len(curves) :]:
        ax.set_visible(False)
    labels = sorted(
        legend, key=lambda k: (k in _EXTRA_LABELS, _EXTRA_LABELS.get(k, 0), _term_order(k))
    )
    fig.legend(
        [legend[k] for k in labels],
        labels,
        loc="outside upper center",
        ncol=min(len(legend), 8),
        fontsize=8,
        frameon=False,
    )
    return to_data_uri(fig)


#: legend entries after the loss terms, in this order
_EXTRA_LABELS = {"val score (right axis)": 1, "selected epoch": 2}


def _term_order(term: str) -> tuple[int, str]:
    """``"<index>:<name>"`` keys in their configured order; others after, by name."""
    head, _, _ = term.partition(":")
    return (int(head), term) if head.isdigit() else (1 << 30, term)


def knowledge_space(
    teacher: Sequence[ScatterGroup],
    student: Sequence[ScatterGroup],
    domains: Sequence[str],
    student_title: str,
    axis_labels: tuple[str, str],
) -> str:
    """Two panels on shared axes: the teacher's knowledge vectors and the student's
    projected features, coloured by domain and marked by class."""
    from matplotlib.lines import Line2D

    colour = dict(zip(domains, _colours(len(domains)), strict=True))
    fig = _figure(12.5, 5.6)
    left, right = fig.subplots(1, 2, sharex=True, sharey=True)
    panels = (
        (left, teacher, "teacher: knowledge vectors"),
        (right, student, student_title),
    )
    for ax, groups, title in panels:
        _scatter_interleaved(ax, groups, colour)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(axis_labels[0], fontsize=8)
        ax.set_ylabel(axis_labels[1], fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if not groups:
            ax.text(0.5, 0.5, "no points", ha="center", va="center", transform=ax.transAxes)
    classes = sorted({int(k) for g in [*teacher, *student] for k in g.classes})
    domain_handles = [
        Line2D([], [], ls="", marker="o", color=colour[d], label=d, ms=7) for d in domains
    ]
    class_handles = [
        Line2D([], [], ls="", marker=MARKERS[c % len(MARKERS)], color="dimgray", label=f"class {c}")
        for c in classes
    ]
    fig.legend(
        handles=domain_handles + class_handles,
        loc="outside right center",
        fontsize=8,
        frameon=False,
    )
    return to_data_uri(fig)


def _scatter_interleaved(ax: Any, groups: Sequence[ScatterGroup], colour: dict[str, Any]) -> None:
    """One scatter per class marker, the domains' points drawn in a shuffled order (fixed
    seed) so that no domain hides another wholesale."""
    import numpy as np

    if not groups:
        return
    points = np.concatenate([g.points for g in groups])
    classes = np.concatenate([np.asarray(g.classes, dtype=int) for g in groups])
    colours = np.array([colour[g.domain] for g in groups for _ in range(len(g.points))])
    order = np.random.default_rng(0).permutation(len(points))
    points, classes, colours = points[order], classes[order], colours[order]
    for c in sorted(set(classes.tolist())):
        mask = classes == c
        ax.scatter(
            points[mask, 0],
            points[mask, 1],
            s=14,
            marker=MARKERS[c % len(MARKERS)],
            c=colours[mask],
            alpha=0.6,
            linewidths=0,
        )


def deltas(names: Sequence[str], values: Sequence[float | None], xlabel: str) -> str:
    """Horizontal bars, one per domain: green above zero, red below, none where missing."""
    fig = _figure(7.0, 0.6 + 0.3 * len(names))
    ax = fig.subplots()
    ys = list(range(len(names)))[::-1]
    heights = [0.0 if v is None or not math.isfinite(v) else v for v in values]
    colours = ["#2e8b57" if h > 0 else "#c0392b" for h in heights]
    ax.barh(ys, heights, color=colours, height=0.6)
    for y, v in zip(ys, values, strict=True):
        if v is None or not math.isfinite(v):
            ax.text(0, y, "  n/a", va="center", fontsize=7, color="grey")
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(ys, list(names), fontsize=8)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    ax.grid(axis="x", alpha=0.3)
    return to_data_uri(fig)


def rounds(
    domains: Sequence[str],
    round_ids: Sequence[int],
    student_minus_baseline: dict[str, list[float | None]],
    teacher: dict[str, list[float | None]],
) -> str:
    """Per feedback round and domain: the student's lead over the baseline, and the
    teacher's test score (it changes when feedback updates it)."""
    colour = dict(zip(domains, _colours(len(domains)), strict=True))
    fig = _figure(12.5, 3.8)
    left, right = fig.subplots(1, 2)
    for ax, series, title in (
        (left, student_minus_baseline, "student - baseline (headline metric, test)"),
        (right, teacher, "teacher (headline metric, test)"),
    ):
        for d in domains:
            if _finite(series.get(d, [])):
                ax.plot(round_ids, _nan(series[d]), marker="o", color=colour[d], label=d, lw=1.4)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("round", fontsize=8)
        ax.set_xticks(list(round_ids))
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    left.axhline(0, color="black", lw=0.8)
    handles, labels = left.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=8, frameon=False)
    return to_data_uri(fig)


def knowledge_graph(
    labels: Sequence[str],
    domains: Sequence[str],
    weights: Any,
    edges: Any,
    max_edges: int = 60,
) -> str:
    """The class graph on a circle, nodes grouped by domain (one colour each): an edge's
    width grows with its weight (only positive weights drawn, the ``max_edges``
    strongest), cross-domain edges solid black, within-domain ones dashed grey."""
    import numpy as np
    from matplotlib.lines import Line2D

    n = len(labels)
    order = sorted(range(n), key=lambda i: (domains[i], i))
    angle = np.empty(n)
    angle[order] = np.linspace(0.5 * np.pi, 2.5 * np.pi, n, endpoint=False)
    xy = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    names = sorted(set(domains))
    colour = dict(zip(names, _colours(len(names)), strict=True))
    w = np.asarray(weights, dtype=float)
    pairs = [
        (w[i, j], i, j)
        for i in range(n)
        for j in range(i + 1, n)
        if bool(edges[i, j]) and w[i, j] > 0
    ]
    pairs = sorted(pairs, key=lambda p: -p[0])[:max_edges]
    top = max((p[0] for p in pairs), default=1.0)
    fig = _figure(8.5, 7.0)
    ax = fig.subplots()
    for weight, i, j in reversed(pairs):  # strongest drawn last, on top
        cross = domains[i] != domains[j]
        ax.plot(
            xy[[i, j], 0],
            xy[[i, j], 1],
            color="black" if cross else "0.65",
            ls="-" if cross else "--",
            lw=0.4 + 4.0 * weight / top,
            alpha=0.75 if cross else 0.7,
            zorder=2 if cross else 1,
        )
    for i in range(n):
        ax.scatter(*xy[i], s=110, color=colour[domains[i]], edgecolor="black", zorder=3)
        ha = "left" if xy[i, 0] >= 0 else "right"
        ax.annotate(labels[i], xy[i] * 1.09, ha=ha, va="center", fontsize=7, annotation_clip=False)
    ax.set_xlim(-1.6, 1.6)
    ax.set_ylim(-1.25, 1.25)
    ax.set_aspect("equal")
    ax.axis("off")
    handles = [Line2D([], [], ls="", marker="o", color=colour[d], label=d, ms=8) for d in names]
    handles += [
        Line2D([], [], color="black", lw=2, label="cross-domain edge"),
        Line2D([], [], color="0.65", ls="--", lw=2, label="within-domain edge"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=8, frameon=False)
    return to_data_uri(fig)
