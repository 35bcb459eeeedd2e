"""Fitting a residual linear head on frozen inputs: the teacher's adaptation to a target.

The head's logits are ``s * base + W x~ + b``: ``base`` the teacher's own logits for the
task (absent for a new task), ``s`` a learned scalar (how far to trust them), ``x~`` the
head's inputs standardised with statistics of the target's train rows. It minimises the
mean cross-entropy on the labelled rows plus ``alpha / 2 * ||W||^2`` (L-BFGS in float64;
the logits are linear in ``(s, W, b)``, so the problem is convex and the answer the same
every run). ``alpha`` comes from a grid: ``inf`` fits ``s`` and ``b`` alone (the teacher
recalibrated), a small one is logistic regression on the inputs beside the teacher; and
with a ``base``, the teacher as it is (``s = 1, W = 0, b = 0``) is a candidate too.

``alpha`` is chosen on *selection rows*: the labelled val rows, scored by the head fitted
on every labelled train row, pooled with out-of-fold predictions on the labelled train rows
(stratified k-fold, where every class has at least two of them). A few-label val split
alone often holds one or two rows of a class, too few to tell the candidates apart. The
candidates are ranked by their log loss on the pooled rows (a proper score, and one that
pools: a ranking metric such as ROC-AUC over predictions of five different fits is not one
model's), then the stronger regularisation; the headline metric is recorded beside it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

#: ``alpha`` grid: L2 strength on the standardised inputs' weights (mean loss per row);
#: ``inf`` fits the teacher's scale and the bias alone
ALPHAS: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0, math.inf)
#: folds of the cross-validation on the labelled train rows (fewer where a class is smaller)
FOLDS = 5

#: (inputs [N, D], the teacher's logits [N, C] or None, labels [N])
Rows = tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]


@dataclass(frozen=True)
class HeadCandidate:
    """One fitted head: ``weight`` [C, D] and ``bias`` [C] on the raw inputs (the
    standardisation folded in) and ``scale``, the factor of the teacher's logits;
    ``alpha`` None for the unchanged teacher."""

    alpha: float | None
    weight: torch.Tensor
    bias: torch.Tensor
    scale: float = 1.0


@dataclass(frozen=True)
class ProbeChoice:
    """The chosen head and how every candidate scored on the selection rows
    (``(alpha, headline, log loss)``; NaN where undefined), and how many rows those were."""

    head: HeadCandidate
    score: float
    loss: float
    table: list[tuple[float | None, float, float]]
    selection_rows: int
    folds: int

    def to_dict(self) -> dict:
        """JSON-ready: the chosen alpha (``"inf"``: scale and bias only; None: the teacher
        as it is), the teacher's scale, the selection score and log loss, and the
        candidates'."""

        def a(x: float | None) -> float | str | None:
            return "inf" if x is not None and math.isinf(x) else x

        def r(x: float) -> float | None:
            return None if math.isnan(x) else round(x, 6)

        return {
            "alpha": a(self.head.alpha),
            "teacher_scale": round(self.head.scale, 6),
            "selection_rows": self.selection_rows,
            "folds": self.folds,
            "selection_score": r(self.score),
            "selection_loss": r(self.loss),
            "candidates": [[a(al), r(s), r(loss)] for al, s, loss in self.table],
        }


