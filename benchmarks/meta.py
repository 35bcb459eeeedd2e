"""Meta-learning, the knowledge graph and knowledge from weights, against what cdkd had.

Three parts (``--only feedback,encoders,few_shot`` picks some; ``--only encoders,nlp``
or ``--only nlp`` one setting of the encoder comparison):

- ``feedback``: the ``meta`` strategy (second order, and first order) on the feedback
  suite's setting and rounds, beside the ``mutual`` and ``hard_examples`` rows of that suite.
- ``encoders``: per quality setting (medical, finance, nlp) and seed, one teacher; students
  with ``pca`` + ``hint``, ``graph`` + ``graph``, ``knowledge_graph`` + ``graph_match``, and
  ``pca`` + ``hint`` with the student's first layers initialised from the teacher's
  principal components (``student.weight_init: teacher_pca``); paired differences on the
  same test items.
- ``few_shot``: the transfer settings' target with k = 1, 5, 10 labelled examples per class,
  from an ordinary multi-task teacher and from a Reptile teacher (``teacher.maml``).
"""

from __future__ import annotations

import copy
from typing import Any

from benchmarks.feedback import ROUNDS, _round_times
from benchmarks.harness import Harness, Run
from benchmarks.settings import CE, GRAPH, HINT, KD, QUALITY_SETTINGS, TRANSFER_SETTINGS
from benchmarks.stats import mean_std, paired_bootstrap
from cdkd_core.plugin_api import ConfigError

PARTS = ("feedback", "encoders", "few_shot")
ENCODER_SETTINGS = ("medical", "finance", "nlp")
SHOTS = (1, 5, 10)
GRAPH_MATCH = {"name": "graph_match", "weight": 0.5}
META = {
    "meta": {"name": "meta", "params": {"rounds": ROUNDS}},
    "meta_first_order": {"name": "meta", "params": {"rounds": ROUNDS, "first_order": True}},
}
MAML = {"algorithm": "reptile"}


def _students(run: Run, domain: str) -> float | None:
    return run.summary["domains"][domain]["student"]


def _paired(
    metric: str,
    domain: str,
    a: list[Run],
    b: list[Run],
    replicates: int,
    models: tuple[str, str] = ("student", "student"),
) -> dict:
    """``models[0]`` of ``a`` minus ``models[1]`` of ``b`` on the same test items, seed by
    seed."""
    return paired_bootstrap(
        metric,
        [r.labels[domain] for r in a],
        [r.probs[domain][models[0]] for r in a],
        [r.probs[domain][models[1]] for r in b],
        replicates=replicates,
    )


def feedback_part(h: Harness, seeds: list[int], quick: bool) -> dict[str, Any]:
    """``meta`` for ``ROUNDS`` rounds on the feedback setting: per round, the student and
    teacher on every domain and the seconds from the start of the run."""
    from benchmarks.settings import feedback_setting

    config = feedback_setting(quick)
    runs: dict[str, list[Run]] = {s: [] for s in META}
    for seed in seeds:
        for s, ref in META.items():
            runs[s].append(h.run(config, s, seed=seed, feedback=ref))
    names = list(runs["meta"][0].summary["domains"])

    def scores(rs: list[Run], r: int, model: str) -> dict[str, dict]:
        return {
            n: mean_std([x.summary["round_results"][r]["domains"][n][model] for x in rs])
            for n in names
        }

    out: dict[str, Any] = {"config": config, "rounds": ROUNDS, "domain_scores": {}}
    for s, rs in runs.items():
        out["domain_scores"][s] = [
            {
                "round": r,
                "student": scores(rs, r, "student"),
                "teacher": scores(rs, r, "teacher"),
                "seconds_to_round": mean_std([_round_times(x)[r] for x in rs])["mean"],
            }
            for r in range(ROUNDS)
        ]
    return out


