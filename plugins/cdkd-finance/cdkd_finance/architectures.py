"""Sequence stems for the ``series`` modality (inputs ``[N, T, F]``): ``gru`` and ``tcn``.

Both map a window of ``T`` steps with ``F`` features to the trunk's width and normalise with
LayerNorm (never BatchNorm: each batch holds one domain). Any width, teacher or student.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from pydantic import Field
from torch import nn

from cdkd_core import Architecture, ComponentConfig


def _series_shape(name: str, input_shape: tuple[int, ...]) -> tuple[int, int]:
    if len(input_shape) != 2:
        raise ValueError(
            f"{name} stem needs series inputs [T, F] (steps, features), got {list(input_shape)}"
        )
    return input_shape[0], input_shape[1]


def _projection(n_in: int, n_out: int) -> nn.Module:
    return nn.Sequential(nn.Linear(n_in, n_out), nn.LayerNorm(n_out), nn.GELU())


class GRUStem(nn.Module):
    """``[N, T, F]`` -> GRU -> last layer's final hidden state -> Linear/LayerNorm/GELU."""

    def __init__(
        self, n_features: int, hidden: int, layers: int, dropout: float, out_features: int
    ) -> None:
        super().__init__()
        self.gru = nn.GRU(
            n_features,
            hidden,
            num_layers=layers,
            batch_first=True,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.proj = _projection(hidden, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, h = self.gru(x)  # h: [layers, N, hidden]
        return self.proj(h[-1])


class GRU(Architecture):
    """GRU stem for series: the last hidden state of a (stacked) GRU, projected to the trunk.

    The teacher's default stem for ``series`` (``default_for: series:teacher``); the student
    keeps the core's ``mlp`` (a flattened window) unless ``student.stems.series`` names
    ``gru`` or ``tcn``.
    """

    name = "gru"
    modalities: ClassVar[tuple[str, ...]] = ("series",)
    default_for: ClassVar[tuple[str, ...]] = ("series:teacher",)

    class Config(ComponentConfig):
        """Hidden size and layers."""

        hidden: int = Field(64, ge=1, description="GRU hidden size.")
        layers: int = Field(1, ge=1, le=8, description="Stacked GRU layers.")
        dropout: float = Field(0.0, ge=0, lt=1, description="Dropout between GRU layers.")

    def build_stem(self, input_shape: tuple[int, ...], out_features: int) -> nn.Module:
        """A GRU over ``[T, F]`` windows."""
        _, features = _series_shape(self.name, input_shape)
        cfg = self.config
        return GRUStem(features, cfg.hidden, cfg.layers, cfg.dropout, out_features)


class CausalConv1d(nn.Conv1d):
    """A Conv1d over ``[N, C, T]`` padded on the left only: step ``t`` sees steps ``<= t``."""

    def __init__(self, n_in: int, n_out: int, kernel_size: int, dilation: int) -> None:
        super().__init__(n_in, n_out, kernel_size, dilation=dilation)
        self.left = (kernel_size - 1) * dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(nn.functional.pad(x, (self.left, 0)))


class StepNorm(nn.Module):
    """LayerNorm over the channels of each step of ``[N, C, T]`` (causal, unlike GroupNorm,
    which would mix statistics across time steps)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


class TCNBlock(nn.Module):
    """Two dilated causal convolutions with step-wise LayerNorm and GELU, plus a residual."""

    def __init__(self, n_in: int, n_out: int, kernel_size: int, dilation: int, dropout: float):
        super().__init__()
        layers: list[nn.Module] = []
        for a, b in ((n_in, n_out), (n_out, n_out)):
            layers += [CausalConv1d(a, b, kernel_size, dilation), StepNorm(b), nn.GELU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
        self.body = nn.Sequential(*layers)
        self.skip = nn.Conv1d(n_in, n_out, 1) if n_in != n_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.skip(x)


class TCNStem(nn.Module):
    """``[N, T, F]`` -> causal TCN blocks (dilations 1, 2, 4, ...) -> pooled -> projection."""

    def __init__(
        self,
        n_features: int,
        channels: int,
        blocks: int,
        kernel_size: int,
        dropout: float,
        pooling: str,
        out_features: int,
    ) -> None:
        super().__init__()
        self.blocks = nn.Sequential(
            *(
                TCNBlock(n_features if i == 0 else channels, channels, kernel_size, 2**i, dropout)
                for i in range(blocks)
            )
        )
        self.pooling = pooling
        self.proj = _projection(channels, out_features)
        self.receptive_field = 1 + 2 * (kernel_size - 1) * (2**blocks - 1)

    def sequence(self, x: torch.Tensor) -> torch.Tensor:
        """Per-step features ``[N, T, channels]``; step ``t`` depends on inputs ``<= t`` only."""
        return self.blocks(x.transpose(1, 2)).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = self.sequence(x)
        pooled = seq[:, -1] if self.pooling == "last" else seq.mean(dim=1)
        return self.proj(pooled)


class TCN(Architecture):
    """Temporal convolutional stem for series: dilated causal Conv1d blocks, then pooling.

    ``blocks`` residual blocks of two causal convolutions (dilation doubling per block, so
    the receptive field is ``1 + 2 (kernel_size - 1) (2^blocks - 1)`` steps), LayerNorm over
    channels at each step, GELU; the last step (``pooling: last``) or the mean over steps
    (``mean``) is projected to the trunk's width (Bai et al. 2018).
    """

    name = "tcn"
    modalities: ClassVar[tuple[str, ...]] = ("series",)

    class Config(ComponentConfig):
        """Channels, blocks, kernel, pooling."""

        channels: int = Field(32, ge=1, description="Channels of every block.")
        blocks: int = Field(3, ge=1, le=10, description="Residual blocks (dilation 2^i).")
        kernel_size: int = Field(3, ge=2, le=16, description="Convolution kernel size.")
        dropout: float = Field(0.0, ge=0, lt=1)
        pooling: Literal["last", "mean"] = Field(
            "last", description="last: the final step's features; mean: the average."
        )

    def build_stem(self, input_shape: tuple[int, ...], out_features: int) -> nn.Module:
        """A TCN over ``[T, F]`` windows."""
        _, features = _series_shape(self.name, input_shape)
        cfg = self.config
        return TCNStem(
            features,
            cfg.channels,
            cfg.blocks,
            cfg.kernel_size,
            cfg.dropout,
            cfg.pooling,
            out_features,
        )
