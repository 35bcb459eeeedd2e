"""The text suite's section of the report: the injected text student against its teacher,
two baselines and peer models, and the targets of the text student."""

from __future__ import annotations

from typing import Any

from benchmarks.report import _ci, _ms, _num, _table, targets_table

PEER_LABELS = {
    "minilm_lr": "MiniLM+LR",
    "m2v256_lr": "M2V256+LR",
    "m2v64_lr": "M2V64+LR",
    "tfidf_lr": "TF-IDF+LR",
}


def _short(name: str) -> str:
    return name.removeprefix("nlp.sentiment_").removeprefix("nlp.")


def _peer(peers: dict, setting: str, name: str, key: str) -> str:
    score = peers.get(setting, {}).get("scores", {}).get(name, {}).get(key)
    return _num(score)


def _rows(setting: str, domains: dict[str, dict], peers: dict, group: str) -> list[list[str]]:
    rows = []
    for name, d in domains.items():
        ratio = d.get("student_of_teacher")
        m2v = peers.get(setting, {}).get("vs_m2v256_lr", {}).get(f"{group}:{name}")
        rows.append(
            [
                _short(name),
                d["role"],
                d["metric"],
                _ms(d["teacher"]),
                _ms(d["student"]),
                "-" if ratio is None else f"{100 * ratio:.1f}%",
                _ms(d["baseline_random"]),
                _ms(d["injected_labels"]),
                _ci(d.get("vs_baseline_random")),
                _ci(d.get("vs_injected_labels")),
                _num((d.get("minilm_lr") or {}).get("mean")),
                _peer(peers, setting, name, "m2v256_lr"),
                _peer(peers, setting, name, "m2v64_lr"),
                _peer(peers, setting, name, "tfidf_lr"),
                _ci(m2v),
            ]
        )
    return rows


HEADER = [
    "domain",
    "role",
    "metric",
    "teacher",
    "student",
    "of teacher",
    "random-init baseline",
    "injected, labels only",
    "student - random [CI]",
    "student - injected [CI]",
    "teacher view+LR",
    "M2V256+LR",
    "M2V64+LR",
    "TF-IDF+LR",
    "student - M2V256 [CI]",
]


def text_targets(text: dict) -> list[dict[str, Any]]:
    """The text student's targets, each with whether it is met and its figures."""
    out: list[dict[str, Any]] = []
    peers = text.get("peers", {})
    indomain = text.get("indomain")
    vs = peers.get("indomain", {}).get("vs_m2v256_lr", {})
    if indomain:
        for name, d in indomain["domains"].items():
            ratio = d.get("student_of_teacher")
            m2v = peers.get("indomain", {}).get("scores", {}).get(name, {}).get("m2v256_lr")
            s = d["student"]["mean"]
            out.append(
                {
                    "target": f"in-domain {_short(name)}: student >= 97% of teacher and >= "
                    "Model2Vec(256)+LR",
                    "met": ratio is not None and ratio >= 0.97 and (m2v is None or s >= m2v),
                    "detail": f"{100 * (ratio or 0):.1f}% of teacher; student {s:.3f}, "
                    f"M2V256+LR {_num(m2v)} (difference {_ci(vs.get(f'all:{name}'))})",
                }
            )
        params = indomain.get("params", {})
        if params.get("teacher"):
            share = params["student"] / params["teacher"]
            out.append(
                {
                    "target": "student <= 10% of the teacher's parameters (MiniLM counted)",
                    "met": share <= 0.10,
                    "detail": f"{params['student']:,} of {params['teacher']:,} "
                    f"({100 * share:.1f}%)",
                }
            )
        tp = (peers.get("throughput") or {}).get("sentences_per_s", {})
        if tp.get("pytorch") and tp.get("teacher"):
            out.append(
                {
                    "target": "student >= 100x faster than the teacher from raw text "
                    "(batch 256, 1 thread)",
                    "met": tp["pytorch"] >= 100 * tp["teacher"],
                    "detail": f"{tp['pytorch']:,.0f} vs {tp['teacher']:,.0f} sentences/s "
                    f"({tp['pytorch'] / tp['teacher']:,.0f}x)",
                }
            )
            if tp.get("onnx"):
                out.append(
                    {
                        "target": "exported ONNX student at least as fast as in PyTorch",
                        "met": tp["onnx"] >= tp["pytorch"],
                        "detail": f"ONNX {tp['onnx']:,.0f} vs PyTorch "
                        f"{tp['pytorch']:,.0f} sentences/s",
                    }
                )
    for key, setting in text.items():
        if not key.startswith("lodo_"):
            continue
        name = setting["domain"]
        for role, need in (("target", 0.95), ("unseen", 0.92)):
            d = setting[role]
            ratio = d.get("student_of_teacher") or 0.0
            gain = (d.get("vs_baseline_random") or {}).get("diff")
            gain_pts = None if gain is None else 100 * gain
            out.append(
                {
                    "target": f"leave-one-out {_short(name)} as {role}: >= {100 * need:.0f}% "
                    "of teacher and >= +5 points over the random-init baseline",
                    "met": ratio >= need and gain_pts is not None and gain_pts >= 5,
                    "detail": f"{100 * ratio:.1f}% of teacher; {_num(gain_pts, '{:+.1f}')} points",
                }
            )
    multi = text.get("multilingual")
    if multi:
        for name, d in multi["domains"].items():
            ratio = d.get("student_of_teacher") or 0.0
            out.append(
                {
                    "target": f"multilingual {name}: student >= 90% of teacher",
                    "met": ratio >= 0.90,
                    "detail": f"{100 * ratio:.1f}% of teacher",
                }
            )
    return out


