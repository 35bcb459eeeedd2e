"""Tabular teacher recipes on the VAL split (issue 18, step 1): which teacher defaults for
tabular stems and trunks are not beaten by logistic regression or gradient boosting.

For each tabular setting (each finance credit table as the teacher's only source, the
finance multi-source teacher of the quality benchmark, medical.breast_cancer_fna and
sklearn.breast_cancer) and each seed, the teacher is trained under every recipe of a small
grid through cdkd's own training loop (:func:`cdkd_core.engine.fit.fit`, as the teacher
stage calls it: same plans, loss, settings and seeding) and scored on the val split at its
selected epoch; logistic regression and HistGradientBoosting are fitted on the same
labelled train rows (the teacher's standardised view, as ``classical_references``) and
scored on the same val rows. The test split is never read.

    .venv/bin/python -m benchmarks.tabular_teacher [--quick] [--jobs 2] [--seeds 0 1 2]

writes ``benchmarks/tabular_teacher.json`` and ``benchmarks/tabular_teacher.md``
(``--quick``: ``*_quick.*``).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

# -- settings -----------------------------------------------------------------------------------
FINANCE_STEMS = {"series": {"name": "gru", "params": {"hidden": 32}}}


def _domains(setting: str, quick: bool) -> list[dict[str, Any]]:
    cap = {"max_examples": 2000} if quick else {}
    credit = {
        "credit_data": [{"name": "finance.credit_data", "role": "source"}],
        "german_credit": [{"name": "finance.german_credit", "role": "source"}],
        "default": [{"name": "finance.default", "role": "source", "params": cap}],
        "fna": [{"name": "medical.breast_cancer_fna", "role": "source"}],
        "sklearn_bc": [{"name": "sklearn.breast_cancer", "role": "source"}],
    }
    if setting == "finance_multi":  # benchmarks.settings.finance's sources
        return [
            *credit["credit_data"],
            *credit["german_credit"],
            *credit["default"],
            {"name": "finance.sp500", "role": "source"},
        ]
    return credit[setting]


SETTINGS = ("credit_data", "german_credit", "default", "finance_multi", "fna", "sklearn_bc")

#: What each setting's teacher gets today: the quality benchmark's recipe (finance: 20
#: epochs, batch 128; medical: 8 epochs, batch 64; lr 0.003) or the core quickstart's
#: (sklearn.breast_cancer: MLP 256x3, 30 epochs, batch 64).
CURRENT = {
    "finance": {"width": 128, "depth": 2, "epochs": 20, "batch_size": 128, "lr": 0.003},
    "medical": {"width": 128, "depth": 2, "epochs": 8, "batch_size": 64, "lr": 0.003},
    "quickstart": {"width": 256, "depth": 3, "epochs": 30, "batch_size": 64, "lr": 0.003},
}
CURRENT_OF = {
    "credit_data": "finance",
    "german_credit": "finance",
    "default": "finance",
    "finance_multi": "finance",
    "fna": "medical",
    "sklearn_bc": "quickstart",
}

#: A recipe: trunk width/depth, dropout (trunk and tabular stem), AdamW weight decay,
#: teacher lr, epochs, patience (early stop on val; the best val epoch is always kept),
#: batch size. ``current`` is each setting's own recipe (above); every other recipe is
#: one default for every setting.
BASE = {
    "width": 128,
    "depth": 2,
    "dropout": 0.0,
    "weight_decay": 1e-4,
    "lr": 0.003,
    "epochs": 20,
    "patience": None,
    "batch_size": 128,
}
LONG = {"epochs": 60, "patience": 15}
RECIPES: dict[str, dict[str, Any]] = {
    "current": {},
    "base": {},  # the finance recipe everywhere
    "long": LONG,  # every recipe below is "long" with one or more changes
    "lr1e-3": {**LONG, "lr": 0.001},
    "lr3e-4": {**LONG, "lr": 0.0003},
    "drop0.1": {**LONG, "dropout": 0.1},
    "drop0.3": {**LONG, "dropout": 0.3},
    "wd0.01": {**LONG, "weight_decay": 0.01},
    "wd0.1": {**LONG, "weight_decay": 0.1},
    "bs32": {**LONG, "batch_size": 32, "lr": 0.001},
    "bs256": {**LONG, "batch_size": 256},
    "64x1": {**LONG, "width": 64, "depth": 1},
    "256x2": {**LONG, "width": 256},
    "128x0": {**LONG, "depth": 0},
    "reg": {**LONG, "dropout": 0.2, "weight_decay": 0.05, "lr": 0.001},
    "reg64x1": {**LONG, "dropout": 0.2, "weight_decay": 0.05, "lr": 0.001, "width": 64, "depth": 1},
    "reg-lr3e-4": {**LONG, "dropout": 0.2, "weight_decay": 0.05, "lr": 0.0003},
    "128x0-drop0.3": {**LONG, "depth": 0, "dropout": 0.3},
    "256x0-drop0.3": {**LONG, "width": 256, "depth": 0, "dropout": 0.3},
    # teacher.ensemble: 5 members of the best single recipe, on all rows or bagged
    "ens5-128x0-drop0.3": {**LONG, "depth": 0, "dropout": 0.3, "ensemble": 5},
    "ens5bag-128x0-drop0.3": {**LONG, "depth": 0, "dropout": 0.3, "ensemble": 5, "bagging": True},
    # teacher.model: hist_gbm at its defaults (300 trees at lr 0.05, count chosen on val)
    "hist_gbm": {"model": "hist_gbm"},
}
QUICK_RECIPES = ("current", "base", "long", "reg")


def recipe(name: str, setting: str) -> dict[str, Any]:
    """The full recipe ``name`` for ``setting``."""
    if name == "current":
        return {**BASE, **CURRENT[CURRENT_OF[setting]]}
    return {**BASE, **RECIPES[name]}


def teacher_of(setting: str, r: dict[str, Any]) -> dict[str, Any]:
    """The ``teacher:`` section of recipe ``r``."""
    if r.get("model"):
        return {"model": {"name": r["model"]}}
    stems = copy.deepcopy(FINANCE_STEMS) if setting == "finance_multi" else {}
    if r["dropout"] > 0:
        stems["tabular"] = {"name": "mlp", "params": {"dropout": r["dropout"]}}
    teacher: dict[str, Any] = {
        "trunk": {
            "name": "mlp",
            "params": {"width": r["width"], "depth": r["depth"], "dropout": r["dropout"]},
        },
        "stems": stems,
    }
    if r.get("ensemble"):
        teacher["ensemble"] = {"members": r["ensemble"], "bagging": r.get("bagging", False)}
    return teacher


def config_of(setting: str, r: dict[str, Any], seed: int, quick: bool) -> dict[str, Any]:
    """A cdkd config whose teacher and ``train`` follow recipe ``r`` (the student is
    required by the schema and never trained here)."""
    epochs = max(2, r["epochs"] // 4) if quick else r["epochs"]
    return {
        "name": f"tabular-teacher-{setting}",
        "seed": seed,
        "domains": _domains(setting, quick),
        "teacher": teacher_of(setting, r),
        "student": {"trunk": {"name": "mlp", "params": {"width": 32, "depth": 1}}},
        "feedback": {"name": "none"},
        "train": {
            "epochs": 1,
            "teacher_epochs": epochs,
            "teacher_lr": r["lr"],
            "batch_size": r["batch_size"],
            "weight_decay": r["weight_decay"],
            "patience": r["patience"],
            "device": "cpu",
            "threads": 1,
            "checkpoints": False,
        },
    }


# -- one job --------------------------------------------------------------------------------------
def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")


@lru_cache(maxsize=1)
def _host():
    from cdkd_core import PluginHost

    return PluginHost()


@lru_cache(maxsize=2)
def _prepared(setting: str, seed: int, quick: bool):
    """The prepared domains of a setting at a seed (recipe-independent)."""
    from cdkd_core import load_config
    from cdkd_core.experimental import prepare_domains, seed_everything

    config = load_config(config_of(setting, recipe("base", setting), seed, quick), host=_host())
    seed_everything(seed)
    return prepare_domains(config, _host())


def train_teacher(setting: str, name: str, seed: int, quick: bool) -> dict[str, Any]:
    """Train the teacher of ``setting`` under recipe ``name``; its val headline per domain
    at the selected epoch, the epoch, the epochs run and the seconds."""
    import torch

    from cdkd_core import load_config
    from cdkd_core.experimental import (
        build_network,
        cross_entropy,
        domain_plans,
        fit,
        fit_settings,
        predict,
        seed_everything,
    )

    torch.set_num_threads(1)
    host = _host()
    domains = _prepared(setting, seed, quick)
    config = load_config(config_of(setting, recipe(name, setting), seed, quick), host=host)
    start = time.perf_counter()
    seed_everything(seed)  # as the runner before building the networks
    sources = [d for d in domains if d.role == "source"]
    if config.teacher.model is not None or config.teacher.ensemble is not None:
        return _teacher_as_the_stage_trains_it(setting, name, seed, config, sources, start)
    teacher = build_network(config.teacher, sources, host, "teacher", seed)
    settings = fit_settings(
        config,
        torch.device("cpu"),
        teacher=True,
        seed=seed,
        layer=config.teacher.feature_layer,
    )
    seed_everything(seed)  # as train_stage
    result = fit(
        teacher,
        domain_plans(sources, "teacher", use_labels_only=True),
        cross_entropy(host),
        settings,
    )
    best = result.history[result.best_epoch - 1]
    assert best["epoch"] == result.best_epoch
    nll = {}  # val log loss at the selected epoch (ROC-AUC saturates on the small sets)
    for d in sources:
        if d.modality == "tabular":
            logits = predict(teacher, d.val.teacher_x, d.space, d.task, 1024, "cpu")
            nll[d.name] = float(torch.nn.functional.cross_entropy(logits, d.val.y))
    return {
        "setting": setting,
        "recipe": name,
        "seed": seed,
        "val": {d.name: best["val"][d.name][d.headline] for d in sources},
        "nll": nll,
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "seconds": round(time.perf_counter() - start, 2),
    }


def _teacher_as_the_stage_trains_it(setting, name, seed, config, sources, start) -> dict[str, Any]:
    """An ensemble (its members as :class:`~cdkd_core.stages.teacher.TeacherStage` trains
    them) or a classical teacher (:func:`~cdkd_core.stages.teacher.fit_estimators`), scored
    on val as one teacher."""
    import torch

    from cdkd_core.experimental import (
        build_teacher,
        compute,
        cross_entropy,
        domain_plans,
        fit,
        fit_estimators,
        fit_settings,
        member_schedule,
        predict,
        seed_everything,
    )

    host = _host()
    teacher = build_teacher(config.teacher, sources, host, seed)
    epochs = []
    if config.teacher.model is not None:
        chosen = fit_estimators(teacher, sources, seed)
        epochs = [c["trees"] for c in chosen]
    else:
        plans = domain_plans(sources, "teacher", use_labels_only=True)
        bagging = config.teacher.ensemble.bagging
        for _, member, member_plans, s in member_schedule(
            list(teacher.members), plans, seed, bagging
        ):
            settings = fit_settings(
                config, torch.device("cpu"), teacher=True, seed=s, layer="trunk"
            )
            seed_everything(s)
            epochs.append(fit(member, member_plans, cross_entropy(host), settings).best_epoch)
    val, nll = {}, {}
    for d in sources:
        logits = predict(teacher, d.val.teacher_x, d.space, d.task, 1024, "cpu")
        val[d.name] = compute(d.headline, logits, d.val.y)
        if d.modality == "tabular":
            nll[d.name] = float(torch.nn.functional.cross_entropy(logits, d.val.y))
    return {
        "setting": setting,
        "recipe": name,
        "seed": seed,
        "val": val,
        "nll": nll,
        "best_epoch": epochs,  # per member; trees per estimator for a classical teacher
        "epochs_run": None,
        "seconds": round(time.perf_counter() - start, 2),
    }


def classical(setting: str, seed: int, quick: bool) -> dict[str, Any]:
    """Logistic regression and HistGradientBoosting per domain (tabular ones), fitted on the
    labelled train rows of the teacher's view, scored on the val rows."""
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    from benchmarks.stats import score

    out = {}
    for d in _prepared(setting, seed, quick):
        if d.modality != "tabular":
            continue
        lab = d.labelled
        x = d.train.teacher_x[lab].reshape(int(lab.sum()), -1).float().numpy()
        y = d.train.y[lab].numpy()
        xv = d.val.teacher_x.reshape(len(d.val), -1).float().numpy()
        yv = d.val.y.numpy()
        row = {}
        models = {
            "logreg": LogisticRegression(max_iter=3000, C=1.0),
            "gboost": HistGradientBoostingClassifier(random_state=seed, max_iter=200),
        }
        for c in TUNED_C:  # C chosen on val, as the teacher's epoch is
            models[f"logreg_C{c:g}"] = LogisticRegression(max_iter=3000, C=c)
        for key, model in models.items():
            model.fit(x, y)
            probs = np.zeros((len(xv), d.num_classes))
            probs[:, model.classes_] = model.predict_proba(xv)
            row[key] = score(d.headline, probs, yv)
            row[f"{key}_nll"] = float(log_loss(yv, probs, labels=list(range(d.num_classes))))
        tuned = max(TUNED_C, key=lambda c: row[f"logreg_C{c:g}"])
        row["logreg_tuned"] = row[f"logreg_C{tuned:g}"]
        row["logreg_tuned_C"] = tuned
        row["metric"] = d.headline
        row["rows"] = {"train": int(lab.sum()), "val": len(d.val)}
        out[d.name] = row
    return {"setting": setting, "seed": seed, "classical": out}


