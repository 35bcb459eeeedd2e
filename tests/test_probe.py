"""The residual linear head that adapts the teacher to a target: its fit against hand
computations and scikit-learn, and the choice of its regularisation."""

from __future__ import annotations

import math

import pytest
import torch

from cdkd_core.engine.probe import (
    candidate_logits,
    choose_head,
    fit_head,
    standardization,
    stratified_folds,
)
from cdkd_core.metrics import compute
from cdkd_core.nets.target_heads import TargetHeads, head_inputs, reads_view

torch.set_num_threads(1)


def _score(logits: torch.Tensor, y: torch.Tensor) -> float:
    return compute("accuracy", logits, y)


def test_a_bias_only_head_learns_the_class_shares():
    # no weights, no teacher: the maximum-likelihood logits are log class shares (3:1)
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 0, 0, 1])
    head = fit_head((x, None, y), 2, math.inf)
    probs = torch.softmax(candidate_logits(head, x, None), 1)
    assert torch.allclose(probs, torch.tensor([[0.75, 0.25]] * 4).double(), atol=1e-6)
    assert torch.count_nonzero(head.weight) == 0


def test_the_head_is_multinomial_logistic_regression_with_c_one_over_alpha_n():
    from sklearn.linear_model import LogisticRegression

    g = torch.Generator().manual_seed(1)
    x = torch.randn(90, 4, generator=g) * torch.tensor([1.0, 3.0, 0.5, 2.0]) + 1.0
    y = (x @ torch.randn(4, 3, generator=g)).argmax(1)
    alpha = 0.05
    head = fit_head((x, None, y), 3, alpha)
    mean, std = standardization(x)
    xs = ((x.double() - mean) / std).numpy()
    reference = LogisticRegression(C=1 / (alpha * len(x)), tol=1e-10, max_iter=10_000)
    reference.fit(xs, y.numpy())
    ours = torch.softmax(candidate_logits(head, x, None), 1).numpy()
    assert abs(ours - reference.predict_proba(xs)).max() < 1e-4


def test_the_teachers_scale_recalibrates_its_logits():
    # the teacher's logits are twice the true ones: the fitted scale is about 1/2
    g = torch.Generator().manual_seed(2)
    x = torch.randn(20_000, 2, generator=g)
    true = torch.stack([torch.zeros(len(x)), x @ torch.tensor([1.5, -1.0])], 1)
    y = torch.bernoulli(torch.softmax(true, 1)[:, 1], generator=g).long()
    head = fit_head((x, 2 * true, y), 2, math.inf)
    assert head.scale == pytest.approx(0.5, abs=0.03)
    assert (head.bias[1] - head.bias[0]).abs() < 0.05


def _separable(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g)
    return x, (x[:, 0] > 0).long()


def test_choose_head_keeps_a_right_teacher_and_replaces_a_useless_one():
    x, y = _separable(60, 3)
    vx, vy = _separable(40, 4)
    stats = standardization(x)

    # a teacher that already knows the rule, confidently: nothing to fit improves it
    def right(z: torch.Tensor) -> torch.Tensor:
        return torch.stack([-8 * z[:, 0], 8 * z[:, 0]], 1)

    choice = choose_head((x, right(x), y), (vx, right(vx), vy), 2, _score, stats=stats)
    assert choice.head.scale >= 1.0 and choice.score >= 0.95
    # a teacher that knows nothing: its logits are noise, a fitted head beats it
    g = torch.Generator().manual_seed(5)
    noise, vnoise = torch.randn(60, 2, generator=g), torch.randn(40, 2, generator=g)
    choice = choose_head((x, noise, y), (vx, vnoise, vy), 2, _score, stats=stats)
    assert choice.head.alpha is not None and not math.isinf(choice.head.alpha)
    assert abs(choice.head.scale) < 0.5 and choice.score > 0.9
    # every candidate is scored on val plus the out-of-fold train rows
    assert choice.selection_rows == 100 and choice.folds == 5
    assert len(choice.table) == 1 + 7


def test_choose_head_without_selection_rows_takes_alpha_one():
    x, y = torch.randn(3, 2), torch.tensor([0, 1, 2])  # one row a class: no folds
    choice = choose_head((x, None, y), None, 3, _score, stats=standardization(x))
    assert choice.head.alpha == 1.0 and choice.folds == 0 and choice.table == []


def test_stratified_folds_partition_the_rows_and_deal_each_class():
    y = torch.tensor([0] * 7 + [1] * 3)
    folds = stratified_folds(y, 3)
    assert sorted(torch.cat(folds).tolist()) == list(range(10))
    assert [int((y[f] == 1).sum()) for f in folds] == [1, 1, 1]


def test_target_heads_add_a_linear_map_of_features_and_view_to_the_scaled_teacher():
    heads = TargetHeads()
    weight = torch.tensor([[1.0, 0.0, 2.0], [0.0, -1.0, 0.0]])
    heads.set("a.b", weight, torch.tensor([0.5, 0.0]), view=True, scale=2.0)
    features, x = torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0]])
    base = torch.tensor([[1.0, 1.0]])
    # inputs [1, 2, 3]: [1 + 6 + 0.5, -2] + 2 * [1, 1]
    assert torch.equal(heads.logits("a.b", features, x, base), torch.tensor([[9.5, 0.0]]))
    again = TargetHeads()
    again.load_state_dict(heads.state_dict())
    assert "a.b" in again and again.reads_view("a.b")
    assert torch.equal(again.logits("a.b", features, x, base), torch.tensor([[9.5, 0.0]]))
    assert torch.equal(head_inputs(features, None), features)
    assert reads_view(torch.zeros(2, 3)) and not reads_view(torch.zeros(2, 3, dtype=torch.long))
