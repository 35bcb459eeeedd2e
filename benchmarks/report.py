"""Rendering ``results.json`` as ``docs/results.md`` with plots (matplotlib, Agg)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

VARIANT_LABELS = {
    "kd": "KD",
    "pca": "KD+pca",
    "linear": "KD+linear",
    "graph": "KD+graph",
}


def _ms(stat: dict | None, digits: int = 3) -> str:
    """``mean ± std`` of a seed statistic."""
    if not stat or stat.get("mean") is None:
        return "—"
    if stat.get("n", 1) > 1:
        return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"
    return f"{stat['mean']:.{digits}f}"


def _ci(b: dict | None, scale: float = 100.0) -> str:
    """A bootstrap difference in points with its 95% interval."""
    if not b or b.get("diff") is None or _nan(b["diff"]):
        return "—"
    star = " *" if b["ci_low"] > 0 or b["ci_high"] < 0 else ""
    return (
        f"{b['diff'] * scale:+.1f} [{b['ci_low'] * scale:+.1f}, {b['ci_high'] * scale:+.1f}]{star}"
    )


def _nan(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _num(v: float | None, fmt: str = "{:.3f}") -> str:
    return "—" if _nan(v) else fmt.format(v)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return [*lines, ""]


def targets_table(tg: list[dict[str, Any]]) -> list[str]:
    """A table of targets: each one's text, whether it is met, and its figures (and, where
    the targets say, which benchmark section each comes from)."""
    if any("source" in t for t in tg):
        return _table(
            ["target", "met", "figures", "from"],
            [
                [t["target"], "yes" if t["met"] else "**no**", t["detail"], t.get("source", "")]
                for t in tg
            ],
        )
    return _table(
        ["target", "met", "figures"],
        [[t["target"], "yes" if t["met"] else "**no**", t["detail"]] for t in tg],
    )


def _mean(stat: dict | None) -> float | None:
    return None if not stat else stat.get("mean")


def end_to_end(setting: dict, lat: dict, bs: int) -> tuple[float | None, float | None]:
    """Teacher and student ms per sample from raw input: for text settings the network plus
    its input view (the teacher's sentence embedding, the student's hashed n-gram ids);
    elsewhere the network alone (the views are the raw features)."""
    t, st = lat.get(f"teacher_b{bs}"), lat.get(f"student_b{bs}")
    view = setting.get("text_view_latency_ms")
    if view and t is not None and st is not None:
        return t + view[f"teacher_b{bs}"], st + view[f"student_b{bs}"]
    return t, st


# -- targets ---------------------------------------------------------------------------------
#: The text suite's settings (section 8) that train the shipped default text student (the nlp
#: plugin's ``static_embedding`` over the teacher's tokens, ``student.weight_init:
#: teacher_tokens``) with every domain a source, as section 1's text settings do; section 1
#: trains the older hashed n-gram student (``embedding_bag``).
SHIPPED_TEXT_SETTINGS = ("indomain", "multilingual")


def shipped_text_students(results: dict) -> dict[str, tuple[str, dict]]:
    """Per domain of :data:`SHIPPED_TEXT_SETTINGS`: its text setting and its results there."""
    text = results.get("text") or {}
    return {
        name: (key, d)
        for key in SHIPPED_TEXT_SETTINGS
        for name, d in (text.get(key) or {}).get("domains", {}).items()
    }


def _text_stem(setting: dict) -> str | None:
    """The name of a setting's student text stem, if its config names one."""
    stems = ((setting.get("config") or {}).get("student") or {}).get("stems") or {}
    return (stems.get("text") or {}).get("name")


def _sources(by_section: dict[str, list[str]]) -> str:
    """``section (settings); ...`` for the sections a target's figures come from."""
    return "; ".join(f"{k} ({', '.join(v)})" for k, v in by_section.items() if v)


def targets(results: dict) -> list[dict[str, Any]]:
    """Each target of the benchmark with whether it is met, the figures behind it and, for
    the quality targets, the sections they come from: on a text domain the shipped default
    text student of section 8 where it was benchmarked, else section 1's students."""
    out = []
    quality = results.get("quality", {})
    if quality:
        out += _quality_targets(quality, results)
    out += _other_targets(results)
    return out