TUNED_C = (0.01, 0.1, 1.0, 10.0)


def _job(job: tuple) -> dict[str, Any]:
    kind, *args = job
    return classical(*args) if kind == "classical" else train_teacher(*args)


# -- the study ------------------------------------------------------------------------------------
def _ms(values: list[float]) -> dict[str, Any]:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "values": values,
    }


def study(seeds: list[int], quick: bool, jobs: int, settings: list[str]) -> dict[str, Any]:
    """Every (setting, seed): the classical references and every recipe's teacher."""
    names = list(QUICK_RECIPES if quick else RECIPES)
    work: list[tuple] = []
    for s in settings:
        for seed in seeds:
            work.append(("classical", s, seed, quick))
            work += [("teacher", s, n, seed, quick) for n in names]
    start = time.perf_counter()
    results = []
    with ProcessPoolExecutor(jobs, initializer=_init_worker) as pool:
        for r in pool.map(_job, work):
            results.append(r)
            if "recipe" in r:
                vals = " ".join(f"{k}={v:.4f}" for k, v in r["val"].items())
                print(
                    f"{r['setting']:>13} {r['recipe']:>8} s{r['seed']} {vals} "
                    f"ep {r['best_epoch']}/{r['epochs_run']} {r['seconds']:.1f}s",
                    flush=True,
                )
    wall = time.perf_counter() - start
    return summarise(results, names, seeds, settings, quick, wall)


