"""Built-in classical teacher: ``hist_gbm``, scikit-learn's histogram gradient boosting.

Used as ``teacher: {model: {name: hist_gbm}}``: one boosted tree ensemble per (input
space, task) of the sources, fitted on their train split with ``max_iter`` trees, its
number of trees then chosen on their val split (the prefix of the boosting sequence with
the best val score, refitted to exactly that many trees). Its class probabilities are the
soft labels ``kd`` distils; what the encoders read is the **leaf-value representation**:
for each tree, the value of the leaf the example falls into (its contribution to the raw
score), ``[N, trees]``; examples that share leaves are close in it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from cdkd_core.components.architecture import EstimatorArchitecture
from cdkd_core.components.base import ComponentConfig
from cdkd_core.host.hookspecs import Register, hookimpl
from cdkd_core.nets.estimator_teacher import log_probabilities
from cdkd_core.seeds import numpy_seed


class HistGradientBoosting(EstimatorArchitecture):
    """Whole teacher: gradient-boosted trees (scikit-learn's HistGradientBoosting).

    One ``HistGradientBoostingClassifier`` per input space and task of the sources, its
    number of trees chosen on the val split."""

    name = "hist_gbm"
    refused_encoders: ClassVar[dict[str, str]] = {
        "graph": (
            "each tree ensemble's leaf values are coordinates of its own, so a graph over "
            "classes or examples of several domains would relate nothing across them"
        ),
    }
    trusted_types: ClassVar[tuple[str, ...]] = (
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    )

    class Config(ComponentConfig):
        """The booster's settings (scikit-learn's names and meanings)."""

        max_iter: int = Field(
            300, ge=1, le=10_000, description="Boosting iterations fitted before selection."
        )
        learning_rate: float = Field(0.05, gt=0, le=1)
        max_leaf_nodes: int = Field(31, ge=2, le=4096)
        max_depth: int | None = Field(None, ge=1, le=64)
        min_samples_leaf: int = Field(20, ge=1)
        l2_regularization: float = Field(0.0, ge=0)
        max_features: float = Field(
            1.0, gt=0, le=1, description="Share of features each split considers."
        )
        max_bins: int = Field(255, ge=2, le=255)
        select_on_val: bool = Field(
            True,
            description="Keep the number of trees with the best val score (false: all max_iter).",
        )
        select_by: Literal["headline", "log_loss"] = Field(
            "headline",
            description=(
                "The val score the number of trees is chosen on: the domains' mean headline "
                "metric (as a network teacher), or their mean log loss (smooth in the number "
                "of trees, better-calibrated soft labels; see benchmarks/tabular_teacher.md)."
            ),
        )

    def build_estimator(self, seed: int) -> Any:
        """An unfitted ``HistGradientBoostingClassifier`` (its own early stopping off: the
        val split chooses)."""
        from sklearn.ensemble import HistGradientBoostingClassifier

        c = self.config
        return HistGradientBoostingClassifier(
            max_iter=c.max_iter,
            learning_rate=c.learning_rate,
            max_leaf_nodes=c.max_leaf_nodes,
            max_depth=c.max_depth,
            min_samples_leaf=c.min_samples_leaf,
            l2_regularization=c.l2_regularization,
            max_features=c.max_features,
            max_bins=c.max_bins,
            early_stopping=False,
            random_state=numpy_seed(seed),
        )

    def fit_selected(
        self,
        estimator: Any,
        x: np.ndarray,
        y: np.ndarray,
        val_x: list[np.ndarray],
        val_y: list[np.ndarray],
        val_score: Callable[[list[np.ndarray]], float],
    ) -> tuple[Any, dict[str, Any]]:
        """Fit all ``max_iter`` trees, score every prefix on val (``select_by``), refit
        the best prefix (the earliest among equal scores). Boosting is deterministic for a
        seed, so the refit's trees are the prefix's. Without val rows every tree is kept."""
        estimator.fit(x, y)
        fitted = estimator.n_iter_
        if not self.config.select_on_val or not val_x:  # no labelled val row to choose on
            return estimator, {"trees": fitted, "fitted": fitted}
        score = val_score
        if self.config.select_by == "log_loss":
            classes = estimator.classes_

            def score(probs: list[np.ndarray]) -> float:
                losses = [_log_loss(p, v, classes) for p, v in zip(probs, val_y, strict=True)]
                return -float(np.mean(losses))

        stages = zip(*(estimator.staged_predict_proba(v) for v in val_x), strict=True)
        scores = [score(list(probs)) for probs in stages]
        best = int(np.argmax(scores)) + 1
        if best < fitted:
            estimator.set_params(max_iter=best)
            estimator.fit(x, y)
        return estimator, {"trees": best, "fitted": fitted, "val_score": float(max(scores))}

    def parameter_count(self, estimator: Any) -> int:
        """Tree nodes: each holds one split (feature, threshold) or one leaf value."""
        trees = getattr(estimator, "_predictors", [])  # scikit-learn keeps no public count
        return sum(len(tree.nodes) for iteration in trees for tree in iteration)

    def representation(self, estimator: Any, x: np.ndarray) -> np.ndarray:
        """Each tree's contribution to the raw score (the value of the leaf ``x`` falls
        into): the steps of ``staged_decision_function``, ``[N, iterations * trees per
        iteration]``."""
        previous = None
        steps = []
        for raw in estimator.staged_decision_function(x):
            raw = raw.reshape(len(x), -1)
            steps.append(raw if previous is None else raw - previous)
            previous = raw
        return np.concatenate(steps, axis=1).astype(np.float32)


def _log_loss(probs: np.ndarray, y: np.ndarray, classes: np.ndarray) -> float:
    """Mean negative log-probability of the true class (floored as the teacher's outputs)."""
    column = np.searchsorted(classes, y)
    return float(-np.mean(log_probabilities(probs[np.arange(len(y)), column])))


@hookimpl
def register_architectures(register: Register) -> None:
    """Register ``hist_gbm``."""
    register(HistGradientBoosting)
