"""The report's sections read from ``summary.json`` and the config: the test results, the
feedback rounds, sizes and latency, and the resolved config."""

from __future__ import annotations

from typing import Any

from cdkd_core.artifacts.html import (
    delta_cell,
    delta_of,
    escape,
    fmt_num,
    html_table,
    img,
    td,
    td_sig,
)
from cdkd_core.artifacts.run_files import RunFiles, describe_components

MODELS = ("teacher", "student", "baseline")


def results_section(run: RunFiles) -> str:
    """The "Test results" section: the last round's headline metric per domain and model."""
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
                td(name, True),
                td(d.get("role"), True),
                td(d.get("metric"), True),
                *(td(d.get(m)) for m in MODELS),
                delta_cell(delta_of(d.get("student"), d.get("baseline"))),
                delta_cell(delta_of(d.get("student"), d.get("teacher"))),
                *(td((d.get("reference") or {}).get(k)) for k in references),
                *(td(sizes.get(k)) for k in ("train", "labelled", "test")),
            ]
        )
    names = list(domains)
    lead = [delta_of(domains[n].get("student"), domains[n].get("baseline")) for n in names]
    plot = img(
        report_plots.deltas(names, lead, "student - baseline (headline metric, test split)"),
        "student minus baseline per domain",
    )
    return (
        '<p class="note">The last round\'s test-split results, headline metric per domain '
        "(higher is better). <b>Δ student</b> is student - baseline: the same student "
        "architecture, initialisation, labels and epochs trained without the teacher. "
        "<b>Δ vs teacher</b> is student - teacher. A dash: the model has no stem for the "
        "domain's input space or no head for its task.</p>"
        + "".join(f'<p class="warn">{escape(w)}</p>' for w in run.summary.get("warnings") or [])
        + _fallback_note(domains)
        + html_table(header, rows, left=range(3))
        + plot
        + _all_metrics(domains)
    )


def _fallback_note(domains: dict[str, Any]) -> str:
    """Which domains fell back to their labels under the teacher gate, and why."""
    why = {
        "before": "the teacher was not above the baseline on val with 90% confidence",
        "after": "the distilled student came out below the baseline on val",
    }
    parts = [
        f"<code>{escape(name)}</code> ({why.get(gate['fell_back'], gate['fell_back'])})"
        for name, d in domains.items()
        if (gate := d.get("gate")) is not None and gate.get("fell_back")
    ]
    if not parts:
        return ""
    return (
        '<p class="note">Fell back to their labels (<code>train.teacher_gate</code>: no soft '
        "labels and no knowledge vectors from the teacher there, last round): "
        + "; ".join(parts)
        + ".</p>"
    )


def _all_metrics(domains: dict[str, Any]) -> str:
    rows = []
    for name, d in domains.items():
        metrics = d.get("metrics") or {}
        keys = list(dict.fromkeys(k for m in MODELS for k in (metrics.get(m) or {})))
        for key in keys:
            rows.append(
                [
                    td(name, True),
                    td(key, True),
                    *(td((metrics.get(m) or {}).get(key)) for m in MODELS),
                ]
            )
    if not rows:
        return ""
    table = html_table(["domain", "metric", *MODELS], rows, left=range(2))
    return f"<details><summary>every metric of every domain</summary>{table}</details>"


def _shares(values: list[float] | None) -> str:
    return "-" if not values else ", ".join(f"{v:.3f}" for v in values)


def teacher_section(run: RunFiles) -> str:
    """The "Teacher choice" section (empty unless ``teacher: auto`` chose): per task, each
    candidate's val score and the one kept."""
    selection = run.summary.get("teacher_selection")
    if not selection:
        return ""
    scores, metric = selection.get("val_scores") or {}, selection.get("metric") or {}
    rows = []
    for task, chosen in (selection.get("choice") or {}).items():
        by = scores.get(task, {})
        cells = ", ".join(
            f"<b>{escape(c)} {fmt_num(v)}</b>" if c == chosen else f"{escape(c)} {fmt_num(v)}"
            for c, v in by.items()
        )
        row = [td(task, True), td(metric.get(task, "?"), True), td(chosen, True)]
        rows.append([*row, f'<td class="l">{cells or "-"}</td>'])
    return (
        '<p class="note"><code>teacher: auto</code> fitted each candidate on the train rows '
        "of the task's source domains and kept, per task, the one with the best mean val "
        "score (ties within 1e-6 go to the cheaper: linear, network, ensemble, hist_gbm). "
        "The test split was not read.</p>"
        + html_table(["task", "val metric", "kept", "val score per candidate"], rows, left=range(4))
    )