def summarise(results, names, seeds, settings, quick, wall) -> dict[str, Any]:
    """Means and stds over seeds; the best recipe per domain and overall."""
    table: dict[str, Any] = {}
    for s in settings:
        cls = [r for r in results if r.get("classical") is not None and r["setting"] == s]
        teach = [r for r in results if r.get("recipe") and r["setting"] == s]
        for dname in teach[0]["val"]:
            if dname not in cls[0]["classical"]:
                continue  # finance.sp500 (series): no classical reference here
            row: dict[str, Any] = {
                "metric": cls[0]["classical"][dname]["metric"],
                "rows": cls[0]["classical"][dname]["rows"],
            }
            for ref in ("logreg", "gboost", "logreg_tuned", "logreg_nll", "gboost_nll"):
                row[ref] = _ms([c["classical"][dname][ref] for c in cls])
            row["logreg_tuned_C"] = [c["classical"][dname]["logreg_tuned_C"] for c in cls]
            row["best_ref"] = max(row["logreg"]["mean"], row["gboost"]["mean"])
            row["recipes"] = {}
            for n in names:
                rs = sorted((r for r in teach if r["recipe"] == n), key=lambda r: r["seed"])
                row["recipes"][n] = {
                    **_ms([r["val"][dname] for r in rs]),
                    "nll": _ms([r["nll"][dname] for r in rs]),
                    "best_epoch": [r["best_epoch"] for r in rs],
                    "epochs_run": [r["epochs_run"] for r in rs],
                    "seconds": statistics.fmean(r["seconds"] for r in rs),
                }
            row["best_recipe"] = max(names, key=lambda n: row["recipes"][n]["mean"])
            table[f"{s}/{dname}"] = row
    overall = {}
    for n in names:  # mean gap to max(LR, HistGB) over the rows, and rows not beaten
        gaps = [row["recipes"][n]["mean"] - row["best_ref"] for row in table.values()]
        lr_gaps = [row["recipes"][n]["mean"] - row["logreg"]["mean"] for row in table.values()]
        overall[n] = {
            "mean_gap_to_best_ref": statistics.fmean(gaps),
            "mean_gap_to_logreg": statistics.fmean(lr_gaps),
            "rows_at_or_above_logreg": sum(g >= 0 for g in lr_gaps),
            "rows_at_or_above_best_ref": sum(g >= 0 for g in gaps),
            "rows": len(gaps),
            "mean_rank": statistics.fmean(
                sorted(names, key=lambda m: -row["recipes"][m]["mean"]).index(n) + 1
                for row in table.values()
            ),
        }
    for n in names:
        overall[n]["mean_nll_gap_to_logreg"] = statistics.fmean(
            row["recipes"][n]["nll"]["mean"] - row["logreg_nll"]["mean"] for row in table.values()
        )
    best = max(names, key=lambda n: overall[n]["mean_gap_to_best_ref"])
    return {
        "split": "val",
        "quick": quick,
        "seeds": seeds,
        "base": BASE,
        "current": CURRENT,
        "current_of": CURRENT_OF,
        "recipes": {n: RECIPES[n] for n in names},
        "table": table,
        "overall": overall,
        "best_overall": best,
        "wall_s": round(wall, 1),
        "runs": results,
    }


