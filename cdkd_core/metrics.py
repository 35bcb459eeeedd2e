"""Evaluation metrics, all "higher is better", computed from logits and labels."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch


def _probs(logits: torch.Tensor) -> np.ndarray:
    return torch.softmax(logits.double(), dim=1).cpu().numpy()


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of correct argmax predictions."""
    return float((logits.argmax(1) == y).double().mean())


def balanced_accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Mean recall over the classes present in ``y``."""
    pred = logits.argmax(1)
    recalls = [float((pred[y == c] == c).double().mean()) for c in torch.unique(y)]
    return float(np.mean(recalls))


def f1_macro(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Unweighted mean F1 over all classes of the task."""
    from sklearn.metrics import f1_score

    labels = list(range(logits.shape[1]))
    return float(
        f1_score(
            y.cpu().numpy(),
            logits.argmax(1).cpu().numpy(),
            labels=labels,
            average="macro",
            zero_division=0,
        )
    )


def roc_auc(logits: torch.Tensor, y: torch.Tensor) -> float:
    """ROC-AUC: of class 1 for two classes, one-vs-rest macro average otherwise.

    NaN when ``y`` holds a single class (AUC is undefined there)."""
    from sklearn.metrics import roc_auc_score

    y_np = y.cpu().numpy()
    if len(np.unique(y_np)) < 2:
        return float("nan")
    probs = _probs(logits)
    if probs.shape[1] == 2:
        return float(roc_auc_score(y_np, probs[:, 1]))
    present = np.unique(y_np)
    if len(present) < probs.shape[1]:
        probs = probs[:, present] / probs[:, present].sum(1, keepdims=True)
        y_np = np.searchsorted(present, y_np)
    if probs.shape[1] == 2:
        return float(roc_auc_score(y_np, probs[:, 1]))
    return float(roc_auc_score(y_np, probs, multi_class="ovr", average="macro"))


def ks_statistic(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Kolmogorov-Smirnov statistic between the class-1 scores of the two classes."""
    probs = _probs(logits)[:, 1]
    y_np = y.cpu().numpy()
    pos, neg = np.sort(probs[y_np == 1]), np.sort(probs[y_np == 0])
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    grid = np.concatenate([pos, neg])
    cdf_pos = np.searchsorted(pos, grid, side="right") / len(pos)
    cdf_neg = np.searchsorted(neg, grid, side="right") / len(neg)
    return float(np.max(np.abs(cdf_pos - cdf_neg)))


def neg_log_loss(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Negative mean cross-entropy (higher is better)."""
    return -float(torch.nn.functional.cross_entropy(logits.double(), y))


METRICS: dict[str, Callable[[torch.Tensor, torch.Tensor], float]] = {
    "accuracy": accuracy,
    "balanced_accuracy": balanced_accuracy,
    "f1_macro": f1_macro,
    "roc_auc": roc_auc,
    "ks": ks_statistic,
    "neg_log_loss": neg_log_loss,
}


def compute(metric: str, logits: torch.Tensor, y: torch.Tensor) -> float:
    """One metric by name."""
    if metric not in METRICS:
        raise KeyError(f"unknown metric {metric!r}; known: {sorted(METRICS)}")
    return METRICS[metric](logits, y)


def evaluate(metrics: list[str], logits: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Every metric in ``metrics``."""
    return {m: compute(m, logits.float(), y) for m in metrics}
