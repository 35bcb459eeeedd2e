"""Peak memory as the data grows: the ``arrays`` domain on replicated digits, 1x to 10x.

scikit-learn's digits (1797 real 8x8 images, 10 classes) are split 60/20/20 (stratified),
then each split is **replicated** with a little noise to the size of the run (the first
copy of an image is the image, each further copy adds Gaussian jitter of 0.5 grey levels,
clipped to the 0-16 range): no copy crosses splits. The copies are written as ``.npy``
files and read by the ``arrays`` domain, memory-mapped. Each size runs twice, each run in
a fresh process: ``train.out_of_core: auto`` (the default: disk, since the inputs are
memory-mapped) and ``memory`` (every derived array in RAM). While a run goes, its
``/proc/<pid>/status`` is sampled every 20 ms: the peak **anonymous** resident memory
(``RssAnon``: what the process itself holds) and, at the end, the peak total resident
memory (``VmHWM``, which also counts file pages mapped in: page cache, which the kernel
reclaims under memory pressure).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness import Harness

#: copies of every digit at 1x (a train split of about 25,900 rows, above pca's
#: incremental_above: every size fits it the same way); quick: 4 copies
COPIES = 24
QUICK_COPIES = 4
SCALES = (1, 3, 10)
QUICK_SCALES = (1, 10)
MODES = ("auto", "memory")
SAMPLE_S = 0.02
JITTER = 0.5
#: the teacher's feature width (the default teacher's trunk) and the knowledge vectors' size
WIDTH, DIM = 256, 32


def derived_mb(rows: dict[str, int]) -> float:
    """MiB of float32 arrays a run derives from the data: the standardised inputs of every
    split, and on train the teacher's features, its logits and the knowledge vectors."""
    floats = sum(rows.values()) * 64 + rows["train"] * (WIDTH + 10 + DIM)
    return floats * 4 / 2**20


def replicate(root: Path, copies: int, seed: int = 0) -> dict[str, int]:
    """Write digits split 60/20/20 and replicated ``copies`` times with jitter as the
    ``arrays`` domain's files under ``root``; returns the rows per split."""
    from sklearn.datasets import load_digits

    from cdkd_core.plugin_api import stratified_split_indices

    digits = load_digits()
    x, y = digits.data.astype(np.float32), digits.target.astype(np.int64)
    index = stratified_split_indices(y, 0.2, 0.2, seed)
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    rows = {}
    for split, idx in index.items():
        n = len(idx) * copies
        out = np.lib.format.open_memmap(root / f"{split}_x.npy", "w+", np.float32, (n, 64))
        labels = np.empty(n, dtype=np.int64)
        for c in range(copies):  # copy c of every image of the split, in order
            block = slice(c * len(idx), (c + 1) * len(idx))
            noise = rng.normal(0.0, JITTER, size=(len(idx), 64)).astype(np.float32)
            out[block] = np.clip(x[idx] + (noise if c else 0.0), 0.0, 16.0)
            labels[block] = y[idx]
        out.flush()
        del out
        np.save(root / f"{split}_y.npy", labels)
        rows[split] = n
    return rows


def config(data: Path, mode: str, scale: int) -> dict[str, Any]:
    """One source domain (the replicated digits); the toolkit's default teacher (spelled
    out) and student; one epoch per stage."""
    return {
        "name": f"memory-{mode}-{scale}x",
        "seed": 0,
        "domains": [
            {
                "name": "arrays",
                "alias": "digits_replicated",
                "params": {"path": str(data), "classes": [str(c) for c in range(10)]},
            }
        ],
        "teacher": {"trunk": {"name": "mlp", "params": {"width": WIDTH, "depth": 3}}},
        "encoder": {"name": "pca", "params": {"dim": DIM}},
        "losses": [
            {"name": "ce"},
            {"name": "kd", "params": {"temperature": 4.0}},
            {"name": "hint", "weight": 0.5},
        ],
        "train": {
            "epochs": 1,
            "batch_size": 512,
            "lr": 0.003,
            "device": "cpu",
            "threads": 1,
            "out_of_core": mode,
        },
    }


