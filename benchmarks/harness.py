"""Running configs for the benchmark and reading back what a run measured.

A run goes through :func:`cdkd_core.run_pipeline` like any user's; a student variant reuses
the teacher of its seed through ``teacher.checkpoint``, so one teacher serves every
variant. Per-domain numbers come from the run directory: ``summary.json`` and the test
logits in ``predictions.safetensors``.
"""

from __future__ import annotations

import copy
import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.stats import probabilities, score
from cdkd_core import PluginHost, load_config, run_pipeline
from cdkd_core.experimental import (
    FitSettings,
    MultiDomainNet,
    PreparedDomain,
    build_network,
    measure_latency,
    prepare_domains,
    read_metrics,
)
from cdkd_core.plugin_api import NetworkSlot, load_weights

MODELS = ("teacher", "student", "baseline")


@dataclass
class Run:
    """One finished run: its directory, summary and per-domain test probabilities."""

    run_dir: Path
    summary: dict[str, Any]
    probs: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    labels: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def load(cls, run_dir: Path, summary: dict[str, Any] | None = None) -> Run:
        """A finished run read back from its directory (``summary.json``, the test logits
        of ``predictions.safetensors``)."""
        run_dir = Path(run_dir)
        if summary is None:
            summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
        run = cls(run_dir, summary)
        preds = load_weights(run_dir / "predictions.safetensors")
        for name in summary["domains"]:
            run.labels[name] = preds[f"{name}/labels"].numpy()
            run.probs[name] = {
                m: probabilities(preds[f"{name}/{m}"]) for m in MODELS if f"{name}/{m}" in preds
            }
        return run

    @property
    def teacher_path(self) -> Path:
        """The run's teacher weights."""
        return self.run_dir / "teacher.safetensors"

    def stage_seconds(self, stage: str, round_: int | None = None) -> float:
        """Seconds the stage's training took (from the log record before its first one to
        its ``selected`` event)."""
        records = read_metrics(self.run_dir / "metrics.jsonl")
        previous, start = 0.0, None
        for r in records:
            ours = r.get("stage") == stage and r.get("round") == round_
            if ours and start is None:
                start = previous
            if ours and r.get("event") == "selected" and start is not None:
                return float(r["t"] - start)
            previous = r["t"]
        return float("nan")


class Harness:
    """Runs configs under ``root`` with one plugin host, one thread."""

    def __init__(self, root: Path, host: PluginHost | None = None) -> None:
        self.root = Path(root)
        self.host = host or PluginHost()

    def run(
        self,
        config: dict[str, Any],
        tag: str,
        *,
        seed: int,
        teacher: Path | None = None,
        **overrides: Any,
    ) -> Run:
        """Run ``config`` with ``overrides`` (top-level keys replaced) at ``seed``."""
        cfg = copy.deepcopy(config)
        cfg.update(copy.deepcopy(overrides))
        cfg["name"] = f"{config['name']}-{tag}-s{seed}"
        cfg["seed"] = seed
        if teacher is not None:
            cfg["teacher"] = {**cfg["teacher"], "checkpoint": str(teacher)}
        t0 = time.perf_counter()
        result = run_pipeline(load_config(cfg, host=self.host), output=self.root, host=self.host)
        run = Run.load(result.run_dir, result.summary)
        print(
            f"  {cfg['name']}: {time.perf_counter() - t0:.1f} s  "
            + "  ".join(
                f"{n}={_fmt(d['teacher'])}/{_fmt(d['student'])}/{_fmt(d['baseline'])}"
                for n, d in result.summary["domains"].items()
            ),
            flush=True,
        )
        return run


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def domain_scores(run: Run, model: str) -> dict[str, float | None]:
    """Headline metric of ``model`` per domain (from the run's summary)."""
    return {name: d[model] for name, d in run.summary["domains"].items()}


def recompute(run: Run, domain: str, model: str) -> float:
    """The headline metric recomputed from the stored probabilities (a consistency check)."""
    metric = run.summary["domains"][domain]["metric"]
    return score(metric, run.probs[domain][model], run.labels[domain])


def fit_settings(config, epochs: int) -> FitSettings:
    """cdkd's student settings of a config, for ``epochs`` epochs on the CPU, no early stop."""
    t = config.train
    return FitSettings(
        epochs=epochs,
        batch_size=t.batch_size,
        lr=t.lr,
        weight_decay=t.weight_decay,
        scheduler=t.scheduler,
        patience=None,
        grad_clip=t.grad_clip,
        eval_batch_size=t.eval_batch_size,
        device=torch.device("cpu"),
        seed=config.seed,
    )


