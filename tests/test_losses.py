"""The built-in losses against hand computations on small tensors."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pydantic
import pytest
import torch

from cdkd_core.builtins.knowledge_graph import GraphMatchLoss
from cdkd_core.builtins.losses import (
    CrossEntropyLoss,
    GraphLoss,
    HintLoss,
    KDLoss,
    RelationalLoss,
)
from cdkd_core.components.loss import BatchContext, Loss
from cdkd_core.host.builtins import kind_plugin

torch.set_num_threads(1)

#: the built-in plugin ``cdkd.losses``'s hook: every built-in feature's losses
register_losses = kind_plugin("losses").register_losses

ALL = (CrossEntropyLoss, KDLoss, HintLoss, RelationalLoss, GraphLoss, GraphMatchLoss)


def make_ctx(
    b: int = 5,
    c: int = 4,
    fs: int = 6,
    k: int = 3,
    *,
    seed: int = 0,
    labelled: list[bool] | None = None,
    teacher: bool = True,
    knowledge: bool = True,
) -> BatchContext:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, c, (b,), generator=g)
    mask = torch.tensor(labelled) if labelled is not None else torch.ones(b, dtype=torch.bool)
    labels = torch.where(mask, labels, torch.full_like(labels, -1))
    return BatchContext(
        domain="d",
        task="t",
        student_logits=torch.randn(b, c, generator=g, dtype=torch.float64, requires_grad=True),
        student_features=torch.randn(b, fs, generator=g, dtype=torch.float64, requires_grad=True),
        labels=labels,
        labelled=mask,
        teacher_logits=torch.randn(b, c, generator=g, dtype=torch.float64) if teacher else None,
        knowledge=torch.randn(b, k, generator=g, dtype=torch.float64) if knowledge else None,
    )


def build(cls: type[Loss], fs: int = 6, k: int | None = 3, **params: Any) -> Loss:
    loss = cls.from_params(params)
    assert isinstance(loss, Loss)
    loss.setup(fs, k)
    return loss.double()


def np_softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def val(x: torch.Tensor | None) -> float:
    assert x is not None
    assert x.dim() == 0
    return float(x.detach())


# --------------------------------------------------------------------------- registration


def test_register_and_class_contract() -> None:
    seen: list[type] = []
    register_losses(seen.append)
    assert seen == list(ALL)
    names = [cls.name for cls in ALL]
    assert names == ["ce", "kd", "hint", "relational", "graph", "graph_match"]
    for cls in ALL:
        assert cls.name == cls.name.lower()
        assert cls.summary()
        assert cls.requires <= {"labels", "teacher_logits", "vectors", "graph"}
        for field in cls.Config.model_fields.values():
            assert field.description


# --------------------------------------------------------------------------- ce


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_ce_matches_hand_on_labelled_rows(smoothing: float) -> None:
    ctx = make_ctx(labelled=[True, False, True, True, False])
    loss = build(CrossEntropyLoss, label_smoothing=smoothing)
    z = ctx.student_logits.detach().numpy()
    y = ctx.labels.numpy()
    c = z.shape[1]
    terms = []
    for i in range(z.shape[0]):
        if not ctx.labelled[i]:
            continue
        logp = np.log(np_softmax(z[i]))
        target = (1 - smoothing) * np.eye(c)[y[i]] + smoothing / c
        terms.append(-(target * logp).sum())
    assert val(loss(ctx)) == pytest.approx(np.mean(terms), rel=1e-10)
    # unlabelled rows carry no gradient
    loss(ctx).backward()
    grad = ctx.student_logits.grad
    assert grad is not None
    assert torch.all(grad[~ctx.labelled] == 0)
    assert torch.all(grad[ctx.labelled].abs().sum(dim=1) > 0)


def test_ce_none_without_labelled_rows() -> None:
    ctx = make_ctx(labelled=[False] * 5)
    assert build(CrossEntropyLoss)(ctx) is None


# --------------------------------------------------------------------------- kd


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_kd_matches_hand(temperature: float) -> None:
    ctx = make_ctx(labelled=[True, False, False, True, False])  # labels play no role
    loss = build(KDLoss, temperature=temperature)
    s = ctx.student_logits.detach().numpy()
    assert ctx.teacher_logits is not None
    t = ctx.teacher_logits.numpy()
    pt, ps = np_softmax(t / temperature), np_softmax(s / temperature)
    hand = temperature**2 * (pt * np.log(pt / ps)).sum() / s.shape[0]
    assert val(loss(ctx)) == pytest.approx(hand, rel=1e-10)


def test_kd_zero_when_logits_equal() -> None:
    ctx = make_ctx()
    ctx.teacher_logits = ctx.student_logits.detach().clone()
    assert val(build(KDLoss)(ctx)) == pytest.approx(0.0, abs=1e-12)


def test_kd_gradient_closed_form_and_teacher_detached() -> None:
    temperature = 3.0
    ctx = make_ctx()
    assert ctx.teacher_logits is not None
    teacher = ctx.teacher_logits.clone().requires_grad_(True)
    ctx.teacher_logits = teacher  # not detached by the caller: the loss must detach it
    out = build(KDLoss, temperature=temperature)(ctx)
    assert out is not None
    out.backward()
    assert teacher.grad is None
    s = ctx.student_logits
    b = s.shape[0]
    ps = torch.softmax(s.detach() / temperature, dim=-1)
    pt = torch.softmax(teacher.detach() / temperature, dim=-1)
    expected = (ps - pt) * temperature / b
    assert s.grad is not None
    torch.testing.assert_close(s.grad, expected, rtol=1e-10, atol=1e-12)


def test_kd_none_without_teacher() -> None:
    assert build(KDLoss)(make_ctx(teacher=False)) is None


# --------------------------------------------------------------------------- hint


@pytest.mark.parametrize("normalize", [False, True])
def test_hint_matches_hand_mse(normalize: bool) -> None:
    ctx = make_ctx()
    loss = build(HintLoss, normalize=normalize)
    proj = loss.projector
    assert isinstance(proj, torch.nn.Linear)
    w = proj.weight.detach().numpy()
    bias = proj.bias.detach().numpy()
    x = ctx.student_features.detach().numpy()
    assert ctx.knowledge is not None
    phi = ctx.knowledge.numpy()
    pred = x @ w.T + bias
    if normalize:
        pred = pred / np.linalg.norm(pred, axis=1, keepdims=True)
        phi = phi / np.linalg.norm(phi, axis=1, keepdims=True)
    hand = sum((pred[i, d] - phi[i, d]) ** 2 for i in range(5) for d in range(3)) / 15
    assert val(loss(ctx)) == pytest.approx(hand, rel=1e-10)


def test_hint_projector_is_trainable_submodule() -> None:
    loss = HintLoss.from_params({})
    assert loss.projector is None
    assert list(loss.parameters()) == []
    loss.setup(6, 3)
    params = dict(loss.named_parameters())
    assert set(params) == {"projector.weight", "projector.bias"}
    assert params["projector.weight"].shape == (3, 6)
    assert all(p.requires_grad for p in params.values())
    loss = loss.double()
    ctx = make_ctx()
    out = loss(ctx)
    assert out is not None
    out.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in loss.parameters())


def test_hint_mlp_projector() -> None:
    loss = build(HintLoss, hidden=8)
    proj = loss.projector
    assert isinstance(proj, torch.nn.Sequential)
    assert [type(m) for m in proj] == [torch.nn.Linear, torch.nn.GELU, torch.nn.Linear]
    assert proj[0].in_features == 6 and proj[0].out_features == 8
    assert proj[2].out_features == 3
    ctx = make_ctx()
    assert ctx.knowledge is not None
    expected = torch.mean((proj(ctx.student_features) - ctx.knowledge) ** 2)
    assert val(loss(ctx)) == pytest.approx(float(expected.detach()), rel=1e-10)


def test_hint_setup_requires_knowledge_dim() -> None:
    with pytest.raises(ValueError, match="knowledge_dim"):
        HintLoss.from_params({}).setup(6, None)


def test_hint_none_without_knowledge() -> None:
    assert build(HintLoss)(make_ctx(knowledge=False)) is None


# --------------------------------------------------------------------------- relational


def rkd_terms_by_loops(s: np.ndarray, t: np.ndarray) -> tuple[float, float]:
    """Distance and angle Huber terms by explicit loops over pairs and triplets."""
    b = s.shape[0]

    def huber(a: float, c: float) -> float:
        d = abs(a - c)
        return 0.5 * d * d if d < 1 else d - 0.5

    def dist(x: np.ndarray) -> dict[tuple[int, int], float]:
        pairs = {
            (i, j): float(np.linalg.norm(x[i] - x[j]))
            for i, j in itertools.permutations(range(b), 2)
        }
        mu = sum(pairs.values()) / len(pairs)
        return {p: v / mu for p, v in pairs.items()}

    def angle(x: np.ndarray, i: int, j: int, k: int) -> float:
        e_ij = (x[i] - x[j]) / np.linalg.norm(x[i] - x[j])
        e_kj = (x[k] - x[j]) / np.linalg.norm(x[k] - x[j])
        return float(e_ij @ e_kj)

    ds, dt = dist(s), dist(t)
    d_term = sum(huber(ds[p], dt[p]) for p in ds) / len(ds)
    triplets = list(itertools.permutations(range(b), 3))
    a_terms = [huber(angle(s, *tr), angle(t, *tr)) for tr in triplets]
    a_term = sum(a_terms) / len(a_terms) if a_terms else 0.0
    return d_term, a_term


def test_rkd_matches_loops() -> None:
    ctx = make_ctx(b=6)
    s = ctx.student_features.detach().numpy()
    assert ctx.knowledge is not None
    t = ctx.knowledge.numpy()
    d_term, a_term = rkd_terms_by_loops(s, t)
    only_d = build(RelationalLoss, distance_weight=1.0, angle_weight=0.0)
    only_a = build(RelationalLoss, distance_weight=0.0, angle_weight=1.0)
    assert val(only_d(ctx)) == pytest.approx(d_term, rel=1e-9)
    assert val(only_a(ctx)) == pytest.approx(a_term, rel=1e-9)
    both = build(RelationalLoss)  # paper defaults: λ_D = 1, λ_A = 2
    assert val(both(ctx)) == pytest.approx(d_term + 2 * a_term, rel=1e-9)
    weighted = build(RelationalLoss, distance_weight=0.5, angle_weight=3.0)
    assert val(weighted(ctx)) == pytest.approx(0.5 * d_term + 3 * a_term, rel=1e-9)


def test_rkd_huber_linear_branch() -> None:
    # teacher with one far outlier: normalised distances differ by more than 1 (linear branch)
    s = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    t = np.array([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1], [30.0, 30.0]])
    ctx = make_ctx(b=4, fs=2, k=2)
    ctx.student_features = torch.tensor(s, requires_grad=True)
    ctx.knowledge = torch.tensor(t)
    d_term, a_term = rkd_terms_by_loops(s, t)
    loss = build(RelationalLoss, fs=2, k=2)
    assert val(loss(ctx)) == pytest.approx(d_term + 2 * a_term, rel=1e-9)


def test_rkd_invariant_to_teacher_scale() -> None:
    ctx = make_ctx(b=6)
    assert ctx.knowledge is not None
    only_d = build(RelationalLoss, angle_weight=0.0)
    both = build(RelationalLoss)
    before_d, before = val(only_d(ctx)), val(both(ctx))
    ctx.knowledge = ctx.knowledge * 37.5
    assert val(only_d(ctx)) == pytest.approx(before_d, rel=1e-9)
    assert val(both(ctx)) == pytest.approx(before, rel=1e-9)


def test_rkd_zero_when_student_is_scaled_teacher() -> None:
    ctx = make_ctx(b=5, fs=3, k=3)
    assert ctx.knowledge is not None
    ctx.student_features = (ctx.knowledge * 0.2).clone().requires_grad_(True)
    assert val(build(RelationalLoss, fs=3)(ctx)) == pytest.approx(0.0, abs=1e-12)


def test_rkd_identical_points_finite() -> None:
    ctx = make_ctx(b=4)
    feats = ctx.student_features.detach().clone()
    feats[1] = feats[0]
    ctx.student_features = feats.requires_grad_(True)
    out = build(RelationalLoss)(ctx)
    assert out is not None and torch.isfinite(out)
    out.backward()
    assert ctx.student_features.grad is not None
    assert torch.isfinite(ctx.student_features.grad).all()


def test_rkd_tiny_batches() -> None:
    assert build(RelationalLoss)(make_ctx(b=1)) is None
    ctx = make_ctx(b=2)
    s = ctx.student_features.detach().numpy()
    assert ctx.knowledge is not None
    d_term, _ = rkd_terms_by_loops(s, ctx.knowledge.numpy())
    # with two examples no triplet exists: the distance term alone
    assert val(build(RelationalLoss)(ctx)) == pytest.approx(d_term, rel=1e-9)
    assert build(RelationalLoss, distance_weight=0.0)(ctx) is None


def test_sp_matches_formula() -> None:
    ctx = make_ctx(b=5, fs=6, k=3)
    s = ctx.student_features.detach().numpy()
    assert ctx.knowledge is not None
    t = ctx.knowledge.numpy()
    b = s.shape[0]

    def gram(x: np.ndarray) -> np.ndarray:
        g = np.array([[float(x[i] @ x[j]) for j in range(b)] for i in range(b)])
        return np.stack([g[i] / math.sqrt(sum(v * v for v in g[i])) for i in range(b)])

    hand = sum((gram(t)[i, j] - gram(s)[i, j]) ** 2 for i in range(b) for j in range(b)) / b**2
    loss = build(RelationalLoss, method="sp")
    assert val(loss(ctx)) == pytest.approx(hand, rel=1e-10)
    ctx.student_features = (ctx.knowledge * 3.0).clone().requires_grad_(True)
    assert val(build(RelationalLoss, fs=3, method="sp")(ctx)) == pytest.approx(0.0, abs=1e-12)
    assert build(RelationalLoss, method="sp")(make_ctx(b=1)) is None


def test_relational_none_without_knowledge() -> None:
    for method in ("rkd", "sp"):
        assert build(RelationalLoss, method=method)(make_ctx(knowledge=False)) is None


# --------------------------------------------------------------------------- graph


def graph_by_loops(s: np.ndarray, t: np.ndarray, tau: float) -> float:
    b = s.shape[0]

    def transitions(x: np.ndarray) -> np.ndarray:
        d2 = np.array([[float(((x[i] - x[j]) ** 2).sum()) for j in range(b)] for i in range(b)])
        mean = sum(d2[i, j] for i in range(b) for j in range(b) if i != j) / (b * (b - 1))
        p = np.zeros((b, b))
        for i in range(b):
            z = sum(math.exp(-d2[i, j] / mean / tau) for j in range(b) if j != i)
            for j in range(b):
                if j != i:
                    p[i, j] = math.exp(-d2[i, j] / mean / tau) / z
        return p

    pt, ps = transitions(t), transitions(s)
    kl = [
        sum(pt[i, j] * math.log(pt[i, j] / ps[i, j]) for j in range(b) if j != i) for i in range(b)
    ]
    return sum(kl) / b


@pytest.mark.parametrize("tau", [1.0, 0.3])
def test_graph_matches_loops(tau: float) -> None:
    ctx = make_ctx(b=6)
    s = ctx.student_features.detach().numpy()
    assert ctx.knowledge is not None
    hand = graph_by_loops(s, ctx.knowledge.numpy(), tau)
    assert hand > 0
    assert val(build(GraphLoss, temperature=tau)(ctx)) == pytest.approx(hand, rel=1e-9)


def test_graph_zero_when_student_matches_knowledge_up_to_scale() -> None:
    ctx = make_ctx(b=6, fs=3, k=3)
    assert ctx.knowledge is not None
    ctx.student_features = (ctx.knowledge * 5.0).clone().requires_grad_(True)
    assert val(build(GraphLoss, fs=3)(ctx)) == pytest.approx(0.0, abs=1e-12)


def test_graph_tiny_batch_and_missing_knowledge() -> None:
    assert build(GraphLoss)(make_ctx(b=2)) is None
    assert build(GraphLoss)(make_ctx(knowledge=False)) is None


# --------------------------------------------------------------------------- all losses


CASES: list[tuple[type[Loss], dict[str, Any]]] = [
    (CrossEntropyLoss, {"label_smoothing": 0.1}),
    (KDLoss, {}),
    (HintLoss, {}),
    (HintLoss, {"hidden": 4, "normalize": True}),
    (RelationalLoss, {}),
    (RelationalLoss, {"method": "sp"}),
    (GraphLoss, {}),
]


@pytest.mark.parametrize(("cls", "params"), CASES)
def test_differentiable_wrt_student(cls: type[Loss], params: dict[str, Any]) -> None:
    ctx = make_ctx(b=5)
    out = build(cls, **params)(ctx)
    assert out is not None and torch.isfinite(out)
    out.backward()
    grads = [ctx.student_logits.grad, ctx.student_features.grad]
    used = [g for g in grads if g is not None]
    assert used, "no gradient reached the student"
    assert all(torch.isfinite(g).all() for g in used)
    assert any(g.abs().sum() > 0 for g in used)


@pytest.mark.parametrize(
    ("cls", "params"),
    [
        (CrossEntropyLoss, {"label_smoothing": 1.0}),
        (CrossEntropyLoss, {"label_smoothing": -0.1}),
        (KDLoss, {"temperature": 0}),
        (KDLoss, {"temperature": -1.0}),
        (KDLoss, {"temperature": float("nan")}),
        (HintLoss, {"hidden": 0}),
        (RelationalLoss, {"distance_weight": -1.0}),
        (RelationalLoss, {"angle_weight": -0.5}),
        (RelationalLoss, {"method": "cka"}),
        (GraphLoss, {"temperature": 0.0}),
    ],
)
def test_config_rejects_invalid_values(cls: type[Loss], params: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        cls.from_params(params)


@pytest.mark.parametrize("cls", ALL)
def test_config_rejects_unknown_keys_and_is_frozen(cls: type[Loss]) -> None:
    with pytest.raises(pydantic.ValidationError):
        cls.from_params({"no_such_option": 1})
    loss = cls.from_params({})
    with pytest.raises(pydantic.ValidationError):
        loss.config.no_such_option = 1  # type: ignore[attr-defined]


def test_defaults() -> None:
    assert CrossEntropyLoss.from_params({}).config.label_smoothing == 0.0
    assert KDLoss.from_params({}).config.temperature == 4.0
    hint = HintLoss.from_params({}).config
    assert hint.hidden is None and hint.normalize is False
    rel = RelationalLoss.from_params({}).config
    assert (rel.distance_weight, rel.angle_weight, rel.method) == (1.0, 2.0, "rkd")
    assert GraphLoss.from_params({}).config.temperature == 1.0