def _status(pid: int) -> dict[str, int]:
    """The ``kB`` fields of ``/proc/<pid>/status`` (empty once the process is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if value.strip().endswith("kB"):
            out[key] = int(value.split()[0])
    return out


def measure(cfg: dict[str, Any], runs: Path) -> dict[str, Any]:
    """Run ``cfg`` in a child process, sampling its memory; the child's report plus
    ``peak_anon_mb`` (sampled ``RssAnon``) and ``peak_rss_mb`` (its ``VmHWM``)."""
    report = runs / f"{cfg['name']}.json"
    cmd = [sys.executable, "-m", "benchmarks.memory", "--child", json.dumps(cfg), str(runs)]
    t0 = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    peaks = {"RssAnon": 0, "RssFile": 0, "VmHWM": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            status = _status(child.pid)
            for key in peaks:
                peaks[key] = max(peaks[key], status.get(key, 0))
            time.sleep(SAMPLE_S)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = child.communicate()
    done.set()
    sampler.join()
    if child.returncode != 0:
        raise RuntimeError(f"{cfg['name']} failed ({child.returncode}): {out}")
    result = json.loads(report.read_text())
    report.unlink()
    mb = 1024.0
    result.update(
        peak_anon_mb=round(peaks["RssAnon"] / mb, 1),
        peak_file_mb=round(peaks["RssFile"] / mb, 1),
        peak_rss_mb=round(max(peaks["VmHWM"], result.pop("vm_hwm_kb")) / mb, 1),
        process_s=round(time.perf_counter() - t0, 1),
        load_1m=round(os.getloadavg()[0], 2),  # other jobs on the machine, for the times
    )
    return result


def child(cfg: dict[str, Any], runs: Path) -> None:
    """The measured process: one run, reporting its results, its wall and CPU time (CPU
    time hardly moves when other jobs share the machine; wall time does), its memory
    before the run (``floor_anon_mb``, after the imports a run makes) and its peak total
    RSS."""
    import torch

    torch.set_num_threads(1)
    from cdkd_core import PluginHost, load_config, run_pipeline

    host = PluginHost(entry_points=False)
    # what every run imports on its way (the optimiser pulls in torch._dynamo, the encoders
    # scikit-learn), so that the floor is the memory a run needs before any data
    torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))])
    import sklearn.decomposition  # noqa: F401

    floor = _status_self()
    t0, c0 = time.perf_counter(), time.process_time()
    result = run_pipeline(load_config(cfg, host=host), output=runs, host=host)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    (d,) = result.summary["domains"].values()
    report = {
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "floor_anon_mb": round(floor.get("RssAnon", 0) / 1024.0, 1),
        "vm_hwm_kb": _status_self().get("VmHWM", 0),
        "teacher": d["teacher"],
        "student": d["student"],
        "baseline": d["baseline"],
        "sizes": d["sizes"],
    }
    shutil.rmtree(result.run_dir, ignore_errors=True)
    (runs / f"{cfg['name']}.json").write_text(json.dumps(report))


def _status_self() -> dict[str, int]:
    return _status(os.getpid())


def run(h: Harness, seeds: list[int], quick: bool, replicates: int, only=None) -> dict[str, Any]:
    """Every size and mode (``only``: a subset of the scales, e.g. ``1x,10x``)."""
    copies = QUICK_COPIES if quick else COPIES
    scales = [s for s in (QUICK_SCALES if quick else SCALES) if not only or f"{s}x" in only]
    runs = h.root / "memory"
    runs.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for scale in scales:
        data = runs / f"data-{scale}x"
        t0 = time.perf_counter()
        sizes = replicate(data, copies * scale)
        on_disk = sum(p.stat().st_size for p in data.iterdir()) / 2**20
        print(f"memory: {scale}x data {on_disk:.0f} MB in {time.perf_counter() - t0:.1f} s")
        for mode in MODES:
            measured = measure(config(data, mode, scale), runs)
            row = {
                "scale": scale,
                "mode": mode,
                "rows": sizes,
                "data_mb": round(on_disk, 1),
                "derived_mb": round(derived_mb(sizes), 1),
            }
            rows.append({**row, **measured})
            print(
                f"  {mode:6s} {scale:2d}x: peak anon {measured['peak_anon_mb']:.0f} MB, "
                f"VmHWM {measured['peak_rss_mb']:.0f} MB, {measured['wall_s']:.1f} s "
                f"({measured['cpu_s']:.1f} s CPU), "
                f"teacher {measured['teacher']:.3f}",
                flush=True,
            )
        shutil.rmtree(data, ignore_errors=True)
    return {
        "dataset": (
            "scikit-learn digits (1797 real 8x8 images, 10 classes), split 60/20/20 and "
            f"replicated {copies} times per 1x with N(0, {JITTER}) pixel jitter"
        ),
        "copies_per_scale": copies,
        "sample_ms": int(SAMPLE_S * 1000),
        "runs": rows,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="one measured run (used by the memory suite)")
    parser.add_argument("--child", required=True, help="the config as JSON")
    parser.add_argument("runs", type=Path)
    args = parser.parse_args()
    child(json.loads(args.child), args.runs)
