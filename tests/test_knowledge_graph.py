"""The knowledge_graph encoder, the graph_match loss and `cdkd graph`, against hand computations."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cdkd_core.builtins.encoders import PCAEncoder
from cdkd_core.builtins.knowledge_graph import (
    GraphMatchLoss,
    KnowledgeGraphEncoder,
    class_prototypes,
    cosine_matrix,
    edge_mask,
)
from cdkd_core.builtins.run_graph import read_run_graph
from cdkd_core.components.loss import BatchContext

torch.set_num_threads(1)
A = 1 / math.sqrt(2)


# --------------------------------------------------------------------------- graph maths


def test_class_prototypes_mean_labelled_rows() -> None:
    v = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [5.0, 5.0]])
    classes, protos = class_prototypes(v, torch.tensor([0, 0, 2, -1]))
    assert classes.tolist() == [0, 2]
    torch.testing.assert_close(protos, torch.tensor([[2.0, 0.0], [0.0, 2.0]]))


#: four prototypes: cos(0,1)=0.6, cos(0,2)=0, cos(0,3)=-1, cos(1,2)=0.8, cos(1,3)=-0.6, cos(2,3)=0
P4 = torch.tensor([[1.0, 0.0], [3.0, 4.0], [0.0, 2.0], [-1.0, 0.0]], dtype=torch.float64)
S4 = torch.tensor(
    [
        [1.0, 0.6, 0.0, -1.0],
        [0.6, 1.0, 0.8, -0.6],
        [0.0, 0.8, 1.0, 0.0],
        [-1.0, -0.6, 0.0, 1.0],
    ],
    dtype=torch.float64,
)


def test_cosine_matrix_by_hand() -> None:
    torch.testing.assert_close(cosine_matrix(P4), S4)
    assert cosine_matrix(torch.zeros(2, 3)).abs().max() == 0  # zero rows give 0, not NaN


def test_edge_mask_top_k_union_and_min_weight() -> None:
    everything = edge_mask(S4, None, -1.0)
    assert everything.tolist() == (~torch.eye(4, dtype=torch.bool)).tolist()
    # top-1: 0->1, 1->2, 2->1, 3->2 (cos 0 beats -0.6 and -1); symmetric union
    expected = {(0, 1), (1, 2), (2, 3)}
    got = edge_mask(S4, 1, -1.0)
    assert {(i, j) for i in range(4) for j in range(i + 1, 4) if got[i, j]} == expected
    assert torch.equal(got, got.T)
    strong = edge_mask(S4, None, 0.5)
    assert {(i, j) for i in range(4) for j in range(i + 1, 4) if strong[i, j]} == {(0, 1), (1, 2)}


# --------------------------------------------------------------------------- encoder


def _data() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    feats = {"b": torch.randn(12, 3, generator=g) + 2, "a": torch.randn(9, 3, generator=g)}
    labels = {"b": torch.arange(12) % 2, "a": torch.arange(9) % 3}
    return feats, labels


def test_encoder_vectors_are_pca_and_graph_is_prototype_cosine() -> None:
    feats, labels = _data()
    enc = KnowledgeGraphEncoder.from_params({"dim": 3})
    enc.fit(feats, labels)
    pca = PCAEncoder.from_params({"dim": 3})
    pca.fit(feats, labels)
    assert torch.equal(enc.transform(feats["a"], "a"), pca.transform(feats["a"], "a"))
    assert enc.node_names == ["a:0", "a:1", "a:2", "b:0", "b:1"]
    # with dim = F, PCA is a rotation of the centred features: prototypes' cosines are
    # those of the centred class means
    pooled = torch.cat([feats["a"], feats["b"]]).double()
    mean = pooled.mean(0)
    means = [feats["a"][labels["a"] == c].double().mean(0) for c in range(3)]
    means += [feats["b"][labels["b"] == c].double().mean(0) for c in range(2)]
    centred = torch.stack(means) - mean
    torch.testing.assert_close(enc.similarity.double(), cosine_matrix(centred), atol=1e-5, rtol=0)
    protos = torch.stack(
        [enc.transform(feats["a"], "a")[labels["a"] == c].mean(0) for c in range(3)]
        + [enc.transform(feats["b"], "b")[labels["b"] == c].mean(0) for c in range(2)]
    )
    torch.testing.assert_close(enc.prototypes, protos, atol=1e-5, rtol=0)
    names, weights = enc.class_graph()
    assert names == enc.node_names
    off = ~torch.eye(5, dtype=torch.bool)
    torch.testing.assert_close(weights[off], enc.similarity[off])  # dense: every pair
    assert weights.diagonal().abs().max() == 0


def test_encoder_add_domains_uses_labelled_rows_only() -> None:
    feats, labels = _data()
    enc = KnowledgeGraphEncoder.from_params({"dim": 2, "top_k": 1})
    enc.fit(feats, labels)
    x = torch.randn(6, 3, generator=torch.Generator().manual_seed(3))
    y = torch.tensor([0, -1, 1, 1, -1, -1])  # -1: unlabelled
    enc.add_domains({"t": x}, {"t": y})
    assert enc.node_names[-2:] == ["t:0", "t:1"]
    z = enc.transform(x, "t")
    torch.testing.assert_close(enc.prototypes[-2], z[0])
    torch.testing.assert_close(enc.prototypes[-1], z[2:4].mean(0))
    edges = enc.edges
    assert torch.equal(edges, edges.T) and not edges.diagonal().any()
    assert bool(edges.any(dim=1).all())  # top_k = 1: every node keeps its nearest


def test_encoder_domain_centering() -> None:
    feats, labels = _data()
    enc = KnowledgeGraphEncoder.from_params({"dim": 3, "center": "domain"})
    enc.fit(feats, labels)
    assert enc.centering == "domain"
    for offset, domain, n in ((0, "a", 3), (3, "b", 2)):
        z = enc.transform(feats[domain], domain)
        means = torch.stack([z[labels[domain] == c].mean(0) for c in range(n)])
        expected = means - z.mean(0)
        torch.testing.assert_close(enc.prototypes[offset : offset + n], expected, atol=1e-5, rtol=0)
    # a binary domain's centred prototypes point in opposite directions
    assert float(enc.similarity[3, 4]) == pytest.approx(-1.0, abs=1e-6)
    assert bool(enc.edges[3, 4])  # -1 is not rounded below the default min_weight


def test_encoder_save_load_roundtrip(tmp_path: Path) -> None:
    feats, labels = _data()
    enc = KnowledgeGraphEncoder.from_params({"dim": 2, "top_k": 2, "min_weight": -0.5})
    enc.fit(feats, labels)
    enc.save(tmp_path)
    meta = json.loads((tmp_path / "encoder.json").read_text())
    assert meta["name"] == "knowledge_graph"
    assert meta["state"]["domains"] == ["a", "a", "a", "b", "b"]
    assert meta["state"]["classes"] == [0, 1, 2, 0, 1]
    fresh = KnowledgeGraphEncoder.from_params({"dim": 2, "top_k": 2, "min_weight": -0.5})
    fresh.load(tmp_path)
    assert fresh.dim == enc.dim and fresh.node_names == enc.node_names
    assert torch.equal(fresh.transform(feats["b"], "b"), enc.transform(feats["b"], "b"))
    for a, b in zip(fresh.class_graph(), enc.class_graph(), strict=True):
        assert a == b if isinstance(a, list) else torch.equal(a, b)
    assert torch.equal(fresh.edges, enc.edges)
    graph = read_run_graph(tmp_path)  # what `cdkd graph` reads
    assert graph.nodes == enc.node_names and torch.equal(graph.edges, enc.edges)


# --------------------------------------------------------------------------- loss


def _loss(names: list[str], weights: torch.Tensor, **params) -> GraphMatchLoss:
    loss = GraphMatchLoss.from_params(params)
    loss.setup(2, 2)
    assert isinstance(loss.projector, torch.nn.Linear)
    with torch.no_grad():  # identity projector: student prototypes are feature means
        loss.projector.weight.copy_(torch.eye(2))
        loss.projector.bias.zero_()
    loss.set_graph(names, weights)
    return loss


def _ctx(domain: str, features: list[list[float]], labels: list[int]) -> BatchContext:
    x = torch.tensor(features)
    y = torch.tensor(labels)
    return BatchContext(
        domain=domain,
        task="t",
        student_logits=torch.zeros(len(y), 3),
        student_features=x,
        labels=y,
        labelled=y >= 0,
    )


#: teacher graph over d:0, d:1, d:2: W01 = 0.6, W02 = 0, W12 = 0.8 (cosines of P4[:3])
NAMES3 = ["d:0", "d:1", "d:2"]
W3 = S4[:3, :3].float()
#: student prototypes (1,0), (1,1), (0,1): cos 1/√2, 0, 1/√2; the -1 row is ignored
BATCH3 = ([[1.0, 0.0], [1.0, 0.0], [2.0, 2.0], [0.0, 3.0], [9.0, -9.0]], [0, 0, 1, 2, -1])


def test_graph_match_mse_three_classes_by_hand() -> None:
    loss = _loss(NAMES3, W3)
    value = loss(_ctx("d", *BATCH3))
    expected = ((A - 0.6) ** 2 + 0.0 + (A - 0.8) ** 2) / 3
    assert value is not None
    assert float(value.detach()) == pytest.approx(expected, abs=1e-6)


def test_graph_match_kl_three_classes_by_hand() -> None:
    loss = _loss(NAMES3, W3, method="kl", temperature=0.5)

    def kl(t: list[float], s: list[float]) -> float:
        pt = [math.exp(v / 0.5) for v in t]
        ps = [math.exp(v / 0.5) for v in s]
        pt = [v / sum(pt) for v in pt]
        ps = [v / sum(ps) for v in ps]
        return sum(a * math.log(a / b) for a, b in zip(pt, ps, strict=True))

    expected = (kl([0.6, 0.0], [A, 0.0]) + kl([0.6, 0.8], [A, A]) + kl([0.0, 0.8], [0.0, A])) / 3
    value = loss(_ctx("d", *BATCH3))
    assert value is not None
    assert float(value.detach()) == pytest.approx(expected, abs=1e-6)


def test_graph_match_domain_centering_by_hand() -> None:
    loss = _loss(NAMES3, W3)
    loss.center_domains = True
    # labelled rows' mean (1, 1.25); centred prototypes (0, -1.25), (1, 0.75), (-1, 1.75)
    q = [(0.0, -1.25), (1.0, 0.75), (-1.0, 1.75)]

    def cos(u: tuple[float, float], v: tuple[float, float]) -> float:
        return (u[0] * v[0] + u[1] * v[1]) / math.hypot(*u) / math.hypot(*v)

    expected = (
        (cos(q[0], q[1]) - 0.6) ** 2 + (cos(q[0], q[2]) - 0.0) ** 2 + (cos(q[1], q[2]) - 0.8) ** 2
    ) / 3
    value = loss(_ctx("d", *BATCH3))
    assert float(value.detach()) == pytest.approx(expected, abs=1e-6)


def test_graph_match_respects_edges_and_has_gradient() -> None:
    loss = GraphMatchLoss.from_params({})
    loss.setup(2, 2)
    with torch.no_grad():
        loss.projector.weight.copy_(torch.eye(2))
        loss.projector.bias.zero_()
    edges = torch.tensor([[False, True, False], [True, False, True], [False, True, False]])
    loss.set_graph(NAMES3, W3, edges)  # no 0-2 edge
    ctx = _ctx("d", *BATCH3)
    ctx.student_features.requires_grad_(True)
    value = loss(ctx)
    assert float(value.detach()) == pytest.approx(((A - 0.6) ** 2 + (A - 0.8) ** 2) / 2, abs=1e-6)
    value.backward()
    assert ctx.student_features.grad is not None and ctx.student_features.grad.abs().sum() > 0


def test_graph_match_memory_gives_cross_domain_pairs() -> None:
    names = ["d:0", "d:1", "e:0"]
    # teacher: e:0 close to d:0 (0.9), far from d:1 (-0.2); d:0-d:1 0.1
    w = torch.tensor([[1.0, 0.1, 0.9], [0.1, 1.0, -0.2], [0.9, -0.2, 1.0]])
    loss = _loss(names, w, momentum=0.5)
    loss.train()
    first = loss(_ctx("d", [[1.0, 0.0], [0.0, 1.0]], [0, 1]))
    assert float(first.detach()) == pytest.approx((0.0 - 0.1) ** 2, abs=1e-6)  # one pair, twice
    torch.testing.assert_close(loss.memory[:2], torch.eye(2))
    assert loss.seen.tolist() == [1, 1, 0]
    # a batch of domain e alone: its only class pairs with the remembered d prototypes
    second = loss(_ctx("e", [[1.0, 1.0], [1.0, 1.0]], [0, 0]))
    expected = ((A - 0.9) ** 2 + (A - (-0.2)) ** 2) / 2
    assert float(second.detach()) == pytest.approx(expected, abs=1e-6)
    # EMA: m <- 0.5 m + 0.5 q on the next d batch
    loss(_ctx("d", [[3.0, 0.0]], [0]))
    torch.testing.assert_close(loss.memory[0], torch.tensor([2.0, 0.0]))
    # eval mode leaves the memory alone; without memory there is no pair for one class
    loss.eval()
    loss(_ctx("d", [[5.0, 5.0]], [0]))
    torch.testing.assert_close(loss.memory[0], torch.tensor([2.0, 0.0]))
    alone = _loss(names, w, memory=False)
    alone(_ctx("d", [[1.0, 0.0], [0.0, 1.0]], [0, 1]))
    assert alone(_ctx("e", [[1.0, 1.0]], [0])) is None


def test_graph_match_none_without_labelled_nodes() -> None:
    loss = _loss(NAMES3, W3)
    assert loss(_ctx("d", [[1.0, 0.0]], [-1])) is None
    assert loss(_ctx("other", [[1.0, 0.0], [0.0, 1.0]], [0, 1])) is None  # not a node


def test_graph_match_bind_takes_the_encoder_graph() -> None:
    feats, labels = _data()
    enc = KnowledgeGraphEncoder.from_params({"dim": 2, "top_k": 1})
    enc.fit(feats, labels)
    loss = GraphMatchLoss.from_params({})
    loss.setup(4, enc.dim)
    loss.bind(enc)
    assert torch.equal(loss.edges.bool(), enc.edges)
    assert loss.memory.shape == (5, enc.dim)
    assert loss.center_domains is False
    centred = KnowledgeGraphEncoder.from_params({"dim": 2, "center": "domain"})
    centred.fit(feats, labels)
    loss.bind(centred)
    assert loss.center_domains is True
    pca = PCAEncoder.from_params({"dim": 2})
    pca.fit(feats, labels)
    with pytest.raises(ValueError, match="needs a class graph"):
        loss.bind(pca)


def test_graph_match_refused_with_an_encoder_without_graph(host) -> None:
    from cdkd_core.config.loading import load_config
    from cdkd_core.errors import ConfigError
    from tests.conftest import TINY

    data = json.loads(json.dumps(TINY))
    data["losses"].append({"name": "graph_match"})
    with pytest.raises(ConfigError, match=r"needs \['graph'\].*'pca' provides only"):
        load_config(data, host=host)
    data["encoder"] = {"name": "knowledge_graph", "params": {"dim": 4}}
    assert load_config(data, host=host).losses[-1].name == "graph_match"


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def kg_run(tmp_path_factory) -> Path:
    from cdkd_core import load_config, run_pipeline
    from cdkd_core.host.plugin_host import PluginHost
    from tests.conftest import TINY

    data = json.loads(json.dumps(TINY))
    data["encoder"] = {"name": "knowledge_graph", "params": {"dim": 4}}
    data["losses"].append({"name": "graph_match"})
    # a target the teacher can read (wine's input space), with a fifth of its labels: its
    # classes join the graph from those rows
    data["domains"].append(
        {"name": "sklearn.wine", "alias": "wine_t", "role": "target", "label_fraction": 0.2}
    )
    host = PluginHost(entry_points=False)
    out = tmp_path_factory.mktemp("kg")
    result = run_pipeline(load_config(data, host=host), output=out, host=host)
    assert result.summary["domains"]
    return result.run_dir


def test_run_saves_graph_and_cli_prints_cross_domain_edges(kg_run: Path) -> None:
    from cdkd_core.cli.app import app

    graph = read_run_graph(kg_run)
    assert set(graph.domains) == {"sklearn.wine", "sklearn.breast_cancer", "wine_t"}
    assert len(graph.nodes) == 8  # 3 + 2 source classes, 3 target classes
    for c in range(3):  # the target's labelled rows are wine rows: its classes match wine's
        i, j = graph.nodes.index(f"sklearn.wine:{c}"), graph.nodes.index(f"wine_t:{c}")
        others = [graph.similarity[i, graph.nodes.index(f"wine_t:{o}")] for o in range(3)]
        assert graph.similarity[i, j] == max(others) and graph.similarity[i, j] > 0.5
    assert graph.labels[graph.nodes.index("sklearn.breast_cancer:0")] in ("malignant", "0")
    top = graph.cross_domain_edges(2)
    assert len(top) == 2 and top[0][2] >= top[1][2]
    result = CliRunner().invoke(app, ["graph", str(kg_run), "--top", "3"])
    assert result.exit_code == 0, result.output
    assert "cross-domain" in result.output and "sklearn.wine:" in result.output
    assert f"{top[0][2]:.4f}" in result.output
    metrics = [json.loads(line) for line in (kg_run / "metrics.jsonl").read_text().splitlines()]
    student = [r for r in metrics if r.get("stage") == "student" and "loss" in r]
    assert student and all("3:graph_match" in r["loss"] for r in student)


def test_cli_graph_errors(tmp_path: Path) -> None:
    from cdkd_core.cli.app import app

    runner = CliRunner()
    result = runner.invoke(app, ["graph", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "no such run directory" in result.output
    assert "Traceback" not in result.output
    enc = PCAEncoder.from_params({"dim": 2})
    enc.fit(*_data())
    enc.save(tmp_path)
    result = runner.invoke(app, ["graph", str(tmp_path)])
    assert result.exit_code == 2 and "builds no class graph" in result.output


def test_graph_match_memory_is_in_the_state_dict() -> None:
    """The memory travels with the loop's checkpoint (``loss.state_dict()``), so a resumed
    run continues with the same memory."""
    loss = _loss(NAMES3, W3)
    loss.train()
    loss(_ctx("d", [[1.0, 0.0], [0.0, 2.0]], [0, 1]))
    state = loss.state_dict()
    assert {"memory", "seen", "edges", "teacher_weights"} <= set(state)
    fresh = _loss(NAMES3, W3)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.memory, loss.memory) and torch.equal(fresh.seen, loss.seen)
    ctx = _ctx("d", [[3.0, 1.0]], [2])
    assert float(fresh(ctx).detach()) == pytest.approx(float(loss(ctx).detach()), abs=0)
