"""``cdkd report``: one self-contained HTML page about a finished run.

It reads the run directory (``summary.json``, ``metrics.jsonl``, ``config.yaml``,
``layout.json``, and ``knowledge_sample.safetensors`` where the run saved one) and writes
``report.html``: the per-domain test results, learning curves per stage and round, a 2-D
view of the knowledge space, the class graph of a ``knowledge_graph`` run, the feedback
rounds, and sizes and latencies. Styles are
inline and plots are embedded PNG ``data:`` URIs: the file needs nothing else to be read.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cdkd_core.artifacts.plots import Curve
from cdkd_core.errors import ReportError

#: the report's file name in the run directory
REPORT = "report.html"
TRAINING_STAGES = ("teacher", "baseline", "student")
MODELS = ("teacher", "student", "baseline")


@dataclass
class RunFiles:
    """What the report reads from a finished run directory."""

    run_dir: Path
    summary: dict[str, Any]
    records: list[dict[str, Any]]
    config: dict[str, Any]
    config_text: str
    layout: dict[str, Any]


def read_run(run_dir: Path) -> RunFiles:
    """Read a finished run directory; a :class:`ReportError` names what is missing."""
    import yaml

    from cdkd_core.run.rundir import read_metrics

    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise ReportError(f"{run_dir}: no such run directory")
    if not run_dir.is_dir():
        raise ReportError(f"{run_dir}: not a directory (give the run directory itself)")
    if not (run_dir / "config.yaml").is_file():
        raise ReportError(f"{run_dir}: not a run directory (it has no config.yaml)")
    if not (run_dir / "summary.json").is_file():
        raise ReportError(
            f"{run_dir}: the run has not finished (no summary.json); a report needs a "
            f"completed run: continue it with `cdkd run --resume {run_dir}`"
        )
    try:
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
        config_text = (run_dir / "config.yaml").read_text(encoding="utf-8")
        config = yaml.safe_load(config_text) or {}
        layout_path = run_dir / "layout.json"
        layout = (
            json.loads(layout_path.read_text(encoding="utf-8")) if layout_path.is_file() else {}
        )
        metrics = run_dir / "metrics.jsonl"
        records = read_metrics(metrics) if metrics.is_file() else []
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        raise ReportError(f"{run_dir}: unreadable run file ({_first_line(exc)})") from exc
    if not isinstance(summary, dict) or not isinstance(summary.get("domains"), dict):
        raise ReportError(f"{run_dir / 'summary.json'}: not a cdkd summary (no 'domains')")
    return RunFiles(run_dir, summary, records, config, config_text, layout)


def write_report(run_dir: Path, output: Path | None = None, host: Any = None) -> Path:
    """Write the report of the finished run in ``run_dir`` to ``output`` (default
    ``run_dir/report.html``) atomically, and return its path."""
    from cdkd_core.run.rundir import atomic_write_text

    run = read_run(run_dir)
    path = Path(output) if output is not None else run.run_dir / REPORT
    if path.is_dir():
        raise ReportError(f"--output {path}: is a directory; give a file name")
    atomic_write_text(path, render_report(run, host))
    return path


def render_report(run: RunFiles, host: Any = None) -> str:
    """The report's HTML."""
    from cdkd_core import __version__

    title = f"cdkd run {run.run_dir.resolve().name}"
    sections = [
        ("results", "Test results", _results_section(run)),
        ("curves", "Learning curves", _curves_section(run)),
        ("knowledge", "Knowledge space", _knowledge_section(run, host)),
        *_graph_sections(run),
        ("rounds", "Feedback rounds", _rounds_section(run)),
        ("sizes", "Sizes and latency", _sizes_section(run)),
        ("config", "Config", _config_section(run)),
    ]
    nav = " · ".join(f'<a href="#{key}">{_e(name)}</a>' for key, name, _ in sections)
    body = "\n".join(
        f'<section id="{key}"><h2>{_e(name)}</h2>\n{content}\n</section>'
        for key, name, content in sections
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>\n"
        f"<header><h1>{_e(title)}</h1>{_overview(run)}<nav>{nav}</nav></header>\n"
        f"{body}\n"
        f"<footer>Written by cdkd {_e(__version__)} from {_e(run.run_dir.resolve().name)}/ "
        "(summary.json, metrics.jsonl, config.yaml, layout.json).</footer>\n"
        "</body></html>\n"
    )


CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
color:#222;background:#fff;max-width:1320px;margin:0 auto;padding:0 24px 40px}
h1{font-size:22px;margin:20px 0 6px}h2{font-size:18px;margin:0 0 8px;
border-bottom:1px solid #ddd;padding-bottom:4px}h3{font-size:15px;margin:14px 0 6px}
section{margin:26px 0}nav{margin:10px 0;font-size:13px}a{color:#1a5fb4}
.facts{display:flex;flex-wrap:wrap;gap:4px 22px;font-size:13px;color:#444}
.facts b{color:#222;font-weight:600}
table{border-collapse:collapse;font-size:13px;margin:6px 0 10px}
th,td{padding:4px 10px;border-bottom:1px solid #e4e4e4;text-align:right;white-space:nowrap}
th{background:#f4f5f7;font-weight:600}th.l,td.l{text-align:left}td.sub{padding-left:26px;color:#555}
tbody tr:nth-child(even){background:#fafafa}
td.pos{color:#1e7b45;font-weight:600}td.neg{color:#b3261e;font-weight:600}td.na{color:#999}
.note{color:#555;font-size:13px;max-width:1000px}
.warn{color:#8a4b00;background:#fff6e5;border:1px solid #f0d9a8;padding:6px 10px;
border-radius:4px;font-size:13px}
img{max-width:100%;height:auto;display:block;margin:6px 0}
details{margin:6px 0}summary{cursor:pointer;color:#1a5fb4;font-size:13px}
pre{background:#f6f8fa;padding:10px;font-size:12px;overflow:auto;max-height:520px}
footer{margin-top:30px;color:#888;font-size:12px}
"""


# -- helpers -----------------------------------------------------------------------------------
def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _delta(a: Any, b: Any) -> float | None:
    if a is None or b is None:
        return None
    value = float(a) - float(b)
    return value if math.isfinite(value) else None


def _delta_cell(value: float | None) -> str:
    if value is None:
        return '<td class="na">-</td>'
    cls = "pos" if value > 0 else "neg" if value < 0 else ""
    return f'<td class="{cls}">{value:+.4f}</td>'


def _table(header: list[str], rows: Iterable[list[str]], left: Iterable[int] = (0,)) -> str:
    """An HTML table; ``rows`` hold ready ``<td>`` cells; the header cells of the columns
    in ``left`` are left-aligned like their text cells, the others right-aligned."""
    left = set(left)
    head = "".join(
        f'<th class="l">{_e(h)}</th>' if i in left else f"<th>{_e(h)}</th>"
        for i, h in enumerate(header)
    )
    body = "".join(f"<tr>{''.join(r)}</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _td(value: Any, left: bool = False) -> str:
    return f'<td class="l">{_e(value)}</td>' if left else f"<td>{_e(_num(value))}</td>"


def _td_sig(value: Any) -> str:
    """A number to 4 significant digits (latencies span orders of magnitude)."""
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return _td(value)
    return f"<td>{value:.4g}</td>"


def _img(uri: str, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="{uri}">'


def _components(run: RunFiles) -> dict[str, str]:
    """Short descriptions of the configured encoder, losses and feedback."""
    config = run.config

    def ref(item: Any) -> str:
        if not isinstance(item, dict):
            return "?"
        params = item.get("params") or {}
        inner = ", ".join(f"{k}={v}" for k, v in params.items())
        return f"{item.get('name', '?')}" + (f"({inner})" if inner else "")

    losses = [
        f"{x.get('weight', 1.0):g}·{ref(x)}" if isinstance(x, dict) else "?"
        for x in config.get("losses") or []
    ]
    return {
        "encoder": ref(config.get("encoder")),
        "losses": " + ".join(losses) or "-",
        "feedback": ref(config.get("feedback")),
    }


def _overview(run: RunFiles) -> str:
    s, train = run.summary, run.config.get("train") or {}
    roles: dict[str, int] = {}
    for d in s["domains"].values():
        roles[d.get("role", "?")] = roles.get(d.get("role", "?"), 0) + 1
    comps = _components(run)
    facts = [
        ("domains", ", ".join(f"{n} {r}" for r, n in roles.items())),
        ("encoder", comps["encoder"]),
        ("losses", comps["losses"]),
        ("feedback", comps["feedback"]),
        ("rounds", s.get("rounds")),
        ("epochs", train.get("epochs")),
        ("seed", s.get("seed")),
        ("device", f"{s.get('device', '?')}, {s.get('threads', '?')} thread(s)"),
        ("processes", s.get("processes", 1)),
        ("wall time", f"{s.get('wall_s', math.nan):.1f} s"),
    ]
    return (
        '<div class="facts">'
        + "".join(f"<span><b>{_e(k)}</b> {_e(v)}</span>" for k, v in facts)
        + "</div>"
    )


# -- test results ------------------------------------------------------------------------------
def _results_section(run: RunFiles) -> str:
    from cdkd_core.artifacts import plots as report_plots

    domains = run.summary["domains"]
    references = sorted({k for d in domains.values() for k in (d.get("reference") or {})})
    header = ["domain", "role", "metric", "teacher", "student", "baseline", "Δ student"]
    header += ["Δ vs teacher", *references, "train", "labelled", "test"]
    rows = []
    for name, d in domains.items():
        sizes = d.get("sizes") or {}
        rows.append(
            [
                _td(name, True),
                _td(d.get("role"), True),
                _td(d.get("metric"), True),
                *(_td(d.get(m)) for m in MODELS),
                _delta_cell(_delta(d.get("student"), d.get("baseline"))),
                _delta_cell(_delta(d.get("student"), d.get("teacher"))),
                *(_td((d.get("reference") or {}).get(k)) for k in references),
                *(_td(sizes.get(k)) for k in ("train", "labelled", "test")),
            ]
        )
    names = list(domains)
    lead = [_delta(domains[n].get("student"), domains[n].get("baseline")) for n in names]
    plot = _img(
        report_plots.deltas(names, lead, "student - baseline (headline metric, test split)"),
        "student minus baseline per domain",
    )
    return (
        '<p class="note">The last round\'s test-split results, headline metric per domain '
        "(higher is better). <b>Δ student</b> is student - baseline: the same student "
        "architecture, initialisation, labels and epochs trained without the teacher. "
        "<b>Δ vs teacher</b> is student - teacher. A dash: the model has no stem for the "
        "domain's input space or no head for its task.</p>"
        + "".join(f'<p class="warn">{_e(w)}</p>' for w in run.summary.get("warnings") or [])
        + _table(header, rows, left=range(3))
        + plot
        + _all_metrics(domains)
    )


def _all_metrics(domains: dict[str, Any]) -> str:
    rows = []
    for name, d in domains.items():
        metrics = d.get("metrics") or {}
        keys = list(dict.fromkeys(k for m in MODELS for k in (metrics.get(m) or {})))
        for key in keys:
            rows.append(
                [
                    _td(name, True),
                    _td(key, True),
                    *(_td((metrics.get(m) or {}).get(key)) for m in MODELS),
                ]
            )
    if not rows:
        return ""
    table = _table(["domain", "metric", *MODELS], rows, left=range(2))
    return f"<details><summary>every metric of every domain</summary>{table}</details>"


# -- learning curves ---------------------------------------------------------------------------
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
                title=_stage_title(stage, round_),
                epochs=order,
                losses={t: [by_epoch[e]["losses"].get(t) for e in order] for t in terms},
                val_scores=[by_epoch[e]["val"] for e in order],
                selected=selected.get((stage, round_)),
            )
        )
    return curves


def _stage_title(stage: str, round_: Any) -> str:
    if stage == "teacher":
        return "teacher (source domains)"
    if stage == "baseline":
        return "baseline (student without the teacher)"
    if stage == "student":
        return f"student, round {round_}"
    return f"teacher fine-tuning, feedback after round {round_}"


def _curves_section(run: RunFiles) -> str:
    from cdkd_core.artifacts import plots as report_plots

    curves = training_curves(run.records)
    loaded = [r for r in run.records if r.get("stage") == "teacher" and r.get("event") == "loaded"]
    notes = []
    if loaded:
        notes.append(
            f"The teacher was loaded from {_e(loaded[-1].get('checkpoint'))}, not trained here."
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
    return intro + _img(report_plots.learning_curves(curves), "learning curves")


# -- knowledge space ---------------------------------------------------------------------------
def pca_2d(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """Mean and the top two principal directions ``[D, 2]`` of ``x`` (signs fixed: each
    direction's largest loading positive), and their shares of the variance."""
    x = x.double()
    mean = x.mean(0)
    centred = x - mean
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)
    components = vh[:2].T
    if components.shape[1] < 2:  # a 1-D knowledge space: the second axis is flat
        components = torch.cat([components, torch.zeros(x.shape[1], 1, dtype=x.dtype)], 1)
    signs = torch.sign(components.gather(0, components.abs().argmax(0, keepdim=True)))
    components = components * torch.where(signs == 0, 1.0, signs)
    variance = s.pow(2)
    total = float(variance.sum())
    shares = [float(v) / total if total > 0 else 0.0 for v in variance[:2]]
    return mean, components, shares + [0.0] * (2 - len(shares))


def least_squares_map(features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The least-squares affine map ``[F + 1, k]`` (weights, then the intercept row) from
    features to targets; the minimum-norm one where the features are collinear or fewer
    than their width."""
    x = torch.cat([features.double(), torch.ones(len(features), 1, dtype=torch.float64)], 1)
    return torch.linalg.lstsq(x, targets.double(), driver="gelsd").solution


def cross_fitted(features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Each row's prediction by a least-squares map fitted on the other half of the rows
    (even rows mapped by the fit on the odd ones and the reverse): out-of-sample for every
    row, so agreement measured on it is not flattered by the fit."""
    out = torch.empty(len(features), targets.shape[1], dtype=torch.float64)
    rows = torch.arange(len(features))
    for fold in (0, 1):
        fit_rows, held = rows[rows % 2 != fold], rows[rows % 2 == fold]
        if len(held) and len(fit_rows):
            out[held] = _affine(
                features[held], least_squares_map(features[fit_rows], targets[fit_rows])
            )
        elif len(held):
            out[held] = _affine(features[held], least_squares_map(features, targets))
    return out


def _affine(features: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    ones = torch.ones(len(features), 1, dtype=torch.float64)
    return torch.cat([features.double(), ones], 1) @ weights


def _r2(pred: torch.Tensor, target: torch.Tensor) -> float | None:
    target = target.double()
    total = float((target - target.mean(0)).pow(2).sum())
    if len(target) < 2 or total <= 0:
        return None
    return 1.0 - float((pred.double() - target).pow(2).sum()) / total


def _cosine(pred: torch.Tensor, target: torch.Tensor) -> float | None:
    if not len(target):
        return None
    return float(torch.nn.functional.cosine_similarity(pred.double(), target.double()).mean())


def _knowledge_section(run: RunFiles, host: Any) -> str:
    from cdkd_core.artifacts.knowledge_sample import (
        read_knowledge_sample,
        recompute_knowledge_sample,
    )

    try:
        sample = read_knowledge_sample(run.run_dir)
    except Exception as exc:  # a torn or foreign file: recompute instead
        sample, unreadable = None, _first_line(exc)
    else:
        unreadable = None
    if sample is None:
        try:
            sample = recompute_knowledge_sample(run.run_dir, host)
        except Exception as exc:  # missing plugin or data: the rest of the report stands
            return (
                '<p class="warn">The knowledge space could not be shown: the run saved no '
                "knowledge_sample.safetensors"
                + (f" (unreadable: {_e(unreadable)})" if unreadable else "")
                + " and recomputing it from the run directory failed: "
                + f"{_e(type(exc).__name__)}: {_e(_first_line(exc))}</p>"
            )
    return _knowledge_view(run, sample)


def _graph_sections(run: RunFiles) -> list[tuple[str, str, str]]:
    """The "Knowledge graph" section, for a run whose encoder was ``knowledge_graph``."""
    encoder = run.config.get("encoder") if isinstance(run.config, dict) else None
    if not isinstance(encoder, dict) or encoder.get("name") != "knowledge_graph":
        return []
    return [("graph", "Knowledge graph", _graph_section(run))]


def _graph_section(run: RunFiles) -> str:
    from cdkd_core.artifacts.plots import knowledge_graph
    from cdkd_core.builtins.knowledge_graph import read_run_graph

    try:
        g = read_run_graph(run.run_dir)
    except Exception as exc:  # a torn or missing encoder state: the rest of the report stands
        return f'<p class="warn">The knowledge graph could not be read: {_e(_first_line(exc))}</p>'
    labels = [f"{d}:{c}" for d, c in zip(g.domains, g.labels, strict=True)]
    n_edges = int(g.edges.triu(1).sum())
    cross = g.cross_domain_edges()
    intro = (
        f"<p>{len(g.nodes)} class nodes in {len(set(g.domains))} domain(s), {n_edges} edges "
        f"({len(cross)} across domains), weighted by the cosine similarity of the classes' "
        "mean knowledge vectors (their prototypes). Nodes sit on a circle, grouped by domain; "
        "an edge's width grows with its weight; cross-domain edges are solid black, "
        "within-domain ones dashed grey. Only edges of positive weight are drawn (the 60 "
        "strongest).</p>"
    )
    try:
        plot = _img(knowledge_graph(labels, g.domains, g.similarity, g.edges), "knowledge graph")
    except Exception as exc:  # matplotlib missing or failing: keep the table
        plot = f'<p class="warn">The graph could not be drawn: {_e(_first_line(exc))}</p>'
    rows = [[_td(labels[i], True), _td(labels[j], True), _td(w)] for i, j, w in cross[:10]]
    table = (
        "<p>Strongest cross-domain edges (all of them: <code>cdkd graph RUN_DIR</code>):</p>"
        + _table(["class", "class", "weight"], rows, left=(0, 1))
        if rows
        else "<p>No cross-domain edge.</p>"
    )
    return intro + plot + table


def _knowledge_view(run: RunFiles, sample: Any) -> str:
    import numpy as np

    from cdkd_core.artifacts import plots as report_plots

    names = [n for n, d in sample.domains.items() if d.knowledge is not None]
    if not names:
        return '<p class="warn">The teacher gave knowledge vectors for none of the domains.</p>'
    knowledge = torch.cat([sample.domains[n].knowledge for n in names])
    mean, components, shares = pca_2d(knowledge)
    projected = all(d.projected is not None for d in sample.domains.values())
    if projected:
        student = {n: d.projected.double() for n, d in sample.domains.items()}
        how = (
            f"the projector of the <code>{_e(sample.meta.get('projector'))}</code> loss, "
            "trained with the student"
        )
        student_title = "student: features through its trained projector"
    else:
        with_knowledge = torch.cat([sample.domains[n].student_features for n in names])
        fitted = cross_fitted(with_knowledge, knowledge).split(
            [len(sample.domains[n].labels) for n in names]
        )
        fit_all = least_squares_map(with_knowledge, knowledge)
        student = {
            n: _affine(d.student_features, fit_all) for n, d in sample.domains.items()
        }  # domains without knowledge vectors: mapped by the fit on every row
        student.update(dict(zip(names, fitted, strict=True)))
        why = (
            "the run's losses have no projector"
            if sample.meta.get("source") == "run"
            else "loss projectors are not saved with a run"
        )
        how = (
            "a least-squares linear map from the student's features to the knowledge "
            f"vectors ({why}), cross-fitted on this sample: each half of the examples is "
            "mapped by the fit on the other half, so R² and cosine are out-of-sample"
        )
        student_title = "student: features mapped linearly onto the knowledge space"

    def to_2d(x: torch.Tensor) -> Any:
        return ((x.double() - mean) @ components).numpy()

    teacher_groups = [
        report_plots.ScatterGroup(n, to_2d(sample.domains[n].knowledge), _labels(sample, n))
        for n in names
    ]
    student_groups = [
        report_plots.ScatterGroup(n, to_2d(student[n]), _labels(sample, n)) for n in sample.domains
    ]
    order = list(sample.domains)
    plot = report_plots.knowledge_space(
        teacher_groups,
        student_groups,
        order,
        student_title,
        (f"PC1 ({shares[0]:.0%} of variance)", f"PC2 ({shares[1]:.0%} of variance)"),
    )
    classes = (run.layout.get("domains") or {}) if isinstance(run.layout, dict) else {}
    rows = []
    for n, d in sample.domains.items():
        names_of = (classes.get(n) or {}).get("classes") or []
        present = sorted({int(k) for k in np.asarray(d.labels)})
        legend = ", ".join(
            f"{k}: {names_of[k]}" if k < len(names_of) else str(k) for k in present[:8]
        ) + (" …" if len(present) > 8 else "")
        if d.knowledge is None:
            r2 = cos = None
        else:
            r2, cos = _r2(student[n], d.knowledge), _cosine(student[n], d.knowledge)
        rows.append(
            [
                _td(n, True),
                _td(len(d.labels)),
                _td("yes" if d.knowledge is not None else "no (no teacher stem)", True),
                _td(r2),
                _td(cos),
                _td(legend, True),
            ]
        )
    table = _table(
        ["domain", "examples", "teacher knowledge", "R² student→teacher", "cosine", "classes"],
        rows,
        left=(0, 2, 5),
    )
    source = (
        "saved by the run at the end of round "
        f"{_e(sample.meta.get('round'))} (knowledge_sample.safetensors): the vectors the "
        "student was distilled towards"
        if sample.meta.get("source") == "run"
        else "recomputed from the run directory (the run saved no sample): the final "
        "teacher's features on the train split through the last round's encoder"
    )
    dim = int(knowledge.shape[1])
    return (
        f'<p class="note">Up to {max(len(d.labels) for d in sample.domains.values())} '
        f"train examples per domain, {source}. Left: the teacher's {dim}-dimensional "
        "knowledge vectors; right: the student's features, projected into the same space "
        f"by {how}. Both panels use the principal axes of the teacher's vectors. Colour: "
        "domain; marker: class index (the table names them). R² (the share of each "
        "domain's knowledge-vector variance the student's projection explains) and cosine "
        "compare the two per example.</p>" + _img(plot, "knowledge space") + table
    )


def _labels(sample: Any, name: str) -> Any:
    return sample.domains[name].labels.long().numpy()


# -- feedback rounds ---------------------------------------------------------------------------
def _rounds_section(run: RunFiles) -> str:
    from cdkd_core.artifacts import plots as report_plots

    rounds = run.summary.get("round_results") or []
    feedback = _components(run)["feedback"]
    domains = list(run.summary["domains"])
    parts = []
    if len(rounds) <= 1:
        parts.append(
            f'<p class="note">One round (feedback: <code>{_e(feedback)}</code>): the test '
            "results above are that round's.</p>"
        )
    else:
        ids = [r.get("round", i) for i, r in enumerate(rounds)]
        header = ["domain", "metric"]
        for i in ids:
            header += [f"r{i} teacher", f"r{i} student", f"r{i} Δ student"]
        rows = []
        lead: dict[str, list[float | None]] = {d: [] for d in domains}
        teacher: dict[str, list[float | None]] = {d: [] for d in domains}
        for name in domains:
            cells = [_td(name, True), _td(run.summary["domains"][name].get("metric"), True)]
            for r in rounds:
                d = (r.get("domains") or {}).get(name) or {}
                delta = _delta(d.get("student"), d.get("baseline"))
                cells += [_td(d.get("teacher")), _td(d.get("student")), _delta_cell(delta)]
                lead[name].append(delta)
                teacher[name].append(d.get("teacher"))
            rows.append(cells)
        parts.append(
            f'<p class="note">Feedback <code>{_e(feedback)}</code>, {len(rounds)} rounds. '
            "Each round re-initialises the student and distils it from the teacher as the "
            "feedback left it; the baseline is trained once. Test split, headline metric; "
            "Δ student is student - baseline.</p>"
        )
        parts.append(_table(header, rows, left=range(2)))
        parts.append(_img(report_plots.rounds(domains, ids, lead, teacher), "feedback rounds"))
    events = [r for r in run.records if r.get("stage") in ("feedback", "gate")]
    if events:
        rows = []
        for r in events:
            rest = {
                k: v for k, v in r.items() if k not in ("t", "stage", "round", "event", "domain")
            }
            detail = ", ".join(f"{k}={_num(v)}" for k, v in rest.items())
            rows.append(
                [
                    _td(r.get("round")),
                    _td(r.get("event") or r.get("stage"), True),
                    _td(r.get("domain", ""), True),
                    _td(detail, True),
                ]
            )
        parts.append("<h3>What the feedback and the teacher gate logged</h3>")
        parts.append(_table(["round", "event", "domain", "values"], rows, left=(1, 2, 3)))
    return "\n".join(parts)


# -- sizes, latency, config --------------------------------------------------------------------
def _sizes_section(run: RunFiles) -> str:
    s = run.summary
    params = s.get("params") or {}
    fast = s.get("latency_ms_per_sample") or {}
    single = s.get("latency_ms_per_sample_batch1") or {}
    batch = s.get("latency_batch_size", 256)

    def ratio(a: Any, b: Any, fmt: str) -> str:
        if not a or not b:
            return '<td class="na">-</td>'
        return f"<td>{format(a / b, fmt)}</td>"

    rows = [
        [
            _td("parameters", True),
            _td(params.get("teacher")),
            _td(params.get("student")),
            ratio(params.get("student"), params.get("teacher"), ".1%"),
        ]
    ]
    if params.get("teacher_view_encoders"):
        rows.append(
            [
                '<td class="l sub">the teacher network alone</td>',
                _td(params.get("teacher_network")),
                _td(params.get("student")),
                ratio(params.get("student"), params.get("teacher_network"), ".1%"),
            ]
        )
        rows.append(
            [
                '<td class="l sub">frozen encoders of its input views</td>',
                _td(params.get("teacher_view_encoders")),
                '<td class="na">-</td>',
                '<td class="na">-</td>',
            ]
        )
    for label, lat in (
        (f"ms per example, batch {batch}", fast),
        ("ms per example, batch 1", single),
    ):
        rows.append(
            [
                _td(label, True),
                *(_td_sig(lat.get(m)) for m in ("teacher", "student")),
                ratio(lat.get("student"), lat.get("teacher"), ".1%"),
            ]
        )
    cache = s.get("teacher_cache") or {}
    return (
        _table(["", "teacher", "student", "student / teacher"], rows)
        + '<p class="note">Latency: the median forward pass on the test inputs of the first '
        f"domain both networks predict, on {_e(s.get('device', '?'))} with "
        f"{_e(s.get('threads', '?'))} thread(s); the teacher's parameters include the frozen "
        "encoders behind its input views (e.g. a sentence encoder of cached embeddings), "
        "each counted once. Teacher-output cache: "
        f"{_e(cache.get('hits', 0))} hits, {_e(cache.get('misses', 0))} misses. "
        f"Wall time {_e(_num(s.get('wall_s'), 1))} s.</p>"
    )


def _config_section(run: RunFiles) -> str:
    return (
        "<details><summary>config.yaml (the resolved config, every default filled in)"
        f"</summary><pre>{_e(run.config_text)}</pre></details>"
    )