def targets_section(run: RunFiles) -> str:
    """The "Targets" section (empty without one): how the teacher adapted to each target's
    labelled rows, the target's class prior, and the gate's decision, last round."""
    rows = []
    for name, d in run.summary["domains"].items():
        adapt, shift, gate = d.get("adaptation"), d.get("label_shift"), d.get("gate")
        if d.get("role") != "target" and gate is None:
            continue
        if adapt is None and shift is None and gate is None:
            continue
        head = "-"
        if adapt is not None:
            alpha = adapt.get("alpha")
            chosen = "the teacher unchanged" if alpha is None else f"alpha {alpha}"
            head = (
                f"{chosen}, teacher scale {fmt_num(adapt.get('teacher_scale'))}; "
                f"{adapt.get('labelled')} labelled train rows; chosen on "
                f"{adapt.get('selection_rows')} rows (log loss "
                f"{fmt_num(adapt.get('selection_loss'))}, {d.get('metric')} "
                f"{fmt_num(adapt.get('selection_score'))})"
            )
        prior = "-"
        if shift is not None:
            prior = (
                f"{shift.get('method')}: {_shares(shift.get('prior'))} (teacher's head: "
                f"{_shares(shift.get('reference_prior'))}); student offset "
                f"{_shares(shift.get('student_offset'))}"
                + (f"; {shift['note']}" if shift.get("note") else "")
            )
        decision = "-" if gate is None else gate_text(gate)
        rows.append([td(name, True), td(head, True), td(prior, True), td(decision, True)])
    if not rows:
        return ""
    return (
        '<p class="note">The last round. <b>Adapted teacher</b>: the residual head fitted on '
        "the target's labelled train rows (<code>teacher.adapt</code>); the target's teacher "
        "result above is the adapted teacher's. <b>Class prior</b>: what the soft labels and "
        "the student's decision rule were moved onto (<code>train.label_shift</code>). "
        "<b>Teacher</b>: the gate's decision (<code>train.teacher_gate</code>) on the "
        "labelled val rows, against the baseline. <i>above</i> (tables by default): the "
        "teacher is kept where it is above the baseline with 90% confidence (the 10th-90th "
        "percentiles of the paired bootstrap of teacher - baseline shown); elsewhere the "
        "domain fell back to its labels (no soft labels, no knowledge vectors), before "
        "training, or after it where the distilled student came out below the baseline on "
        "val (the round's student was then trained again). <i>val</i>: soft labels withheld "
        "where the teacher is below the baseline with 95% confidence (the 95% interval "
        "shown).</p>"
        + html_table(["domain", "adapted teacher", "class prior", "teacher"], rows, left=range(4))
    )


def gate_text(gate: dict[str, Any]) -> str:
    """A domain's gate decision in words: kept, withheld or fell back to its labels (and
    when), with its numbers."""
    low, high = gate.get("interval") or [None, None]
    numbers = (
        f"teacher {fmt_num(gate.get('teacher_val'))} vs baseline "
        f"{fmt_num(gate.get('baseline_val'))} on {gate.get('val_rows')} val rows, "
        f"difference {fmt_num(gate.get('difference'))} [{fmt_num(low)}, {fmt_num(high)}]"
    )
    mode = gate.get("mode", "val")
    if mode != "above":
        return f"{'kept' if gate.get('soft_labels') else 'withheld'}: {numbers}"
    after = gate.get("after_training")
    if gate.get("fell_back") == "before":
        return f"fell back to its labels (teacher not above the baseline): {numbers}"
    checked = ""
    if after is not None:
        checked = (
            f"; after training: student {fmt_num(after.get('student_val'))} vs baseline "
            f"{fmt_num(after.get('baseline_val'))}"
        )
    if gate.get("fell_back") == "after":
        return (
            f"fell back to its labels after training (the distilled student below the "
            f"baseline on val; trained again): {numbers}{checked}"
        )
    return f"kept: {numbers}{checked}"


