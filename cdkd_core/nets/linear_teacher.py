"""Logistic regression written as a network teacher (``teacher: auto``'s ``linear``
candidate): one linear map per (input space, task) of the sources over the flattened,
standardised teacher view, fitted by scikit-learn's ``LogisticRegression`` (L-BFGS) with
its L2 strength chosen on the val split, then copied into ``nn.Linear`` layers.

Its logits are the regression's decision values, so their softmax is its
``predict_proba`` (a binary task's logits are ``[0, w.x + b]``); as a network it feeds
every loss and encoder, trains further by gradient and exports to ONNX. Its feature layer
(``trunk``) is the input itself, each input space in a block of columns of its own (zeros
elsewhere), so spaces that share no coordinates are never mixed up by an encoder.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from cdkd_core.nets.estimator_teacher import MIN_PROB, Representation
from cdkd_core.nets.network import module_key
from cdkd_core.seeds import numpy_seed

#: the inverse L2 strengths tried (scikit-learn's ``C``), strongest regularisation first:
#: among equal val scores the earlier is kept
C_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)


@dataclass(frozen=True)
class LinearSlot:
    """One linear map's place: the input space it reads (``width`` values per example) and
    the task it predicts."""

    space: str
    task: str
    width: int
    num_classes: int

    @property
    def key(self) -> str:
        """Its module key (``<space>|<task>``, dots made safe)."""
        return f"{module_key(self.space)}|{module_key(self.task)}"


class LinearTeacher(nn.Module):
    """``W x + b`` per (input space, task): logistic regression as a network."""

    def __init__(self, slots: list[LinearSlot]) -> None:
        super().__init__()
        self.slots = {(s.space, s.task): s for s in slots}
        self.heads = nn.ModuleDict({s.key: nn.Linear(s.width, s.num_classes) for s in slots})
        widths = {s.space: s.width for s in slots}
        self._offsets, offset = {}, 0
        for space in sorted(widths):
            self._offsets[space] = (offset, widths[space])
            offset += widths[space]
        self.trunk = Representation()
        self.trunk.out_features = offset

    def has_stem(self, space: str) -> bool:
        """Whether a linear map reads inputs of ``space``."""
        return space in self._offsets

    def has_head(self, task: str) -> bool:
        """Whether a linear map predicts ``task``."""
        return any(t == task for _, t in self.slots)

    def features(self, x: torch.Tensor, space: str) -> torch.Tensor:
        """The flattened input in its space's block of columns ``[N, width]``."""
        start, width = self._offsets[space]
        rows = x.reshape(len(x), -1).float()
        out = rows.new_zeros(len(x), self.trunk.out_features)
        out[:, start : start + width] = rows
        return self.trunk(out)

    def forward(self, x: torch.Tensor, space: str, task: str) -> torch.Tensor:
        """The decision values ``[N, classes]`` (the feature layer runs too when a hook
        reads it)."""
        if self.trunk._forward_hooks:
            self.features(x, space)
        return self.heads[self.slots[(space, task)].key](x.reshape(len(x), -1).float())

    @torch.no_grad()
    def set_regression(
        self, slot: LinearSlot, coef: np.ndarray, intercept: np.ndarray, classes: np.ndarray
    ) -> None:
        """Copy a fitted ``LogisticRegression`` (its ``coef_``, ``intercept_`` and
        ``classes_``, class indices) into ``slot``'s layer. A class the train rows lack
        gets weight 0 and the bias ``log(MIN_PROB)`` below the others'."""
        layer = self.heads[slot.key]
        weight = torch.zeros_like(layer.weight)
        bias = torch.full_like(layer.bias, math.log(MIN_PROB))
        coef = torch.as_tensor(coef, dtype=weight.dtype)
        intercept = torch.as_tensor(intercept, dtype=weight.dtype)
        index = torch.as_tensor(classes, dtype=torch.long)
        if len(index) == 2 and coef.shape[0] == 1:  # binary: p(second) = sigmoid(w.x + b)
            weight[index[1]] = coef[0]
            bias[index[0]], bias[index[1]] = 0.0, intercept[0]
        else:
            weight[index] = coef
            bias[index] = intercept
        layer.weight.copy_(weight)
        layer.bias.copy_(bias)


def fit_linear(
    teacher: LinearTeacher,
    slot: LinearSlot,
    x: np.ndarray,
    y: np.ndarray,
    val_x: list[np.ndarray],
    val_score: Callable[[Callable[[np.ndarray], np.ndarray]], float],
    seed: int,
) -> dict[str, Any]:
    """Fit ``slot``'s regression on train rows ``x``, ``y`` for each ``C`` of
    :data:`C_GRID`, keep the one whose val score is best (the strongest regularisation
    among equals; the first C when there are no val rows) and copy it into ``teacher``.
    ``val_score`` takes a function from rows to logits and scores it on ``val_x``. What
    was chosen."""
    from sklearn.linear_model import LogisticRegression

    best, best_score, scores = None, -math.inf, {}
    for c in C_GRID:
        model = LogisticRegression(C=c, max_iter=2000, random_state=numpy_seed(seed))
        model.fit(x, y)
        if not val_x:
            best = model
            break
        score = val_score(lambda rows, m=model: _logits(m, rows, slot.num_classes))
        scores[str(c)] = round(score, 6) if math.isfinite(score) else None
        if score > best_score or best is None:
            best, best_score = model, score
    assert best is not None
    teacher.set_regression(slot, best.coef_, best.intercept_, best.classes_)
    return {"C": float(best.C), "val_scores": scores}


def _logits(model: Any, rows: np.ndarray, num_classes: int) -> np.ndarray:
    """A fitted regression's decision values as the layer's logits ``[N, num_classes]``."""
    layer = LinearTeacher([LinearSlot("s", "t", rows.shape[1], num_classes)])
    layer.set_regression(layer.slots[("s", "t")], model.coef_, model.intercept_, model.classes_)
    with torch.no_grad():
        return layer(torch.from_numpy(rows), "s", "t").numpy()
