"""Reference peers: simple classifiers fitted on exactly the labelled train rows the student
of a trained domain learns from, so a report shows whether distillation beat the simple
alternative (``cdkd report --peers``).

- ``logreg``: multinomial logistic regression on the domain's teacher view, flattened, as
  preparation standardised it (per domain, on its train split);
- ``tfidf_logreg``: for a domain that gives its raw texts (:attr:`DomainData.texts`),
  TF-IDF of word uni- and bigrams (sublinear tf) fitted on the labelled train texts alone,
  then the same regression.

The inverse regularisation ``C`` is chosen from :data:`C_GRID` by the domain's headline
metric on its labelled val rows (``val_labelled``: a target's ``label_fraction`` holds there
too); ties go to the smaller ``C``, and ``C = 1`` is used when the val headline is undefined
for every ``C`` (no labelled val rows, or e.g. ROC-AUC of one class). The test split is only
ever scored, never used to choose anything.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from cdkd_core.data.preparation import PreparedDomain
from cdkd_core.metrics import evaluate
from cdkd_core.nets.estimator_teacher import log_probabilities

#: the peers, in the order they are reported
PEERS = ("logreg", "tfidf_logreg")
#: the inverse regularisation strengths tried on the labelled val rows
C_GRID = (0.01, 0.1, 1.0, 10.0)
#: ``C`` where the val headline is undefined for every value of the grid
DEFAULT_C = 1.0


@dataclass
class PeerFit:
    """One peer fitted on a domain's labelled train rows."""

    #: float64 [N_test, num_classes]: class probabilities of the test rows (columns by class
    #: index; 0 for a class without labelled train rows)
    probabilities: np.ndarray
    #: the chosen inverse regularisation strength
    C: float
    #: labelled train rows it was fitted on
    labelled: int
    #: the val headline of each ``C`` of the grid (NaN where undefined)
    val_scores: dict[float, float]


def _rows(x: torch.Tensor) -> np.ndarray:
    """``x`` as a float32 ``[N, F]`` array (trailing dimensions flattened; ``N`` may be 0)."""
    return x.detach().reshape(len(x), math.prod(x.shape[1:])).float().cpu().numpy()


def _logits(probabilities: np.ndarray) -> torch.Tensor:
    """Floored log-probabilities: what :mod:`cdkd_core.metrics` reads as logits."""
    return torch.from_numpy(log_probabilities(probabilities))


def _fit(x: Any, y: np.ndarray, c: float, seed: int) -> Any:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, max_iter=3000, random_state=seed)
    with warnings.catch_warnings():  # a reference, not a tuned model: a late stop is fine
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(x, y)


def _probabilities(model: Any, x: Any, num_classes: int) -> np.ndarray:
    out = np.zeros((x.shape[0], num_classes))
    out[:, model.classes_] = model.predict_proba(x)
    return out


def _select_and_fit(
    d: PreparedDomain,
    train: tuple[Any, np.ndarray],
    val: tuple[Any, torch.Tensor],
    test: Any,
    seed: int,
) -> PeerFit:
    """Fit on ``train`` for each ``C``, score the headline on ``val``, keep the best."""
    (x, y), (xv, yv) = train, val
    scores: dict[float, float] = {}
    for c in C_GRID:
        if len(yv) == 0:
            scores[c] = math.nan
            continue
        probs = _probabilities(_fit(x, y, c, seed), xv, d.num_classes)
        scores[c] = evaluate([d.headline], _logits(probs), yv)[d.headline]
    defined = [c for c in C_GRID if math.isfinite(scores[c])]
    chosen = max(defined, key=lambda c: scores[c]) if defined else DEFAULT_C  # first best
    model = _fit(x, y, chosen, seed)
    return PeerFit(_probabilities(model, test, d.num_classes), chosen, len(y), scores)


def peer_probabilities(d: PreparedDomain, seed: int) -> dict[str, PeerFit]:
    """Each peer the domain allows, fitted on its labelled train rows with ``C`` chosen on
    its labelled val rows; empty for a domain the student does not train on or whose
    labelled train rows hold fewer than two classes."""
    if not d.trained:
        return {}
    labelled = d.labelled.bool()
    y = d.train.y[labelled].numpy()
    if len(np.unique(y)) < 2:
        return {}
    val_rows = d.val_labelled.bool()
    yv = d.val.y[val_rows]
    out = {
        "logreg": _select_and_fit(
            d,
            (_rows(d.train.teacher_x[labelled]), y),
            (_rows(d.val.teacher_x[val_rows]), yv),
            _rows(d.test.teacher_x),
            seed,
        )
    }
    if d.texts is not None:
        fit = _tfidf(d, labelled, val_rows, seed)
        if fit is not None:
            out["tfidf_logreg"] = fit
    return out


def _tfidf(
    d: PreparedDomain, labelled: torch.Tensor, val_rows: torch.Tensor, seed: int
) -> PeerFit | None:
    """The TF-IDF peer; None when the labelled train texts have no word to count."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    assert d.texts is not None
    texts = [d.texts["train"][int(i)] for i in torch.nonzero(labelled).flatten()]
    val_texts = [d.texts["val"][int(i)] for i in torch.nonzero(val_rows).flatten()]
    tfidf = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    try:
        x = tfidf.fit_transform(texts)
    except ValueError:  # empty vocabulary: no token of two or more word characters
        return None
    return _select_and_fit(
        d,
        (x, d.train.y[labelled].numpy()),
        (tfidf.transform(val_texts), d.val.y[val_rows]),
        tfidf.transform(d.texts["test"]),
        seed,
    )


def peer_results(domains: list[PreparedDomain], seed: int) -> dict[str, dict[str, dict]]:
    """Every trained domain's peers scored on its test split: ``{domain: {peer: {"metrics":
    {metric: value}, "headline": value, "C": chosen C, "labelled": train rows used}}}``; a
    trained domain without two labelled classes maps to ``{}``, other domains are absent."""
    out: dict[str, dict[str, dict]] = {}
    for d in domains:
        if not d.trained:
            continue
        out[d.name] = {}
        for peer, fit in peer_probabilities(d, seed).items():
            metrics = evaluate(d.data.metrics, _logits(fit.probabilities), d.test.y)
            out[d.name][peer] = {
                "metrics": metrics,
                "headline": metrics[d.headline],
                "C": fit.C,
                "labelled": fit.labelled,
            }
    return out
