"""The quickstart over seeds: what the README may claim of ``cdkd run``'s table.

``python -m benchmarks.quickstart --jobs 2 --seeds 0 1 2`` runs the built-in quickstart
(the three domain plugins' cross-domain example, exactly as ``cdkd run`` without a config
builds it) once per seed, and writes ``quickstart.json`` and ``quickstart.md`` here. Per
domain: the teacher, student and baseline means over seeds (last round, test split), and
student minus baseline in points with a 95% paired-bootstrap interval over the test items
of every seed (:func:`benchmarks.stats.paired_bootstrap`), so a claim rests on all seeds,
not on one run's sign. The runs start from an empty data cache (``CDKD_DATA_DIR``: a new
temporary folder unless ``--data-dir`` names one), as a fresh clone does: the text
embeddings a cache holds depend on which texts were embedded together, so seed 0 is then
the table the README prints.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
RUNS = HERE / "runs" / "quickstart"


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def run_seed(seed: int) -> dict[str, Any]:
    """One quickstart run with ``seed``: its summary's per-domain results and the test
    labels and probabilities of the student and the baseline."""
    from benchmarks.stats import probabilities
    from cdkd_core import PluginHost, load_config, run_pipeline
    from cdkd_core.experimental import quickstart_config
    from cdkd_core.plugin_api import load_weights

    host = PluginHost()
    config = quickstart_config(host)
    config["seed"] = seed
    start = time.perf_counter()
    result = run_pipeline(load_config(config, host=host), output=RUNS, host=host, quiet=True)
    wall = time.perf_counter() - start
    predictions = load_weights(result.run_dir / "predictions.safetensors")
    domains = {}
    for name, d in result.summary["domains"].items():
        domains[name] = {
            "role": d["role"],
            "metric": d["metric"],
            **{who: d[who] for who in ("teacher", "student", "baseline")},
            "labels": predictions[f"{name}/labels"].tolist(),
            **{
                f"p_{who}": probabilities(predictions[f"{name}/{who}"]).tolist()
                for who in ("student", "baseline")
                if f"{name}/{who}" in predictions
            },
        }
    return {"seed": seed, "wall_s": round(wall, 1), "domains": domains}


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over seeds and the paired bootstrap of student minus baseline per domain."""
    from benchmarks.stats import mean_std, paired_bootstrap

    out: dict[str, Any] = {"seeds": [r["seed"] for r in runs], "domains": {}}
    for name, first in runs[0]["domains"].items():
        per_seed = [r["domains"][name] for r in runs]
        row: dict[str, Any] = {"role": first["role"], "metric": first["metric"]}
        for who in ("teacher", "student", "baseline"):
            row[who] = mean_std([d[who] for d in per_seed])
            row[f"{who}_by_seed"] = [d[who] for d in per_seed]
        if all("p_student" in d and "p_baseline" in d for d in per_seed):
            row["student_minus_baseline"] = paired_bootstrap(
                first["metric"],
                [np.asarray(d["labels"]) for d in per_seed],
                [np.asarray(d["p_student"]) for d in per_seed],
                [np.asarray(d["p_baseline"]) for d in per_seed],
            )
        out["domains"][name] = row
    out["wall_s"] = [r["wall_s"] for r in runs]
    return out


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def markdown(summary: dict[str, Any]) -> str:
    """The table of ``quickstart.md``."""
    seeds = summary["seeds"]
    lines = [
        f"# The quickstart over {len(seeds)} seeds ({', '.join(map(str, seeds))})",
        "",
        "`python -m benchmarks.quickstart --jobs 2 --seeds "
        + " ".join(map(str, seeds))
        + "`: the built-in quickstart (`cdkd run` without a config, the three domain plugins "
        "installed), one run per seed; test split, last round. Δ is student minus baseline "
        "in points (x100), the mean over seeds with a 95% paired-bootstrap interval over "
        "the test items of every seed; `>0` counts the seeds where the student is above.",
        "",
        "| domain | role | metric | teacher | student | baseline | Δ student [95% CI] | >0 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in summary["domains"].items():
        diff = row.get("student_minus_baseline")
        delta = "-"
        if diff is not None:
            delta = (
                f"{100 * diff['diff']:+.1f} "
                f"[{100 * diff['ci_low']:+.1f}, {100 * diff['ci_high']:+.1f}]"
            )
        above = sum(
            s is not None and b is not None and s > b
            for s, b in zip(row["student_by_seed"], row["baseline_by_seed"], strict=True)
        )
        lines.append(
            f"| {name} | {row['role']} | {row['metric']} | {_f(row['teacher']['mean'])} | "
            f"{_f(row['student']['mean'])} | {_f(row['baseline']['mean'])} | {delta} | "
            f"{above}/{len(seeds)} |"
        )
    lines += ["", f"Wall time per run (s): {', '.join(map(str, summary['wall_s']))}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Run the seeds, then write quickstart.json and quickstart.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument(
        "--data-dir", help="CDKD_DATA_DIR for the runs (default: a new, empty temporary folder)"
    )
    a = parser.parse_args(argv)
    os.environ["CDKD_DATA_DIR"] = a.data_dir or tempfile.mkdtemp(prefix="cdkd-quickstart-")
    if a.jobs > 1:
        with ProcessPoolExecutor(a.jobs, initializer=_init_worker) as pool:
            runs = list(pool.map(run_seed, a.seeds))
    else:
        _init_worker()
        runs = [run_seed(s) for s in a.seeds]
    summary = summarise(runs)
    (HERE / "quickstart.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    (HERE / "quickstart.md").write_text(markdown(summary), encoding="utf-8")
    print(markdown(summary))


if __name__ == "__main__":
    main()
