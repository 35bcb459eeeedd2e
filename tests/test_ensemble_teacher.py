"""``teacher.ensemble``: K teachers trained from their own seeds and distilled as one."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from cdkd_core import load_config, run_pipeline
from cdkd_core.artifacts.run_teacher import load_run_teacher
from cdkd_core.errors import ConfigError
from cdkd_core.files import load_weights
from cdkd_core.nets.ensemble import JoinedFeatures, TeacherEnsemble
from cdkd_core.nets.network import MultiDomainNet
from cdkd_core.nets.reading import read_layer
from cdkd_core.seeds import member_seed
from cdkd_core.stages.teacher import bootstrap_plans
from cdkd_core.stages.training import domain_plans
from tests.stopping import stopped_and_resumed, without_timing

torch.set_num_threads(1)


def _net(head_weight: list[list[float]], head_bias: list[float], width: int = 2) -> MultiDomainNet:
    """A network whose stem and trunk are the identity and whose head is the given layer."""
    trunk = nn.Identity()
    trunk.in_features = trunk.out_features = width  # type: ignore[attr-defined]
    head = nn.Linear(width, len(head_bias))
    with torch.no_grad():
        head.weight.copy_(torch.tensor(head_weight))
        head.bias.copy_(torch.tensor(head_bias))
    return MultiDomainNet({"s": nn.Identity()}, trunk, {"t": head})


def test_soft_labels_are_the_mean_of_the_members_class_probabilities():
    a = _net([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [0.0, 0.0, 0.0])
    b = _net([[2.0, 0.0], [0.0, -1.0], [0.0, 0.0]], [0.5, 0.0, -0.5])
    x = torch.tensor([[1.0, 2.0], [-1.0, 0.5]])
    ensemble = TeacherEnsemble([a, b])
    # by hand: softmax of each member's logits, averaged
    za = torch.tensor([[1.0, 2.0, 3.0], [-1.0, 0.5, -0.5]])
    zb = torch.tensor([[2.5, -2.0, -0.5], [-1.5, -0.5, -0.5]])

    def softmax(z: torch.Tensor) -> torch.Tensor:
        e = z.exp()
        return e / e.sum(dim=1, keepdim=True)

    expected = (softmax(za) + softmax(zb)) / 2
    out = ensemble(x, "s", "t")
    assert torch.allclose(out.softmax(dim=1), expected, atol=1e-6)
    assert torch.allclose(out.exp().sum(dim=1), torch.ones(2), atol=1e-6)  # log-probabilities
    # kd at temperature T softens the average: softmax(log p / T)
    t = 4.0
    tempered = expected.pow(1 / t) / expected.pow(1 / t).sum(dim=1, keepdim=True)
    assert torch.allclose((out / t).softmax(dim=1), tempered, atol=1e-6)


def test_the_feature_layer_joins_the_members_features():
    a = _net([[1.0, 0.0]], [0.0])
    b = _net([[1.0, 0.0]], [0.0])
    with torch.no_grad():  # make b's features differ from a's: a stem that doubles
        b.stems["s"] = nn.Linear(2, 2, bias=False)
        b.stems["s"].weight.copy_(2 * torch.eye(2))
    x = torch.tensor([[1.0, -1.0], [0.5, 3.0]])
    concat = TeacherEnsemble([a, b], "concat")
    features, logits = read_layer(concat, "trunk", x, "s", "t")
    assert torch.equal(features, torch.cat([x, 2 * x], dim=1))
    assert logits is not None and logits.shape == (2, 1)
    assert torch.equal(concat.features(x, "s"), features)
    assert concat.trunk.out_features == 4
    mean = TeacherEnsemble([a, b], "mean")
    assert torch.allclose(read_layer(mean, "trunk", x, "s")[0], 1.5 * x)
    assert mean.trunk.out_features == 2
    assert isinstance(mean.trunk, JoinedFeatures)


def test_member_seeds_are_distinct_and_member_zero_is_the_run_seed():
    seeds = [member_seed(7, k) for k in range(10)]
    assert seeds[0] == 7 and len(set(seeds)) == 10 and 8 not in seeds  # 8: the student's


def test_bagging_draws_a_bootstrap_resample_per_seed(tiny_config, cdkd_host):
    from cdkd_core.data.preparation import prepare_domains

    config = load_config(tiny_config, host=cdkd_host)
    domains = prepare_domains(config, cdkd_host, 0.0)
    plans = domain_plans(
        [d for d in domains if d.role == "source"], "teacher", use_labels_only=True
    )
    one, again, other = (bootstrap_plans(plans, s) for s in (3, 3, 4))
    for plan, a, b, c in zip(plans, one, again, other, strict=True):
        assert len(a.index) == len(plan.index)
        assert set(a.index.tolist()) <= set(plan.index.tolist())
        # about 1 - 1/e of the rows are drawn at least once
        share = len(set(a.index.tolist())) / len(plan.index)
        assert 0.55 < share < 0.72
        assert torch.equal(a.index, b.index) and not torch.equal(a.index, c.index)


def _ensemble_config(tiny_config: dict, **ensemble) -> dict:
    cfg = copy.deepcopy(tiny_config)
    cfg["train"].update({"epochs": 3, "threads": 1})
    cfg["teacher"]["ensemble"] = {"members": 3, **ensemble}
    return cfg


def test_an_ensemble_run_distils_the_mean_of_its_members(tiny_config, cdkd_host, tmp_path):
    cfg = _ensemble_config(tiny_config, bagging=True)
    single = copy.deepcopy(cfg)
    del single["teacher"]["ensemble"]
    result = run_pipeline(cfg, host=cdkd_host, output=tmp_path / "ens")
    alone = run_pipeline(single, host=cdkd_host, output=tmp_path / "one")
    weights = load_weights(result.run_dir / "teacher.safetensors")
    one = load_weights(alone.run_dir / "teacher.safetensors")
    # three members, trained apart: their size is the sum, their weights differ
    assert result.summary["params"]["teacher_network"] == 3 * alone.summary["params"]["teacher"]
    members = [
        {k.split(".", 2)[2]: v for k, v in weights.items() if k.startswith(f"members.{i}.")}
        for i in range(3)
    ]
    assert set(members[0]) == set(one)
    assert not torch.equal(members[0]["trunk.0.weight"], members[1]["trunk.0.weight"])
    teacher = load_run_teacher(result.run_dir, cdkd_host)  # from the run directory alone
    assert isinstance(teacher, TeacherEnsemble)
    x = torch.randn(16, 13)  # the tiny domain's 13 standardised features
    space, task = "sklearn.wine", "sklearn.wine"
    with torch.no_grad():
        mean = torch.stack([m(x, space, task).softmax(1) for m in teacher.members]).mean(0)
        assert torch.allclose(teacher(x, space, task).softmax(1), mean, atol=1e-6)
    domain = result.summary["domains"][space]
    assert domain["teacher"] is not None and domain["teacher"] > 0.8


def test_member_zero_of_an_unbagged_ensemble_is_the_single_teacher(
    tiny_config, cdkd_host, tmp_path
):
    cfg = copy.deepcopy(tiny_config)
    cfg["train"].update({"epochs": 2, "threads": 1})
    plain = run_pipeline(copy.deepcopy(cfg), host=cdkd_host, output=tmp_path / "a")
    cfg["teacher"]["ensemble"] = 2
    pair = run_pipeline(cfg, host=cdkd_host, output=tmp_path / "b")
    one = load_weights(plain.run_dir / "teacher.safetensors")
    both = load_weights(pair.run_dir / "teacher.safetensors")
    for key, value in one.items():
        assert torch.equal(both[f"members.0.{key}"], value), key
        assert not torch.equal(both[f"members.1.{key}"], value), key
    cfg["teacher"]["ensemble"] = 1  # one member: the single teacher, by the same path
    assert load_config(cfg, host=cdkd_host).teacher.ensemble is None


@pytest.mark.parametrize("stop_after", [2, 5, 10])  # in member 0, member 1, the baseline
def test_an_ensemble_resumes_inside_any_member(tiny_config, cdkd_host, tmp_path, stop_after):
    cfg = _ensemble_config(tiny_config, bagging=True)
    cfg["teacher"]["trunk"]["params"]["dropout"] = 0.1  # the torch RNG matters
    reference = run_pipeline(cfg, host=cdkd_host, output=tmp_path / "ref")
    resumed = stopped_and_resumed(cfg, cdkd_host, tmp_path / "stopped", stop_after)
    assert without_timing(resumed.summary) == without_timing(reference.summary)


def test_validation_refuses_an_ensemble_with_maml_or_teacher_pca(tiny_config, cdkd_host):
    cfg = _ensemble_config(tiny_config)
    cfg["teacher"]["maml"] = {"algorithm": "reptile", "meta_steps": 2}
    with pytest.raises(ConfigError, match=r"teacher.ensemble.*maml"):
        load_config(cfg, host=cdkd_host)
    cfg = _ensemble_config(tiny_config)
    cfg["student"]["weight_init"] = "teacher_pca"
    with pytest.raises(ConfigError, match=r"student.*teacher_pca.*has 3"):
        load_config(cfg, host=cdkd_host)
    for bad in (True, 0, "three"):
        cfg = copy.deepcopy(tiny_config)
        cfg["teacher"]["ensemble"] = bad
        with pytest.raises(ConfigError, match=r"teacher.ensemble"):
            load_config(cfg, host=cdkd_host)
    assert math.isfinite(member_seed(2**32 - 1, 63))
