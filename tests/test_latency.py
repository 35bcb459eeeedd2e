"""Per-sample latency of a domain's forward pass in PyTorch eager and ONNX Runtime
(:mod:`cdkd_core.artifacts.latency`): every cell of the table, a wrong or unexportable graph
gives no number (with the reason), torch's thread count is restored. No timing is asserted."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cdkd_core.artifacts import latency
from cdkd_core.artifacts.latency import (
    OnnxLatencyError,
    eager_latency,
    latency_table,
    onnx_latency,
)
from cdkd_core.nets.network import MultiDomainNet
from cdkd_core.run.footprint import median_ms_per_sample

torch.set_num_threads(1)

onnxruntime = pytest.importorskip("onnxruntime")
SPACE, TASK = "tab.space", "tab.task"  # dots, as plugin names have


def tiny_net(width: int, depth: int, features: int = 6, classes: int = 3) -> MultiDomainNet:
    torch.manual_seed(width + depth)
    layers, size = [], width
    for _ in range(depth):
        layers += [nn.Linear(size, width), nn.ReLU()]
    stem = nn.Sequential(nn.Linear(features, width), nn.ReLU())
    return MultiDomainNet({SPACE: stem}, nn.Sequential(*layers), {TASK: nn.Linear(size, classes)})


class DataDependent(nn.Module):
    """A ``forward(x, space, task)`` branching on a value: eager runs it, export cannot."""

    def forward(self, x: torch.Tensor, space: str, task: str) -> torch.Tensor:
        return x[:, :3] if float(x.sum()) > 0 else -x[:, :3]


class Threads(nn.Module):
    """Records torch's thread count while it runs."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[int] = set()

    def forward(self, x: torch.Tensor, space: str, task: str) -> torch.Tensor:
        self.seen.add(torch.get_num_threads())
        return x


@pytest.fixture(scope="module", autouse=True)
def short_timings():
    """Fewer and shorter repeats: these tests check the cells, not the numbers."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(latency, "MIN_SECONDS", 0.0)
        patch.setattr(latency, "SINGLE_ROWS", 20)
        yield


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    return torch.randn(40, 6, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def table(x: torch.Tensor) -> dict:
    return latency_table(tiny_net(32, 2), tiny_net(8, 0), x, x, SPACE, TASK)


def test_table_has_every_cell(table: dict) -> None:
    assert table["batches"] == [1, 256] and table["threads"] == 1
    assert table["unavailable"] == {}
    for who in ("teacher", "student"):
        for runtime in ("eager", "onnx"):
            cells = table[who][runtime]
            assert set(cells) == {"1", "256"}
            assert all(isinstance(v, float) and v > 0 for v in cells.values()), (who, runtime)
    for runtime in ("eager", "onnx"):
        for b in ("1", "256"):
            expected = table["teacher"][runtime][b] / table["student"][runtime][b]
            assert table["speedup"][runtime][b] == pytest.approx(expected, rel=1e-3)


def test_wrong_onnx_outputs_give_no_number(x: torch.Tensor, monkeypatch) -> None:
    real = onnxruntime.InferenceSession.run

    def off_by_one(self, names, feeds, *args, **kwargs):
        return [out + 1.0 for out in real(self, names, feeds, *args, **kwargs)]

    monkeypatch.setattr(onnxruntime.InferenceSession, "run", off_by_one)
    net = tiny_net(8, 1)
    with pytest.raises(OnnxLatencyError, match="differ from the module's by up to 1"):
        onnx_latency(net, x, SPACE, TASK, 256)


def test_unexportable_forward_gives_none_with_reason(x: torch.Tensor) -> None:
    with pytest.raises(OnnxLatencyError, match="could not capture DataDependent"):
        onnx_latency(DataDependent(), x, SPACE, TASK, 1)
    table = latency_table(DataDependent(), tiny_net(8, 0), x, x, SPACE, TASK, batches=(256,))
    assert table["teacher"]["onnx"] == {"256": None}
    assert isinstance(table["teacher"]["eager"]["256"], float)  # eager still timed
    assert table["speedup"]["onnx"] == {"256": None}
    assert isinstance(table["student"]["onnx"]["256"], float)
    assert "could not capture" in table["unavailable"]["teacher"]["onnx"]
    assert "student" not in table["unavailable"]


def test_missing_onnxruntime_gives_reason(x: torch.Tensor, monkeypatch) -> None:
    monkeypatch.setattr(latency, "installed", lambda module: module != "onnxruntime")
    with pytest.raises(OnnxLatencyError, match=r"onnxruntime is not installed.*cdkd\[export\]"):
        onnx_latency(tiny_net(8, 0), x, SPACE, TASK, 256)


def test_timing_restores_torch_threads(x: torch.Tensor) -> None:
    torch.set_num_threads(1)
    module = Threads()
    assert eager_latency(module, x, SPACE, TASK, 256, threads=2) > 0
    assert module.seen == {2}
    assert torch.get_num_threads() == 1

    class Failing(nn.Module):
        def forward(self, x: torch.Tensor, space: str, task: str) -> torch.Tensor:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        eager_latency(Failing(), x, SPACE, TASK, 1, threads=2)
    assert torch.get_num_threads() == 1


def test_eval_mode_restored(x: torch.Tensor) -> None:
    net = tiny_net(8, 1).train()
    eager_latency(net, x, SPACE, TASK, 256)
    assert net.training


def test_median_cycles_through_batches() -> None:
    calls: list[int] = []
    ms = median_ms_per_sample(calls.append, [0, 1, 2], 1, min_repeats=7, warmup=2, min_seconds=0)
    assert calls == [0, 1, 0, 1, 2, 0, 1, 2, 0]  # 2 warm-up, then 7 timed
    assert ms >= 0 and np.isfinite(ms)