def rounds_section(run: RunFiles) -> str:
    """The "Feedback rounds" section: each round's results and what the feedback logged."""
    from cdkd_core.artifacts import plots as report_plots

    rounds = run.summary.get("round_results") or []
    feedback = describe_components(run)["feedback"]
    domains = list(run.summary["domains"])
    parts = []
    if len(rounds) <= 1:
        parts.append(
            f'<p class="note">One round (feedback: <code>{escape(feedback)}</code>): the test '
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
            cells = [td(name, True), td(run.summary["domains"][name].get("metric"), True)]
            for r in rounds:
                d = (r.get("domains") or {}).get(name) or {}
                delta = delta_of(d.get("student"), d.get("baseline"))
                cells += [td(d.get("teacher")), td(d.get("student")), delta_cell(delta)]
                lead[name].append(delta)
                teacher[name].append(d.get("teacher"))
            rows.append(cells)
        parts.append(
            f'<p class="note">Feedback <code>{escape(feedback)}</code>, {len(rounds)} rounds. '
            "Each round re-initialises the student and distils it from the teacher as the "
            "feedback left it; the baseline is trained once. Test split, headline metric; "
            "Δ student is student - baseline.</p>"
        )
        parts.append(html_table(header, rows, left=range(2)))
        parts.append(img(report_plots.rounds(domains, ids, lead, teacher), "feedback rounds"))
    events = [r for r in run.records if r.get("stage") in ("feedback", "gate")]
    if events:
        rows = []
        for r in events:
            rest = {
                k: v for k, v in r.items() if k not in ("t", "stage", "round", "event", "domain")
            }
            detail = ", ".join(f"{k}={fmt_num(v)}" for k, v in rest.items())
            rows.append(
                [
                    td(r.get("round")),
                    td(r.get("event") or r.get("stage"), True),
                    td(r.get("domain", ""), True),
                    td(detail, True),
                ]
            )
        parts.append("<h3>What the feedback and the teacher gate logged</h3>")
        parts.append(html_table(["round", "event", "domain", "values"], rows, left=(1, 2, 3)))
    return "\n".join(parts)


def sizes_section(run: RunFiles) -> str:
    """The "Sizes and latency" section: parameters and latencies of teacher and student."""
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
            td("parameters", True),
            td(params.get("teacher")),
            td(params.get("student")),
            ratio(params.get("student"), params.get("teacher"), ".1%"),
        ]
    ]
    frozen = params.get("teacher_view_encoders")
    if frozen:
        trainable = params.get("teacher_trainable", params.get("teacher", 0) - frozen)
        rows.append(
            [
                '<td class="l sub">its trainable part (without the frozen encoders)</td>',
                td(trainable),
                td(params.get("student")),
                ratio(params.get("student"), trainable, ".1%"),
            ]
        )
        rows.append(
            [
                '<td class="l sub">frozen encoders of its input views</td>',
                td(params.get("teacher_view_encoders")),
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
                td(label, True),
                *(td_sig(lat.get(m)) for m in ("teacher", "student")),
                ratio(lat.get("student"), lat.get("teacher"), ".1%"),
            ]
        )
    cache = s.get("teacher_cache") or {}
    return (
        html_table(["", "teacher", "student", "student / teacher"], rows)
        + '<p class="note">Latency: the median forward pass on the test inputs of the first '
        f"domain both networks predict, on {escape(s.get('device', '?'))} with "
        f"{escape(s.get('threads', '?'))} thread(s); the teacher's parameters include the frozen "
        "encoders behind its input views (e.g. a sentence encoder of cached embeddings), "
        "each counted once. Teacher-output cache: "
        f"{escape(cache.get('hits', 0))} hits, {escape(cache.get('misses', 0))} misses. "
        f"Wall time {escape(fmt_num(s.get('wall_s'), 1))} s.</p>"
    )


def config_section(run: RunFiles) -> str:
    """The "Config" section: the resolved config.yaml, folded."""
    return (
        "<details><summary>config.yaml (the resolved config, every default filled in)"
        f"</summary><pre>{escape(run.config_text)}</pre></details>"
    )
