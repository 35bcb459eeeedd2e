"""Evaluation metrics against hand computations and scikit-learn / SciPy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import ks_2samp
from sklearn.metrics import balanced_accuracy_score, f1_score, roc_auc_score

from cdkd_core.metrics import (
    METRICS,
    accuracy,
    balanced_accuracy,
    compute,
    evaluate,
    f1_macro,
    ks_statistic,
    neg_log_loss,
    roc_auc,
)

torch.set_num_threads(1)


def _onehot_logits(pred: list[int], num_classes: int) -> torch.Tensor:
    """Logits whose argmax is ``pred``."""
    return torch.nn.functional.one_hot(torch.tensor(pred), num_classes).float() * 3.0


def _random(n: int, c: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, generator=g) * 2
    y = torch.randint(0, c, (n,), generator=g)
    y[:c] = torch.arange(c)  # every class present
    return logits, y


# --------------------------------------------------------------------------- accuracy


def test_accuracy_by_hand() -> None:
    y = torch.tensor([0, 1, 2, 2, 1])
    logits = _onehot_logits([0, 1, 1, 2, 0], 3)
    assert accuracy(logits, y) == pytest.approx(3 / 5)
    assert accuracy(_onehot_logits([0, 1, 2, 2, 1], 3), y) == 1.0
    assert accuracy(_onehot_logits([1, 0, 0, 0, 0], 3), y) == 0.0


def test_balanced_accuracy_by_hand() -> None:
    # class 0: 4 examples, 3 right; class 1: 1 example, 0 right
    y = torch.tensor([0, 0, 0, 0, 1])
    logits = _onehot_logits([0, 0, 0, 1, 0], 2)
    assert balanced_accuracy(logits, y) == pytest.approx((3 / 4 + 0 / 1) / 2)
    assert accuracy(logits, y) == pytest.approx(3 / 5)


def test_balanced_accuracy_uses_only_classes_present_in_y() -> None:
    y = torch.tensor([0, 0, 2, 2])
    logits = _onehot_logits([0, 1, 2, 2], 4)
    assert balanced_accuracy(logits, y) == pytest.approx((1 / 2 + 1) / 2)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_balanced_accuracy_matches_sklearn(seed: int) -> None:
    logits, y = _random(40, 4, seed)
    expected = balanced_accuracy_score(y.numpy(), logits.argmax(1).numpy())
    assert balanced_accuracy(logits, y) == pytest.approx(expected)


# --------------------------------------------------------------------------- f1


def test_f1_macro_by_hand() -> None:
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    pred = [0, 1, 1, 1, 2, 0]
    # class 0: tp=1 fp=1 fn=1 -> p=1/2 r=1/2 f=1/2
    # class 1: tp=2 fp=1 fn=0 -> p=2/3 r=1   f=4/5
    # class 2: tp=1 fp=0 fn=1 -> p=1   r=1/2 f=2/3
    expected = (1 / 2 + 4 / 5 + 2 / 3) / 3
    assert f1_macro(_onehot_logits(pred, 3), y) == pytest.approx(expected)


def test_f1_macro_averages_over_every_class_of_the_task() -> None:
    # 4 classes in the task, class 3 neither true nor predicted: it counts as 0
    y = torch.tensor([0, 1, 2])
    logits = _onehot_logits([0, 1, 2], 4)
    assert f1_macro(logits, y) == pytest.approx(3 / 4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_f1_macro_matches_sklearn(seed: int) -> None:
    logits, y = _random(50, 5, seed)
    expected = f1_score(y.numpy(), logits.argmax(1).numpy(), labels=list(range(5)), average="macro")
    assert f1_macro(logits, y) == pytest.approx(expected)


# --------------------------------------------------------------------------- roc auc


def test_roc_auc_binary_by_hand() -> None:
    # class-1 scores are monotone in logit[1] - logit[0]
    margins = torch.tensor([0.1, 0.4, 0.35, 0.8])
    logits = torch.stack([torch.zeros(4), margins], dim=1)
    y = torch.tensor([0, 0, 1, 1])
    # pairs (pos, neg): (0.35>0.1) yes, (0.35>0.4) no, (0.8>0.1) yes, (0.8>0.4) yes -> 3/4
    assert roc_auc(logits, y) == pytest.approx(0.75)
    assert roc_auc(-logits, y) == pytest.approx(0.25)


def test_roc_auc_binary_counts_ties_as_half() -> None:
    logits = torch.zeros(4, 2)
    y = torch.tensor([0, 1, 0, 1])
    assert roc_auc(logits, y) == pytest.approx(0.5)


@pytest.mark.parametrize("seed", [0, 1])
def test_roc_auc_binary_matches_sklearn(seed: int) -> None:
    logits, y = _random(60, 2, seed)
    probs = torch.softmax(logits.double(), 1)[:, 1].numpy()
    assert roc_auc(logits, y) == pytest.approx(roc_auc_score(y.numpy(), probs))


@pytest.mark.parametrize("seed", [0, 1])
def test_roc_auc_multiclass_is_ovr_macro(seed: int) -> None:
    logits, y = _random(60, 4, seed)
    probs = torch.softmax(logits.double(), 1).numpy()
    expected = roc_auc_score(y.numpy(), probs, multi_class="ovr", average="macro")
    assert roc_auc(logits, y) == pytest.approx(expected)
    # by hand: mean over classes of the binary AUC of "class c vs rest"
    per_class = [roc_auc_score((y.numpy() == c).astype(int), probs[:, c]) for c in range(4)]
    assert roc_auc(logits, y) == pytest.approx(float(np.mean(per_class)))


def test_roc_auc_multiclass_with_absent_classes_renormalises() -> None:
    logits, y = _random(60, 5, 3)
    y = torch.where(y == 4, torch.zeros_like(y), y)  # class 4 never appears
    present = [0, 1, 2, 3]
    probs = torch.softmax(logits.double(), 1).numpy()[:, present]
    probs = probs / probs.sum(1, keepdims=True)
    expected = roc_auc_score(y.numpy(), probs, multi_class="ovr", average="macro")
    assert roc_auc(logits, y) == pytest.approx(expected)


def test_roc_auc_multiclass_with_two_present_classes_is_binary() -> None:
    logits, _ = _random(30, 3, 4)
    y = torch.tensor([0, 2] * 15)
    probs = torch.softmax(logits.double(), 1).numpy()
    p2 = probs[:, 2] / (probs[:, 0] + probs[:, 2])
    expected = roc_auc_score((y.numpy() == 2).astype(int), p2)
    assert roc_auc(logits, y) == pytest.approx(expected)


@pytest.mark.parametrize("num_classes", [2, 3])
def test_roc_auc_single_class_is_nan(num_classes: int) -> None:
    logits = torch.randn(6, num_classes)
    assert math.isnan(roc_auc(logits, torch.ones(6, dtype=torch.long)))


# --------------------------------------------------------------------------- ks


def test_ks_statistic_by_hand() -> None:
    # class-1 probabilities: negatives {0.2, 0.4, 0.6}, positives {0.5, 0.7, 0.9}
    p = torch.tensor([0.2, 0.4, 0.6, 0.5, 0.7, 0.9], dtype=torch.float64)
    logits = torch.stack([torch.zeros(6, dtype=torch.float64), torch.logit(p)], dim=1)
    y = torch.tensor([0, 0, 0, 1, 1, 1])
    # at 0.4: F_neg = 2/3, F_pos = 0 -> 2/3 (the maximum gap)
    assert ks_statistic(logits, y) == pytest.approx(2 / 3)


def test_ks_statistic_perfect_and_useless() -> None:
    y = torch.tensor([0, 0, 1, 1])
    separating = torch.tensor([[2.0, -2.0], [1.0, -1.0], [-1.0, 1.0], [-2.0, 2.0]])
    assert ks_statistic(separating, y) == pytest.approx(1.0)
    assert ks_statistic(torch.zeros(4, 2), y) == pytest.approx(0.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ks_statistic_matches_scipy(seed: int) -> None:
    logits, y = _random(80, 2, seed)
    p = torch.softmax(logits.double(), 1)[:, 1].numpy()
    expected = ks_2samp(p[y.numpy() == 1], p[y.numpy() == 0]).statistic
    assert ks_statistic(logits, y) == pytest.approx(expected)


def test_ks_statistic_single_class_is_nan() -> None:
    assert math.isnan(ks_statistic(torch.randn(5, 2), torch.zeros(5, dtype=torch.long)))
    assert math.isnan(ks_statistic(torch.randn(5, 2), torch.ones(5, dtype=torch.long)))


# --------------------------------------------------------------------------- others


def test_neg_log_loss_by_hand() -> None:
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])
    y = torch.tensor([0, 0])
    expected = -(math.log(2.0) + math.log(4.0 / 3.0)) / 2
    assert neg_log_loss(logits, y) == pytest.approx(expected)


def test_compute_and_evaluate() -> None:
    logits, y = _random(20, 3, 0)
    assert set(METRICS) == {
        "accuracy",
        "balanced_accuracy",
        "f1_macro",
        "roc_auc",
        "ks",
        "neg_log_loss",
    }
    assert compute("accuracy", logits, y) == accuracy(logits, y)
    out = evaluate(["accuracy", "f1_macro"], logits.double(), y)
    assert out == {"accuracy": accuracy(logits, y), "f1_macro": f1_macro(logits, y)}
    with pytest.raises(KeyError, match="unknown metric 'top5'"):
        compute("top5", logits, y)


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_metrics_are_higher_is_better(metric: str) -> None:
    y = torch.tensor([0, 1] * 10)
    good = torch.nn.functional.one_hot(y, 2).float() * 4 + torch.linspace(0, 0.1, 20)[:, None]
    useless = torch.zeros(20, 2)
    assert compute(metric, good, y) > compute(metric, useless, y)
    if metric != "ks":  # KS is two-sided: an inverted ranking separates as well
        assert compute(metric, good, y) > compute(metric, -good, y)
    else:
        assert compute(metric, -good, y) == compute(metric, good, y) == 1.0