def plain_loop(student: MultiDomainNet, d: PreparedDomain, batch_loss, s: FitSettings) -> float:
    """A hand-written PyTorch training loop on one domain, the way a script would do it:
    AdamW, cosine schedule, gradient clipping, the val metric and a best-state copy each
    epoch; ``batch_loss(idx)`` gives the loss of a batch of train indices. Returns the
    seconds it took; the student ends with its best val state."""
    import copy
    import math

    from cdkd_core.experimental import compute, predict

    optimizer = torch.optim.AdamW(student.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    steps = math.ceil(len(d.train) / s.batch_size) * s.epochs
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    generator = torch.Generator().manual_seed(s.seed)
    best, best_state = -math.inf, copy.deepcopy(student.state_dict())
    start = time.perf_counter()
    for _ in range(s.epochs):
        student.train()
        order = torch.randperm(len(d.train), generator=generator)
        for i in range(0, len(order), s.batch_size):
            loss = batch_loss(order[i : i + s.batch_size])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(student.parameters(), s.grad_clip)
            optimizer.step()
            scheduler.step()
        logits = predict(student, d.val.student_x, d.space, d.task, s.eval_batch_size, "cpu")
        score = compute(d.headline, logits, d.val.y)
        if score > best:
            best, best_state = score, copy.deepcopy(student.state_dict())
    seconds = time.perf_counter() - start
    student.load_state_dict(best_state)
    return seconds


def for_settings(label: str, settings: dict, only, run_setting) -> dict[str, Any]:
    """``run_setting(name)`` for each setting (or those in ``only``), keyed by name."""
    out = {}
    for name in settings:
        if only and name not in only:
            continue
        print(f"{label}: {name}", flush=True)
        out[name] = run_setting(name)
    return out


# -- sizes and latencies ---------------------------------------------------------------------
def load_networks(
    run: Run, host: PluginHost
) -> tuple[MultiDomainNet, MultiDomainNet, list[PreparedDomain]]:
    """Teacher and student of a finished run, rebuilt from ``layout.json`` and their
    weights, with the run's prepared domains (for inputs)."""
    config = load_config(run.run_dir / "config.yaml", host=host)
    layout = json.loads((run.run_dir / "layout.json").read_text())
    nets = []
    for side in ("teacher", "student"):
        slots = [NetworkSlot.from_dict(s) for s in layout[side]]
        net = build_network(getattr(config, side), slots, host, side, seed=0)
        net.load_state_dict(load_weights(run.run_dir / f"{side}.safetensors"))
        nets.append(net.eval())
    return nets[0], nets[1], prepare_domains(config, host)


def latencies(
    teacher: MultiDomainNet, student: MultiDomainNet, domains: list[PreparedDomain]
) -> dict[str, dict[str, float | None]]:
    """Per domain, CPU milliseconds per sample of teacher and student networks at batch 256
    and batch 1 on the domain's test inputs."""
    device = torch.device("cpu")
    out = {}
    for d in domains:
        row: dict[str, float | None] = {}
        for who, net, x in (
            ("teacher", teacher, d.test.teacher_x),
            ("student", student, d.test.student_x),
        ):
            usable = net.has_stem(d.space) and net.has_head(d.task)
            for bs in (256, 1):
                row[f"{who}_b{bs}"] = measure_latency(net, x, d, bs, device) if usable else None
        out[d.name] = row
    return out


def text_view_latency(texts: list[str], embedder) -> dict[str, float]:
    """Milliseconds per text of the text views at batch 256 and 1: the teacher's sentence
    embedding (``embedder``) and the student's hashed n-gram ids."""
    from cdkd_nlp import encode_hashed as encode

    def per_item(fn, batch: list[str], repeats: int) -> float:
        fn(batch)  # warm-up
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn(batch)
            times.append(time.perf_counter() - t0)
        return float(np.median(times)) * 1000 / len(batch)

    from cdkd_nlp import MAX_TOKENS

    batch = (texts * (256 // max(len(texts), 1) + 1))[:256]
    single = [[t] for t in texts[:20]]

    def tokens(b: list[str]) -> object:
        return encode(b, MAX_TOKENS)

    return {
        "teacher_b256": per_item(embedder.encode, batch, 2),
        "teacher_b1": float(np.median([per_item(embedder.encode, s, 1) for s in single])),
        "student_b256": per_item(tokens, batch, 5),
        "student_b1": float(np.median([per_item(tokens, s, 3) for s in single])),
    }


# -- classical references --------------------------------------------------------------------
def classical_probabilities(d: PreparedDomain, seed: int) -> dict[str, np.ndarray] | None:
    """Test-split class probabilities of logistic regression and gradient boosting on the
    domain's teacher-view features (flattened, standardised as the networks see them),
    fitted on its labelled train examples; None without a labelled example of two classes."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    labelled = d.labelled if d.trained else torch.zeros(len(d.train), dtype=torch.bool)
    y = d.train.y[labelled].numpy()
    if len(np.unique(y)) < 2:
        return None
    x = d.train.teacher_x[labelled].reshape(int(labelled.sum()), -1).float().numpy()
    xt = d.test.teacher_x.reshape(len(d.test), -1).float().numpy()
    models = {
        "logreg": LogisticRegression(max_iter=3000, C=1.0),
        "gboost": HistGradientBoostingClassifier(random_state=seed, max_iter=200),
    }
    out = {}
    for key, model in models.items():
        model.fit(x, y)
        probs = np.zeros((len(xt), d.num_classes))
        probs[:, model.classes_] = model.predict_proba(xt)
        out[key] = probs
    return out


def classical_references(
    domains: list[PreparedDomain], seed: int
) -> dict[str, dict[str, float | None]]:
    """The headline test metric of :func:`classical_probabilities` per domain (None where a
    domain has no labelled train example or a single class)."""
    out = {}
    for d in domains:
        probs = classical_probabilities(d, seed)
        out[d.name] = {
            key: None if probs is None else score(d.headline, probs[key], d.test.y.numpy())
            for key in ("logreg", "gboost")
        }
    return out


def machine() -> dict[str, Any]:
    """The hardware and versions the numbers were measured on."""
    import os

    import sklearn

    import cdkd_core

    info = {
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "threads": 1,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "sklearn": sklearn.__version__,
        "cdkd": cdkd_core.__version__,
        "platform": platform.platform(),
    }
    try:
        import torchdistill

        info["torchdistill"] = torchdistill.__version__
    except ImportError:
        pass
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
