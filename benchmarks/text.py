"""Text students that keep what the teacher knows: the injected static-embedding student
(``static_embedding`` + ``student.weight_init: teacher_tokens``) against its teacher, two
baselines and peer models, on the same test rows.

Per setting and seed:

- ``student``: the cdkd student (teacher tokens injected, then CE + KD + hint); the run's
  summary also gives the teacher and the **random-init baseline** (the same student from a
  random table, trained on the labels only: no teacher at all);
- ``labels``: the injected student trained on the labels only (CE): what the stages add
  over the injection;
- peers (``benchmarks.text_peers``): MiniLM (teacher view) + logistic regression, Model2Vec
  distilled from the same MiniLM at 256 and 64 dimensions + logistic regression, TF-IDF +
  logistic regression, each on the same train and test rows.

Settings: in-domain (the four VADER sentiment domains and BBC News, all sources),
leave-one-domain-out for each sentiment domain (held out as a target with unlabelled text
and as unseen; the random-init baseline of a held-out domain is the unseen run's, trained on
the sources' labels), and ChatterBot in five languages (USE's SentencePiece).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.harness import Harness, Run, classical_references, load_networks
from benchmarks.settings import (
    CE,
    SENTIMENT,
    text_indomain,
    text_lodo,
    text_multilingual,
)
from benchmarks.stats import mean_std, paired_bootstrap

PEERS = ("minilm_lr", "m2v256_lr", "m2v64_lr", "tfidf_lr")


def _row(
    name: str,
    student: list[Run],
    labels: list[Run],
    random_base: list[Run],
    minilm: list[dict],
    replicates: int,
) -> dict[str, Any]:
    d0 = student[0].summary["domains"][name]
    metric = d0["metric"]
    row: dict[str, Any] = {"role": d0["role"], "metric": metric}
    row["teacher"] = mean_std([r.summary["domains"][name]["teacher"] for r in student])
    row["student"] = mean_std([r.summary["domains"][name]["student"] for r in student])
    row["baseline_random"] = mean_std([r.summary["domains"][name]["baseline"] for r in random_base])
    row["injected_labels"] = mean_std([r.summary["domains"][name]["student"] for r in labels])
    row["minilm_lr"] = mean_std([m.get(name, {}).get("logreg") for m in minilm])
    t, s = row["teacher"]["mean"], row["student"]["mean"]
    row["student_of_teacher"] = None if not t or s is None else s / t
    labels_of = [r.labels[name] for r in student]
    probs = [r.probs[name]["student"] for r in student]
    row["vs_baseline_random"] = paired_bootstrap(
        metric,
        labels_of,
        probs,
        [r.probs[name]["baseline"] for r in random_base],
        replicates=replicates,
    )
    row["vs_injected_labels"] = paired_bootstrap(
        metric, labels_of, probs, [r.probs[name]["student"] for r in labels], replicates=replicates
    )
    return row


def _setting(
    h: Harness,
    make,
    seeds: list[int],
    replicates: int,
    tag: str,
) -> dict[str, Any]:
    """One setting whose domains are all trained (sources or labelled targets)."""
    config = make()
    student, labels, minilm = [], [], []
    for seed in seeds:
        first = h.run(config, "student", seed=seed)
        student.append(first)
        labels.append(h.run(config, "labels", seed=seed, teacher=first.teacher_path, losses=[CE]))
        _, _, domains = load_networks(first, h.host)
        minilm.append(classical_references(domains, seed))
    out: dict[str, Any] = {
        "domains": {
            name: _row(name, student, labels, student, minilm, replicates)
            for name in student[0].summary["domains"]
        },
        "params": student[0].summary["params"],
        "wall_s": mean_std([r.summary["wall_s"] for r in student])["mean"],
        "config": config,
        "run_dirs": [str(r.run_dir) for r in student],
    }
    print(f"text: {tag} done", flush=True)
    return out


def _lodo(
    h: Harness, held_out: str, seeds: list[int], quick: bool, replicates: int
) -> dict[str, Any]:
    """Leave ``held_out`` out: as an unlabelled target and as unseen, one teacher per seed."""
    name = f"nlp.sentiment_{held_out}"
    target_cfg = text_lodo(held_out, "target", quick)
    unseen_cfg = text_lodo(held_out, "unseen", quick)
    target, unseen, labels, minilm = [], [], [], []
    for seed in seeds:
        t = h.run(target_cfg, "target", seed=seed)
        target.append(t)
        unseen.append(h.run(unseen_cfg, "unseen", seed=seed, teacher=t.teacher_path))
        labels.append(h.run(unseen_cfg, "labels", seed=seed, teacher=t.teacher_path, losses=[CE]))
        minilm.append(_transfer_minilm(h, unseen[-1], name, seed))
    out = {
        "domain": name,
        "target": _row(name, target, labels, unseen, minilm, replicates),
        "unseen": _row(name, unseen, labels, unseen, minilm, replicates),
        "config": target_cfg,
        "unseen_config": unseen_cfg,
        "run_dirs": {
            "target": [str(r.run_dir) for r in target],
            "unseen": [str(r.run_dir) for r in unseen],
        },
    }
    print(f"text: lodo {held_out} done", flush=True)
    return out


def _transfer_minilm(h: Harness, run: Run, held_out: str, seed: int) -> dict[str, dict]:
    """MiniLM + logistic regression trained on the sources' labelled train rows, scored on
    the held-out domain's test rows (the teacher view's zero-shot peer)."""
    import numpy as np
    import torch
    from sklearn.linear_model import LogisticRegression

    from benchmarks.stats import score

    _, _, domains = load_networks(run, h.host)
    sources = [d for d in domains if d.role == "source"]
    target = next(d for d in domains if d.name == held_out)
    x = torch.cat([d.train.teacher_x for d in sources]).float().numpy()
    y = torch.cat([d.train.y for d in sources]).numpy()
    model = LogisticRegression(max_iter=3000).fit(x, y)
    probs = np.zeros((len(target.test), target.num_classes))
    probs[:, model.classes_] = model.predict_proba(target.test.teacher_x.float().numpy())
    return {held_out: {"logreg": score(target.headline, probs, target.test.y.numpy())}}


def run(h: Harness, seeds: list[int], quick: bool, replicates: int, only=None) -> dict[str, Any]:
    """``--only``: indomain, lodo (all four), lodo_<domain>, multilingual; ``peers``
    (after those: the peer models and the raw-text throughput, added to their results)."""
    wanted = set(only) if only else {"indomain", "lodo", "multilingual", "peers"}
    out: dict[str, Any] = {}
    if "indomain" in wanted:
        out["indomain"] = _setting(h, lambda: text_indomain(quick), seeds, replicates, "indomain")
    for held_out in SENTIMENT:
        if "lodo" in wanted or f"lodo_{held_out}" in wanted:
            out[f"lodo_{held_out}"] = _lodo(h, held_out, seeds, quick, replicates)
    if "multilingual" in wanted:
        out["multilingual"] = _setting(
            h, lambda: text_multilingual(quick), seeds, replicates, "multilingual"
        )
    if "peers" in wanted:
        out["peers"] = peers_and_throughput(h.root.parent / "results.json", out, replicates)
    return out


def _results_text(path: Path, fresh: dict[str, Any]) -> dict[str, Any]:
    import json

    done = json.loads(path.read_text()).get("text", {}) if path.is_file() else {}
    return {**done, **{k: v for k, v in fresh.items() if k != "peers"}}


def peers_and_throughput(
    results_path: Path, fresh: dict[str, Any], replicates: int
) -> dict[str, Any]:
    """Peer models on the same rows as every finished setting (this invocation's or those
    already in ``results_path``), with paired bootstraps of the cdkd student against
    Model2Vec(256) + LR, and the raw-text throughput of the in-domain student."""
    from benchmarks.text_peers import text_peer_rows
    from cdkd_core.plugin_api import load_weights

    settings = _results_text(results_path, fresh)
    out: dict[str, Any] = {}
    for key, setting in settings.items():
        if key == "peers" or "config" not in setting:
            continue
        if key.startswith("lodo_"):
            groups = {"target": setting["run_dirs"]["target"],
                      "unseen": setting["run_dirs"]["unseen"]}  # fmt: skip
            config = setting["unseen_config"]
        else:
            groups = {"all": setting["run_dirs"]}
            config = setting["config"]
        rows = text_peer_rows([dict(d) for d in config["domains"]], 0)
        entry: dict[str, Any] = {"scores": {}, "vs_m2v256_lr": {}}
        for name, peers in rows.items():
            entry["scores"][name] = {p: v["score"] for p, v in peers.items()}
        for group, dirs in groups.items():
            for name, peers in rows.items():
                if key.startswith("lodo_") and not name.startswith(setting["domain"]):
                    continue
                if "m2v256_lr" not in peers:
                    continue
                preds = [load_weights(Path(d) / "predictions.safetensors") for d in dirs]
                from benchmarks.stats import probabilities

                metric = _metric(Path(dirs[0]), name)
                entry["vs_m2v256_lr"][f"{group}:{name}"] = paired_bootstrap(
                    metric,
                    [p[f"{name}/labels"].numpy() for p in preds],
                    [probabilities(p[f"{name}/student"]) for p in preds],
                    [peers["m2v256_lr"]["probs"]] * len(preds),
                    replicates=replicates,
                )
        out[key] = entry
        print(f"text: peers of {key} done", flush=True)
    if "indomain" in settings:
        out["throughput"] = _throughput(settings["indomain"]["run_dirs"][0])
    return out


def _metric(run_dir: Path, domain: str) -> str:
    import json

    return json.loads((run_dir / "summary.json").read_text())["domains"][domain]["metric"]


def _throughput(run_dir: str) -> dict[str, Any] | None:
    """Sentences/s from raw text (tokenisation included, one thread, batch 256)."""
    from cdkd_nlp import read_vader

    from benchmarks.text_export import raw_text_throughput
    from cdkd_core import PluginHost
    from cdkd_core.experimental import export_run

    export_run(Path(run_dir), formats=("onnx", "torchscript"), host=PluginHost())
    texts = read_vader("movies").texts[:2048]
    return raw_text_throughput(Path(run_dir), texts, domain="nlp.sentiment_movies")