def _quality_targets(quality: dict, results: dict) -> list[dict[str, Any]]:
    """Quality, size and speed of the students: section 1's KD+pca student, on a text
    domain section 8's default text student where section 8 has it."""
    shipped = shipped_text_students(results)
    text = results.get("text") or {}
    tp = ((text.get("peers") or {}).get("throughput") or {}).get("sentences_per_s", {})
    raw_text = tp["pytorch"] / tp["teacher"] if tp.get("pytorch") and tp.get("teacher") else None
    misses, checked = [], 0
    size_miss, speed_miss, speeds = [], [], []
    quality_from: dict[str, list[str]] = {"§1 KD+pca": [], "§8 default text student": []}
    size_from: dict[str, list[str]] = {"§1": [], "§8": []}
    speed_from: dict[str, list[str]] = {"§1 latencies": [], "§8 raw-text throughput": []}
    for setting, s in quality.items():
        keys = {shipped[n][0] if n in shipped else None for n in s["domains"]}
        params = s.get("params") or {}
        (key,) = keys if len(keys) == 1 else (None,)
        if key is not None and text.get(key, {}).get("params"):  # the whole setting
            params = text[key]["params"]
            size_from["§8"].append(setting)
        else:
            size_from["§1"].append(setting)
        ratio = params.get("student", 0) / max(params.get("teacher", 1), 1)
        if ratio > 0.10:
            size_miss.append(f"{setting} {ratio:.1%}")
        from_text = []
        for name, d in s["domains"].items():
            here = shipped.get(name, (None, d))[1]
            t, st = _mean(here["teacher"]), _mean(here["student" if name in shipped else "pca"])
            if t is None or st is None:
                continue
            checked += 1
            from_text.append(name in shipped)
            if st < 0.97 * t:
                misses.append(f"{name} {st:.3f} vs {t:.3f}")
        if any(from_text):
            quality_from["§8 default text student"].append(setting)
        if not all(from_text):
            quality_from["§1 KD+pca"].append(setting)
        if key == "indomain" and raw_text is not None:  # one measurement for the setting
            speed_from["§8 raw-text throughput"].append(f"{setting}: {raw_text:,.0f}x")
            speeds += [raw_text] * len(s["domains"])
            if raw_text < 5:
                speed_miss += [f"{name} {raw_text:.1f}x" for name in s["domains"]]
            continue
        speed_from["§1 latencies"].append(
            setting + (": hashed student" if _text_stem(s) == "embedding_bag" else "")
        )
        for name, d in s["domains"].items():
            t_ms, s_ms = end_to_end(s, d["latency_ms"], 256)
            if t_ms and s_ms:
                speed = t_ms / s_ms
                speeds.append(speed)
                if speed < 5:
                    speed_miss.append(f"{name} {speed:.1f}x")
    return [
        {
            "target": "student within 3% of the teacher on every domain",
            "met": not misses,
            "detail": f"{checked - len(misses)}/{checked} domains"
            + (f"; missed: {', '.join(misses)}" if misses else ""),
            "source": _sources(quality_from),
        },
        {
            "target": "student at most 10% of the teacher's parameters",
            "met": not size_miss,
            "detail": "every setting" if not size_miss else "missed: " + ", ".join(size_miss),
            "source": _sources(size_from),
        },
        {
            "target": "student at least 5x faster per sample at batch 256 (CPU, from raw "
            "input: text includes its views)",
            "met": not speed_miss,
            "detail": (f"{len(speeds) - len(speed_miss)}/{len(speeds)} domains")
            + ("" if not speed_miss else "; missed: " + ", ".join(speed_miss)),
            "source": _sources(speed_from),
        },
    ]


