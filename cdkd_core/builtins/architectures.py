"""Built-in architectures: an ``mlp`` trunk and stem (LayerNorm, no BatchNorm) and a ``cnn``
stem for small images. Any width, in the teacher or the student."""

from __future__ import annotations

import itertools
import math
from typing import ClassVar

from pydantic import Field
from torch import nn

from cdkd_core.components.architecture import Architecture
from cdkd_core.components.base import ComponentConfig
from cdkd_core.host.hookspecs import Register, hookimpl


class Trunk(nn.Sequential):
    """A sequential trunk that states its input and output widths."""

    def __init__(self, in_features: int, out_features: int, *layers: nn.Module) -> None:
        super().__init__(*layers) if layers else super().__init__(nn.Identity())
        self.in_features = in_features
        self.out_features = out_features


def _block(n_in: int, n_out: int, dropout: float) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Linear(n_in, n_out), nn.LayerNorm(n_out), nn.GELU()]
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    return layers


class MLP(Architecture):
    """Multi-layer perceptron: Linear -> LayerNorm -> GELU blocks.

    As a trunk: ``depth`` blocks of ``width`` (``depth: 0`` is the identity on ``width``).
    As a stem (tabular, series, or any input, flattened): ``hidden`` blocks then a block to
    the trunk's width. As a head: ``depth`` blocks of ``width``, then a linear layer.
    """

    name = "mlp"
    modalities: ClassVar[tuple[str, ...]] = ("tabular", "series", "image", "text")
    default_for: ClassVar[tuple[str, ...]] = ("tabular", "series")
    provides_trunk = True

    class Config(ComponentConfig):
        """Width and depth."""

        width: int = Field(128, ge=1, description="Trunk width (the stems map to it).")
        depth: int = Field(2, ge=0, le=64, description="Trunk blocks of width x width.")
        hidden: list[int] = Field(default_factory=list, description="Stem hidden widths.")
        dropout: float = Field(0.0, ge=0, lt=1)

    def build_stem(self, input_shape: tuple[int, ...], out_features: int) -> nn.Module:
        """Flatten, ``hidden`` blocks, then a block to ``out_features``."""
        cfg = self.config
        widths = [math.prod(input_shape), *cfg.hidden, out_features]
        layers: list[nn.Module] = [nn.Flatten()]
        for n_in, n_out in itertools.pairwise(widths):
            layers += _block(n_in, n_out, cfg.dropout)
        return nn.Sequential(*layers)

    def build_trunk(self) -> nn.Module:
        """``depth`` blocks on ``width``."""
        cfg = self.config
        layers = [
            layer for _ in range(cfg.depth) for layer in _block(cfg.width, cfg.width, cfg.dropout)
        ]
        return Trunk(cfg.width, cfg.width, *layers)

    def build_head(self, in_features: int, num_classes: int) -> nn.Module:
        """``depth`` blocks of ``width`` (the first from ``in_features``), then a linear layer."""
        cfg = self.config
        widths = [in_features] + [cfg.width] * cfg.depth
        layers = [x for a, b in itertools.pairwise(widths) for x in _block(a, b, cfg.dropout)]
        return nn.Sequential(*layers, nn.Linear(widths[-1], num_classes))


class CNN(Architecture):
    """Small convolutional stem for images: conv blocks (3x3 conv, GroupNorm, GELU, 2x2
    max-pool while the image is at least 4 pixels wide), global average pooling, and a
    linear map to the trunk's width. Channels double per block."""

    name = "cnn"
    modalities: ClassVar[tuple[str, ...]] = ("image",)
    default_for: ClassVar[tuple[str, ...]] = ("image",)

    class Config(ComponentConfig):
        """Channels and blocks."""

        channels: int = Field(32, ge=1, description="Channels of the first block.")
        blocks: int = Field(2, ge=1, le=8, description="Conv blocks.")

    def build_stem(self, input_shape: tuple[int, ...], out_features: int) -> nn.Module:
        """Conv blocks over ``[C, H, W]`` inputs, pooled, projected to ``out_features``."""
        if len(input_shape) != 3:
            raise ValueError(f"cnn stem needs [C, H, W] inputs, got shape {list(input_shape)}")
        channels, size = input_shape[0], min(input_shape[1:])
        layers: list[nn.Module] = []
        width = self.config.channels
        for _ in range(self.config.blocks):
            layers += [
                nn.Conv2d(channels, width, kernel_size=3, padding=1),
                nn.GroupNorm(1, width),
                nn.GELU(),
            ]
            if size >= 4:
                layers.append(nn.MaxPool2d(2))
                size //= 2
            channels, width = width, width * 2
        layers += [
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(channels, out_features),
            nn.LayerNorm(out_features),
            nn.GELU(),
        ]
        return nn.Sequential(*layers)


@hookimpl
def register_architectures(register: Register) -> None:
    """The core's own architectures."""
    register(MLP)
    register(CNN)