def encoder_variants(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The student variants of the encoder comparison, as config overrides."""
    dim = config["encoder"]["params"]["dim"]
    return {
        "pca": {"encoder": {"name": "pca", "params": {"dim": dim}}, "losses": [CE, KD, HINT]},
        "graph": {
            "encoder": {"name": "graph", "params": {"dim": dim}},
            "losses": [CE, KD, GRAPH],
        },
        "knowledge_graph": {
            "encoder": {"name": "knowledge_graph", "params": {"dim": dim}},
            "losses": [CE, KD, GRAPH_MATCH],
        },
        "pca_weight_init": {
            "encoder": {"name": "pca", "params": {"dim": dim}},
            "losses": [CE, KD, HINT],
            "student": {**config["student"], "weight_init": "teacher_pca"},
        },
    }


def encoders_part(
    h: Harness, seeds: list[int], quick: bool, replicates: int, settings=ENCODER_SETTINGS
) -> dict[str, Any]:
    """Every encoder variant on each setting, one teacher per seed and setting;
    ``pca_weight_init`` only where the config is accepted (a student layer pairs with a
    teacher layer: not the nlp students, which read token ids, not sentence vectors)."""
    out: dict[str, Any] = {}
    for name in settings:
        print(f"meta encoders: {name}", flush=True)
        config = QUALITY_SETTINGS[name](quick)
        variants = encoder_variants(config)
        runs: dict[str, list[Run]] = {v: [] for v in variants}
        for seed in seeds:
            first = h.run(config, "pca", seed=seed, **variants["pca"])
            runs["pca"].append(first)
            for v, ov in list(variants.items()):
                if v == "pca":
                    continue
                try:
                    runs[v].append(h.run(config, v, seed=seed, teacher=first.teacher_path, **ov))
                except ConfigError as e:  # refused before training: no layer pairs
                    print(f"  {name} {v}: refused: {e}", flush=True)
                    del variants[v], runs[v]
        domains = {}
        for dname, d in runs["pca"][0].summary["domains"].items():
            row: dict[str, Any] = {"metric": d["metric"]}
            row["teacher"] = mean_std([r.summary["domains"][dname]["teacher"] for r in runs["pca"]])
            row["baseline"] = mean_std(
                [r.summary["domains"][dname]["baseline"] for r in runs["pca"]]
            )
            for v, rs in runs.items():
                row[v] = mean_std([_students(r, dname) for r in rs])
            row["differences"] = {
                "knowledge_graph_minus_pca": _paired(
                    d["metric"], dname, runs["knowledge_graph"], runs["pca"], replicates
                ),
                "knowledge_graph_minus_graph": _paired(
                    d["metric"], dname, runs["knowledge_graph"], runs["graph"], replicates
                ),
            }
            if "pca_weight_init" in runs:
                row["differences"]["weight_init_minus_random"] = _paired(
                    d["metric"], dname, runs["pca_weight_init"], runs["pca"], replicates
                )
            domains[dname] = row
        out[name] = {
            "domains": domains,
            # the student stage alone: the first run also trains the teacher
            "student_seconds": {
                v: mean_std([r.stage_seconds("student", 0) for r in rs])["mean"]
                for v, rs in runs.items()
            },
            "config": config,
        }
    return out


def _meta_training_seconds(run: Run) -> float:
    """Seconds the run's teacher spent meta-training (0 for a multi-task teacher)."""
    from cdkd_core.experimental import read_metrics

    for r in read_metrics(run.run_dir / "metrics.jsonl"):
        if r.get("stage") == "teacher_meta" and r.get("event") == "done":
            return float(r["wall_s"])
    return 0.0


def few_shot_part(h: Harness, seeds: list[int], quick: bool, replicates: int) -> dict[str, Any]:
    """The transfer targets with k labelled examples per class, from a multi-task teacher
    and from a Reptile teacher; the same k examples for student and baseline."""
    out: dict[str, Any] = {}
    for name, make in TRANSFER_SETTINGS.items():
        print(f"meta few_shot: {name}", flush=True)
        base = make(0.1, quick)
        target_index = next(i for i, d in enumerate(base["domains"]) if d["role"] == "target")

        def with_shots(config: dict[str, Any], k: int, index: int = target_index) -> dict:
            config = copy.deepcopy(config)
            entry = config["domains"][index]
            entry.pop("label_fraction", None)
            entry["shots"] = k
            return config

        maml_config = copy.deepcopy(base)
        maml_config["teacher"] = {**maml_config["teacher"], "maml": MAML}
        runs: dict[str, dict[int, list[Run]]] = {
            "multitask": {k: [] for k in SHOTS},
            "reptile": {k: [] for k in SHOTS},
        }
        teacher_seconds: dict[str, list[float]] = {"multitask": [], "reptile": []}
        meta_seconds: dict[str, list[float]] = {"multitask": [], "reptile": []}
        for seed in seeds:
            for kind, config in (("multitask", base), ("reptile", maml_config)):
                teacher = None
                for k in SHOTS:
                    run = h.run(with_shots(config, k), f"{kind}{k}", seed=seed, teacher=teacher)
                    if teacher is None:
                        teacher = run.teacher_path
                        teacher_seconds[kind].append(run.stage_seconds("teacher"))
                        meta_seconds[kind].append(_meta_training_seconds(run))
                    runs[kind][k].append(run)
        target = base["domains"][target_index].get("alias") or base["domains"][target_index]["name"]
        first = runs["multitask"][SHOTS[0]][0].summary["domains"][target]
        rows = {}
        for k in SHOTS:
            m, r = runs["multitask"][k], runs["reptile"][k]
            rows[str(k)] = {
                "labelled": m[0].summary["domains"][target]["sizes"]["labelled"],
                "baseline": mean_std([x.summary["domains"][target]["baseline"] for x in m]),
                "multitask_teacher": mean_std([x.summary["domains"][target]["teacher"] for x in m]),
                "multitask_student": mean_std([_students(x, target) for x in m]),
                "reptile_teacher": mean_std([x.summary["domains"][target]["teacher"] for x in r]),
                "reptile_student": mean_std([_students(x, target) for x in r]),
                "reptile_minus_multitask": _paired(first["metric"], target, r, m, replicates),
                "multitask_minus_baseline": _paired(
                    first["metric"], target, m, m, replicates, ("student", "baseline")
                ),
            }
        out[name] = {
            "domain": target,
            "metric": first["metric"],
            "shots": rows,
            # the teacher stage (for Reptile: its multi-task fine-tune) and meta-training
            "teacher_seconds": {k: mean_std(v)["mean"] for k, v in teacher_seconds.items()},
            "meta_training_seconds": {k: mean_std(v)["mean"] for k, v in meta_seconds.items()},
            "config": maml_config,
        }
    return out


def run(h: Harness, seeds: list[int], quick: bool, replicates: int, only=None) -> dict[str, Any]:
    """The parts in ``only`` (default: all)."""
    parts = [p for p in PARTS if not only or p in only]
    if only and not parts and set(only) <= set(ENCODER_SETTINGS):
        parts = ["encoders"]  # --only nlp: the encoder comparison on that setting
    out: dict[str, Any] = {}
    if "feedback" in parts:
        print("meta: feedback", flush=True)
        out["feedback"] = feedback_part(h, seeds, quick)
    if "encoders" in parts:
        chosen = [s for s in ENCODER_SETTINGS if only and s in only] or ENCODER_SETTINGS
        out["encoders"] = encoders_part(h, seeds, quick, replicates, chosen)
    if "few_shot" in parts:
        out["few_shot"] = few_shot_part(h, seeds, quick, replicates)
    return out