def _other_targets(results: dict) -> list[dict[str, Any]]:
    """The targets of the transfer, overhead, memory and torchdistill benchmarks."""
    out = []
    transfer = results.get("transfer", {})
    if transfer:
        notes, ok = [], True
        hashed = [k for k, s in transfer.items() if _text_stem(s) == "embedding_bag"]
        for setting, s in transfer.items():
            for fraction, f in s["few_label"].items():
                gain = f["gated_minus_baseline"]["diff"]
                over_kd = f["gated_minus_kd"]["diff"]
                good = gain >= 0.03 and over_kd > 0
                ok &= good
                notes.append(
                    f"{setting} {float(fraction):.0%}: {gain * 100:+.1f} pts vs baseline, "
                    f"{over_kd * 100:+.1f} vs KD"
                )
        out.append(
            {
                "target": "few-label target: cross-domain student (gated) ≥ baseline + 3 "
                "points and above logit-only KD",
                "met": ok,
                "detail": "; ".join(notes),
                "source": "§2"
                + (
                    f" ({', '.join(hashed)}: the hashed text student; the default one at few "
                    "labels: §10)"
                    if hashed
                    else ""
                ),
            }
        )
    overhead = results.get("overhead", {})
    if overhead:
        thr = {k: v["cdkd_vs_hand_throughput"] for k, v in overhead.items()}
        cache = {k: v["kd_cached_vs_plain_epoch"] for k, v in overhead.items()}
        out.append(
            {
                "target": "training throughput within 5% of a hand-written loop",
                "met": all(v >= 0.95 for v in thr.values()),
                "detail": ", ".join(f"{k} {v:.2f}x of the hand loop" for k, v in thr.items()),
                "source": "§5",
            }
        )
        out.append(
            {
                "target": "cached-teacher KD epoch at most 1.2x a plain student epoch",
                "met": all(v <= 1.2 for v in cache.values()),
                "detail": ", ".join(f"{k} {v:.2f}x" for k, v in cache.items()),
                "source": "§5",
            }
        )
    memory = results.get("memory")
    if memory:
        flat = memory_growth(memory)
        if "auto" in flat:
            out.append(
                {
                    "target": "peak memory flat as the data grows 10x (arrays domain, "
                    "out of core; flat: peak anonymous RSS within 20%)",
                    "met": flat["auto"] <= 1.2,
                    "detail": f"peak anonymous RSS from {flat['lo']}x to {flat['hi']}x: "
                    + ", ".join(
                        f"{mode} x{flat[mode]:.2f}" for mode in ("auto", "memory") if mode in flat
                    ),
                    "source": "§6",
                }
            )
    peer = results.get("peer")
    if peer:
        b = peer["bootstrap_cdkd_minus_torchdistill"]
        t = peer["paired_t_cdkd_minus_torchdistill"]
        below = (b["ci_high"] < 0) or (not _nan(t["p"]) and t["p"] < 0.05 and t["t"] < 0)
        faster = _mean(peer["cdkd_seconds"]) < _mean(peer["torchdistill_seconds"])
        out.append(
            {
                "target": "metric not significantly below torchdistill's, wall time lower",
                "met": (not below) and faster,
                "detail": f"cdkd - torchdistill {_ci(b)} pts (paired t p={_num(t['p'])}); "
                f"student training {_mean(peer['cdkd_seconds']):.1f} s vs "
                f"{_mean(peer['torchdistill_seconds']):.1f} s",
                "source": "§4",
            }
        )
    return out


def memory_growth(memory: dict) -> dict[str, Any]:
    """Peak anonymous RSS at the largest scale over the smallest, per mode (``lo``/``hi``:
    the scales); empty with fewer than two scales."""
    runs = memory.get("runs", [])
    scales = sorted({r["scale"] for r in runs})
    if len(scales) < 2:
        return {}
    out: dict[str, Any] = {"lo": scales[0], "hi": scales[-1]}
    for mode in sorted({r["mode"] for r in runs}):
        peak = {r["scale"]: r["peak_anon_mb"] for r in runs if r["mode"] == mode}
        if scales[0] in peak and scales[-1] in peak:
            out[mode] = peak[scales[-1]] / peak[scales[0]]
    return out


MODE_LABELS = {
    "auto": "`auto` (disk: memory-mapped inputs)",
    "memory": "`memory` (all in RAM)",
    "disk": "`disk`",
}