# -- the reading ----------------------------------------------------------------------------------
def _f(m: dict[str, Any]) -> str:
    return f"{m['mean']:.3f} ± {m['std']:.3f}"


def _transposed(out: dict[str, Any], names: list[str], what: str) -> list[str]:
    """Recipes as rows, the setting/domain pairs as columns; the references first."""
    keys = list(out["table"])
    short = [k.replace("finance_multi/finance.", "multi/").replace("finance.", "") for k in keys]
    lines = ["| | " + " | ".join(short) + " |", "|---|" + "---|" * len(keys)]
    refs = (
        [("LR", "logreg"), ("HistGB", "gboost"), ("LR (C on val)", "logreg_tuned")]
        if what == "mean"
        else [("LR", "logreg_nll"), ("HistGB", "gboost_nll")]
    )
    for label, ref in refs:
        lines.append(f"| {label} | " + " | ".join(_f(out["table"][k][ref]) for k in keys) + " |")
    for n in names:
        cells = []
        for k in keys:
            row = out["table"][k]
            m = row["recipes"][n] if what == "mean" else row["recipes"][n]["nll"]
            good = (
                m["mean"] >= row["best_ref"]
                if what == "mean"
                else m["mean"] <= min(row["logreg_nll"]["mean"], row["gboost_nll"]["mean"])
            )
            cells.append(f"**{_f(m)}**" if good else _f(m))
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return lines


