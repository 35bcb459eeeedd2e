"""``python -m benchmarks [--quick] [--suites ...]``: run the benchmark suites, write
``benchmarks/results.json`` and render ``docs/results.md`` with its plots."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

SUITES = ("quality", "transfer", "feedback", "peer", "overhead", "memory", "meta", "text")
#: not a suite of its own: measures the latencies of finished quality runs again
EXTRA = ("latency",)
ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes and few epochs")
    parser.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 (default 3; quick 2)")
    parser.add_argument("--suites", default=",".join(SUITES), help="comma-separated subset")
    parser.add_argument("--only", default="", help="comma-separated settings within suites")
    parser.add_argument("--replicates", type=int, default=None, help="bootstrap replicates")
    parser.add_argument("--out", type=Path, default=None, help="results JSON path")
    parser.add_argument("--docs", type=Path, default=None, help="markdown report path")
    parser.add_argument("--runs", type=Path, default=None, help="where run directories go")
    parser.add_argument("--render-only", action="store_true", help="re-render the report")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from benchmarks import feedback, memory, meta, overhead, peer, quality, text, transfer
    from benchmarks.harness import Harness, machine
    from benchmarks.report import render

    tag = "-quick" if args.quick else ""
    out = args.out or ROOT / "benchmarks" / f"results{tag}.json"
    docs = args.docs or ROOT / "docs" / f"results{tag}.md"
    if not args.render_only:
        suites = [s.strip() for s in args.suites.split(",") if s.strip()]
        unknown = sorted(set(suites) - set(SUITES) - set(EXTRA))
        if unknown:
            parser.error(f"unknown suite(s) {unknown}; choose from {list(SUITES + EXTRA)}")
        seeds = list(range(args.seeds or (2 if args.quick else 3)))
        replicates = args.replicates or (200 if args.quick else 1000)
        only = {s for s in args.only.split(",") if s} or None
        results: dict = {}
        results["machine"] = machine()
        results["command"] = "python -m benchmarks " + " ".join(argv or sys.argv[1:])
        h = Harness(args.runs or ROOT / "benchmarks" / "runs")
        modules = {
            "quality": quality,
            "transfer": transfer,
            "feedback": feedback,
            "peer": peer,
            "overhead": overhead,
            "memory": memory,
            "meta": meta,
            "text": text,
        }
        for suite in suites:
            t0 = time.perf_counter()
            if suite == "latency":
                done = json.loads(out.read_text()) if out.is_file() else {}
                if "quality" not in done:
                    parser.error(f"--suites latency needs quality results in {out}")
                quality.remeasure_latency(h, done["quality"], done.get("seeds", seeds))
                _merge(out, {}, "quality", done["quality"], False, done["seconds"]["quality"])
                continue
            result = modules[suite].run(h, seeds, args.quick, replicates, only)
            results.update(seeds=seeds, replicates=replicates, quick=args.quick)
            header = results
            if suite == "memory":  # no seeds or bootstrap: the other suites' header stays
                result["command"] = results["command"]
                header = {"machine": results["machine"], "quick": args.quick}
            _merge(out, header, suite, result, bool(only), time.perf_counter() - t0)
            print(f"{suite}: {time.perf_counter() - t0:.0f} s -> {out}", flush=True)
    render(json.loads(out.read_text()), docs)
    print(f"report: {docs}")
    return 0


def _merge(
    path: Path, header: dict, suite: str, result: dict, partial: bool, seconds: float
) -> None:
    """Write one suite's result into the results file, keeping the other suites (read
    again just before writing, so runs of different suites can go side by side)."""
    from cdkd_core.plugin_api import atomic_write_json

    results = json.loads(path.read_text()) if path.is_file() else {}
    results.update(header)
    by_setting = ("quality", "transfer", "meta", "text")
    if partial and isinstance(results.get(suite), dict) and suite in by_setting:
        for key, value in result.items():  # a subset of settings refreshes just those
            old = results[suite].get(key)
            if suite == "meta" and key == "encoders" and isinstance(old, dict):
                old.update(value)  # meta's encoder comparison is keyed by setting too
            else:
                results[suite][key] = value
    else:
        results[suite] = result
    results.setdefault("seconds", {})[suite] = round(seconds, 1)
    atomic_write_json(path, results)


if __name__ == "__main__":
    raise SystemExit(main())
