"""The benchmark's statistics and target checks (the benchmarks themselves are not part of
the test run; what they compute with is)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from benchmarks.report import targets
from benchmarks.stats import mean_std, paired_bootstrap, paired_t, score
from cdkd_core.metrics import METRICS


def _probs(p1: np.ndarray) -> np.ndarray:
    return np.stack([1 - p1, p1], axis=1)


def test_fast_binary_auc_equals_sklearn_with_ties() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    p = np.round(rng.random(300), 1)  # many ties
    assert score("roc_auc", _probs(p), y) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    # by hand: positives score 0.9, 0.4; negatives 0.4, 0.1 -> pairs (win, tie, win, win)
    y = np.array([1, 1, 0, 0])
    p = np.array([0.9, 0.4, 0.4, 0.1])
    assert score("roc_auc", _probs(p), y) == pytest.approx(3.5 / 4)
    assert math.isnan(score("roc_auc", _probs(p), np.ones(4, dtype=int)))


def test_other_metrics_follow_the_core() -> None:
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(3), 50)
    y = rng.integers(0, 3, 50)
    assert score("accuracy", probs, y) == pytest.approx((probs.argmax(1) == y).mean())
    core = METRICS["f1_macro"](torch.from_numpy(np.log(probs)), torch.from_numpy(y))
    assert score("f1_macro", probs, y) == pytest.approx(core)


def test_paired_bootstrap_of_a_model_against_itself_is_zero() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 100)
    p = _probs(rng.random(100))
    out = paired_bootstrap("accuracy", [y], [p], [p], replicates=50)
    assert out == {"diff": 0.0, "ci_low": 0.0, "ci_high": 0.0, "p_not_above_0": 1.0}


def test_paired_bootstrap_interval_covers_the_difference_and_excludes_zero() -> None:
    rng = np.random.default_rng(3)
    labels, good, bad = [], [], []
    for _ in range(3):  # three seeds, each its own test set
        y = rng.integers(0, 2, 400)
        right = np.where(y == 1, 0.9, 0.1)
        flip = rng.random(400) < 0.3  # the worse model errs on 30% more of the items
        labels.append(y)
        good.append(_probs(right))
        bad.append(_probs(np.where(flip, 1 - right, right)))
    out = paired_bootstrap("accuracy", labels, good, bad, replicates=300)
    expected = np.mean(
        [np.mean(g.argmax(1) != b.argmax(1)) for g, b in zip(good, bad, strict=True)]
    )
    assert out["diff"] == pytest.approx(expected)
    assert 0 < out["ci_low"] < out["diff"] < out["ci_high"]
    assert out["p_not_above_0"] == 0.0


def test_mean_std_and_paired_t() -> None:
    assert mean_std([0.5, 0.7, None]) == {
        "mean": pytest.approx(0.6),
        "std": pytest.approx(math.sqrt(0.02)),
        "n": 2,
    }
    assert mean_std([None])["mean"] is None
    t = paired_t([0.9, 0.8, 0.7], [0.8, 0.75, 0.5])
    diffs = np.array([0.1, 0.05, 0.2])
    by_hand = diffs.mean() / (diffs.std(ddof=1) / math.sqrt(3))
    assert t["t"] == pytest.approx(by_hand)
    assert paired_t([0.5, 0.5], [0.5, 0.5]) == {"t": 0.0, "p": 1.0}


def _stat(v: float) -> dict:
    return {"mean": v, "std": 0.0, "n": 3}


def test_targets_are_judged_from_the_results() -> None:
    results = {
        "quality": {
            "s": {
                "params": {"teacher": 1000, "student": 50},
                "domains": {
                    "a": {
                        "teacher": _stat(0.90),
                        "pca": _stat(0.88),
                        "latency_ms": {"teacher_b256": 1.0, "student_b256": 0.1},
                    },
                    "b": {
                        "teacher": _stat(0.90),
                        "pca": _stat(0.80),
                        "latency_ms": {"teacher_b256": 1.0, "student_b256": 0.5},
                    },
                },
            }
        },
        "overhead": {
            "w": {"cdkd_vs_hand_throughput": 0.97, "kd_cached_vs_plain_epoch": 1.3},
        },
    }
    by_start = {t["target"]: t for t in targets(results)}
    quality = next(t for t in by_start.values() if "within 3%" in t["target"])
    assert not quality["met"] and "b 0.800 vs 0.900" in quality["detail"]
    size = next(t for t in by_start.values() if "10%" in t["target"])
    assert size["met"]
    speed = next(t for t in by_start.values() if "5x" in t["target"])
    assert not speed["met"] and "b 2.0x" in speed["detail"]
    assert next(t for t in by_start.values() if "hand-written" in t["target"])["met"]
    assert not next(t for t in by_start.values() if "cached-teacher" in t["target"])["met"]
    assert len(by_start) == 5  # three quality targets and two overhead targets
