"""Label shift: estimating the class prior of an unlabelled target set, and moving a model's
decisions onto it.

Under label shift p(x|y) is shared and only the prior p(y) moves. :func:`em_prior`
(Saerens et al., 2002) and :func:`bbse_prior` (Lipton et al., 2018) estimate the target
prior; :func:`shift_logits` applies Bayes' rule for a known source prior, and
:func:`prior_offsets` finds per-class offsets for a model whose training prior is unknown.
All arithmetic is float64; priors are floored at ``1e-12`` before a log or a division.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

#: the floor of a prior before a log or a division (zeros give no NaN or inf)
PRIOR_FLOOR = 1e-12

#: halvings of a :func:`prior_offsets` step before giving up on it
_MAX_HALVINGS = 40


@dataclass(frozen=True, eq=False)
class PriorEstimate:
    """An estimated target class prior and how it was obtained.

    ``prior`` is float64, [C], sums to 1; ``method`` is ``"em"`` or ``"bbse"``;
    ``iterations`` counts EM updates (0 for BBSE); ``note`` says what went wrong or was
    worked around, None when nothing did. ``eq=False``: tensors have no boolean equality.
    """

    prior: torch.Tensor
    method: str
    iterations: int
    converged: bool
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values: the prior as a list of floats rounded to 6 decimals."""
        return {
            "method": self.method,
            "prior": [round(float(p), 6) for p in self.prior.tolist()],
            "iterations": int(self.iterations),
            "converged": bool(self.converged),
            "note": self.note,
        }


def _rows(values: torch.Tensor, name: str, columns: int | None = None) -> torch.Tensor:
    """``values`` as a float64 [N, C] matrix with N > 0 (ValueError otherwise)."""
    if values.ndim != 2 or values.shape[0] == 0 or values.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty [N, C] matrix, got {tuple(values.shape)}")
    if columns is not None and values.shape[1] != columns:
        raise ValueError(f"{name} has {values.shape[1]} columns, expected {columns}")
    return values.to(torch.float64)


def _prior(prior: torch.Tensor, classes: int, device: torch.device, name: str) -> torch.Tensor:
    """``prior`` as a float64 [C] vector on ``device``, normalised to sum 1."""
    p = torch.as_tensor(prior).to(device=device, dtype=torch.float64)
    if p.shape != (classes,):
        raise ValueError(f"{name} must have shape ({classes},), got {tuple(p.shape)}")
    if not bool(torch.isfinite(p).all()) or bool((p < 0).any()) or float(p.sum()) <= 0:
        raise ValueError(f"{name} must be finite, non-negative and not all zero")
    return p / p.sum()


def _em_step(probs: torch.Tensor, source: torch.Tensor, pi: torch.Tensor) -> torch.Tensor:
    """One Saerens update: reweight the posteriors by pi / source (floored) and average."""
    w = pi / source
    joint = probs * w
    denom = joint.sum(1, keepdim=True)
    # a row with no mass left (all of it on classes whose weight is 0) contributes nothing
    posterior = joint / denom.clamp_min(torch.finfo(torch.float64).tiny)
    new = posterior.mean(0)
    total = new.sum()
    return new / total if float(total) > 0 else pi


def em_prior(
    probs: torch.Tensor, source_prior: torch.Tensor, *, tol: float = 1e-8, max_iter: int = 1000
) -> PriorEstimate:
    """Target prior by EM (Saerens, Latinne & Decaestecker, 2002).

    ``probs`` [N, C] are posteriors p_s(y|x) on unlabelled target rows from a classifier
    calibrated to ``source_prior`` [C]. Starting from pi = source_prior, iterate
    w = pi / pi_s, p_t(y|x) = w_y p_s(y|x) / sum_k w_k p_s(k|x), pi = mean_x p_t(y|x), until
    the largest change is below ``tol`` (``converged``) or after ``max_iter`` updates.
    A class with zero source prior keeps a zero estimate.
    """
    p = _rows(probs, "probs")
    if bool((p < 0).any()) or not bool(torch.isfinite(p).all()):
        raise ValueError("probs must be finite and non-negative")
    source = _prior(source_prior, p.shape[1], p.device, "source_prior")
    floored = source.clamp_min(PRIOR_FLOOR)
    pi = source.clone()
    iterations, converged = 0, False
    while iterations < max_iter and not converged:
        new = _em_step(p, floored, pi)
        converged = float((new - pi).abs().max()) < tol
        pi = new
        iterations += 1
    return PriorEstimate(prior=pi, method="em", iterations=iterations, converged=converged)


