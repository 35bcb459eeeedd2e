"""Cross-domain value: a target domain with few labels (10%, 1%) whose teacher learned only
other domains, and an unseen domain evaluated zero-shot."""

from __future__ import annotations

from typing import Any

from benchmarks.harness import Harness, Run, classical_references, for_settings
from benchmarks.settings import CE, KD, TRANSFER_SETTINGS
from benchmarks.stats import mean_std, paired_bootstrap
from cdkd_core import load_config
from cdkd_core.experimental import prepare_domains

FRACTIONS = (0.1, 0.01)


def _target(run: Run) -> str:
    return next(n for n, d in run.summary["domains"].items() if d["role"] != "source")


def _compare(runs_a: list[Run], runs_b: list[Run], a: str, b: str, replicates: int) -> dict:
    name = _target(runs_a[0])
    metric = runs_a[0].summary["domains"][name]["metric"]
    return paired_bootstrap(
        metric,
        [r.labels[name] for r in runs_a],
        [r.probs[name][a] for r in runs_a],
        [r.probs[name][b] for r in runs_b],
        replicates=replicates,
    )


def _soft_labels(run: Run, domain: str) -> bool | None:
    """Whether the gate let the teacher's soft labels reach ``domain``."""
    from cdkd_core.experimental import read_metrics

    for r in read_metrics(run.run_dir / "metrics.jsonl"):
        if r.get("stage") == "gate" and r.get("domain") == domain:
            return bool(r["soft_labels"])
    return None


def run_setting(
    h: Harness, name: str, seeds: list[int], quick: bool, replicates: int
) -> dict[str, Any]:
    """Few-label targets and the zero-shot domain of one setting, one teacher per seed."""
    make = TRANSFER_SETTINGS[name]
    by_fraction: dict[float, dict[str, list[Run]]] = {
        f: {"cross": [], "kd": [], "gated": []} for f in FRACTIONS
    }
    unseen: list[Run] = []
    refs: dict[float, list[dict]] = {f: [] for f in FRACTIONS}
    for seed in seeds:
        teacher = None
        for fraction in FRACTIONS:
            config = make(fraction, quick)
            cross = h.run(config, f"cross{fraction}", seed=seed, teacher=teacher)
            teacher = teacher or cross.teacher_path
            kd = h.run(config, f"kd{fraction}", seed=seed, teacher=teacher, losses=[CE, KD])
            gated_train = {**config["train"], "teacher_gate": "val"}
            gated = h.run(config, f"gated{fraction}", seed=seed, teacher=teacher, train=gated_train)
            by_fraction[fraction]["cross"].append(cross)
            by_fraction[fraction]["kd"].append(kd)
            by_fraction[fraction]["gated"].append(gated)
            domains = prepare_domains(
                load_config(cross.run_dir / "config.yaml", host=h.host), h.host
            )
            refs[fraction].append(classical_references(domains, seed))
        unseen.append(h.run(make(None, quick), "unseen", seed=seed, teacher=teacher))
    out: dict[str, Any] = {"few_label": {}, "config": make(FRACTIONS[0], quick)}
    for fraction, runs in by_fraction.items():
        target = _target(runs["cross"][0])
        d0 = runs["cross"][0].summary["domains"][target]
        out["few_label"][str(fraction)] = {
            "domain": target,
            "metric": d0["metric"],
            "labelled": d0["sizes"]["labelled"],
            "train": d0["sizes"]["train"],
            "teacher": mean_std([r.summary["domains"][target]["teacher"] for r in runs["cross"]]),
            "baseline": mean_std([r.summary["domains"][target]["baseline"] for r in runs["cross"]]),
            "kd": mean_std([r.summary["domains"][target]["student"] for r in runs["kd"]]),
            "cross": mean_std([r.summary["domains"][target]["student"] for r in runs["cross"]]),
            "gated": mean_std([r.summary["domains"][target]["student"] for r in runs["gated"]]),
            "logreg": mean_std([r[target]["logreg"] for r in refs[fraction]]),
            "gboost": mean_std([r[target]["gboost"] for r in refs[fraction]]),
            "cross_minus_baseline": _compare(
                runs["cross"], runs["cross"], "student", "baseline", replicates
            ),
            "cross_minus_kd": _compare(runs["cross"], runs["kd"], "student", "student", replicates),
            "gated_minus_baseline": _compare(
                runs["gated"], runs["gated"], "student", "baseline", replicates
            ),
            "gated_minus_kd": _compare(runs["gated"], runs["kd"], "student", "student", replicates),
            "gated_soft_labels": [_soft_labels(r, target) for r in runs["gated"]],
        }
    target = _target(unseen[0])
    d0 = unseen[0].summary["domains"][target]
    out["zero_shot"] = {
        "domain": target,
        "metric": d0["metric"],
        "teacher": mean_std([r.summary["domains"][target]["teacher"] for r in unseen]),
        "baseline": mean_std([r.summary["domains"][target]["baseline"] for r in unseen]),
        "cross": mean_std([r.summary["domains"][target]["student"] for r in unseen]),
        "cross_minus_baseline": _compare(unseen, unseen, "student", "baseline", replicates),
    }
    return out


def run(h: Harness, seeds: list[int], quick: bool, replicates: int, only=None) -> dict[str, Any]:
    """Every transfer setting (or those in ``only``)."""
    return for_settings(
        "transfer",
        TRANSFER_SETTINGS,
        only,
        lambda name: run_setting(h, name, seeds, quick, replicates),
    )