def text_section(text: dict) -> list[str]:
    """Markdown lines of the text suite."""
    peers = text.get("peers", {})
    lines = [
        "## 8. Text students: knowledge injected from the teacher's tokens",
        "",
        "The nlp plugin's default student: MiniLM's (or USE's) own token ids, a static "
        "table that starts from the teacher's output for every token (PCA to the table's "
        "width, SIF-weighted: `student.weight_init: teacher_tokens`), mean pooling and a "
        "small MLP, then trained with CE + KD + hint. *Random-init baseline*: the same "
        "student from a random table on the labels only (no teacher at all); *injected, "
        "labels only*: the injected student on the labels only (CE): what KD and hint add "
        "over the injection. Peers, on the same train and test rows: logistic regression "
        "on the teacher's view (MiniLM's sentence vectors; USE's for the multilingual "
        "setting), on Model2Vec static models distilled from the same MiniLM at 256 and 64 "
        "dimensions (English-only: they have no useful tokens for Japanese or Chinese), and "
        "on TF-IDF word uni+bigrams. Peers are deterministic, so they show no ± (their "
        "intervals below resample the test items).",
        "",
    ]
    titles = {
        "indomain": "In-domain: the four VADER domains and BBC News, all sources",
        "multilingual": "Multilingual: ChatterBot topics in five languages (USE teacher, "
        "SentencePiece student)",
    }
    for key in ("indomain", "multilingual"):
        if key in text:
            s = text[key]
            lines += [f"### {titles[key]}", ""]
            lines += _table(HEADER, _rows(key, s["domains"], peers, "all"))
            p = s.get("params", {})
            if p:
                lines += [
                    f"Parameters: teacher {p.get('teacher', 0):,} (frozen encoder "
                    f"{p.get('teacher_view_encoders', 0):,}), student {p.get('student', 0):,}.",
                    "",
                ]
    lodo = {k: v for k, v in text.items() if k.startswith("lodo_")}
    if lodo:
        lines += [
            "### Leave one sentiment domain out",
            "",
            "The other three VADER domains are the sources; the held-out one is a target "
            "with unlabelled text (`label_fraction: 0`: soft labels and knowledge vectors "
            "on its train texts, no label) or unseen (evaluated only). The random-init "
            "baseline learned the sources' labels; peers are trained on the sources' train "
            "rows and scored on the held-out domain's test rows.",
            "",
        ]
        rows = []
        for key, s in lodo.items():
            for role in ("target", "unseen"):
                d = dict(s[role])
                rows += _rows(key, {s["domain"]: d}, peers, role)
        lines += _table(HEADER, rows)
    tp = peers.get("throughput")
    if tp:
        labels = {
            "pytorch": "student, PyTorch in process (batch padded to its longest text)",
            "pytorch_max_tokens": "student, PyTorch in process (padded to max_tokens)",
            "onnx": "student, exported ONNX under onnxruntime",
            "torchscript": "student, exported TorchScript",
            "teacher": "teacher: MiniLM sentence embedding alone",
        }
        rate = tp.get("sentences_per_s", {})
        only = tp.get("model_only_sentences_per_s", {})
        diff = max(tp.get("max_abs_logit_diff", {}).values(), default=0.0)
        lines += [
            "### From raw text to logits",
            "",
            f"{tp.get('texts')} movie snippets (mean {tp.get('mean_tokens', 0):.1f} WordPiece "
            f"tokens), batch {tp.get('batch')}, one thread (torch, onnxruntime, tokenizers), "
            f"tokenisation included; median of {tp.get('repeats')} rounds, the variants "
            "timed in turn within each round. The exported graphs read only the export "
            f"folder (its tokenizer.json) and give the in-process logits to {diff:.0e}.",
            "",
        ]
        lines += _table(
            ["model", "sentences/s from raw text", "model alone, sentences/s"],
            [
                [labels.get(k, k), f"{v:,.0f}", _num(only.get(k), "{:,.0f}")]
                for k, v in rate.items()
            ],
        )
    tg = text_targets(text)
    if tg:
        lines += ["### Targets of the text student", ""]
        lines += targets_table(tg)
    return lines
