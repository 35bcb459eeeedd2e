"""Statistics of the benchmark: seed means, paired bootstrap intervals on test items."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from scipy.stats import rankdata, ttest_rel

from cdkd_core.experimental import METRICS


def probabilities(logits: torch.Tensor) -> np.ndarray:
    """Softmax probabilities as float64 NumPy."""
    return torch.softmax(logits.double(), dim=1).numpy()


def score(metric: str, probs: np.ndarray, y: np.ndarray) -> float:
    """``metric`` of class probabilities; fast paths for accuracy and binary ROC-AUC (the
    bootstrap calls this thousands of times), the core's definitions otherwise."""
    if metric == "accuracy":
        return float((probs.argmax(1) == y).mean())
    if metric == "roc_auc" and probs.shape[1] == 2:
        pos = y == 1
        n_pos, n_neg = int(pos.sum()), int((~pos).sum())
        if n_pos == 0 or n_neg == 0:
            return math.nan
        ranks = rankdata(probs[:, 1])
        return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
    logits = torch.from_numpy(np.log(np.clip(probs, 1e-300, None)))
    return METRICS[metric](logits, torch.from_numpy(y))


def mean_std(values: Sequence[float | None]) -> dict[str, float | None]:
    """Mean and sample standard deviation over seeds (None entries skipped)."""
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return {"mean": None, "std": None, "n": 0}
    std = float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0
    return {"mean": float(np.mean(vals)), "std": std, "n": len(vals)}


def paired_bootstrap(
    metric: str,
    labels: Sequence[np.ndarray],
    a: Sequence[np.ndarray],
    b: Sequence[np.ndarray],
    *,
    replicates: int = 1000,
    seed: int = 0,
) -> dict[str, float]:
    """Mean over seeds of ``metric(a) - metric(b)`` with a 95% percentile interval.

    ``labels[s]``, ``a[s]``, ``b[s]`` are one seed's test labels and the two models'
    probabilities on the same items. Each replicate resamples every seed's test items with
    replacement (the same items for both models: a paired bootstrap) and averages the
    per-seed differences, so the interval covers test-set sampling of the seed mean.
    """
    rng = np.random.default_rng(seed)
    observed = float(
        np.mean(
            [
                score(metric, pa, y) - score(metric, pb, y)
                for y, pa, pb in zip(labels, a, b, strict=True)
            ]
        )
    )
    diffs = np.empty(replicates)
    for r in range(replicates):
        per_seed = []
        for y, pa, pb in zip(labels, a, b, strict=True):
            idx = rng.integers(0, len(y), len(y))
            per_seed.append(score(metric, pa[idx], y[idx]) - score(metric, pb[idx], y[idx]))
        diffs[r] = np.nanmean(per_seed)
    diffs = diffs[np.isfinite(diffs)]
    lo, hi = np.percentile(diffs, [2.5, 97.5]) if len(diffs) else (math.nan, math.nan)
    return {
        "diff": observed,
        "ci_low": float(lo),
        "ci_high": float(hi),
        "p_not_above_0": float((diffs <= 0).mean()) if len(diffs) else math.nan,
    }


def paired_t(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Paired t-test over seeds of ``a`` against ``b`` (two-sided p)."""
    if len(a) < 2:
        return {"t": math.nan, "p": math.nan}
    diff = np.asarray(a) - np.asarray(b)
    if np.allclose(diff, diff[0]):
        return {
            "t": math.inf if diff[0] > 0 else -math.inf if diff[0] < 0 else 0.0,
            "p": 0.0 if diff[0] != 0 else 1.0,
        }
    res = ttest_rel(a, b)
    return {"t": float(res.statistic), "p": float(res.pvalue)}
