"""resnet: shapes at several widths and channels, GroupNorm by default, safetensors weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from cdkd_medical.architectures import ResNetStem
from safetensors.torch import load_file, save_file
from torch import nn

from cdkd_core.plugin_api import DataError


def build(params, shape=(1, 24, 24), out=32):
    torch.manual_seed(0)
    return ResNetStem.from_params(params).build_stem(shape, out)


@pytest.mark.parametrize(
    ("width", "layers", "shape"),
    [(4, [1, 1], (1, 24, 24)), (8, [2, 2, 2, 2], (3, 32, 32)), (6, [1, 1, 1], (5, 96, 80))],
)
def test_shapes(width, layers, shape):
    stem = build({"width": width, "layers": layers}, shape, out=20)
    x = torch.randn(3, *shape)
    assert stem(x).shape == (3, 20)
    assert stem.feature_dim == width * 2 ** (len(layers) - 1)
    assert stem.conv1.in_channels == shape[0]
    small = min(shape[1:]) <= 64
    assert stem.conv1.kernel_size == ((3, 3) if small else (7, 7))
    assert isinstance(stem.maxpool, nn.Identity) == small
    assert isinstance(stem.proj[1], nn.LayerNorm) and isinstance(stem.proj[2], nn.GELU)


def test_bottleneck_and_explicit_small():
    stem = build({"width": 4, "layers": [1, 1], "block": "bottleneck", "small_input": False})
    assert stem(torch.randn(2, 1, 24, 24)).shape == (2, 32)
    assert stem.feature_dim == 4 * 2 * 4
    assert stem.conv1.kernel_size == (7, 7)


def test_groupnorm_by_default():
    stem = build({"width": 12, "layers": [1, 1, 1]})
    norms = [m for m in stem.modules() if isinstance(m, nn.GroupNorm)]
    assert norms and not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in stem.modules())
    assert {(m.num_channels, m.num_groups) for m in norms} >= {(12, 4), (24, 8), (48, 16)}
    # per-example normalisation: an example's output does not depend on its batch
    stem.train()
    x = torch.randn(4, 1, 24, 24)
    assert torch.allclose(stem(x)[:1], stem(x[:1]), atol=1e-5)
    batch = build({"width": 8, "layers": [1, 1], "norm": "batch"})
    assert any(isinstance(m, nn.BatchNorm2d) for m in batch.modules())


def test_weights_round_trip(tmp_path):
    params = {"width": 8, "layers": [1, 1, 1]}
    source = build(params)
    with torch.no_grad():
        for p in source.parameters():
            p.add_(torch.randn_like(p) * 0.1)  # not the seed-0 initialisation
    save_file(source.state_dict(), tmp_path / "stem.safetensors")
    loaded = build({**params, "weights": str(tmp_path / "stem.safetensors")})
    x = torch.randn(2, 1, 24, 24)
    assert torch.allclose(loaded(x), source(x))
    # a teacher checkpoint: keys under the stem's prefix
    prefixed = {f"stems.medical~nuclei.{k}": v for k, v in source.state_dict().items()}
    prefixed["trunk.0.weight"] = torch.zeros(3, 3)
    save_file(prefixed, tmp_path / "teacher.safetensors")
    from_ckpt = build(
        {
            **params,
            "weights": str(tmp_path / "teacher.safetensors"),
            "weights_prefix": "stems.medical~nuclei.",
        }
    )
    assert torch.allclose(from_ckpt(x), source(x))


def test_weights_mismatch_errors(tmp_path):
    save_file(build({"width": 8, "layers": [1, 1]}).state_dict(), tmp_path / "w8.safetensors")
    with pytest.raises(DataError, match=r"w8\.safetensors.*shape mismatch.*width, layers"):
        build({"width": 16, "layers": [1, 1], "weights": str(tmp_path / "w8.safetensors")})
    with pytest.raises(DataError, match="missing key"):
        build({"width": 8, "layers": [1, 1, 1], "weights": str(tmp_path / "w8.safetensors")})
    bn = build({"width": 8, "layers": [1, 1], "norm": "batch"}).state_dict()
    save_file(bn, tmp_path / "bn.safetensors")
    with pytest.raises(DataError, match="set norm: batch"):
        build({"width": 8, "layers": [1, 1], "weights": str(tmp_path / "bn.safetensors")})
    (tmp_path / "junk.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(DataError, match="not a readable safetensors"):
        build({"width": 8, "layers": [1, 1], "weights": str(tmp_path / "junk.safetensors")})
    with pytest.raises(DataError, match="not found"):
        build({"weights": str(tmp_path / "absent.safetensors")})


DATA = Path(__file__).parent / "data"


def test_resnet18_config_has_torchvision_layout():
    """The resnet18 config's state dict has torchvision resnet18's keys and shapes, in its
    order (recorded from torchvision 0.29.1, classifier aside), so its weights load."""
    recorded = []
    for line in (DATA / "torchvision_resnet18_keys.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            key, shape = line.split()
            recorded.append((key, [] if shape == "-" else [int(n) for n in shape.split("x")]))
    params = {"width": 64, "layers": [2, 2, 2, 2], "norm": "batch", "small_input": False}
    own = build(params, (3, 64, 64), out=16).state_dict()
    ours = [(k, list(v.shape)) for k, v in own.items() if not k.startswith("proj.")]
    assert ours == [(k, s) for k, s in recorded if not k.startswith("fc.")]
    assert len(ours) == 120


@pytest.mark.parametrize("case", ["basic", "bottleneck"])
def test_features_match_torchvision_blocks(case):
    """Features of stems whose weights, running statistics and inputs were drawn at random
    and passed through torchvision's ResNet blocks (BasicBlock with BatchNorm and a 7x7
    stem; Bottleneck with GroupNorm and a 3x3 stem; strided projection shortcuts)."""
    ref = load_file(DATA / "torchvision_resnet_reference.safetensors")
    params = {
        "basic": {"width": 8, "layers": [1, 2], "norm": "batch", "small_input": False},
        "bottleneck": {"width": 4, "layers": [2, 1], "block": "bottleneck", "norm_groups": 4},
    }[case]
    x = ref[f"{case}.input"]
    stem = build(params, tuple(x.shape[1:]), out=8).eval()
    prefix = f"{case}.state."
    state = {k.removeprefix(prefix): v for k, v in ref.items() if k.startswith(prefix)}
    missing, unexpected = stem.load_state_dict(state, strict=False)
    assert unexpected == [] and all(k.startswith("proj.") for k in missing)
    with torch.no_grad():
        assert torch.allclose(stem.forward_features(x), ref[f"{case}.features"], atol=1e-5)


def test_block_by_hand():
    """One BasicBlock with GroupNorm, computed with torch.nn.functional step by step."""
    import torch.nn.functional as F

    stem = build({"width": 4, "layers": [1, 1], "norm_groups": 2, "zero_init_residual": False})
    with torch.no_grad():
        for p in stem.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    block = stem.layer2[0]  # strided, with a 1x1 projection shortcut
    x = torch.randn(2, 4, 12, 12)

    def gn(t, norm):
        return F.group_norm(t, 2, norm.weight, norm.bias, eps=1e-5)

    h = F.relu(gn(F.conv2d(x, block.conv1.weight, stride=2, padding=1), block.bn1))
    h = gn(F.conv2d(h, block.conv2.weight, padding=1), block.bn2)
    conv, norm = block.downsample
    shortcut = gn(F.conv2d(x, conv.weight, stride=2), norm)
    with torch.no_grad():
        assert torch.allclose(block(x), F.relu(h + shortcut), atol=1e-6)
    assert block(x).shape == (2, 8, 6, 6)


def test_zero_init_residual_starts_blocks_as_identities():
    stem = build({"width": 4, "layers": [1, 1]})
    x = torch.randn(2, 4, 12, 12).relu()
    assert torch.equal(stem.layer1[0](x), x)  # no projection: relu(0 + x) = x
    assert all(m.weight.abs().sum() == 0 for m in (stem.layer1[0].bn2, stem.layer2[0].bn2))


def test_torchvision_resnet18_weights_load(tmp_path):
    """Where torchvision is installed: its resnet18 state dict (classifier ignored) loads
    into the matching config and gives its pooled features; a 1-channel stem sums the
    first conv."""
    torchvision = pytest.importorskip("torchvision")

    torch.manual_seed(1)
    reference = torchvision.models.resnet18(weights=None).eval()
    save_file(reference.state_dict(), tmp_path / "r18.safetensors")
    params = {
        "width": 64,
        "layers": [2, 2, 2, 2],
        "norm": "batch",
        "small_input": False,
        "weights": str(tmp_path / "r18.safetensors"),
    }
    reference.fc = nn.Identity()
    x = torch.randn(2, 3, 64, 64)
    rgb = build(params, (3, 64, 64), out=16).eval()
    with torch.no_grad():
        assert torch.allclose(rgb.forward_features(x), reference(x), atol=1e-5)
        grey = build(params, (1, 64, 64), out=16).eval()
        g = x[:, :1]
        assert torch.allclose(grey.forward_features(g), reference(g.repeat(1, 3, 1, 1)), atol=1e-4)