def markdown(out: dict[str, Any]) -> str:
    """The table and its reading (the prose of the reading is written by hand below it)."""
    names = list(out["recipes"])
    quick = " --quick" if out["quick"] else ""
    lines = [
        "# Tabular teacher recipes on the val split",
        "",
        "Reproduce (about "
        f"{math.ceil(out['wall_s'] / 60)} minutes on 2 cores, 2 processes of 1 thread):",
        "",
        "```",
        f".venv/bin/python -m benchmarks.tabular_teacher{quick} --jobs 2 "
        f"--seeds {' '.join(map(str, out['seeds']))}",
        "```",
        "",
        "Val split only (the test split is never read). Teacher: cdkd's training loop as the "
        "teacher stage runs it, scored at its selected (best val) epoch; LR "
        "(`LogisticRegression(C=1)`) and HistGB (`HistGradientBoostingClassifier(max_iter=200)`) "
        "fitted on the same labelled train rows of the teacher's standardised view, scored on "
        "the same val rows. Mean ± std over seeds "
        f"{', '.join(map(str, out['seeds']))}; headline metric ROC-AUC.",
        "",
        "## Recipes",
        "",
        "| recipe | width x depth | dropout | weight decay | lr | epochs | patience | batch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n in names:
        if n == "current":
            lines.append(
                "| current | the setting's own: finance 128x2, 20 ep, batch 128; medical "
                "128x2, 8 ep, batch 64; sklearn (quickstart) 256x3, 30 ep, batch 64; all lr "
                "0.003, wd 1e-4, no dropout | | | | | | |"
            )
            continue
        r = {**out["base"], **out["recipes"][n]}
        if r.get("model"):
            lines.append(f"| {n} | teacher.model {r['model']} at its defaults | | | | | | |")
            continue
        if r.get("ensemble"):
            bag = ", bagged" if r.get("bagging") else ""
            r = {**r, "width": f"{r['ensemble']} members{bag} of {r['width']}"}
        lines.append(
            f"| {n} | {r['width']}x{r['depth']} | {r['dropout']} | {r['weight_decay']} | "
            f"{r['lr']} | {r['epochs']} | {r['patience'] or '-'} | {r['batch_size']} |"
        )
    lines += [
        "",
        "## Val ROC-AUC per domain (mean ± std over seeds)",
        "",
        *_transposed(out, names, "mean"),
        "",
        "Bold: at or above max(LR, HistGB) on val. LR (C on val): C in "
        f"{list(TUNED_C)} picked on the same val rows (optimistic, as the teacher's epoch).",
        "",
        "## Val log loss per domain (lower is better; ROC-AUC saturates on the small sets)",
        "",
        *_transposed(out, names, "nll"),
        "",
        "## Over all rows",
        "",
        "| recipe | mean gap to max(LR, HistGB) | mean gap to LR | rows >= LR | "
        "rows >= max(LR, HistGB) | mean rank | log loss minus LR's | mean s per teacher |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n in names:
        o = out["overall"][n]
        secs = statistics.fmean(row["recipes"][n]["seconds"] for row in out["table"].values())
        lines.append(
            f"| {n} | {o['mean_gap_to_best_ref']:+.4f} | {o['mean_gap_to_logreg']:+.4f} | "
            f"{o['rows_at_or_above_logreg']}/{o['rows']} | "
            f"{o['rows_at_or_above_best_ref']}/{o['rows']} | {o['mean_rank']:.1f} | "
            f"{o['mean_nll_gap_to_logreg']:+.4f} | {secs:.1f} |"
        )
    lines += ["", f"Best overall (mean gap to max(LR, HistGB)): **{out['best_overall']}**.", ""]
    lines += [f"Study wall time: {out['wall_s'] / 60:.1f} minutes.", ""]
    return "\n".join(lines)


#: the hand-written reading below this line of the markdown is kept when it is rewritten
READING = "<!-- reading (written by hand, kept on rerun) -->"


def write_study(path: Path, out: dict[str, Any], markdown_text: str) -> None:
    """Write a study's JSON at ``path`` and its markdown beside it, keeping the hand-written
    reading below :data:`READING` of the markdown already there."""
    path.write_text(json.dumps(out, indent=1) + "\n")
    md = path.with_suffix(".md")
    kept = md.read_text().partition(READING)[2] if md.is_file() else ""
    md.write_text(markdown_text + (READING + kept if kept else ""))
    print(f"wrote {path} and {md} ({out['wall_s'] / 60:.1f} min)")


def main(argv: list[str] | None = None) -> None:
    """Run the study and write its JSON and markdown."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="4 recipes, shorter, Default capped")
    p.add_argument("--jobs", type=int, default=2, help="processes (1 thread each)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=SETTINGS)
    p.add_argument("--out", type=Path, default=None, help="JSON path (markdown beside it)")
    a = p.parse_args(argv)
    out = study(a.seeds, a.quick, a.jobs, a.settings)
    path = a.out or HERE / ("tabular_teacher_quick.json" if a.quick else "tabular_teacher.json")
    write_study(path, out, markdown(out))


if __name__ == "__main__":
    main()
