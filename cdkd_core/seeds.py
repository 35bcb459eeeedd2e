"""Every seed a run derives from its ``seed``, named in one place.

The teacher (and member 0 of an ensemble) is seeded with the run's seed itself; what else
needs randomness gets one of the derivations below, each distinct from the others for one
run. The numbers are part of a run's reproducibility: changing one changes the results of
every config that reaches it.
"""

from __future__ import annotations


def student_seed(seed: int) -> int:
    """The student's and the baseline's (which share it, so that they start alike)."""
    return seed + 1


def member_seed(seed: int, member: int) -> int:
    """Ensemble member ``member``'s (member 0: ``seed`` itself, so a one-member ensemble is
    the single teacher); a prime step, so no member meets :func:`student_seed`."""
    return seed + 7919 * member


def finetune_seed(seed: int) -> int:
    """A feedback strategy's weighted fine-tune of the teacher."""
    return seed + 7


def domain_seed(seed: int, index: int) -> int:
    """The ``index``-th domain of the config's: its labelled masks, quiz rows and shots."""
    return seed * 1000 + index


def labelled_seed(domain: int, split: str) -> int:
    """A domain's labelled rows of ``split`` (``train`` or ``val``): a stratified
    ``label_fraction``, or ``shots`` per class; ``domain`` is :func:`domain_seed`."""
    return domain + {"train": 0, "val": 1}[split]


def quiz_seed(domain: int) -> int:
    """A source domain's quiz rows (held out of its train rows for the feedback);
    ``domain`` is :func:`domain_seed`."""
    return domain + 17


def round_seed(seed: int, round_: int) -> int:
    """Feedback round ``round_``'s resampling (the teacher gate's paired bootstrap)."""
    return seed + round_


def sample_seed(seed: int, index: int) -> int:
    """The knowledge sample's rows of the run's ``index``-th prepared domain."""
    return seed + index


def numpy_seed(seed: int) -> int:
    """``seed`` as NumPy's and scikit-learn's ``random_state`` take it (below 2**32)."""
    return seed % 2**32
