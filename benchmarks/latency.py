"""Per-sample latency of teacher and student in PyTorch eager and in ONNX Runtime, at batch 1
and 256, on one thread (issue 18): what a user serving the model would see.

For each tabular config and seed the pipeline runs through the Python API
(:func:`cdkd_core.run_pipeline`), the teacher and the student are rebuilt from the run
directory alone, and both are timed on the test inputs of the first domain both predict (the
domain the summary's ``latency_ms_per_sample`` uses) with
:func:`cdkd_core.artifacts.latency.latency_table`: eager and ONNX Runtime, batch 1 (single
rows, one call each) and 256, one thread.

    .venv/bin/python -m benchmarks.latency [--quick] [--seeds 0 1 2] [--configs ...]

writes ``benchmarks/latency.json`` and ``benchmarks/latency.md`` (``--quick``: 2 epochs,
``latency_quick.*``).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cdkd_core import PluginHost

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

#: config name -> (what it is, where it comes from)
CONFIGS: dict[str, tuple[str, str]] = {
    "sklearn_bc": (
        "the core quickstart's recipe (teacher MLP 256x3, student MLP 32x1, 30 epochs) on "
        "sklearn.breast_cancer alone",
        "cdkd_core.config.quickstart.CORE_QUICKSTART",
    ),
    "credit_transfer": (
        "finance credit transfer (teacher MLP 128x2 + GRU series stem, student MLP 32x1)",
        "plugins/cdkd-finance/examples/credit_transfer.yaml",
    ),
    "nuclei_fna": (
        "medical nuclei + FNA (teacher MLP 128x2 + ResNet image stem, student MLP 32x1 + CNN)",
        "plugins/cdkd-medical/examples/nuclei_fna.yaml",
    ),
}
QUICK_EPOCHS = 2
CELLS = [(runtime, b) for runtime in ("eager", "onnx") for b in ("1", "256")]


def config_of(name: str, seed: int, quick: bool) -> dict[str, Any]:
    """The config dict of ``name`` at ``seed`` (``quick``: 2 epochs), on one CPU thread."""
    import yaml

    from cdkd_core.experimental import CORE_QUICKSTART

    source = CONFIGS[name][1]
    if name == "sklearn_bc":
        config = copy.deepcopy(CORE_QUICKSTART)
        config["domains"] = [{"name": "sklearn.breast_cancer", "role": "source"}]
    else:
        config = yaml.safe_load((ROOT / source).read_text(encoding="utf-8"))
    config["name"] = f"latency-{name}"
    config["seed"] = seed
    config["train"] = {**config["train"], "device": "cpu", "threads": 1}
    if quick:
        config["train"]["epochs"] = QUICK_EPOCHS
        config["train"].pop("teacher_epochs", None)
    return config


def run_domains(run_dir: Path, host: PluginHost) -> list[Any]:
    """A finished run's domains prepared again from its ``config.yaml`` (the same splits
    and subsets: seeded as the runner seeds before preparing)."""
    from cdkd_core import load_config
    from cdkd_core.experimental import prepare_domains, seed_everything

    config = load_config(run_dir / "config.yaml", host=host, machine=False)
    seed_everything(config.seed)
    return prepare_domains(config, host)


def timed_domain(run_dir: Path, teacher: Any, student: Any, host: PluginHost) -> Any:
    """The run's first prepared domain (in the run's order) both networks predict."""
    for d in run_domains(run_dir, host):
        if all(m.has_stem(d.space) and m.has_head(d.task) for m in (teacher, student)):
            return d
    raise SystemExit(f"{run_dir}: teacher and student predict no common domain")


def measure(name: str, seed: int, quick: bool, root: Path, host: PluginHost) -> dict[str, Any]:
    """Run config ``name`` at ``seed`` and time its teacher and student."""
    from cdkd_core import load_config, run_pipeline
    from cdkd_core.experimental import (
        count_parameters,
        latency_table,
        load_run_student,
        load_run_teacher,
    )

    start = time.perf_counter()
    config = load_config(config_of(name, seed, quick), host=host)
    result = run_pipeline(config, output=root, host=host)
    trained = time.perf_counter() - start
    teacher = load_run_teacher(result.run_dir, host)
    student = load_run_student(result.run_dir, host).net
    d = timed_domain(result.run_dir, teacher, student, host)
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    table = latency_table(
        teacher, student, d.test.teacher_x, d.test.student_x, d.space, d.task, threads=1
    )
    timing = time.perf_counter() - start
    return {
        "config": name,
        "seed": seed,
        "run_dir": _shown(result.run_dir),
        "domain": d.name,
        "test_rows": len(d.test),
        "params": {"teacher": count_parameters(teacher), "student": count_parameters(student)},
        "summary_latency_b256": result.summary.get("latency_ms_per_sample"),
        "table": table,
        "load_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        "seconds": {"run": round(trained, 1), "timing": round(timing, 1)},
    }


def _shown(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


# -- aggregation ----------------------------------------------------------------------------------
def _ms(values: list[float | None]) -> dict[str, Any] | None:
    if any(v is None for v in values) or not values:
        return None
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "values": values,
    }


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per config: mean and std over seeds of every cell and speed-up."""
    out: dict[str, Any] = {}
    for name in dict.fromkeys(r["config"] for r in runs):
        rs = [r for r in runs if r["config"] == name]
        row: dict[str, Any] = {
            "domain": rs[0]["domain"],
            "params": rs[0]["params"],
            "seeds": [r["seed"] for r in rs],
        }
        for who in ("teacher", "student", "speedup"):
            row[who] = {
                f"{runtime}_{b}": _ms([r["table"][who][runtime][b] for r in rs])
                for runtime, b in CELLS
            }
        row["unavailable"] = {
            f"{r['seed']}/{who}": reason["onnx"]
            for r in rs
            for who, reason in r["table"]["unavailable"].items()
        }
        out[name] = row
    return out