def bbse_prior(
    source_probs: torch.Tensor,
    source_labels: torch.Tensor,
    target_probs: torch.Tensor,
    source_prior: torch.Tensor,
) -> PriorEstimate:
    """Target prior by black-box shift estimation (Lipton, Wang & Smola, 2018).

    On held-out labelled source rows, C[i, j] = P_s(argmax = i, y = j); on the target rows,
    mu[i] = P_t(argmax = i). The importance weights w solve C w = mu (least squares, the
    minimum-norm solution when C is singular), are clipped at 0, and pi_t = w * source_prior
    renormalised. If every weight clips to 0 the source prior is returned, ``converged``
    False and ``note`` saying so. ``source_prior`` should be the held-out rows' label
    frequencies (the column sums of C) for the estimate to be consistent with C.
    """
    src = _rows(source_probs, "source_probs")
    classes = src.shape[1]
    tgt = _rows(target_probs, "target_probs", classes)
    labels = torch.as_tensor(source_labels).to(device=src.device, dtype=torch.long)
    if labels.shape != (src.shape[0],):
        raise ValueError(f"source_labels must have shape ({src.shape[0]},)")
    if bool((labels < 0).any()) or bool((labels >= classes).any()):
        raise ValueError(f"source_labels must lie in [0, {classes})")
    source = _prior(source_prior, classes, src.device, "source_prior")

    pred = src.argmax(1)
    joint = torch.bincount(pred * classes + labels, minlength=classes * classes)
    confusion = joint.reshape(classes, classes).to(torch.float64) / src.shape[0]
    mu = torch.bincount(tgt.argmax(1), minlength=classes).to(torch.float64) / tgt.shape[0]
    # gelsd (SVD) takes rank-deficient systems; it runs on the CPU, and C is only [C, C]
    solved = torch.linalg.lstsq(confusion.cpu(), mu.cpu().unsqueeze(1), driver="gelsd")
    w = solved.solution.squeeze(1).to(src.device)

    notes = []
    rank = int(solved.rank)
    if rank < classes:
        notes.append(f"confusion matrix has rank {rank} < {classes}: minimum-norm weights")
    clipped = int((w < 0).sum())
    if clipped:
        notes.append(f"{clipped} negative importance weight(s) clipped to 0")
    pi = w.clamp_min(0) * source
    total = float(pi.sum())
    if not total > 0 or not bool(torch.isfinite(pi).all()):
        notes.append("all importance weights are 0: fell back to the source prior")
        return PriorEstimate(source, "bbse", 0, False, "; ".join(notes))
    return PriorEstimate(pi / total, "bbse", 0, True, "; ".join(notes) or None)


def shift_logits(
    logits: torch.Tensor, source_prior: torch.Tensor, target_prior: torch.Tensor
) -> torch.Tensor:
    """Bayes' rule in logit space: ``logits + log(target_prior) - log(source_prior)``.

    Priors are floored at 1e-12; the classes are the last dimension; the result has the
    dtype of ``logits``. Its softmax is the EM posterior w_y p_s(y|x) / sum_k w_k p_s(k|x).
    """
    kw = {"device": logits.device, "dtype": torch.float64}
    source = torch.as_tensor(source_prior).to(**kw).clamp_min(PRIOR_FLOOR)
    target = torch.as_tensor(target_prior).to(**kw).clamp_min(PRIOR_FLOOR)
    return (logits.to(torch.float64) + target.log() - source.log()).to(logits.dtype)


def _offset_state(
    logits: torch.Tensor, b: torch.Tensor, target: torch.Tensor
) -> tuple[float, torch.Tensor]:
    """The convex objective mean_x logsumexp(z + b) - target . b and mean softmax(z + b).

    Its gradient is mean softmax(z + b) - target, so its minimiser is the offset sought."""
    shifted = logits + b
    lse = torch.logsumexp(shifted, dim=1, keepdim=True)
    mean_soft = torch.exp(shifted - lse).mean(0)
    return float(lse.mean() - (target * b).sum()), mean_soft


def prior_offsets(
    logits: torch.Tensor, prior: torch.Tensor, *, tol: float = 1e-8, max_iter: int = 1000
) -> torch.Tensor:
    """Per-class offsets b [C] (float64, normalised to ``b.mean() == 0``) such that the
    mean over rows of softmax(logits + b) equals ``prior``.

    Moves the decision rule of a model whose training prior is unknown onto an estimated
    prior using only unlabelled rows. Fixed point b <- b + log(prior) - log(mean softmax),
    each step halved until the convex objective whose minimiser is b does not rise (steps
    are not halved in practice). Stops when the largest gap between the mean softmax and
    ``prior`` (zeros floored at 1e-12, renormalised) is below ``tol``; after ``max_iter``
    steps, returns the b with the smallest gap seen. Convergence is linear and slow for
    near-separable logits (posteriors at 0 or 1), where large offsets are needed.
    """
    z = _rows(logits, "logits")
    target = _prior(prior, z.shape[1], z.device, "prior").clamp_min(PRIOR_FLOOR)
    target = target / target.sum()
    log_target = target.log()
    tiny = torch.finfo(torch.float64).tiny

    b = torch.zeros(z.shape[1], dtype=torch.float64, device=z.device)
    objective, mean_soft = _offset_state(z, b, target)
    gap = float((mean_soft - target).abs().max())
    best_b, best_gap = b, gap
    for _ in range(max_iter):
        if gap < tol:
            break
        step = log_target - mean_soft.clamp_min(tiny).log()
        step = step - step.mean()
        slack = 1e-12 * max(1.0, abs(objective))
        scale = 1.0
        for _ in range(_MAX_HALVINGS):
            candidate = b + scale * step
            new_objective, new_mean_soft = _offset_state(z, candidate, target)
            if new_objective <= objective + slack:
                break
            scale *= 0.5
        else:
            break  # no step lowers the objective: b is as good as float64 allows
        b, objective, mean_soft = candidate, new_objective, new_mean_soft
        gap = float((mean_soft - target).abs().max())
        if gap < best_gap:
            best_b, best_gap = b, gap
    return best_b - best_b.mean()
