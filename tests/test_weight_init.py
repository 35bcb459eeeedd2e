"""Knowledge from weights: student input layers from the teacher's principal components."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from cdkd_core.config.loading import load_config
from cdkd_core.errors import ConfigError
from cdkd_core.nets.network import MultiDomainNet
from cdkd_core.nets.weight_init import (
    captured_variance,
    init_from_teacher,
    pair_layers,
    principal_directions,
)
from cdkd_core.run.runner import run_pipeline

torch.set_num_threads(1)

#: four filters in R^3 around the mean (1, 1, 1): +-3 e1 and +-1 e2, so the centred rows
#: have variance 18 along e1 and 2 along e2 (and none along e3)
W_T = torch.tensor(
    [[4.0, 1.0, 1.0], [-2.0, 1.0, 1.0], [1.0, 2.0, 1.0], [1.0, 0.0, 1.0]], dtype=torch.float64
)


def _net(stem: nn.Module, trunk_width: int = 4) -> MultiDomainNet:
    trunk = nn.Sequential(nn.Linear(trunk_width, trunk_width))
    trunk.in_features = trunk.out_features = trunk_width  # type: ignore[attr-defined]
    return MultiDomainNet({"a.b": stem}, trunk, {"t": nn.Linear(trunk_width, 2)})


def _rms(w: torch.Tensor) -> float:
    return float(w.detach().reshape(w.shape[0], -1).double().square().sum(dim=1).mean().sqrt())


def test_hand_made_filters() -> None:
    torch.manual_seed(0)
    teacher = _net(nn.Sequential(nn.Linear(3, 4), nn.GELU()))
    with torch.no_grad():
        teacher.stems["a~b"][0].weight.copy_(W_T)
    student = _net(nn.Sequential(nn.Linear(3, 2), nn.GELU()))
    layer = student.stems["a~b"][0]
    scale = _rms(layer.weight)
    report = init_from_teacher(student, teacher, "auto")
    # top-2 principal directions e1, e2 (largest entry positive), at the default init's norm
    expected = scale * torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    torch.testing.assert_close(layer.weight.detach(), expected.float())
    assert torch.all(layer.bias == 0)
    (done,) = report.layers
    assert (done.student, done.teacher, done.kind) == ("stems.a~b.0", "stems.a~b.0", "linear")
    assert done.components == 2
    assert done.explained_variance == pytest.approx(20 / 20)
    assert done.captured == pytest.approx(1.0)
    # one component: 18 of 20
    directions, squared = principal_directions(W_T, 1)
    torch.testing.assert_close(directions, torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64))
    assert float(squared[:1].sum() / squared.sum()) == pytest.approx(0.9)


def test_sign_convention_and_svd_agree_with_numpy() -> None:
    rng = np.random.default_rng(3)
    w = rng.normal(size=(12, 5))
    for flip in (1.0, -1.0):
        directions, squared = principal_directions(torch.from_numpy(flip * w), 3)
        c = w - w.mean(axis=0)
        _, s, vt = np.linalg.svd(c, full_matrices=False)
        for got, want in zip(directions.numpy(), vt[:3], strict=True):
            want = want * np.sign(want[np.argmax(np.abs(want))])
            np.testing.assert_allclose(got, want, atol=1e-10)
        np.testing.assert_allclose(squared.numpy(), s**2, atol=1e-10)


def test_conv_kernels_centre_cropped() -> None:
    torch.manual_seed(1)
    teacher = _net(nn.Sequential(nn.Conv2d(2, 6, 5, bias=False), nn.Flatten()))
    student = _net(nn.Sequential(nn.Conv2d(2, 3, 3), nn.Flatten()))
    t_conv, s_conv = teacher.stems["a~b"][0], student.stems["a~b"][0]
    scale = _rms(s_conv.weight)
    report = init_from_teacher(student, teacher)
    cropped = t_conv.weight.detach()[:, :, 1:4, 1:4].reshape(6, -1).double()
    c = cropped - cropped.mean(dim=0)
    _, s, vh = torch.linalg.svd(c, full_matrices=False)
    vh = vh[:3] * torch.sign(vh[:3].gather(1, vh[:3].abs().argmax(1, keepdim=True)))
    got = s_conv.weight.detach().reshape(3, -1).double()
    torch.testing.assert_close(got, scale * vh, rtol=1e-5, atol=1e-6)
    assert torch.all(s_conv.bias == 0)
    (done,) = report.layers
    assert done.kind == "conv" and done.components == 3
    assert done.explained_variance == pytest.approx(float(s[:3].square().sum() / s.square().sum()))
    assert done.captured == pytest.approx(done.explained_variance)
    assert done.random_captured < done.explained_variance  # Eckart-Young


def test_embedding_scores_rescaled_padding_kept() -> None:
    torch.manual_seed(2)
    teacher = _net(nn.EmbeddingBag(20, 6, mode="mean", padding_idx=0))
    student = _net(nn.EmbeddingBag(20, 2, mode="mean", padding_idx=0))
    with torch.no_grad():
        teacher.stems["a~b"].weight.normal_()
        student.stems["a~b"].weight[0] = 0.0
    emb = student.stems["a~b"].weight
    scale = _rms(emb[1:])
    report = init_from_teacher(student, teacher)
    t = teacher.stems["a~b"].weight.detach()[1:].double()
    c = t - t.mean(dim=0)
    u, s, vh = torch.linalg.svd(c, full_matrices=False)
    v = vh[:2] * torch.sign(vh[:2].gather(1, vh[:2].abs().argmax(1, keepdim=True)))
    scores = c @ v.T  # = U_2 S_2 up to the sign convention
    torch.testing.assert_close(scores.abs(), (u[:, :2] * s[:2]).abs())
    expected = scores * (scale / _rms(scores))
    torch.testing.assert_close(emb.detach()[1:].double(), expected, rtol=1e-5, atol=1e-6)
    assert torch.all(emb[0] == 0)
    (done,) = report.layers
    assert done.kind == "embedding"
    assert done.explained_variance == pytest.approx(float(s[:2].square().sum() / s.square().sum()))
    assert captured_variance(t, emb.detach()[1:], "embedding") == pytest.approx(
        done.explained_variance
    )


def test_more_student_rows_than_components_keep_random_rows() -> None:
    torch.manual_seed(4)
    teacher = _net(nn.Sequential(nn.Linear(3, 4)))
    student = _net(nn.Sequential(nn.Linear(3, 6)))
    before = student.stems["a~b"][0].weight.detach().clone()
    (done,) = init_from_teacher(student, teacher).layers
    assert done.components == 3  # four centred filters in R^3: rank 3
    torch.testing.assert_close(student.stems["a~b"][0].weight.detach()[3:], before[3:])
    assert done.explained_variance == pytest.approx(1.0)


def test_unpairable_layers_refused() -> None:
    teacher = _net(nn.Sequential(nn.LayerNorm(3), nn.Linear(3, 4)))
    student = _net(nn.Sequential(nn.Linear(3, 2)))
    with pytest.raises(ConfigError, match=r"student\.weight_init: teacher_pca found no"):
        pair_layers(student, teacher, "auto")
    with pytest.raises(ConfigError, match=r"student\.weight_init_layers: 'stems\.a~b'.*LayerNorm"):
        pair_layers(student, teacher, ["stems.a~b"])
    teacher = _net(nn.Sequential(nn.Linear(5, 4)))
    with pytest.raises(ConfigError, match="input widths differ: student 3, teacher 5"):
        pair_layers(student, teacher, ["stems.a.b"])
    teacher = _net(nn.Sequential(nn.Linear(3, 4)))
    with pytest.raises(ConfigError, match=r"'trunk\.0' cannot be paired.*trunk and heads"):
        pair_layers(student, teacher, ["trunk.0"])
    with pytest.raises(ConfigError, match="the teacher reads another view"):
        pair_layers(student, teacher, ["stems.a~b"], same_view=set())
    conv_t = _net(nn.Sequential(nn.Conv2d(3, 4, 4)))
    conv_s = _net(nn.Sequential(nn.Conv2d(3, 2, 3)))
    with pytest.raises(ConfigError, match="not a centre crop"):
        pair_layers(conv_s, conv_t, ["stems.a~b.0"])
    emb_t, emb_s = _net(nn.Embedding(10, 4)), _net(nn.Embedding(12, 2))
    with pytest.raises(ConfigError, match="vocabularies differ: student 12, teacher 10"):
        pair_layers(emb_s, emb_t, ["stems.a~b"])
    assert [p.student for p in pair_layers(student, teacher, ["stems.a~b.0"])[0]] == ["stems.a~b.0"]


def test_config_keys(host) -> None:
    from tests.conftest import TINY

    data = {**TINY, "student": {**TINY["student"], "weight_init": "teacher_pca"}}
    assert load_config(data, host=host).student.weight_init_layers == "auto"
    bad = {**TINY, "student": {**TINY["student"], "weight_init_layers": ["stems.x"]}}
    with pytest.raises(ConfigError, match=r"student\.weight_init_layers: applies to"):
        load_config(bad, host=host)


def test_end_to_end_tiny(tiny_config, host, tmp_path, monkeypatch) -> None:
    import cdkd_core.stages.distillation as pipeline
    from cdkd_core.nets.assembly import NetworkSlot, build_network

    initialised: list[dict[str, torch.Tensor]] = []

    def recording(student, teacher, layers, **kwargs):
        report = init_from_teacher(student, teacher, layers, **kwargs)
        initialised.append({k: v.detach().clone() for k, v in student.state_dict().items()})
        return report

    monkeypatch.setattr(pipeline, "init_from_teacher", recording)
    tiny_config["student"]["weight_init"] = "teacher_pca"
    result = run_pipeline(tiny_config, output=tmp_path, host=host)
    run_dir = result.run_dir
    records = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    (init,) = [r for r in records if r.get("stage") == "weight_init"]
    assert [x["student"] for x in init["layers"]] == [
        "stems.sklearn~wine.1",
        "stems.sklearn~breast_cancer.1",
    ]
    for layer in init["layers"]:
        assert 0 < layer["explained_variance"] <= 1
        assert layer["captured"] == pytest.approx(layer["explained_variance"])
        assert layer["random_captured"] < layer["explained_variance"]
    assert result.summary["domains"]["sklearn.wine"]["student"] is not None

    # the student started from what the function computes from the trained teacher
    layout = json.loads((run_dir / "layout.json").read_text())
    config = load_config(tiny_config, host=host)
    slots = {v: [NetworkSlot.from_dict(s) for s in layout[v]] for v in ("teacher", "student")}
    teacher = build_network(config.teacher, slots["teacher"], host, "teacher", 0)
    teacher.load_state_dict(load_file(str(run_dir / "teacher.safetensors")))
    fresh = build_network(config.student, slots["student"], host, "student", config.seed + 1)
    baseline = {k: v.clone() for k, v in fresh.state_dict().items()}
    report = init_from_teacher(fresh, teacher)
    (started,) = initialised
    for key, value in fresh.state_dict().items():
        torch.testing.assert_close(started[key], value)
    changed = {k for k, v in fresh.state_dict().items() if not torch.equal(v, baseline[k])}
    assert changed == {
        f"stems.sklearn~{d}.1.{p}" for d in ("wine", "breast_cancer") for p in ("weight", "bias")
    }
    assert [x.explained_variance for x in report.layers] == pytest.approx(
        [x["explained_variance"] for x in init["layers"]]
    )


def test_pipeline_refuses_unpairable_layer_before_training(tiny_config, host, tmp_path) -> None:
    tiny_config["student"].update(weight_init="teacher_pca", weight_init_layers=["trunk.0"])
    with pytest.raises(ConfigError, match=r"student\.weight_init_layers: 'trunk\.0'") as info:
        run_pipeline(tiny_config, output=tmp_path, host=host)
    assert "pairable here: stems.sklearn~wine.1, stems.sklearn~breast_cancer.1" in str(info.value)
    assert not list(tmp_path.glob("*/teacher.safetensors"))