# -- plots -----------------------------------------------------------------------------------
def _plot_quality(setting: str, s: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(s["domains"])
    cols = ["teacher", "baseline", *VARIANT_LABELS]
    labels = ["teacher", "baseline", *VARIANT_LABELS.values()]
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(names)), 3.6))
    width = 0.8 / len(cols)
    lows = []
    for i, (col, label) in enumerate(zip(cols, labels, strict=True)):
        means = [_mean(s["domains"][n][col]) or 0.0 for n in names]
        stds = [(s["domains"][n][col] or {}).get("std") or 0.0 for n in names]
        lows += [m for m in means if m > 0]
        xs = [j + (i - len(cols) / 2 + 0.5) * width for j in range(len(names))]
        ax.bar(xs, means, width, yerr=stds, label=label, capsize=2)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([n.split(".", 1)[-1] for n in names], rotation=15, fontsize=8)
    metrics = sorted({s["domains"][n]["metric"] for n in names})
    ax.set_ylabel(" / ".join(metrics) + " (test)")
    ax.set_ylim(max(0.0, min(lows, default=0.0) - 0.1), 1.0)
    ax.set_title(f"{setting}: mean ± std over seeds")
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_feedback(fb: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    target = fb["target"]
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    rounds = list(range(fb["rounds"]))
    for s, rows in fb["domain_scores"].items():
        ax.plot(rounds, [_mean(r["student"][target]) for r in rows], "o-", label=f"{s} (round r)")
    ax.plot(
        rounds,
        [_mean(c["student"][target]) for c in fb["controls"]],
        "s--",
        label="no feedback, same total epochs",
    )
    ax.axhline(_mean(fb["baseline"][target]), color="grey", lw=0.8, label="baseline")
    ax.set_xticks(rounds)
    ax.set_xlabel("round")
    ax.set_ylabel(f"{target} student (test)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- the page --------------------------------------------------------------------------------
def meta_section(meta: dict, feedback: dict | None) -> list[str]:
    """Section 7: the ``meta`` strategy, the ``knowledge_graph`` encoder, weight-space
    initialisation and few-shot targets from a Reptile teacher."""
    lines = ["## 7. Meta-learning, the knowledge graph and knowledge from weights", ""]
    fb = meta.get("feedback")
    if fb:
        first_round = fb["domain_scores"]["meta"][0]["student"]
        target = feedback["target"] if feedback else list(first_round)[-1]
        lines += [
            "### Feedback `meta` (learning to teach)",
            "",
            f"The feedback setting of section 3 ({fb['rounds']} rounds; {target} the target, "
            "its metric shown); `mutual` and `hard_examples` are section 3's rows (same "
            "settings and seeds, another process). Seconds: from the start of the run to the "
            "round's evaluation.",
            "",
        ]
        rows = []
        strategies = dict(fb["domain_scores"])
        if feedback:
            strategies = {**feedback["domain_scores"], **strategies}
        for s, srows in strategies.items():
            for r in srows:
                rows.append(
                    [
                        s,
                        str(r["round"]),
                        _ms(r["student"][target]),
                        _ms(r["teacher"][target]),
                        _num(r["seconds_to_round"], "{:.1f}"),
                    ]
                )
        lines += _table(
            ["strategy", "round", "student (target)", "teacher (target)", "seconds"], rows
        )
    enc = meta.get("encoders")
    if enc:
        lines += [
            "### Encoders and weight-space initialisation",
            "",
            "One teacher per setting and seed; students with `pca` + `hint`, `graph` + "
            "`graph`, `knowledge_graph` + `graph_match`, and `pca` + `hint` with "
            "`student.weight_init: teacher_pca` (n/a: refused, no student layer reads the "
            "teacher's inputs — the nlp students read token ids, the teacher sentence "
            "vectors). Differences: paired bootstrap on the same test items, in points. "
            "Seconds: the student stage (mean over seeds).",
            "",
        ]
        rows = []
        for setting, s in enc.items():
            for dname, d in s["domains"].items():
                diff = d["differences"]
                rows.append(
                    [
                        setting,
                        dname,
                        d["metric"],
                        _ms(d["baseline"]),
                        _ms(d["pca"]),
                        _ms(d["graph"]),
                        _ms(d["knowledge_graph"]),
                        _ms(d["pca_weight_init"]) if "pca_weight_init" in d else "n/a",
                        _ci(diff["knowledge_graph_minus_pca"]),
                        _ci(diff["knowledge_graph_minus_graph"]),
                        _ci(diff["weight_init_minus_random"])
                        if "weight_init_minus_random" in diff
                        else "n/a",
                    ]
                )
        lines += _table(
            [
                "setting",
                "domain",
                "metric",
                "baseline",
                "KD+pca",
                "KD+graph",
                "KD+knowledge_graph",
                "KD+pca, teacher_pca init",
                "kg - pca",
                "kg - graph",
                "init - random",
            ],
            rows,
        )
        variants = list(dict.fromkeys(v for s in enc.values() for v in s["student_seconds"]))
        lines += _table(
            ["student stage, seconds", *variants],
            [
                [
                    setting,
                    *(
                        _num(s["student_seconds"][v], "{:.1f}")
                        if v in s["student_seconds"]
                        else "n/a"
                        for v in variants
                    ),
                ]
                for setting, s in enc.items()
            ],
        )
    fs = meta.get("few_shot")
    if fs:
        lines += [
            "### Few-shot targets from a multi-task and a Reptile teacher",
            "",
            "The transfer settings' target with k labelled examples per class (the same "
            "examples for student and baseline), distilled from an ordinary multi-task "
            "teacher and from one meta-trained with Reptile over the source domains "
            "(`teacher.maml: {algorithm: reptile}`, then the usual fine-tuning).",
            "",
        ]
        rows = []
        for setting, s in fs.items():
            for k, r in s["shots"].items():
                rows.append(
                    [
                        f"{setting} ({s['domain']}, {s['metric']})",
                        k,
                        str(r["labelled"]),
                        _ms(r["baseline"]),
                        _ms(r["multitask_student"]),
                        _ms(r["reptile_student"]),
                        _ci(r["multitask_minus_baseline"]),
                        _ci(r["reptile_minus_multitask"]),
                    ]
                )
        lines += _table(
            [
                "target",
                "k",
                "labelled",
                "baseline",
                "student (multi-task teacher)",
                "student (Reptile teacher)",
                "multi-task - baseline",
                "Reptile - multi-task",
            ],
            rows,
        )

        def cost(s: dict) -> str:
            stage = s["teacher_seconds"]
            meta = s.get("meta_training_seconds", {}).get("reptile")
            return (
                f"multi-task {_num(stage['multitask'], '{:.1f}')}, Reptile "
                + ("" if meta is None else f"{_num(meta, '{:.1f}')} meta-training + ")
                + f"{_num(stage['reptile'], '{:.1f}')} fine-tune"
            )

        lines += [
            "Teacher stage seconds (mean): "
            + "; ".join(f"{setting}: {cost(s)}" for setting, s in fs.items()),
            "",
        ]
    return lines


def render(results: dict, path: Path) -> None:
    """Write the markdown report (and its images beside it, under ``img/``)."""
    path = Path(path)
    img = path.parent / "img"
    stem = path.stem
    m = results.get("machine", {})
    lines = [
        "# Results",
        "",
        "Generated by `benchmarks/` from `benchmarks/"
        + ("results-quick.json" if results.get("quick") else "results.json")
        + "`; do not edit by hand (the notes at the end come from `benchmarks/notes.md`).",
        "Reproduce with `python -m benchmarks` (about "
        + f"{sum(results.get('seconds', {}).values()) / 60:.0f} minutes here"
        + "); `python -m benchmarks --quick` runs every suite on small sizes in minutes.",
        "",
        f"- Machine: {m.get('cpu', '?')}, {m.get('cores', '?')} cores, every run on "
        f"{m.get('threads', 1)} thread; {m.get('platform', '')}",
        f"- Versions: Python {m.get('python')}, torch {m.get('torch')}, scikit-learn "
        f"{m.get('sklearn')}, cdkd {m.get('cdkd')}"
        + (f", torchdistill {m['torchdistill']}" if "torchdistill" in m else ""),
        f"- Seeds: {results.get('seeds')}; numbers are mean ± std over seeds of the test "
        "metric of the model selected on the val split (never on test). Differences are in "
        f"points (x100) with a 95% paired-bootstrap interval over test items "
        f"({results.get('replicates')} replicates, items resampled within each seed, seed "
        "means compared); `*` marks an interval that excludes 0.",
        "",
    ]
    tg = targets(results)
    if tg:
        lines += ["## Targets", ""]
        lines += targets_table(tg)
    quality = results.get("quality", {})
    if quality:
        lines += [
            "## 1. Quality per domain",
            "",
            "Teacher, the no-teacher baseline (same student, initialisation, labels and "
            "epochs), and students distilled with logit KD alone (`ce` + `kd`) or KD plus "
            "feature alignment through each encoder (`hint` for `pca`/`linear`, `graph` for "
            "`graph`), all from one teacher per seed. LR / GB: logistic regression and "
            "histogram gradient boosting on the teacher's input features (text: the "
            "sentence vectors), fitted on the same training examples.",
            "",
        ]
        for setting, s in quality.items():
            lines += [f"### {setting}", ""]
            header = [
                "domain",
                "metric",
                "teacher",
                "baseline",
                *VARIANT_LABELS.values(),
                "LR",
                "GB",
            ]
            rows = []
            for name, d in s["domains"].items():
                rows.append(
                    [name, d["metric"], _ms(d["teacher"]), _ms(d["baseline"])]
                    + [_ms(d[v]) for v in VARIANT_LABELS]
                    + [_ms(d["logreg"]), _ms(d["gboost"])]
                )
            lines += _table(header, rows)
            lines += ["Gain over the baseline, points [95% CI]:", ""]
            lines += _table(
                ["domain", *VARIANT_LABELS.values()],
                [
                    [name] + [_ci(d["gain_over_baseline"].get(v)) for v in VARIANT_LABELS]
                    for name, d in s["domains"].items()
                ],
            )
            p = s["params"]
            lines += [
                f"Parameters: teacher {p['teacher']:,} (network {p['teacher_network']:,}, frozen "
                f"view encoders {p['teacher_view_encoders']:,}), student {p['student']:,} "
                f"= {p['student'] / p['teacher']:.2%} of the teacher. Latency, CPU ms per "
                "sample (networks on their inputs):",
                "",
            ]
            lat_rows = []
            text = bool(s.get("text_view_latency_ms"))
            for name, d in s["domains"].items():
                lat = d["latency_ms"]

                def speed(bs: int, lat=lat, setting=s, e2e: bool = False) -> str:
                    t, st = (
                        end_to_end(setting, lat, bs)
                        if e2e
                        else (lat.get(f"teacher_b{bs}"), lat.get(f"student_b{bs}"))
                    )
                    return "—" if not t or not st else f"{t / st:.1f}x"

                lat_rows.append(
                    [
                        name,
                        _num(lat.get("teacher_b256"), "{:.4f}"),
                        _num(lat.get("student_b256"), "{:.4f}"),
                        speed(256),
                        _num(lat.get("teacher_b1"), "{:.3f}"),
                        _num(lat.get("student_b1"), "{:.3f}"),
                        speed(1),
                    ]
                    + ([speed(256, e2e=True), speed(1, e2e=True)] if text else [])
                )
            lines += _table(
                [
                    "domain",
                    "teacher b256",
                    "student b256",
                    "speed-up",
                    "teacher b1",
                    "student b1",
                    "speed-up",
                ]
                + (["from text, b256", "from text, b1"] if text else []),
                lat_rows,
            )
            tv = s.get("text_view_latency_ms")
            if tv:
                lines += [
                    f"Text views, ms per text: the teacher's {tv['embedder']} vectors "
                    f"{tv['teacher_b256']:.2f} (batch 256) / {tv['teacher_b1']:.2f} (batch 1); "
                    f"the student's hashed n-gram ids {tv['student_b256']:.3f} / "
                    f"{tv['student_b1']:.3f}. The *from text* columns add them: what each "
                    "model costs on a new raw text (the student never needs the "
                    "teacher's view), which is what the latency target is judged on here.",
                    "",
                ]
            plot = img / f"{stem}_quality_{setting}.png"
            _plot_quality(setting, s, plot)
            lines += [f"![{setting}](img/{plot.name})", ""]
    transfer = results.get("transfer", {})
    if transfer:
        lines += [
            "## 2. Cross-domain value",
            "",
            "The teacher learned only the source domains. *Few labels*: the target trains the "
            "student (and the baseline) with 10% or 1% of its labels (a stratified subset; "
            "val labels cut alike); *cross* is `ce` + `kd` + `hint` through `pca`, *KD* is "
            "`ce` + `kd`, *gated* is *cross* with `train.teacher_gate: val` (no soft labels "
            "on a domain where the teacher is below the baseline on the labelled val "
            "examples; the column after it says on how many seeds the soft labels were "
            "kept). The target is judged on *gated*, fixed as the cross-domain recipe before "
            "any test number was seen. *Zero-shot*: the domain is `unseen`, evaluated only.",
            "",
        ]
        rows = []
        for setting, s in transfer.items():
            for fraction, f in s["few_label"].items():
                rows.append(
                    [
                        setting,
                        f"{f['domain']} ({f['metric']})",
                        f"{float(fraction):.0%} ({f['labelled']}/{f['train']})",
                        _ms(f["teacher"]),
                        _ms(f["baseline"]),
                        _ms(f["kd"]),
                        _ms(f["cross"]),
                        _ms(f["gated"]),
                        f"{sum(bool(k) for k in f['gated_soft_labels'])}/"
                        f"{len(f['gated_soft_labels'])}",
                        _ms(f["logreg"]),
                        _ms(f["gboost"]),
                        _ci(f["cross_minus_baseline"]),
                        _ci(f["gated_minus_baseline"]),
                        _ci(f["gated_minus_kd"]),
                    ]
                )
        lines += _table(
            [
                "setting",
                "target",
                "labels",
                "teacher",
                "baseline",
                "KD",
                "cross",
                "gated",
                "soft labels kept",
                "LR",
                "GB",
                "cross - baseline",
                "gated - baseline",
                "gated - KD",
            ],
            rows,
        )
        lines += _table(
            ["setting", "unseen domain", "teacher", "baseline", "cross", "cross - baseline"],
            [
                [
                    setting,
                    f"{s['zero_shot']['domain']} ({s['zero_shot']['metric']})",
                    _ms(s["zero_shot"]["teacher"]),
                    _ms(s["zero_shot"]["baseline"]),
                    _ms(s["zero_shot"]["cross"]),
                    _ci(s["zero_shot"]["cross_minus_baseline"]),
                ]
                for setting, s in transfer.items()
            ],
        )
    fb = results.get("feedback")
    if fb:
        target = fb["target"]
        sources = [n for n in fb["baseline"] if n != target]
        lines += [
            "## 3. Feedback",
            "",
            f"Setting: {', '.join(sources)} as sources, {target} the target "
            f"(its metric shown). Each strategy runs {fb['rounds']} rounds (the student "
            "re-initialised each round); the control of round r has no feedback, the student "
            "trained r + 1 times as many epochs and the teacher 3 r epochs longer (what r "
            "rounds of `hard_examples` add). Seconds: from the start of the run to that "
            "round's evaluation.",
            "",
        ]
        rows = []
        for s, srows in fb["domain_scores"].items():
            for r in srows:
                rows.append(
                    [
                        s,
                        str(r["round"]),
                        _ms(r["student"][target]),
                        _ms(r["teacher"][target]),
                        " / ".join(_num(_mean(r["student"][n])) for n in sources),
                        _num(r["seconds_to_round"], "{:.1f}"),
                    ]
                )
        for c in fb["controls"]:
            rows.append(
                [
                    "no feedback (control)",
                    str(c["round"]),
                    _ms(c["student"][target]),
                    _ms(c["teacher"][target]),
                    " / ".join(_num(_mean(c["student"][n])) for n in sources),
                    _num(c["wall_s"], "{:.1f}"),
                ]
            )
        lines += _table(
            [
                "strategy",
                "round",
                "student (target)",
                "teacher (target)",
                "student (sources)",
                "seconds",
            ],
            rows,
        )
        lines += [
            "Last round minus the control with the same total epochs (target, points): "
            + "; ".join(f"{s} {_ci(b)}" for s, b in fb["last_round_minus_control"].items()),
            "",
        ]
        plot = img / f"{stem}_feedback.png"
        _plot_feedback(fb, plot)
        lines += [f"![feedback](img/{plot.name})", ""]
    peer = results.get("peer")
    if peer:
        lines += [
            "## 4. Against torchdistill",
            "",
            f"{peer['domain']} ({peer['metric']}): one teacher per seed, trained by cdkd; the "
            "same student architecture and initialisation, data, optimiser (AdamW, cosine), "
            "epochs and val selection; loss 0.5 · CE + 0.5 · T² · KL with T = 4 — cdkd's "
            f"`ce` + `kd` against torchdistill {peer['torchdistill_version']}'s `KDLoss` fed "
            "by its `ForwardHookManager` (the teacher run on every batch, as torchdistill "
            "does by default). Seconds: student training including the per-epoch val pass.",
            "",
        ]
        lines += _table(
            ["", "teacher", "cdkd", "torchdistill", "cdkd s", "torchdistill s"],
            [
                [
                    "mean ± std",
                    _ms(peer["teacher"]),
                    _ms(peer["cdkd"], 4),
                    _ms(peer["torchdistill"], 4),
                    _ms(peer["cdkd_seconds"], 2),
                    _ms(peer["torchdistill_seconds"], 2),
                ]
            ]
            + [
                [
                    f"seed {r['seed']}",
                    "",
                    f"{r['cdkd']:.4f}",
                    f"{r['torchdistill']:.4f}",
                    f"{r['cdkd_seconds']:.2f}",
                    f"{r['torchdistill_seconds']:.2f}",
                ]
                for r in peer["per_seed"]
            ],
        )
        t = peer["paired_t_cdkd_minus_torchdistill"]
        lines += [
            f"cdkd - torchdistill: {_ci(peer['bootstrap_cdkd_minus_torchdistill'])} points; "
            f"paired t over seeds t = {_num(t['t'], '{:.2f}')}, p = {_num(t['p'])}.",
            "",
        ]
    overhead = results.get("overhead")
    if overhead:
        lines += [
            "## 5. Toolkit overhead",
            "",
            "Student training on one domain (no early stop), median of interleaved repeats: "
            "a hand-written PyTorch loop (AdamW, cosine, clipping, per-epoch val metric and "
            "best-state copy) against cdkd's `fit` with `ce` alone doing the same; then "
            "`ce` + `kd` with the teacher's logits cached (cdkd's way) and with the teacher "
            "run on every batch.",
            "",
        ]
        rows = []
        for k, v in overhead.items():
            sps, ep = v["samples_per_s"], v["epoch_s"]
            rows.append(
                [
                    f"{k} ({v['domain']}, {v['train_examples']} examples)",
                    f"{sps['hand']:,.0f}",
                    f"{sps['cdkd']:,.0f}",
                    f"{v['cdkd_vs_hand_throughput']:.2f}",
                    f"{ep['cdkd']:.3f}",
                    f"{ep['kd_cached']:.3f} ({v['kd_cached_vs_plain_epoch']:.2f}x)",
                    f"{ep['kd_live']:.3f} ({v['kd_live_vs_plain_epoch']:.2f}x)",
                ]
            )
        lines += _table(
            [
                "workload",
                "hand loop samples/s",
                "cdkd samples/s",
                "cdkd / hand",
                "plain epoch s",
                "KD epoch, cached",
                "KD epoch, teacher each batch",
            ],
            rows,
        )
    memory = results.get("memory")
    if memory:
        lines += [
            "## 6. Memory as the data grows",
            "",
            f"The `arrays` domain on **replicated** data: {memory['dataset']} — not new "
            "images. Each size is written as `.npy` files (`inputs`) and run in a fresh "
            "process, with `train.out_of_core: auto` (the default; with memory-mapped inputs "
            "every array the run derives goes to disk) and with `memory` (every derived array "
            "in RAM): one epoch per stage, the default teacher (MLP 256x3) and student (MLP "
            "32x1), `pca` (dim 32, fitted incrementally at every size here: more than 20,000 "
            "rows), `ce` + `kd` + `hint`. `derived` is what the run computes from the data "
            "(standardised inputs, the teacher's features and logits, knowledge vectors; "
            "float32). Peak anonymous RSS is `RssAnon` sampled every "
            f"{memory['sample_ms']} ms: the memory the process holds itself. Peak RSS is "
            "`VmHWM`: it also counts mapped files — about 0.7 GB of shared libraries (torch) "
            "and the page cache of the data and scratch files, which the kernel reclaims "
            "under memory pressure. `floor` is the anonymous RSS after the imports a run "
            "makes (torch and its optimiser, scikit-learn), before any data. One run each, "
            "on one torch thread (scikit-learn's BLAS may use both cores: CPU s, the run's "
            "user + system time, can exceed wall s). Times move with other jobs on the "
            "machine: `load` is its 1-minute load average as the run ended (2 cores; above "
            "1, another job shared them).",
            "",
        ]
        rows = []
        for r in memory["runs"]:
            rows.append(
                [
                    f"{r['scale']}x",
                    f"{r['rows']['train']:,} / {r['rows']['val']:,} / {r['rows']['test']:,}",
                    f"{r['data_mb']:,.0f}",
                    f"{r['derived_mb']:,.0f}" if "derived_mb" in r else "—",
                    MODE_LABELS.get(r["mode"], r["mode"]),
                    f"{r['peak_anon_mb']:,.0f}",
                    f"{r['floor_anon_mb']:,.0f}",
                    f"{r['peak_rss_mb']:,.0f}",
                    f"{r['wall_s']:.1f}",
                    f"{r['cpu_s']:.1f}" if "cpu_s" in r else "—",
                    f"{r['load_1m']:.1f}" if "load_1m" in r else "—",
                    f"{r['teacher']:.3f} / {r['student']:.3f}",
                ]
            )
        lines += _table(
            [
                "size",
                "rows train / val / test",
                "inputs MB",
                "derived MB",
                "out_of_core",
                "peak anon RSS MB",
                "floor MB",
                "peak RSS (VmHWM) MB",
                "wall s",
                "CPU s",
                "load",
                "accuracy teacher / student",
            ],
            rows,
        )
        growth = memory_growth(memory)
        if "auto" in growth and "memory" in growth:
            lo, hi = growth["lo"], growth["hi"]
            peak = {(r["mode"], r["scale"]): r["peak_anon_mb"] for r in memory["runs"]}
            lines += [
                f"From {lo}x to {hi}x the peak anonymous memory of the out-of-core run goes "
                f"from {peak['auto', lo]:,.0f} to {peak['auto', hi]:,.0f} MB "
                f"(x{growth['auto']:.2f}); that of the in-memory run from "
                f"{peak['memory', lo]:,.0f} to {peak['memory', hi]:,.0f} MB "
                f"(x{growth['memory']:.2f}), as the derived arrays sit in RAM. Both modes "
                "give the same accuracies (the same numbers, computed in the same order). Out "
                "of core, what still grows with the data is per-example bookkeeping (labels, "
                "batch indices, test predictions, the val rows model selection gathers each "
                "epoch) and, in the peak RSS column, the page cache of the mapped files. The "
                "accuracies only show that the modes agree: copies of one test image are not "
                "independent examples.",
                "",
            ]
    meta = results.get("meta")
    if meta:
        lines += meta_section(meta, results.get("feedback"))
    if results.get("text"):
        from benchmarks.report_text import text_section

        lines += text_section(results["text"])
    tables = Path(__file__).with_name("tabular_distill.json")
    if tables.is_file() and not results.get("quick"):
        from benchmarks.report_tables import tables_section

        lines += tables_section(json.loads(tables.read_text(encoding="utf-8")), 9)
    few = Path(__file__).with_name("few_label.json")
    if few.is_file() and not results.get("quick"):
        from benchmarks.few_label import few_label_section

        lines += few_label_section(json.loads(few.read_text(encoding="utf-8")), 10)
    defaults = Path(__file__).with_name("tabular_auto.json")
    if defaults.is_file() and not results.get("quick"):
        from benchmarks.report_tables import defaults_section

        lines += defaults_section(json.loads(defaults.read_text(encoding="utf-8")), 11)
    notes = Path(__file__).with_name("notes.md")
    if notes.is_file() and not results.get("quick"):
        lines += [notes.read_text(encoding="utf-8").rstrip(), ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
