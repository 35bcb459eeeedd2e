"""The gru and tcn stems: shapes, causality, defaults and registration."""

from __future__ import annotations

import pytest
import torch
from cdkd_finance.architectures import GRU, TCN

from cdkd_core.testing import stem_architecture


@pytest.mark.parametrize("cls", [GRU, TCN])
@pytest.mark.parametrize("out", [8, 96])
def test_stems_map_windows_to_the_trunk_width(cls, out):
    torch.manual_seed(0)
    stem = cls().build_stem((20, 4), out)
    y = stem(torch.randn(5, 20, 4))
    assert y.shape == (5, out) and torch.isfinite(y).all()
    y.sum().backward()
    assert all(p.grad is not None for p in stem.parameters() if p.requires_grad)
    # window length is free (recurrent / convolutional): a shorter series works too
    assert stem(torch.randn(3, 7, 4)).shape == (3, out)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in stem.modules())


def test_gru_config_and_stacking():
    stem = GRU.from_params({"hidden": 16, "layers": 2, "dropout": 0.1}).build_stem((10, 3), 12)
    assert stem.gru.num_layers == 2 and stem.gru.hidden_size == 16
    with pytest.raises(ValueError, match=r"series inputs \[T, F\]"):
        GRU().build_stem((30,), 8)


def test_gru_reads_the_last_hidden_state():
    torch.manual_seed(0)
    stem = GRU.from_params({"hidden": 8}).build_stem((6, 2), 4).eval()
    x = torch.randn(2, 6, 2)
    _, h = stem.gru(x)
    assert torch.allclose(stem(x), stem.proj(h[-1]))


@pytest.mark.parametrize("kernel_size", [2, 3])
def test_tcn_is_causal(kernel_size):
    torch.manual_seed(0)
    stem = TCN.from_params({"channels": 8, "blocks": 3, "kernel_size": kernel_size}).build_stem(
        (16, 3), 10
    )
    stem.eval()
    x = torch.randn(4, 16, 3)
    base = stem.sequence(x)
    assert base.shape == (4, 16, 8)
    for t in (0, 5, 14):
        changed = x.clone()
        changed[:, t + 1 :] += torch.randn_like(changed[:, t + 1 :]) * 5
        seq = stem.sequence(changed)
        assert torch.allclose(seq[:, : t + 1], base[:, : t + 1], atol=1e-6)  # past unchanged
        assert not torch.allclose(seq[:, t + 1 :], base[:, t + 1 :])  # future does move
    # the receptive field reaches back (1 + 2 (k - 1) (2^blocks - 1)) steps, no further
    rf = stem.receptive_field
    assert rf == 1 + 2 * (kernel_size - 1) * 7
    long = torch.randn(1, rf + 6, 3)
    stem = TCN.from_params({"channels": 8, "kernel_size": kernel_size}).build_stem((rf + 6, 3), 4)
    out = stem.sequence(long)[:, -1]
    early = long.clone()
    early[:, :6] += 3.0  # steps before the receptive field of the last step
    assert torch.allclose(stem.sequence(early)[:, -1], out, atol=1e-6)
    early[:, 6] += 3.0  # the first step inside it
    assert not torch.allclose(stem.sequence(early)[:, -1], out, atol=1e-6)


def test_tcn_pooling():
    torch.manual_seed(0)
    last = TCN.from_params({"pooling": "last"}).build_stem((12, 2), 6).eval()
    mean = TCN.from_params({"pooling": "mean"}).build_stem((12, 2), 6).eval()
    mean.load_state_dict(last.state_dict())
    x = torch.randn(3, 12, 2)
    seq = last.sequence(x)
    assert torch.allclose(last(x), last.proj(seq[:, -1]))
    assert torch.allclose(mean(x), mean.proj(seq.mean(1)))


def test_teacher_defaults_to_gru_and_student_to_mlp(finance_host):
    spec = {"trunk": {"name": "mlp"}}
    assert stem_architecture(spec, "series", finance_host, "teacher").name == "gru"
    assert stem_architecture(spec, "series", finance_host, "student").name == "mlp"
    spec = {"trunk": {"name": "mlp"}, "stems": {"series": {"name": "tcn"}}}
    assert stem_architecture(spec, "series", finance_host, "student").name == "tcn"


def test_entry_point_registers_every_component():
    from cdkd_core import PluginHost

    host = PluginHost()
    info = host.plugins["finance"]
    assert info.ok, info.errors
    assert info.source == "entry point" and info.version == "0.1.0"
    assert info.components == {
        "domains": [
            "finance.credit_data",
            "finance.default",
            "finance.german_credit",
            "finance.sp500",
            "finance.credit_csv",
            "finance.price_csv",
        ],
        "architectures": ["gru", "tcn"],
    }
    for kind, names in info.components.items():
        for name in names:
            cls = host.get(kind, name)
            assert cls.summary() and cls.__module__.startswith("cdkd_finance.")
