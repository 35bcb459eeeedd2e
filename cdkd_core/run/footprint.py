"""What the summary says of the networks' size and speed: parameter counts and latency."""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from cdkd_core.data.preparation import PreparedDomain
from cdkd_core.nets.network import MultiDomainNet, count_parameters
from cdkd_core.nets.reading import eval_mode

#: the batch size of the summary's ``latency_ms_per_sample``
LATENCY_BATCH = 256


def parameter_counts(
    teacher: MultiDomainNet, student: MultiDomainNet, domains: list[PreparedDomain]
) -> dict[str, int]:
    """Teacher (its network plus the frozen encoders behind its input views, each input
    space counted once) and student parameter counts."""
    views: dict[str, int] = {}
    for d in domains:
        if teacher.has_stem(d.space):
            views[d.space] = max(views.get(d.space, 0), d.data.teacher_view_params)
    network = count_parameters(teacher)
    return {
        "teacher": network + sum(views.values()),
        "student": count_parameters(student),
        "teacher_network": network,
        "teacher_view_encoders": sum(views.values()),
    }


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
    reps = math.ceil(batch_size / len(x))
    x = x[:batch_size].repeat(reps, *([1] * (x.dim() - 1)))[:batch_size].to(device)
    times: list[float] = []
    with eval_mode(model):
        model(x, domain.space, domain.task)  # warm-up
        while len(times) < 5 or (sum(times) < min_seconds and len(times) < 1000):
            t0 = time.perf_counter()
            model(x, domain.space, domain.task)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
    return round(float(np.median(times)) * 1000 / batch_size, 6)