def standardization(inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std (float64, std floored at 1e-6) of each input column."""
    f = inputs.double()
    return f.mean(0), f.std(0, unbiased=False).clamp_min(1e-6)


def fit_head(
    rows: Rows,
    num_classes: int,
    alpha: float,
    *,
    stats: tuple[torch.Tensor, torch.Tensor] | None = None,
    max_iter: int = 500,
) -> HeadCandidate:
    """The residual head minimising mean cross-entropy + ``alpha / 2 * ||W||^2`` on
    ``rows`` (inputs standardised by ``stats``, default their own)."""
    inputs, base, labels = rows
    mean, std = stats if stats is not None else standardization(inputs)
    x = (inputs.double() - mean) / std
    y = labels.long()
    offset = base.double() if base is not None else torch.zeros(len(x), num_classes).double()
    weight = torch.zeros(num_classes, x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    scale = torch.ones((), dtype=torch.float64, requires_grad=base is not None)
    fit_weight = not math.isinf(alpha)
    params = [weight, bias] if fit_weight else [bias]
    if base is not None:
        params.append(scale)
    optimizer = torch.optim.LBFGS(
        params, lr=1.0, max_iter=max_iter, tolerance_grad=1e-9, tolerance_change=1e-12,
        line_search_fn="strong_wolfe",
    )  # fmt: skip

    def objective() -> torch.Tensor:
        optimizer.zero_grad()
        logits = scale * offset + bias
        if fit_weight:
            logits = logits + x @ weight.T
        loss = F.cross_entropy(logits, y)
        if fit_weight:
            loss = loss + 0.5 * alpha * weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(objective)
    w = weight.detach() / std  # fold the standardisation into the head
    b = bias.detach() - (w * mean).sum(1)
    return HeadCandidate(alpha, w, b, float(scale.detach()))


def candidate_logits(head: HeadCandidate, inputs: torch.Tensor, base: torch.Tensor | None):
    """The logits of ``head`` on ``inputs`` (and the teacher's ``base``), float64."""
    out = inputs.double() @ head.weight.T + head.bias
    return out if base is None else out + head.scale * base.double()


def stratified_folds(labels: torch.Tensor, folds: int) -> list[torch.Tensor]:
    """``folds`` disjoint index sets covering ``labels``, each class dealt round-robin in
    row order (deterministic)."""
    assignment = torch.empty(len(labels), dtype=torch.long)
    for cls in torch.unique(labels):
        idx = torch.nonzero(labels == cls).flatten()
        assignment[idx] = torch.arange(len(idx)) % folds
    return [torch.nonzero(assignment == k).flatten() for k in range(folds)]


def _subset(rows: Rows, index: torch.Tensor) -> Rows:
    inputs, base, labels = rows
    return inputs[index], None if base is None else base[index], labels[index]


def choose_head(
    train: Rows,
    val: Rows | None,
    num_classes: int,
    score: Callable[[torch.Tensor, torch.Tensor], float],
    *,
    stats: tuple[torch.Tensor, torch.Tensor],
    alphas: Sequence[float] = ALPHAS,
) -> ProbeChoice:
    """Fit a head for each alpha on every ``train`` row and keep the best on the selection
    rows (module docstring): lowest log loss, then the stronger regularisation; each
    candidate's ``score(logits, labels)`` is recorded. With base logits, the unchanged
    teacher is a candidate (and wins a tie)."""
    _, base, labels = train
    smallest = int(torch.bincount(labels.long()).masked_select(
        torch.bincount(labels.long()) > 0).min())  # fmt: skip
    folds = min(FOLDS, smallest) if smallest >= 2 else 0
    splits = stratified_folds(labels, folds) if folds else []
    candidates: list[tuple[HeadCandidate, torch.Tensor | None, torch.Tensor | None]] = []
    order = sorted(alphas, reverse=True)  # strongest regularisation first
    if base is not None:
        d = train[0].shape[1]
        zeros = HeadCandidate(None, torch.zeros(num_classes, d).double(),
                              torch.zeros(num_classes).double())  # fmt: skip
        candidates.append((zeros, None, None))
    for alpha in order:
        head = fit_head(train, num_classes, alpha, stats=stats)
        oof = torch.zeros(len(labels), num_classes, dtype=torch.float64) if splits else None
        for held in splits:
            keep = torch.ones(len(labels), dtype=torch.bool)
            keep[held] = False
            part = fit_head(_subset(train, torch.nonzero(keep).flatten()), num_classes, alpha,
                            stats=stats)  # fmt: skip
            inputs, b, _ = _subset(train, held)
            assert oof is not None
            oof[held] = candidate_logits(part, inputs, b)
        candidates.append((head, oof, None))
    pooled_y, pieces = [], []
    if val is not None and len(val[2]):
        pooled_y.append(val[2].long())
    if splits:
        pooled_y.append(labels.long())
    if not pooled_y:  # nothing to choose on: the middle of the grid
        head = next((c for c, _, _ in candidates if c.alpha == 1.0), candidates[-1][0])
        return ProbeChoice(head, math.nan, math.nan, [], 0, 0)
    y = torch.cat(pooled_y)
    table, best, best_key = [], candidates[0][0], None
    for head, oof, _ in candidates:
        pieces = []
        if val is not None and len(val[2]):
            pieces.append(candidate_logits(head, val[0], val[1]))
        if splits:  # the unchanged teacher has no fit to hold rows out of
            pieces.append(oof if oof is not None else candidate_logits(head, train[0], base))
        logits = torch.cat(pieces)
        s = score(logits.float(), y)
        loss = float(F.cross_entropy(logits, y))
        table.append((head.alpha, s, loss))
        key = -loss
        if best_key is None or key > best_key:  # ties keep the earlier (stronger) one
            best, best_key = head, key
    s, loss = next((s, loss) for a, s, loss in table if a == best.alpha)
    return ProbeChoice(best, s, loss, table, len(y), folds)
