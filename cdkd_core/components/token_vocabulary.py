"""A text student's token vocabulary and what a stem over it implements to start from the
teacher's tokens (``student.weight_init: teacher_tokens``): :class:`TokenVocabulary`,
:class:`TokenTeacher`, :class:`TokenKnowledgeStem`, the progress-bar type
:data:`BarFactory` such a stem is given, and the SIF frequency weights of a ranked
vocabulary (:func:`zipf_sif_weights`). The stage that computes a token table is
:mod:`cdkd_core.stages.token_knowledge`."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

SIF = 1e-4
"""Default SIF coefficient ``a`` of the frequency weighting ``a / (a + p)``.

Examples:
    >>> from cdkd_core.plugin_api import SIF, zipf_sif_weights
    >>> SIF
    0.0001
    >>> bool((zipf_sif_weights(10) == zipf_sif_weights(10, SIF)).all())
    True
"""
BarFactory = Callable[[str, int], AbstractContextManager[Callable[..., None]]]
"""A progress-bar factory: ``bar(description, total)`` is a context manager yielding an
``advance(status="")`` function (:meth:`cdkd_core.engine.progress.Progress.stage`).

Examples:
    >>> from contextlib import contextmanager
    >>> from cdkd_core.plugin_api import BarFactory
    >>> @contextmanager
    ... def printed(description, total):
    ...     print(f"{description}: {total} steps")
    ...     yield lambda status="": print("step", status)
    >>> bar: BarFactory = printed
    >>> with bar("teacher tokens", 2) as advance:
    ...     advance()
    ...     advance("done")
    teacher tokens: 2 steps
    step
    step done
"""


class TokenTeacher(Protocol):
    """A teacher that can embed single tokens of a vocabulary."""

    #: Identifies the teacher (model and how its outputs are pooled); keys the cache.
    model_id: str

    def embed_tokens(self, token_ids: Sequence[int]) -> np.ndarray:
        """float32 ``[len(token_ids), D]``: the teacher's output for each token on its own."""
        ...


@dataclass(frozen=True)
class TokenVocabulary:
    """The token ids a student view uses: how many, which are real tokens, and a digest.

    ``tokens[i]`` is the string of id ``i`` (hashed into ``digest``); ``embed`` lists the ids
    shown to the teacher (real tokens), in rank order (most frequent first) for the Zipf
    estimate; every other id (padding, special, unused) gets a zero row.

    Args:
        id: The vocabulary's name (e.g. ``minilm-wordpiece``; a student view's
            ``student_vocabulary``).
        tokens: The string of each id, ``tokens[i]`` for id ``i``.
        embed: The ids shown to the teacher, most frequent first.

    Examples:
        >>> from cdkd_core.plugin_api import TokenVocabulary
        >>> vocab = TokenVocabulary(id="toy", tokens=("[PAD]", "the", "cat"), embed=(1, 2))
        >>> vocab.size, len(vocab.digest)
        (3, 64)
    """

    id: str
    tokens: tuple[str, ...]
    embed: tuple[int, ...]

    @property
    def size(self) -> int:
        """Number of ids (the table's rows)."""
        return len(self.tokens)

    @functools.cached_property
    def digest(self) -> str:
        """SHA-256 of the tokens (NUL-separated) and of the embedded ids.

        Returns:
            64 hex digits (part of the token table's cache key).
        """
        h = hashlib.sha256("\0".join(self.tokens).encode("utf-8"))
        h.update(np.asarray(self.embed, dtype=np.int64).tobytes())
        return h.hexdigest()


@runtime_checkable
class TokenKnowledgeStem(Protocol):
    """A student stem over token ids whose table can start from the teacher's tokens."""

    #: Id of the token vocabulary the stem reads (a domain's ``student_vocabulary``).
    vocabulary: str

    def inject_teacher_tokens(self, bar: BarFactory | None = None) -> dict[str, Any]:
        """Overwrite the token table with the teacher's
        (:func:`cdkd_core.stages.token_knowledge.token_table`); returns a JSON-ready report
        of what was written. A stem may also define ``check_teacher_tokens()``, raising
        ConfigError when it cannot (checked before the teacher trains)."""
        ...


def zipf_sif_weights(n: int, sif: float = SIF) -> np.ndarray:
    """``a / (a + p_r)`` for ranks ``r = 0..n-1``, ``p_r = (1/(r+2)) / sum_j 1/(j+2)``.

    The SIF weight (Arora et al. 2017) of each token of a vocabulary listed by frequency,
    its probability estimated by Zipf's law from its rank: frequent tokens are shrunk,
    rare ones kept.

    Args:
        n: Number of ranked tokens.
        sif: The coefficient ``a``.

    Returns:
        ``[n]`` float64 weights in ``(0, 1)``, increasing with the rank.

    Examples:
        >>> from cdkd_core.plugin_api import zipf_sif_weights
        >>> zipf_sif_weights(30000)[[0, 100, -1]].round(3).tolist()
        [0.002, 0.092, 0.967]
    """
    inv_rank = 1.0 / np.arange(2, n + 2, dtype=np.float64)
    proba = inv_rank / inv_rank.sum()
    return sif / (sif + proba)
