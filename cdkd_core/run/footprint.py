"""What the summary says of the networks' size and speed: parameter counts and latency."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from cdkd_core.data.preparation import PreparedDomain
from cdkd_core.nets.estimator_teacher import EstimatorTeacher
from cdkd_core.nets.network import MultiDomainNet, count_parameters
from cdkd_core.nets.reading import eval_mode
from cdkd_core.nets.selected_teacher import SelectedTeacher

#: the batch size of the summary's ``latency_ms_per_sample``
LATENCY_BATCH = 256


def parameter_counts(
    teacher: MultiDomainNet,
    student: MultiDomainNet,
    domains: list[PreparedDomain],
    target_heads: nn.Module | None = None,
) -> dict[str, int]:
    """Teacher (its network, its heads for targets, and the frozen encoders behind its
    input views, each input space counted once) and student parameter counts;
    ``teacher_trainable`` is the teacher without those frozen encoders."""
    views: dict[str, int] = {}
    for d in domains:
        if teacher.has_stem(d.space):
            views[d.space] = max(views.get(d.space, 0), d.data.teacher_view_params)
    network = teacher_size(teacher)
    heads = 0 if target_heads is None else count_parameters(target_heads)
    return {
        "teacher": network + heads + sum(views.values()),
        "student": count_parameters(student),
        "teacher_network": network,
        "teacher_target_heads": heads,
        "teacher_view_encoders": sum(views.values()),
        "teacher_trainable": network + heads,
        "teacher_bytes": size_in_bytes(teacher),
        "student_bytes": size_in_bytes(student),
    }


def teacher_size(teacher: nn.Module) -> int:
    """The teacher's parameters; a classical teacher's stored values (tree nodes)."""
    if isinstance(teacher, EstimatorTeacher | SelectedTeacher):
        return teacher.parameter_count()
    return count_parameters(teacher)


def size_in_bytes(model: nn.Module) -> int:
    """What a model's weights take as saved (a classical teacher: its skops files), not
    counting the frozen encoders behind its input views."""
    if isinstance(model, EstimatorTeacher | SelectedTeacher):
        return model.size_bytes()
    return sum(p.numel() * p.element_size() for p in model.parameters())


def latencies(
    teacher: MultiDomainNet,
    student: MultiDomainNet,
    domains: list[PreparedDomain],
    batch_size: int,
    device: torch.device,
) -> dict[str, float | None]:
    """Teacher and student latency on the test inputs of the first domain both predict
    (each through its own view of the inputs)."""
    for d in domains:
        if all(m.has_stem(d.space) and m.has_head(d.task) for m in (teacher, student)):
            return {
                "teacher": measure_latency(teacher, d.test.teacher_x, d, batch_size, device),
                "student": measure_latency(student, d.test.student_x, d, batch_size, device),
            }
    return {"teacher": None, "student": None}


@torch.no_grad()
def measure_latency(
    model: MultiDomainNet,
    x: torch.Tensor,
    domain: PreparedDomain,
    batch_size: int,
    device: torch.device,
    min_seconds: float = 0.2,
) -> float:
    """Median milliseconds per sample of a forward pass at ``batch_size`` (inputs repeated to
    fill the batch), over repeats lasting at least ``min_seconds``."""
    x = fill_batch(x, batch_size).to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    with eval_mode(model):
        ms = median_ms_per_sample(
            lambda b: model(b, domain.space, domain.task),
            [x],
            batch_size,
            min_seconds=min_seconds,
            sync=sync,
        )
    return round(ms, 6)


def fill_batch(x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """The first ``batch_size`` rows of ``x``, repeated when it has fewer."""
    reps = math.ceil(batch_size / len(x))
    return x[:batch_size].repeat(reps, *([1] * (x.dim() - 1)))[:batch_size]


def median_ms_per_sample(
    call: Callable[[Any], object],
    batches: Sequence[Any],
    batch_size: int,
    *,
    min_seconds: float = 0.2,
    min_repeats: int = 5,
    warmup: int = 1,
    sync: Callable[[], object] | None = None,
) -> float:
    """Median milliseconds per sample of ``call(batch)``, each batch of ``batch_size`` rows:
    ``warmup`` untimed calls, then timed calls cycling through ``batches``, at least
    ``min_repeats`` of them and until they last ``min_seconds`` (at most
    ``max(1000, min_repeats)``); ``sync`` (e.g. ``torch.cuda.synchronize``) ends each timed
    call."""
    for i in range(warmup):
        call(batches[i % len(batches)])
    times: list[float] = []
    most = max(1000, min_repeats)
    while len(times) < min_repeats or (sum(times) < min_seconds and len(times) < most):
        batch = batches[len(times) % len(batches)]
        t0 = time.perf_counter()
        call(batch)
        if sync is not None:
            sync()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1000 / batch_size
