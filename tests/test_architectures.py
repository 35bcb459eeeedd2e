"""Built-in architectures, network assembly from the config, and forward-hook features."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from cdkd_core.builtins.architectures import CNN, MLP, Trunk
from cdkd_core.components.domain import DomainData, Split
from cdkd_core.config.models import ComponentRef, DomainEntry, ModelSpec
from cdkd_core.data.preparation import PreparedDomain
from cdkd_core.errors import ConfigError, DataError
from cdkd_core.host.plugin_host import PluginHost
from cdkd_core.nets.assembly import build_network, stem_architecture
from cdkd_core.nets.network import MultiDomainNet, count_parameters, module_key
from cdkd_core.nets.reading import FeatureHook, find_module

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def host() -> PluginHost:
    return PluginHost(entry_points=False)


def _no_batchnorm(module: nn.Module) -> None:
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


# --------------------------------------------------------------------------- mlp


@pytest.mark.parametrize(("width", "depth"), [(1, 1), (8, 2), (33, 3), (64, 0)])
def test_mlp_trunk_shapes(width: int, depth: int) -> None:
    trunk = MLP.from_params({"width": width, "depth": depth}).build_trunk()
    assert isinstance(trunk, Trunk)
    assert trunk.in_features == trunk.out_features == width
    out = trunk(torch.randn(5, width))
    assert out.shape == (5, width)
    linears = [m for m in trunk.modules() if isinstance(m, nn.Linear)]
    norms = [m for m in trunk.modules() if isinstance(m, nn.LayerNorm)]
    assert len(linears) == len(norms) == depth
    assert all(m.in_features == m.out_features == width for m in linears)
    _no_batchnorm(trunk)


def test_mlp_trunk_of_depth_zero_is_the_identity() -> None:
    trunk = MLP.from_params({"width": 6, "depth": 0}).build_trunk()
    x = torch.randn(4, 6)
    assert torch.equal(trunk(x), x)
    assert count_parameters(trunk) == 0


def test_mlp_trunk_dropout() -> None:
    trunk = MLP.from_params({"width": 4, "depth": 2, "dropout": 0.5}).build_trunk()
    assert sum(isinstance(m, nn.Dropout) for m in trunk.modules()) == 2
    trunk.eval()
    x = torch.randn(3, 4)
    assert torch.equal(trunk(x), trunk(x))


@pytest.mark.parametrize(
    ("shape", "hidden", "out"),
    [((5,), [], 8), ((5,), [16, 4], 3), ((1, 8, 8), [12], 32), ((2, 3, 4), [], 1)],
)
def test_mlp_stem_shapes(shape: tuple[int, ...], hidden: list[int], out: int) -> None:
    stem = MLP.from_params({"hidden": hidden}).build_stem(shape, out)
    y = stem(torch.randn(7, *shape))
    assert y.shape == (7, out)
    linears = [m for m in stem.modules() if isinstance(m, nn.Linear)]
    widths = [int(torch.tensor(shape).prod()), *hidden, out]
    assert [(m.in_features, m.out_features) for m in linears] == list(itertools.pairwise(widths))
    assert sum(isinstance(m, nn.LayerNorm) for m in stem.modules()) == len(linears)
    _no_batchnorm(stem)


def test_mlp_class_attributes() -> None:
    assert MLP.provides_trunk is True
    assert "tabular" in MLP.default_for and "series" in MLP.default_for
    assert "image" in MLP.modalities
    assert CNN.provides_trunk is False
    assert CNN.modalities == ("image",) and CNN.default_for == ("image",)


# --------------------------------------------------------------------------- cnn


@pytest.mark.parametrize(
    ("shape", "channels", "blocks", "out"),
    [((1, 8, 8), 4, 2, 16), ((3, 16, 12), 8, 3, 5), ((2, 3, 3), 2, 1, 7), ((1, 8, 8), 2, 4, 3)],
)
def test_cnn_stem_shapes(shape: tuple[int, ...], channels: int, blocks: int, out: int) -> None:
    stem = CNN.from_params({"channels": channels, "blocks": blocks}).build_stem(shape, out)
    y = stem(torch.randn(4, *shape))
    assert y.shape == (4, out)
    convs = [m for m in stem.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [channels * 2**i for i in range(blocks)]
    assert convs[0].in_channels == shape[0]
    assert sum(isinstance(m, nn.GroupNorm) for m in stem.modules()) == blocks
    assert any(isinstance(m, nn.LayerNorm) for m in stem.modules())
    _no_batchnorm(stem)


def test_cnn_pools_only_while_the_image_is_at_least_four_pixels() -> None:
    stem = CNN.from_params({"channels": 2, "blocks": 4}).build_stem((1, 8, 8), 3)
    # 8 -> 4 -> 2, then no more pooling
    assert sum(isinstance(m, nn.MaxPool2d) for m in stem.modules()) == 2


def test_cnn_refuses_non_image_shapes() -> None:
    with pytest.raises(ValueError, match=r"\[C, H, W\]"):
        CNN().build_stem((10,), 4)


def test_cnn_has_no_trunk() -> None:
    with pytest.raises(NotImplementedError, match="provides no trunk"):
        CNN().build_trunk()


def test_the_base_head_is_linear() -> None:
    head = CNN().build_head(6, 3)
    assert isinstance(head, nn.Linear)
    assert (head.in_features, head.out_features) == (6, 3)


@pytest.mark.parametrize("depth", [0, 1, 2])
def test_mlp_head(depth: int) -> None:
    head = MLP.from_params({"width": 5, "depth": depth}).build_head(6, 3)
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    widths = [6] + [5] * depth + [3]
    assert [(m.in_features, m.out_features) for m in linears] == list(itertools.pairwise(widths))
    assert sum(isinstance(m, nn.LayerNorm) for m in head.modules()) == depth
    assert head(torch.randn(4, 6)).shape == (4, 3)
    _no_batchnorm(head)


# --------------------------------------------------------------------------- assembly


def _domain(
    name: str,
    shape: tuple[int, ...],
    *,
    task: str | None = None,
    space: str | None = None,
    modality: str = "tabular",
    classes: int = 3,
    student_shape: tuple[int, ...] | None = None,
) -> PreparedDomain:
    def split(n: int) -> Split:
        t = torch.randn(n, *shape)
        s = torch.randn(n, *student_shape) if student_shape else t
        return Split(t, s, torch.arange(n) % classes)

    data = DomainData(
        modality=modality,
        task=task or name,
        classes=[str(i) for i in range(classes)],
        splits={"train": split(12), "val": split(6), "test": split(6)},
        input_space=space,
    )
    s = data.splits
    return PreparedDomain(
        DomainEntry(name=name),
        data,
        s["train"],
        s["val"],
        s["test"],
        None,
        torch.ones(12, dtype=torch.bool),
        torch.ones(len(s["val"]), dtype=torch.bool),
    )


def _spec(
    width: int = 8, depth: int = 1, stems: dict | None = None, head: dict | None = None
) -> ModelSpec:
    return ModelSpec(
        trunk=ComponentRef(name="mlp", params={"width": width, "depth": depth}),
        stems={k: ComponentRef(**v) for k, v in (stems or {}).items()},
        head=ComponentRef(**head) if head else None,
    )


def test_build_network_stems_per_space_and_heads_per_task(host: PluginHost) -> None:
    domains = [
        _domain("d.a", (5,), task="shared", space="table"),
        _domain("d.b", (5,), task="shared", space="table"),
        _domain("d.c", (4,), task="other", classes=2),
        _domain("d.img", (1, 8, 8), task="digits", modality="image", classes=4),
    ]
    spec = _spec(stems={"image": {"name": "cnn", "params": {"channels": 2, "blocks": 1}}})
    net = build_network(spec, domains, host, "teacher", seed=0)
    assert isinstance(net, MultiDomainNet)
    assert sorted(net.stems.keys()) == sorted(module_key(s) for s in ["table", "d.c", "d.img"])
    assert sorted(net.heads.keys()) == ["digits", "other", "shared"]
    assert net.has_stem("table") and net.has_stem("d.c") and not net.has_stem("d.a")
    assert net.has_head("shared") and not net.has_head("d.a")
    assert all(isinstance(h, nn.Linear) for h in net.heads.values())
    assert net.heads["other"].out_features == 2
    assert net.heads["digits"].out_features == 4
    assert net.heads["shared"].in_features == 8
    assert any(isinstance(m, nn.Conv2d) for m in net.stems[module_key("d.img")].modules())
    assert not any(isinstance(m, nn.Conv2d) for m in net.stems["table"].modules())
    for d in domains:
        assert net(d.train.teacher_x, d.space, d.task).shape == (12, d.num_classes)
        assert net.features(d.train.teacher_x, d.space).shape == (12, 8)
    _no_batchnorm(net)


def test_heads_from_a_head_architecture(host: PluginHost) -> None:
    domains = [_domain("d.a", (5,), classes=3), _domain("d.b", (4,), classes=2)]
    spec = _spec(width=8, head={"name": "mlp", "params": {"width": 6, "depth": 1}})
    net = build_network(spec, domains, host, "teacher", seed=0)
    for d in domains:
        head = net.heads[module_key(d.task)]
        linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
        assert [(m.in_features, m.out_features) for m in linears] == [
            (8, 6),
            (6, d.num_classes),
        ]
        assert net(d.train.teacher_x, d.space, d.task).shape == (12, d.num_classes)
    # the trunk is unchanged by the head choice
    assert net.trunk.out_features == 8


def test_image_domains_default_to_the_cnn_stem(host: PluginHost) -> None:
    domains = [_domain("d.img", (1, 8, 8), modality="image")]
    net = build_network(_spec(), domains, host, "student", seed=0)
    assert any(isinstance(m, nn.Conv2d) for m in net.modules())
    arch = stem_architecture(_spec(), "tabular", host, "student")
    assert isinstance(arch, MLP)


def test_a_modality_without_default_stem_is_a_config_error(host: PluginHost) -> None:
    with pytest.raises(ConfigError) as info:
        build_network(_spec(), [_domain("d.txt", (5,), modality="audio")], host, "student", 0)
    assert "student.stems" in str(info.value) and "'audio'" in str(info.value)


def test_same_seed_gives_identical_weights(host: PluginHost) -> None:
    domains = [_domain("d.a", (5,)), _domain("d.b", (3,), classes=2)]
    a = build_network(_spec(), domains, host, "teacher", seed=3)
    b = build_network(_spec(), domains, host, "teacher", seed=3)
    c = build_network(_spec(), domains, host, "teacher", seed=4)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)


def test_teacher_and_student_views_set_the_stem_shapes(host: PluginHost) -> None:
    domains = [_domain("d.a", (6,), student_shape=(2,))]
    teacher = build_network(_spec(), domains, host, "teacher", seed=0)
    student = build_network(_spec(), domains, host, "student", seed=0)
    assert teacher.stems["d~a"][1].in_features == 6
    assert student.stems["d~a"][1].in_features == 2


def test_shared_space_with_different_shapes_is_an_error(host: PluginHost) -> None:
    domains = [
        _domain("d.a", (5,), space="table"),
        _domain("d.b", (6,), space="table"),
    ]
    with pytest.raises(DataError) as info:
        build_network(_spec(), domains, host, "teacher", seed=0)
    msg = str(info.value)
    assert "'table'" in msg and "[5]" in msg and "[6]" in msg and "d.b" in msg


def test_shared_task_with_different_class_counts_is_an_error(host: PluginHost) -> None:
    domains = [_domain("d.a", (5,), task="t", classes=2), _domain("d.b", (5,), task="t")]
    with pytest.raises(DataError, match="'t' differ in their number of classes"):
        build_network(_spec(), domains, host, "teacher", seed=0)


def test_module_keys_replace_dots() -> None:
    assert module_key("sklearn.wine") == "sklearn~wine"
    net = MultiDomainNet({"a.b": nn.Identity()}, nn.Identity(), {"t.u": nn.Identity()})
    assert net.has_stem("a.b") and net.has_head("t.u")


# --------------------------------------------------------------------------- hooks


def test_feature_hook_reads_the_trunk_output(host: PluginHost) -> None:
    domains = [_domain("d.a", (5,)), _domain("d.img", (1, 8, 8), modality="image")]
    net = build_network(_spec(width=6, depth=2), domains, host, "teacher", seed=0)
    net.eval()
    for d in domains:
        x = d.val.teacher_x
        with FeatureHook(net, "trunk") as hook:
            logits = net(x, d.space, d.task)
            features = hook.take()
        assert features.shape == (6, 6)
        assert torch.equal(features, net.features(x, d.space))
        assert torch.allclose(logits, net.heads[module_key(d.task)](features))
    # the hook is removed on exit
    assert not net.trunk._forward_hooks


def test_feature_hook_flattens_and_reads_nested_layers(host: PluginHost) -> None:
    domains = [_domain("d.img", (1, 8, 8), modality="image")]
    spec = _spec(stems={"image": {"name": "cnn", "params": {"channels": 3, "blocks": 1}}})
    net = build_network(spec, domains, host, "teacher", seed=0)
    x = domains[0].train.teacher_x
    with FeatureHook(net, "stems.d~img.0") as hook:
        net.features(x, "d.img")
        conv_out = hook.take()
    assert conv_out.shape == (12, 3 * 8 * 8)
    assert torch.equal(conv_out, net.stems["d~img"][0](x).flatten(1))
    with FeatureHook(net, "trunk") as hook, pytest.raises(RuntimeError, match="did not run"):
        hook.take()


def test_unknown_feature_layer_is_a_config_error(host: PluginHost) -> None:
    net = build_network(_spec(), [_domain("d.a", (5,))], host, "teacher", seed=0)
    with pytest.raises(ConfigError) as info:
        FeatureHook(net, "trunk.99")
    assert "'trunk.99'" in str(info.value)
    assert "['heads', 'stems', 'trunk']" in str(info.value)
    assert find_module(net, "") is net
    assert find_module(net, "trunk") is net.trunk
