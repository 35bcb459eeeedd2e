"""Label shift (cdkd_core.engine.label_shift): EM and BBSE prior estimates against hand
arithmetic and synthetic Gaussian classes with exact Bayes posteriors, Bayes' rule in logit
space, the offsets that move a model onto a prior, and degenerate inputs."""

from __future__ import annotations

import json

import pytest
import torch

from cdkd_core.engine.label_shift import (
    PriorEstimate,
    bbse_prior,
    em_prior,
    prior_offsets,
    shift_logits,
)

torch.set_num_threads(1)

F64 = torch.float64


def t64(values) -> torch.Tensor:
    """A float64 tensor."""
    return torch.tensor(values, dtype=F64)


def gaussian_rows(
    means: list[float], prior: list[float], n: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """n rows of 1-D unit-variance Gaussian classes: exactly round(prior * n) rows per class
    (the class counts carry no sampling noise), x drawn with ``gen``."""
    counts = torch.tensor([round(p * n) for p in prior])
    y = torch.repeat_interleave(torch.arange(len(prior)), counts)
    x = t64(means)[y] + torch.randn(len(y), generator=gen, dtype=F64)
    return x, y


def quantile_rows(means: list[float], prior: list[float], n: int) -> torch.Tensor:
    """A deterministic stand-in for a sample: each class's rows sit at the midpoints of n_y
    equal-probability bins of its Gaussian, so a mean over rows is close to the expectation."""
    normal = torch.distributions.Normal(t64(0.0), t64(1.0))
    parts = []
    for mean, p in zip(means, prior, strict=True):
        k = round(p * n)
        parts.append(mean + normal.icdf((torch.arange(k, dtype=F64) + 0.5) / k))
    return torch.cat(parts)


def bayes_logits(x: torch.Tensor, means: list[float], prior: list[float]) -> torch.Tensor:
    """Exact Bayes logits log pi_y - (x - mu_y)^2 / 2 (up to a per-row constant)."""
    return t64(prior).log() - 0.5 * (x[:, None] - t64(means)) ** 2


def em_posterior(probs: torch.Tensor, source: torch.Tensor, target: torch.Tensor):
    """Saerens' reweighted posterior w_y p(y|x) / sum_k w_k p(k|x), w = target / source."""
    joint = probs * (target / source)
    return joint / joint.sum(1, keepdim=True)


# ------------------------------------------------------------------------------------- EM

HAND_PROBS = t64([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
HAND_SOURCE = t64([0.5, 0.5])


def test_em_first_step_is_the_mean_posterior():
    # start pi = source_prior, so w = (1, 1) and p_t = probs:
    # pi_1 = ((0.9 + 0.6 + 0.3) / 3, (0.1 + 0.4 + 0.7) / 3) = (0.6, 0.4)
    est = em_prior(HAND_PROBS, HAND_SOURCE, max_iter=1)
    assert torch.allclose(est.prior, t64([0.6, 0.4]), atol=1e-12)
    assert est.method == "em" and est.iterations == 1 and not est.converged
    assert est.prior.dtype == F64


def test_em_second_step_by_hand():
    # w = pi_1 / pi_s = (0.6 / 0.5, 0.4 / 0.5) = (1.2, 0.8)
    # row 1: (0.9 * 1.2, 0.1 * 0.8) = (1.08, 0.08), sum 1.16 -> class 0: 1.08 / 1.16 = 27 / 29
    # row 2: (0.6 * 1.2, 0.4 * 0.8) = (0.72, 0.32), sum 1.04 -> class 0: 0.72 / 1.04 = 9 / 13
    # row 3: (0.3 * 1.2, 0.7 * 0.8) = (0.36, 0.56), sum 0.92 -> class 0: 0.36 / 0.92 = 9 / 23
    # pi_2[0] = (27/29 + 9/13 + 9/23) / 3 = (0.931034 + 0.692308 + 0.391304) / 3 = 0.671549
    pi2 = (27 / 29 + 9 / 13 + 9 / 23) / 3
    est = em_prior(HAND_PROBS, HAND_SOURCE, max_iter=2)
    assert est.iterations == 2
    assert est.prior[0].item() == pytest.approx(pi2, abs=1e-12)
    assert est.prior[1].item() == pytest.approx(1 - pi2, abs=1e-12)
    assert pi2 == pytest.approx(0.671549, abs=1e-6)


def test_em_converged_fixed_point():
    est = em_prior(HAND_PROBS, HAND_SOURCE, tol=1e-12, max_iter=100_000)
    assert est.converged and est.iterations > 2
    # pi is a fixed point: the mean of the posteriors it induces gives pi back
    induced = em_posterior(HAND_PROBS, HAND_SOURCE, est.prior).mean(0)
    assert torch.allclose(induced, est.prior, atol=1e-8, rtol=0)
    assert est.prior.sum().item() == pytest.approx(1.0, abs=1e-12)
    # the EM update moves away from the source prior towards class 0, past pi_2
    assert est.prior[0].item() > 0.671549


# --------------------------------------------------------------- synthetic shifted data

N = 50_000
CASES = [
    # means, source prior, target prior
    pytest.param([-1.0, 1.0], [0.5, 0.5], [0.8, 0.2], id="2-class"),
    pytest.param([-2.0, 0.0, 2.0], [0.2, 0.3, 0.5], [0.5, 0.3, 0.2], id="3-class"),
]
SAME = [
    pytest.param([-1.0, 1.0], [0.5, 0.5], id="2-class"),
    pytest.param([-2.0, 0.0, 2.0], [0.2, 0.3, 0.5], id="3-class"),
]


def shifted_sets(means: list[float], source: list[float], target: list[float], seed: int):
    """Target posteriors, held-out source posteriors and labels, all exact Bayes posteriors
    under the source prior."""
    gen = torch.Generator().manual_seed(seed)
    x_target, _ = gaussian_rows(means, target, N, gen)
    x_source, y_source = gaussian_rows(means, source, N, gen)
    target_probs = torch.softmax(bayes_logits(x_target, means, source), 1)
    source_probs = torch.softmax(bayes_logits(x_source, means, source), 1)
    return target_probs, source_probs, y_source


@pytest.mark.parametrize(("means", "source", "target"), CASES)
def test_em_recovers_the_target_prior(means, source, target):
    target_probs, _, _ = shifted_sets(means, source, target, seed=0)
    est = em_prior(target_probs, t64(source))
    assert est.converged
    assert torch.allclose(est.prior, t64(target), atol=0.01, rtol=0)


@pytest.mark.parametrize(("means", "source", "target"), CASES)
def test_bbse_recovers_the_target_prior(means, source, target):
    target_probs, source_probs, source_labels = shifted_sets(means, source, target, seed=1)
    est = bbse_prior(source_probs, source_labels, target_probs, t64(source))
    assert est.method == "bbse" and est.iterations == 0 and est.converged
    assert est.note is None
    assert torch.allclose(est.prior, t64(target), atol=0.02, rtol=0)
    assert est.prior.sum().item() == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize(("means", "source"), SAME)
def test_no_shift_keeps_the_source_prior(means, source):
    target_probs, source_probs, source_labels = shifted_sets(means, source, source, seed=2)
    em = em_prior(target_probs, t64(source))
    assert torch.allclose(em.prior, t64(source), atol=0.01, rtol=0)
    bbse = bbse_prior(source_probs, source_labels, target_probs, t64(source))
    assert torch.allclose(bbse.prior, t64(source), atol=0.02, rtol=0)


def test_em_on_the_expected_sample_is_nearly_exact():
    # with rows at the quantiles of the target mixture, the sampling error all but vanishes
    means, source, target = [-1.0, 1.0], [0.5, 0.5], [0.8, 0.2]
    probs = torch.softmax(bayes_logits(quantile_rows(means, target, 20_000), means, source), 1)
    assert torch.allclose(em_prior(probs, t64(source)).prior, t64(target), atol=1e-3, rtol=0)


# ------------------------------------------------------------------------- shift_logits


def test_shift_logits_by_hand():
    # p_s = (0.9, 0.1), pi_s = (0.6, 0.4), pi_t = (0.3, 0.7): w = (0.5, 1.75),
    # (0.9 * 0.5, 0.1 * 1.75) = (0.45, 0.175), sum 0.625 -> (0.72, 0.28)
    logits = t64([[0.9, 0.1]]).log()
    shifted = shift_logits(logits, t64([0.6, 0.4]), t64([0.3, 0.7]))
    assert torch.allclose(torch.softmax(shifted, 1), t64([[0.72, 0.28]]), atol=1e-12)


def test_shift_logits_is_the_em_posterior():
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(50, 4, generator=gen, dtype=F64) * 2
    source, target = t64([0.1, 0.2, 0.3, 0.4]), t64([0.4, 0.3, 0.2, 0.1])
    expected = em_posterior(torch.softmax(logits, 1), source, target)
    got = torch.softmax(shift_logits(logits, source, target), 1)
    assert torch.allclose(got, expected, atol=1e-12)


def test_shift_logits_keeps_the_dtype_and_equal_priors_are_the_identity():
    logits = torch.randn(20, 3, generator=torch.Generator().manual_seed(4))
    prior = t64([0.2, 0.5, 0.3])
    same = shift_logits(logits, prior, prior)
    assert same.dtype == torch.float32
    assert torch.equal(same, logits)
    assert shift_logits(logits, prior, t64([0.6, 0.2, 0.2])).dtype == torch.float32


def test_shift_logits_with_zero_priors_is_finite():
    logits = t64([[1.0, 0.0, -1.0]])
    shifted = shift_logits(logits, t64([0.5, 0.5, 0.0]), t64([0.0, 0.5, 0.5]))
    assert torch.isfinite(shifted).all()
    probs = torch.softmax(shifted, 1)
    assert probs[0, 0] < 1e-10  # target prior 0


# ------------------------------------------------------------------------ prior_offsets


def test_prior_offsets_reach_the_prior():
    gen = torch.Generator().manual_seed(5)
    logits = torch.randn(2_000, 3, generator=gen, dtype=F64) * 2 + t64([1.0, 0.0, -1.0])
    prior = t64([0.1, 0.3, 0.6])
    b = prior_offsets(logits, prior)
    assert b.dtype == F64 and b.shape == (3,)
    assert b.mean().abs().item() < 1e-12
    assert torch.allclose(torch.softmax(logits + b, 1).mean(0), prior, atol=1e-6, rtol=0)


def test_prior_offsets_accept_float32_logits():
    logits = torch.randn(500, 4, generator=torch.Generator().manual_seed(6))
    prior = t64([0.4, 0.3, 0.2, 0.1])
    b = prior_offsets(logits, prior)
    mean_soft = torch.softmax(logits.double() + b, 1).mean(0)
    assert torch.allclose(mean_soft, prior, atol=1e-6, rtol=0)


@pytest.mark.parametrize(("means", "source", "target"), CASES)
def test_prior_offsets_of_bayes_logits_are_the_log_prior_ratio(means, source, target):
    # Bayes logits under the source prior, on (the quantiles of) the target distribution:
    # the offset that gives the target prior is log(target / source) up to a constant
    logits = bayes_logits(quantile_rows(means, target, 20_000), means, source)
    ratio = (t64(target) / t64(source)).log()
    b = prior_offsets(logits, t64(target))
    assert torch.allclose(b, ratio - ratio.mean(), atol=1e-4, rtol=0)
    # and exactly so when the prior asked for is the one that log(target / source) gives
    reached = torch.softmax(logits + ratio, 1).mean(0)
    exact = prior_offsets(logits, reached, tol=1e-12)
    assert torch.allclose(exact, ratio - ratio.mean(), atol=1e-6, rtol=0)


def test_prior_offsets_on_near_separable_logits():
    # half the rows sure of class 0, half of class 1: the offset must move a logit by ~10
    logits = torch.cat([torch.full((100, 1), 10.0), torch.full((100, 1), -10.0)])
    logits = torch.cat([logits, -logits], 1)
    prior = t64([0.8, 0.2])
    b = prior_offsets(logits, prior)
    assert torch.allclose(torch.softmax(logits + b, 1).mean(0), prior, atol=1e-6, rtol=0)


def test_prior_offsets_return_the_best_when_max_iter_is_hit():
    gen = torch.Generator().manual_seed(7)
    logits = torch.randn(300, 3, generator=gen, dtype=F64) * 3
    prior = t64([0.7, 0.2, 0.1])

    def gap(b):
        return (torch.softmax(logits + b, 1).mean(0) - prior).abs().max().item()

    assert torch.equal(prior_offsets(logits, prior, max_iter=0), torch.zeros(3, dtype=F64))
    one, few = prior_offsets(logits, prior, max_iter=1), prior_offsets(logits, prior, max_iter=3)
    assert gap(few) < gap(one) < gap(torch.zeros(3, dtype=F64))


def test_prior_offsets_with_zero_prior_classes():
    logits = torch.randn(500, 4, generator=torch.Generator().manual_seed(8), dtype=F64) * 3
    prior = t64([0.5, 0.5, 0.0, 0.0])
    b = prior_offsets(logits, prior)
    assert torch.isfinite(b).all()
    assert torch.allclose(torch.softmax(logits + b, 1).mean(0), prior, atol=1e-6, rtol=0)


# ----------------------------------------------------------------------- degenerate inputs


def assert_valid_prior(prior: torch.Tensor, classes: int) -> None:
    """float64 [C], finite, non-negative, sums to 1."""
    assert prior.dtype == F64 and prior.shape == (classes,)
    assert torch.isfinite(prior).all() and (prior >= 0).all()
    assert prior.sum().item() == pytest.approx(1.0, abs=1e-12)


def test_em_with_a_zero_source_prior_class():
    # the classifier gives class 2 some mass although its training prior had none
    probs = t64([[0.7, 0.2, 0.1], [0.2, 0.6, 0.2], [0.1, 0.1, 0.8]])
    est = em_prior(probs, t64([0.5, 0.5, 0.0]))
    assert_valid_prior(est.prior, 3)
    assert est.prior[2].item() == 0.0 and est.converged


def test_em_with_zero_posterior_mass():
    # class 2 has no posterior mass anywhere; one row has none at all; one row's mass is all
    # on class 3, whose source prior (hence weight) is 0
    probs = t64([[0.7, 0.3, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.4, 0.6, 0.0, 0.0], [0, 0, 0, 1]])
    est = em_prior(probs, t64([0.4, 0.4, 0.2, 0.0]))
    assert_valid_prior(est.prior, 4)
    assert est.prior[2].item() == 0.0 and est.prior[3].item() == 0.0


def test_bbse_with_a_singular_confusion_matrix():
    # the classifier always predicts class 0: C = [[0.5, 0.5], [0, 0]] has rank 1
    source_probs = t64([[0.9, 0.1]] * 4)
    source_labels = torch.tensor([0, 0, 1, 1])
    target_probs = t64([[0.8, 0.2]] * 6)
    est = bbse_prior(source_probs, source_labels, target_probs, t64([0.5, 0.5]))
    assert_valid_prior(est.prior, 2)
    assert "rank 1" in est.note
    # the minimum-norm solution of 0.5 w0 + 0.5 w1 = 1 is w = (1, 1): the source prior
    assert torch.allclose(est.prior, t64([0.5, 0.5]), atol=1e-12)


def test_bbse_with_a_class_missing_from_the_held_out_labels():
    source_probs = t64([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1]])
    source_labels = torch.tensor([0, 1, 0])
    target_probs = t64([[0.1, 0.1, 0.8], [0.9, 0.05, 0.05], [0.2, 0.7, 0.1]])
    est = bbse_prior(source_probs, source_labels, target_probs, t64([2 / 3, 1 / 3, 0.0]))
    assert_valid_prior(est.prior, 3)


def test_bbse_falls_back_when_every_weight_clips_to_zero():
    # source rows all predicted class 0, target rows all predicted class 1: C = [[.5, .5],
    # [0, 0]], mu = (0, 1); the least-squares solution is w = (0, 0)
    source_probs = t64([[0.9, 0.1]] * 4)
    source_labels = torch.tensor([0, 0, 1, 1])
    target_probs = t64([[0.2, 0.8]] * 3)
    est = bbse_prior(source_probs, source_labels, target_probs, t64([0.5, 0.5]))
    assert_valid_prior(est.prior, 2)
    assert torch.allclose(est.prior, t64([0.5, 0.5]))
    assert not est.converged and "fell back to the source prior" in est.note


def test_bbse_notes_clipped_weights():
    # y = 0: 4 rows predicted 0, 1 predicted 1; y = 1: 1 row predicted 0, 4 predicted 1:
    # C = [[0.4, 0.1], [0.1, 0.4]], C^-1 = [[8/3, -2/3], [-2/3, 8/3]]; all target rows are
    # predicted 0, mu = (1, 0), so w = (8/3, -2/3) -> clipped (8/3, 0) -> prior (1, 0)
    source_probs = t64([[0.9, 0.1]] * 4 + [[0.1, 0.9]] + [[0.9, 0.1]] + [[0.1, 0.9]] * 4)
    source_labels = torch.tensor([0] * 5 + [1] * 5)
    target_probs = t64([[0.9, 0.1]] * 5)
    est = bbse_prior(source_probs, source_labels, target_probs, t64([0.5, 0.5]))
    assert_valid_prior(est.prior, 2)
    assert torch.allclose(est.prior, t64([1.0, 0.0]))
    assert est.converged and "clipped" in est.note


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="source_prior"):
        em_prior(HAND_PROBS, t64([0.2, 0.3, 0.5]))
    with pytest.raises(ValueError, match="probs"):
        em_prior(torch.zeros(0, 2, dtype=F64), HAND_SOURCE)
    with pytest.raises(ValueError, match="source_labels"):
        bbse_prior(HAND_PROBS, torch.tensor([0, 2, 1]), HAND_PROBS, HAND_SOURCE)
    with pytest.raises(ValueError, match="target_probs"):
        bbse_prior(HAND_PROBS, torch.tensor([0, 1, 1]), torch.ones(2, 3), HAND_SOURCE)


# ------------------------------------------------------------------------- PriorEstimate


def test_prior_estimate_to_dict_is_json_ready():
    est = PriorEstimate(t64([1 / 3, 2 / 3]), "em", 7, True)
    d = est.to_dict()
    assert d == {
        "method": "em",
        "prior": [0.333333, 0.666667],
        "iterations": 7,
        "converged": True,
        "note": None,
    }
    assert json.loads(json.dumps(d)) == d
    with pytest.raises(AttributeError):
        est.method = "bbse"  # frozen
