"""Toolkit overhead: cdkd's training loop against a plain hand-written PyTorch loop doing
the same computation, and what caching the teacher's outputs saves in a KD epoch."""

from __future__ import annotations

import copy
import statistics
import time
from typing import Any

import torch
import torch.nn.functional as F

from benchmarks.harness import Harness, fit_settings, plain_loop
from benchmarks.settings import finance, medical
from cdkd_core import load_config
from cdkd_core.experimental import (
    DomainPlan,
    FitSettings,
    PreparedDomain,
    TeacherOutputs,
    build_network,
    fit,
    predict,
    prepare_domains,
)
from cdkd_core.plugin_api import load_weights

REPEATS = 3


def _plan(d: PreparedDomain, teacher: TeacherOutputs | None = None) -> DomainPlan:
    return DomainPlan(
        domain=d,
        x=d.train.student_x,
        labels=d.train.y,
        labelled=torch.ones(len(d.train), dtype=torch.bool),
        index=torch.arange(len(d.train)),
        val_x=d.val.student_x,
        teacher=teacher,
        teacher_x=d.train.teacher_x,
    )


def hand_loop(student, d: PreparedDomain, s: FitSettings) -> None:
    """The same computation as cdkd's ``fit`` with ``ce`` alone, written out."""

    def batch_loss(idx: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(student(d.train.student_x[idx], d.space, d.task), d.train.y[idx])

    plain_loop(student, d, batch_loss, s)


class _UncachedTeacher:
    """A teacher run on every batch (what KD costs without cached outputs)."""

    def __init__(self, teacher) -> None:
        self.teacher = teacher.eval()

    def logits(self, plan: DomainPlan, batch: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            d = plan.domain
            return self.teacher(plan.teacher_x[batch], d.space, d.task)

    def step(self, plan, batch, student_logits) -> None:
        pass


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def workload(h: Harness, name: str, config_dict: dict, epochs: int) -> dict[str, Any]:
    """Throughput of cdkd's loop and of the hand-written one on the first domain of a
    setting, and a KD epoch with and without the teacher cache."""
    config_dict = copy.deepcopy(config_dict)
    config_dict["domains"] = config_dict["domains"][:1]
    config_dict["train"]["epochs"] = epochs
    run = h.run(config_dict, "overhead", seed=0)  # the teacher
    config = load_config(run.run_dir / "config.yaml", host=h.host)
    (d,) = prepare_domains(config, h.host)
    teacher = build_network(config.teacher, [d], h.host, "teacher", 0)
    teacher.load_state_dict(load_weights(run.teacher_path))
    s = fit_settings(config, epochs)
    host = h.host
    ce = [(host.get("losses", "ce")(), 1.0)]
    kd = [*ce, (host.get("losses", "kd").from_params({"temperature": 4.0}), 1.0)]
    cached = TeacherOutputs(
        logits=predict(teacher, d.train.teacher_x, d.space, d.task, 1024, "cpu")
    )

    def fresh():
        return build_network(config.student, [d], host, "student", 1)

    times: dict[str, list[float]] = {k: [] for k in ("hand", "cdkd", "kd_cached", "kd_live")}
    for _ in range(REPEATS):  # interleaved, so drifts in machine load hit every variant
        times["hand"].append(_time(lambda: hand_loop(fresh(), d, s)))
        times["cdkd"].append(_time(lambda: fit(fresh(), [_plan(d)], ce, s)))
        times["kd_cached"].append(_time(lambda: fit(fresh(), [_plan(d, cached)], kd, s)))
        times["kd_live"].append(
            _time(lambda: fit(fresh(), [_plan(d)], kd, s, live=_UncachedTeacher(teacher)))
        )
    med = {k: statistics.median(v) for k, v in times.items()}
    samples = len(d.train) * epochs
    return {
        "domain": d.name,
        "train_examples": len(d.train),
        "epochs": epochs,
        "student": config_dict["student"],
        "samples_per_s": {k: samples / v for k, v in med.items()},
        "epoch_s": {k: v / epochs for k, v in med.items()},
        "cdkd_vs_hand_throughput": med["hand"] / med["cdkd"],
        "kd_cached_vs_plain_epoch": med["kd_cached"] / med["cdkd"],
        "kd_live_vs_plain_epoch": med["kd_live"] / med["cdkd"],
        "repeats": REPEATS,
    }


def run(h: Harness, seeds: list[int], quick: bool, replicates: int, only=None) -> dict[str, Any]:
    """Both workloads: a small MLP on a table and a small CNN on image patches."""
    print("overhead", flush=True)
    epochs = 2 if quick else 5
    return {
        "tabular_mlp": workload(h, "tabular_mlp", finance(quick), epochs),
        "image_cnn": workload(h, "image_cnn", medical(quick), epochs),
    }
