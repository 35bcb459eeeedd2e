"""Timing a network's forward pass for one domain: milliseconds per sample in PyTorch eager
and in ONNX Runtime, at batch 1 and at a large batch.

Any network with ``forward(x, space, task)`` can be timed (a :class:`MultiDomainNet`, an
ensemble of them, a wrapped estimator): :class:`DomainPath` fixes the domain's input space
and task so the network becomes ``x -> logits``, which is what is timed and exported.

Timings run on ``threads`` threads (default 1: a server answering one request per core,
and the one setting where PyTorch and ONNX Runtime use the same compute, so their numbers
compare); torch's own thread count is restored afterwards. Each is the median over repeats
after warm-up calls (:func:`~cdkd_core.run.footprint.median_ms_per_sample`, as the
summary's latency): at a large batch the inputs are repeated to fill it; at batch 1 single
rows are run one call each, looping over a few hundred distinct rows.

The ONNX graph is captured with the export's own exporter call
(:func:`~cdkd_core.artifacts.export_formats.write_graph`, batch axis dynamic) and run in an
``onnxruntime.InferenceSession`` (``intra_op_num_threads=threads``, one inter-op thread,
sequential execution). Its outputs are compared with the eager module's on every batch it
is timed on before timing: a graph that computes something else gives no number.

When no ONNX number can be had (onnxruntime or the exporter packages not installed, a
forward the exporter cannot capture, outputs that differ), :func:`onnx_latency` raises
:class:`OnnxLatencyError` with the reason; :func:`latency_table` records the cell as None
and the reason under ``"unavailable"``.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cdkd_core.artifacts.export_formats import (
    check_formats,
    installed,
    output_difference,
    write_graph,
)
from cdkd_core.artifacts.run_files import first_line
from cdkd_core.errors import CdkdError
from cdkd_core.nets.reading import eval_mode
from cdkd_core.run.footprint import fill_batch, median_ms_per_sample

__all__ = [
    "BATCHES",
    "DEFAULT_THREADS",
    "DomainPath",
    "OnnxLatencyError",
    "eager_latency",
    "latency_table",
    "onnx_latency",
]

#: the batch sizes of :func:`latency_table`
BATCHES = (1, 256)
#: one thread: per-request serving, and PyTorch and ONNX Runtime on the same compute
DEFAULT_THREADS = 1
#: distinct rows looped over at batch 1 (and timed calls at least, cycling when fewer)
SINGLE_ROWS = 300
#: untimed calls before timing (ONNX Runtime allocates on its first runs)
WARMUP = 5
#: timed calls go on until they last this long (at most 1000 calls)
MIN_SECONDS = 0.2
#: the batch the ONNX graph is captured at (not 0 or 1, which the exporter specialises on)
TRACE_BATCH = 2
RUNTIMES = ("eager", "onnx")


class OnnxLatencyError(CdkdError):
    """Why a module has no ONNX Runtime latency (the message is the reason)."""


class DomainPath(nn.Module):
    """``network(x, space, task)`` as a one-input module ``x -> logits``."""

    def __init__(self, network: nn.Module, space: str, task: str) -> None:
        super().__init__()
        self.network = network
        self.space = space
        self.task = task

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x, self.space, self.task)


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """torch's intra-op thread count set to ``threads`` inside, restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def timing_batches(x: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """The batches timed at ``batch_size``: single distinct rows at 1, else the rows
    repeated to fill one batch."""
    if batch_size == 1:
        return [x[i : i + 1] for i in range(min(len(x), SINGLE_ROWS))]
    return [fill_batch(x, batch_size)]


def _median(call: Any, batches: Sequence[Any], batch_size: int) -> float:
    repeats = SINGLE_ROWS if batch_size == 1 else 5
    return median_ms_per_sample(
        call, batches, batch_size, min_seconds=MIN_SECONDS, min_repeats=repeats, warmup=WARMUP
    )


def eager_latency(
    module: nn.Module,
    x: torch.Tensor,
    space: str,
    task: str,
    batch_size: int,
    threads: int = DEFAULT_THREADS,
) -> float:
    """Milliseconds per sample of ``module(x, space, task)`` in PyTorch eager mode (no
    gradients, eval mode) at ``batch_size``, on ``threads`` torch threads (the module is
    called directly, as a user would, not through a :class:`DomainPath`)."""
    with torch_threads(threads), torch.no_grad(), eval_mode(module):
        return _median(lambda b: module(b, space, task), timing_batches(x, batch_size), batch_size)


def onnx_latency(
    module: nn.Module,
    x: torch.Tensor,
    space: str,
    task: str,
    batch_size: int,
    threads: int = DEFAULT_THREADS,
) -> float:
    """Milliseconds per sample of the domain path of ``module`` exported to ONNX and run in
    ONNX Runtime at ``batch_size`` on ``threads`` threads, once its outputs are checked
    against the module's; an :class:`OnnxLatencyError` with the reason when there is no
    such number."""
    return onnx_latencies(module, x, space, task, [batch_size], threads)[str(batch_size)]


def onnx_latencies(
    module: nn.Module,
    x: torch.Tensor,
    space: str,
    task: str,
    batches: Sequence[int],
    threads: int = DEFAULT_THREADS,
) -> dict[str, float]:
    """:func:`onnx_latency` at each batch size (keyed ``"1"``, ``"256"``, ...), the module
    exported once."""
    path = DomainPath(module, space, task)
    with torch_threads(threads), torch.no_grad(), eval_mode(path), exported(path, x) as file:
        session = open_session(file, threads)
        return {str(b): session_latency(session, path, x, b) for b in batches}


@contextmanager
def exported(path: nn.Module, x: torch.Tensor) -> Iterator[Path]:
    """An ONNX file of ``path`` (batch axis dynamic) captured on rows of ``x``, in a
    temporary directory removed afterwards."""
    try:
        check_formats(["onnx"])
    except CdkdError as exc:
        raise OnnxLatencyError(str(exc)) from exc
    if not installed("onnxruntime"):
        raise OnnxLatencyError("onnxruntime is not installed (pip install 'cdkd[export]')")
    network = path.network if isinstance(path, DomainPath) else path
    reason = getattr(network, "not_exportable", None)
    if reason:  # e.g. a classical teacher: scikit-learn, not a PyTorch graph
        raise OnnxLatencyError(reason)
    with tempfile.TemporaryDirectory(prefix="cdkd-latency-") as tmp:
        file = Path(tmp) / "domain.onnx"
        try:
            write_graph("onnx", path, fill_batch(x, TRACE_BATCH), file, path_name(path))
        except Exception as exc:
            raise OnnxLatencyError(
                f"the ONNX exporter could not capture {path_name(path)}: {root_cause(exc)}"
            ) from exc
        yield file


def root_cause(exc: BaseException) -> str:
    """``Type: first line`` of the innermost exception ``exc`` was raised from (the
    exporter wraps the one that says what it could not capture), colour codes removed."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return re.sub(r"\x1b\[[0-9;]*m", "", f"{type(exc).__name__}: {first_line(exc)}")


def path_name(path: nn.Module) -> str:
    """``<network type> <space> -> <task>`` for messages."""
    if isinstance(path, DomainPath):
        return f"{type(path.network).__name__} {path.space} -> {path.task}"
    return type(path).__name__


def open_session(file: Path, threads: int) -> Any:
    """An ONNX Runtime CPU session on ``threads`` intra-op threads, one inter-op thread,
    sequential execution."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only
    try:
        return onnxruntime.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise OnnxLatencyError(f"ONNX Runtime cannot load the graph: {first_line(exc)}") from exc


def session_latency(session: Any, path: nn.Module, x: torch.Tensor, batch_size: int) -> float:
    """Milliseconds per sample of ``session`` at ``batch_size`` on rows of ``x``, after
    checking its outputs against ``path``'s on every batch it is timed on."""
    batches = timing_batches(x, batch_size)
    arrays = [np.ascontiguousarray(b.numpy()) for b in batches]

    def run(a: np.ndarray) -> Any:
        return session.run(None, {"x": a})[0]

    for batch, array in zip(batches, arrays, strict=True):
        check_outputs(run, path, batch, array)
    return _median(run, arrays, batch_size)


def check_outputs(run: Any, path: nn.Module, batch: torch.Tensor, array: np.ndarray) -> None:
    """An :class:`OnnxLatencyError` when the graph's outputs on ``array`` differ from the
    module's on ``batch`` (shape, or values beyond the export's tolerance)."""
    try:
        got = torch.as_tensor(np.asarray(run(array)))
    except Exception as exc:
        raise OnnxLatencyError(
            f"ONNX Runtime fails at batch size {len(batch)}: {first_line(exc)}"
        ) from exc
    expected = path(batch)
    if got.shape != expected.shape:
        raise OnnxLatencyError(
            f"the ONNX graph gives outputs of shape {list(got.shape)} at batch size "
            f"{len(batch)}, the module {list(expected.shape)}"
        )
    diff = output_difference(got, expected) if got.numel() else None
    if diff is not None:
        raise OnnxLatencyError(
            f"the ONNX graph's outputs differ from the module's by up to {diff:.3g} at batch "
            f"size {len(batch)}; not timed"
        )


def latency_table(
    teacher: nn.Module,
    student: nn.Module,
    domain_x_teacher: torch.Tensor,
    domain_x_student: torch.Tensor,
    space: str,
    task: str,
    batches: Sequence[int] = BATCHES,
    threads: int = DEFAULT_THREADS,
) -> dict[str, Any]:
    """Milliseconds per sample of teacher and student (each on its own view of the domain's
    inputs), per runtime and batch size, and the student's speed-up over the teacher::

        {"teacher": {"eager": {"1": ms, "256": ms}, "onnx": {"1": ms | None, ...}},
         "student": {...},
         "speedup": {"eager": {"1": teacher_ms / student_ms, ...}, "onnx": {...}},
         "unavailable": {"teacher": {"onnx": reason}},  # only cells that are None
         "batches": [1, 256], "threads": 1}

    Each network is exported to ONNX once and timed at every batch size."""
    table: dict[str, Any] = {"batches": list(batches), "threads": threads, "unavailable": {}}
    for who, module, x in (
        ("teacher", teacher, domain_x_teacher),
        ("student", student, domain_x_student),
    ):
        cells, reason = _model_cells(module, x, space, task, batches, threads)
        table[who] = cells
        if reason is not None:
            table["unavailable"][who] = {"onnx": reason}
    table["speedup"] = {
        runtime: {
            str(b): _ratio(table["teacher"][runtime][str(b)], table["student"][runtime][str(b)])
            for b in batches
        }
        for runtime in RUNTIMES
    }
    return table


def _model_cells(
    module: nn.Module,
    x: torch.Tensor,
    space: str,
    task: str,
    batches: Sequence[int],
    threads: int,
) -> tuple[dict[str, dict[str, float | None]], str | None]:
    """One network's row of the table and why its ONNX cells are None (or None)."""
    eager = {str(b): eager_latency(module, x, space, task, b, threads) for b in batches}
    onnx: dict[str, float | None] = {str(b): None for b in batches}
    reason = None
    try:
        onnx = {**onnx, **onnx_latencies(module, x, space, task, batches, threads)}
    except OnnxLatencyError as exc:
        reason = str(exc)
    return {"eager": eager, "onnx": onnx}, reason


def _ratio(teacher_ms: float | None, student_ms: float | None) -> float | None:
    if teacher_ms is None or student_ms is None or student_ms <= 0:
        return None
    return round(teacher_ms / student_ms, 3)