# -- the markdown -----------------------------------------------------------------------------
def _f(m: dict[str, Any] | None, unit: str = "") -> str:
    if m is None:
        return "-"
    return f"{m['mean']:.4g}{unit} ± {m['std']:.2g}{unit}"


def markdown(out: dict[str, Any]) -> str:
    """The tables (one per config) and how they were measured."""
    quick = " --quick" if out["quick"] else ""
    seeds = " ".join(map(str, out["seeds"]))
    lines = [
        "# Per-sample latency: PyTorch eager and ONNX Runtime, batch 1 and 256",
        "",
        f"Reproduce (about {max(1, round(out['wall_s'] / 60))} minutes on 2 cores):",
        "",
        "```",
        f".venv/bin/python -m benchmarks.latency{quick} --seeds {seeds}",
        "```",
        "",
        (
            f"**Quick run: every config trained {QUICK_EPOCHS} epochs instead of its own.** "
            if out["quick"]
            else "Each config trained with its own epochs. "
        )
        + "Teacher and student rebuilt from the run directory and timed on the test inputs "
        "of the first domain both predict (the domain of the summary's "
        "`latency_ms_per_sample`), each on its own view, by "
        "`cdkd_core.artifacts.latency.latency_table`: milliseconds per sample, median over "
        "repeats after warm-up; batch 256 = the test rows repeated to fill the batch; batch 1 "
        "= single rows, one call each, over up to 300 distinct rows (cycled when the test "
        "split has fewer). One thread (torch and ONNX Runtime `intra_op_num_threads=1`, "
        "one inter-op thread, sequential execution). ONNX graphs captured by the export's own "
        "`torch.onnx.export(dynamo=True)` call with a dynamic batch axis and checked against "
        "the eager network on every timed batch before timing. The networks only: inputs "
        "are the run's prepared (standardised) views. params: the whole network's (every "
        "stem and head, as the summary counts it), not only the timed path's. "
        "Mean ± std over seeds "
        f"{', '.join(map(str, out['seeds']))}.",
        "",
        f"Machine: {out['machine']['cpu']}, {out['machine']['cores']} cores, torch "
        f"{out['machine']['torch']}, onnxruntime {out['onnxruntime']}. 1-minute load "
        f"average before the benchmark {out['load_1min']['before']}, after "
        f"{out['load_1min']['after']}; per timing (before/after): "
        + ", ".join(
            f"{r['config']} s{r['seed']} {r['load_1min']['before']}/{r['load_1min']['after']}"
            for r in out["runs"]
        )
        + ". A load above about 1 means another process was busy on the 2 cores while "
        "timing (this machine is shared): single numbers can be off by tens of percent; "
        "compare within a config.",
        "",
        "## Student speed-up over the teacher (teacher ms / student ms per sample)",
        "",
        "| config | domain | eager b1 | eager b256 | ORT b1 | ORT b256 |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in out["configs"].items():
        cells = " | ".join(_f(row["speedup"][f"{r}_{b}"], "x") for r, b in CELLS)
        lines.append(f"| {name} | {row['domain']} | {cells} |")
    for name, row in out["configs"].items():
        lines += _config_section(name, row)
    lines.append(f"Benchmark wall time: {out['wall_s'] / 60:.1f} minutes.")
    lines.append("")
    return "\n".join(lines)


def _config_section(name: str, row: dict[str, Any]) -> list[str]:
    lines = [
        "",
        f"## {name}: {CONFIGS[name][0]}",
        "",
        f"Source: `{CONFIGS[name][1]}`. Timed domain: `{row['domain']}`.",
        "",
        "| ms / sample | params | eager b1 | eager b256 | ORT b1 | ORT b256 |",
        "|---|---|---|---|---|---|",
    ]
    for who in ("teacher", "student"):
        cells = " | ".join(_f(row[who][f"{r}_{b}"]) for r, b in CELLS)
        lines.append(f"| {who} | {row['params'][who]:,} | {cells} |")
    cells = " | ".join(_f(row["speedup"][f"{r}_{b}"], "x") for r, b in CELLS)
    lines.append(f"| speed-up | | {cells} |")
    for key, reason in row["unavailable"].items():
        lines.append(f"\nNo ONNX number for seed/model {key}: {reason}")
    lines.append("")
    return lines


def main(argv: list[str] | None = None) -> None:
    """Run every config at every seed, time them, and write the JSON and markdown."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help=f"{QUICK_EPOCHS} epochs per config")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--out", type=Path, default=None, help="JSON path (markdown beside it)")
    p.add_argument("--runs", type=Path, default=HERE / "runs", help="run directories' root")
    args = p.parse_args(argv)

    import onnxruntime
    import torch

    from benchmarks.harness import machine
    from cdkd_core import PluginHost

    torch.set_num_threads(1)
    host = PluginHost()
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    runs = []
    for name in args.configs:
        for seed in args.seeds:
            r = measure(name, seed, args.quick, args.runs, host)
            runs.append(r)
            t = r["table"]
            print(
                f"{name} s{seed} {r['domain']}: "
                + "  ".join(
                    f"{who} "
                    + "/".join(
                        "-" if t[who][rt][b] is None else f"{t[who][rt][b]:.4g}" for rt, b in CELLS
                    )
                    for who in ("teacher", "student")
                )
                + "  speed-up "
                + "/".join(
                    "-" if t["speedup"][rt][b] is None else f"{t['speedup'][rt][b]:.3g}x"
                    for rt, b in CELLS
                )
                + f"  (run {r['seconds']['run']}s, timing {r['seconds']['timing']}s)",
                flush=True,
            )
    out = {
        "quick": args.quick,
        "seeds": args.seeds,
        "threads": 1,
        "machine": machine(),
        "onnxruntime": onnxruntime.__version__,
        "load_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        "wall_s": round(time.perf_counter() - start, 1),
        "configs": summarise(runs),
        "runs": runs,
    }
    path = args.out or HERE / ("latency_quick.json" if args.quick else "latency.json")
    path.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    path.with_suffix(".md").write_text(markdown(out), encoding="utf-8")
    print(f"wrote {path} and {path.with_suffix('.md')}", flush=True)


if __name__ == "__main__":
    main()
