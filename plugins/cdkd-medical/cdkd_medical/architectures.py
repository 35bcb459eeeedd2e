"""``resnet``: a ResNet (He et al. 2016) at any width as an image stem, in torchvision's layout.

``BasicBlock`` or ``Bottleneck`` stages (the blocks of torchvision, with the stride on the
3x3 convolution) at the widths of the config: ``width`` channels in the first stage,
doubling per stage, ``layers`` blocks per stage. Module names and shapes follow torchvision
(``conv1``, ``bn1``, ``layer1.0.conv1`` ...), so a torchvision ResNet's state dict saved as
safetensors loads into the matching config (``resnet18``: ``width: 64, layers: [2, 2, 2,
2], norm: batch, small_input: false``) and gives its features; torchvision itself is not
needed.

Normalisation: torchvision's ResNets use BatchNorm. In cdkd each training batch holds one
domain, so BatchNorm's running statistics would mix the domains that share a stem (and its
batch statistics would differ between a teacher step and evaluation); ``norm: group`` (the
default) uses GroupNorm instead, which normalises each example on its own (Wu & He 2018).
``norm: batch`` keeps BatchNorm, e.g. to load BatchNorm weights; use it for a stem that
only one domain reads."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import ClassVar, Literal

import torch
from pydantic import Field
from torch import nn

from cdkd_core.plugin_api import Architecture, ComponentConfig, DataError

#: Keys of torchvision's ImageNet classifier, ignored when loading a backbone.
CLASSIFIER_KEYS = ("fc.weight", "fc.bias")
PROJECTION = "proj."


class ResNetConfig(ComponentConfig):
    """Widths, depth, normalisation, input stem and optional weights."""

    width: int = Field(64, ge=1, le=1024, description="Channels of the first stage (doubling).")
    layers: list[int] = Field(
        default_factory=lambda: [2, 2, 2, 2],
        min_length=1,
        max_length=6,
        description="Blocks per stage ([2, 2, 2, 2]: ResNet-18; [3, 4, 6, 3]: ResNet-34).",
    )
    block: Literal["basic", "bottleneck"] = Field("basic", description="Residual block.")
    norm: Literal["group", "batch"] = Field(
        "group", description="GroupNorm (per example; default) or BatchNorm."
    )
    norm_groups: int = Field(
        32, ge=1, description="GroupNorm groups: gcd(norm_groups, channels) per layer."
    )
    small_input: bool | None = Field(
        None,
        description="3x3 stride-1 first conv, no max-pool (default: when the image is <= 64 px).",
    )
    zero_init_residual: bool = Field(
        True, description="Zero the last norm of each block (blocks start as identities)."
    )
    weights: Path | None = Field(
        None, description="safetensors state dict to initialise from (default: random)."
    )
    weights_prefix: str = Field(
        "", description="Read only keys with this prefix, e.g. 'stems.medical~nuclei.'."
    )


def _group_norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(groups, channels), channels)


def _conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)


def _conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions and an identity (or 1x1 projection) shortcut (He et al. 2016)."""

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int,
        downsample: nn.Module | None,
        norm_layer: Callable[[int], nn.Module],
    ) -> None:
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = norm_layer(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand by 4, and a shortcut (ResNet v1.5: the stride is
    on the 3x3 convolution, as in torchvision)."""

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int,
        downsample: nn.Module | None,
        norm_layer: Callable[[int], nn.Module],
    ) -> None:
        super().__init__()
        self.conv1 = _conv1x1(inplanes, planes)
        self.bn1 = norm_layer(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = norm_layer(planes)
        self.conv3 = _conv1x1(planes, planes * self.expansion)
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))) + shortcut(x))."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ResNetBackbone(nn.Module):
    """A ResNet (He et al. 2016) with custom widths and any input channels, in torchvision's
    module layout, then a projection to the trunk width (global average pooling -> Linear ->
    LayerNorm -> GELU)."""

    def __init__(
        self,
        in_channels: int,
        out_features: int,
        cfg: ResNetConfig,
        small_input: bool,
    ) -> None:
        super().__init__()
        block: type[BasicBlock] | type[Bottleneck] = (
            BasicBlock if cfg.block == "basic" else Bottleneck
        )
        norm_layer: Callable[[int], nn.Module] = (
            partial(_group_norm, groups=cfg.norm_groups) if cfg.norm == "group" else nn.BatchNorm2d
        )
        if small_input:
            self.conv1 = nn.Conv2d(in_channels, cfg.width, 3, stride=1, padding=1, bias=False)
            self.maxpool: nn.Module = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(in_channels, cfg.width, 7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.bn1 = norm_layer(cfg.width)
        self.relu = nn.ReLU(inplace=True)
        self.stages = len(cfg.layers)
        inplanes = cfg.width
        for i, blocks in enumerate(cfg.layers):
            planes, stride = cfg.width * 2**i, 1 if i == 0 else 2
            downsample = None
            if stride != 1 or inplanes != planes * block.expansion:
                downsample = nn.Sequential(
                    _conv1x1(inplanes, planes * block.expansion, stride),
                    norm_layer(planes * block.expansion),
                )
            stage = [block(inplanes, planes, stride, downsample, norm_layer)]
            inplanes = planes * block.expansion
            stage += [block(inplanes, planes, 1, None, norm_layer) for _ in range(1, blocks)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*stage))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.feature_dim = inplanes
        self.proj = nn.Sequential(
            nn.Linear(self.feature_dim, out_features), nn.LayerNorm(out_features), nn.GELU()
        )
        self.out_features = out_features
        # the initialisation of He et al. 2015 for convolutions, as torchvision's
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        if cfg.zero_init_residual:  # Goyal et al. 2017: each block starts as an identity
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.constant_(m.bn3.weight, 0)
                elif isinstance(m, BasicBlock):
                    nn.init.constant_(m.bn2.weight, 0)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features ``[N, feature_dim]`` (before the projection)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(self.stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, C, H, W]`` -> ``[N, out_features]``."""
        return self.proj(self.forward_features(x))


def _shape(t: torch.Tensor) -> list[int]:
    return list(t.shape)


def load_resnet_weights(module: nn.Module, path: Path, prefix: str = "", norm: str = "group"):
    """Load a safetensors state dict into a built stem, strictly.

    Every backbone key must be in the file with the same shape, and the file may hold no
    other key, except torchvision's classifier (``fc.*``, ignored) and the projection
    (``proj.*``: loaded when present, else left random). A first conv saved for another
    number of input channels is adapted: summed to one channel, or one channel repeated
    (divided by the count). Any other difference is a DataError naming the file and keys.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"{path}: weights file not found")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable safetensors file ({exc})") from exc
    if prefix:
        state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if not state:
            raise DataError(f"{path}: no key starts with weights_prefix {prefix!r}")
    for key in CLASSIFIER_KEYS:
        state.pop(key, None)
    own = module.state_dict()
    conv = state.get("conv1.weight")
    if conv is not None and conv.dim() == 4 and conv.shape[1] != own["conv1.weight"].shape[1]:
        channels = own["conv1.weight"].shape[1]
        if channels == 1:
            state["conv1.weight"] = conv.sum(dim=1, keepdim=True)
        elif conv.shape[1] == 1:
            state["conv1.weight"] = conv.repeat(1, channels, 1, 1) / channels
    missing = sorted(k for k in own if k not in state and not k.startswith(PROJECTION))
    unexpected = sorted(k for k in state if k not in own)
    wrong = sorted(
        f"{k}: file {_shape(v)}, model {_shape(own[k])}"
        for k, v in state.items()
        if k in own and v.shape != own[k].shape
    )
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s) {missing[:4]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s) {unexpected[:4]}")
        if wrong:
            parts.append(f"{len(wrong)} shape mismatch(es) {wrong[:3]}")
        hint = ""
        stats = ("running_mean", "running_var", "num_batches_tracked")
        if norm == "group" and any(k.endswith(stats) for k in unexpected):
            hint = "; the file has BatchNorm statistics: set norm: batch"
        elif norm == "batch" and any(k.endswith(stats) for k in missing):
            hint = "; the file has no BatchNorm statistics (GroupNorm weights?): set norm: group"
        elif wrong:
            hint = "; check width, layers, block and small_input against the saved network"
        raise DataError(f"{path}: weights do not match the resnet stem: " + "; ".join(parts) + hint)
    merged = dict(own)
    merged.update(state)
    module.load_state_dict(merged, strict=True)
    return module


class ResNetStem(Architecture):
    """ResNet image stem at any width (GroupNorm by default), to the trunk width.

    BasicBlock (or Bottleneck) stages of ``width``, ``2 width``, ... channels; any number of
    input channels; a 3x3 first conv without max-pool for small images (<= 64 px by
    default); global average pooling, then Linear -> LayerNorm -> GELU. Random weights
    unless ``weights`` names a safetensors file (strict key check).
    """

    name = "resnet"
    modalities: ClassVar[tuple[str, ...]] = ("image",)
    Config = ResNetConfig

    def build_stem(self, input_shape: tuple[int, ...], out_features: int) -> nn.Module:
        """A ResNet over ``[C, H, W]`` inputs, pooled, projected to ``out_features``."""
        cfg: ResNetConfig = self.config  # type: ignore[assignment]
        if len(input_shape) != 3:
            raise ValueError(f"resnet stem needs [C, H, W] inputs, got shape {list(input_shape)}")
        channels, height, width = input_shape
        small = cfg.small_input if cfg.small_input is not None else min(height, width) <= 64
        module = ResNetBackbone(channels, out_features, cfg, small)
        if cfg.weights is not None:
            load_resnet_weights(module, cfg.weights, cfg.weights_prefix, cfg.norm)
        return module
