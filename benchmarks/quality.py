"""Quality per domain: teacher, no-teacher baseline, logit-KD student and a student per
encoder, beside classical references; sizes and CPU latencies."""

from __future__ import annotations

from typing import Any

from benchmarks.harness import (
    Harness,
    Run,
    classical_references,
    for_settings,
    latencies,
    load_networks,
    text_view_latency,
)
from benchmarks.settings import QUALITY_SETTINGS, student_variants
from benchmarks.stats import mean_std, paired_bootstrap

VARIANTS = ("kd", "pca", "linear", "graph")


def run_setting(
    h: Harness, name: str, seeds: list[int], quick: bool, replicates: int
) -> dict[str, Any]:
    """Every variant of one setting over ``seeds``; one teacher per seed."""
    config = QUALITY_SETTINGS[name](quick)
    variants = student_variants(config)
    runs: dict[str, list[Run]] = {v: [] for v in VARIANTS}
    lat_rows, classical_rows, params = [], [], None
    for seed in seeds:
        first = h.run(config, "pca", seed=seed, **variants["pca"])
        runs["pca"].append(first)
        for v in VARIANTS:
            if v != "pca":
                runs[v].append(
                    h.run(config, v, seed=seed, teacher=first.teacher_path, **variants[v])
                )
        teacher, student, domains = load_networks(first, h.host)
        lat_rows.append(latencies(teacher, student, domains))
        classical_rows.append(classical_references(domains, seed))
        params = first.summary["params"]
    first = runs["pca"][0]
    domains_out = {}
    for dname, d in first.summary["domains"].items():
        row: dict[str, Any] = {"role": d["role"], "metric": d["metric"]}
        row["teacher"] = mean_std([r.summary["domains"][dname]["teacher"] for r in runs["pca"]])
        row["baseline"] = mean_std([r.summary["domains"][dname]["baseline"] for r in runs["pca"]])
        for v in VARIANTS:
            row[v] = mean_std([r.summary["domains"][dname]["student"] for r in runs[v]])
        for ref in ("logreg", "gboost"):
            row[ref] = mean_std([c[dname][ref] for c in classical_rows])
        row["latency_ms"] = {
            k: mean_std([lat[dname][k] for lat in lat_rows])["mean"] for k in lat_rows[0][dname]
        }
        row["gain_over_baseline"] = {}
        for v in VARIANTS:
            if all("student" in r.probs[dname] and "baseline" in r.probs[dname] for r in runs[v]):
                row["gain_over_baseline"][v] = paired_bootstrap(
                    d["metric"],
                    [r.labels[dname] for r in runs[v]],
                    [r.probs[dname]["student"] for r in runs[v]],
                    [r.probs[dname]["baseline"] for r in runs[v]],
                    replicates=replicates,
                )
        # the same baseline must come out of every variant's run (same seed, same init)
        row["baseline_consistent"] = all(
            r.summary["domains"][dname]["baseline"] == b.summary["domains"][dname]["baseline"]
            for v in VARIANTS
            for r, b in zip(runs[v], runs["pca"], strict=True)
        )
        domains_out[dname] = row
    out: dict[str, Any] = {
        "domains": domains_out,
        "params": params,
        "wall_s": {v: mean_std([r.summary["wall_s"] for r in runs[v]])["mean"] for v in VARIANTS},
        "config": config,
    }
    modalities = {d.modality for d in domains}
    if "text" in modalities:
        out["text_view_latency_ms"] = _text_views(name)
    return out


def _text_views(name: str) -> dict[str, Any]:
    from cdkd_nlp import read_vader

    texts = read_vader("movies").texts[:256]
    if name == "multilingual":
        from cdkd_nlp import USEEmbedder

        return {"embedder": "multilingual USE v3", **text_view_latency(texts, USEEmbedder())}
    from cdkd_nlp import MiniLMEmbedder

    return {"embedder": "all-MiniLM-L6-v2", **text_view_latency(texts, MiniLMEmbedder(256))}


def run(h: Harness, seeds: list[int], quick: bool, replicates: int, only=None) -> dict[str, Any]:
    """Every quality setting (or those in ``only``)."""
    return for_settings(
        "quality",
        QUALITY_SETTINGS,
        only,
        lambda name: run_setting(h, name, seeds, quick, replicates),
    )


def remeasure_latency(h: Harness, quality: dict[str, Any], seeds: list[int]) -> None:
    """Measure the latencies of finished quality runs again (``--suites latency``), e.g. on
    a quiet machine after the suites ran side by side; updates ``quality`` in place."""
    from statistics import mean

    from benchmarks.harness import Run

    for name, setting in quality.items():
        prefix = setting["config"]["name"]
        rows = []
        for seed in seeds:
            found = sorted(h.root.glob(f"{prefix}-pca-s{seed}-*"))
            found = [p for p in found if (p / "summary.json").is_file()]
            if not found:
                continue
            run = Run(found[-1], {})
            teacher, student, domains = load_networks(run, h.host)
            rows.append(latencies(teacher, student, domains))
        if not rows:
            print(f"latency: no finished runs of {name} under {h.root}", flush=True)
            continue
        for dname, d in setting["domains"].items():
            d["latency_ms"] = {
                k: (
                    None
                    if any(r[dname][k] is None for r in rows)
                    else mean(r[dname][k] for r in rows)
                )
                for k in rows[0][dname]
            }
        if "text_view_latency_ms" in setting:
            setting["text_view_latency_ms"] = _text_views(name)
        print(f"latency: {name} measured again on {len(rows)} run(s)", flush=True)
