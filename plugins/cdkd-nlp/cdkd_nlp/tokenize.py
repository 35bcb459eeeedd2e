"""The hashed student view (domain param ``tokenizer: hashed``, for the ``embedding_bag``
stem): hashed word unigrams and bigrams, nothing to download or fit. The default view is
the teacher's own tokenizer (:mod:`cdkd_nlp.student_tokenizers`).

A text is NFKC-normalised and lower-cased, split into word tokens (runs of letters/digits,
with inner apostrophes: ``don't``) and single punctuation marks (``!``, ``?``, ``:``, ``)``
carry sentiment), and turned into the sequence

    w1, w1_w2, w2, w2_w3, w3, ...

(each unigram followed by the bigram it starts), each feature hashed with BLAKE2b into
``1 .. VOCAB_SIZE - 1`` (:data:`~cdkd_nlp.resources.VOCAB_SIZE`); id 0 is padding.
Interleaving keeps both kinds of features for the start of a text when a long text is cut
at ``max_tokens`` ids.

Hashing (rather than a vocabulary fitted on a train split) makes the token ids a fixed
function of the text: every domain, dataset and run maps a text to the same ids, so the
four sentiment domains can share one student stem, and an unseen domain's words land where
the student's training put them. The price is collisions, rare at 2**15 buckets for the
few thousand distinct n-grams a domain's train split holds.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Sequence

import numpy as np

from cdkd_nlp.resources import HASHED, MAX_TOKENS, VOCAB_SIZE

#: Identifies the scheme (for docs, caches and error messages): the hashed view's
#: vocabulary id.
SCHEME = HASHED

_TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)*|[^\w\s]", re.UNICODE)


def words(text: str) -> list[str]:
    """Normalised tokens of ``text``: NFKC, lower case, words and punctuation marks."""
    return _TOKEN.findall(unicodedata.normalize("NFKC", text).lower())


def _bucket(feature: str) -> int:
    digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") % (VOCAB_SIZE - 1) + 1


def features(text: str) -> list[str]:
    """The interleaved unigram / bigram features of ``text`` (before hashing)."""
    toks = words(text)
    out: list[str] = []
    for i, tok in enumerate(toks):
        out.append("w:" + tok)
        if i + 1 < len(toks):
            out.append(f"b:{tok} {toks[i + 1]}")
    return out


def token_ids(text: str, max_tokens: int = MAX_TOKENS) -> list[int]:
    """The hashed ids of ``text`` (at most ``max_tokens``; no padding)."""
    return [_bucket(f) for f in features(text)[:max_tokens]]


def encode(texts: Iterable[str], max_tokens: int = MAX_TOKENS) -> np.ndarray:
    """int64 ``[N, max_tokens]`` token ids, right-padded with 0.

    A text with no token at all (only spaces) is all padding; the ``embedding_bag`` stem
    maps it to a zero bag.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
    return pad_ids([token_ids(t, max_tokens) for t in texts], max_tokens)


def pad_ids(
    rows: Sequence[Sequence[int]], width: int | None = None, padding_id: int = 0
) -> np.ndarray:
    """int64 ``[len(rows), width]``: each row of ids cut at ``width`` and right-padded with
    ``padding_id``; ``width=None``: the longest row's length (at least one column)."""
    if width is None:
        width = max([1, *map(len, rows)])
    out = np.full((len(rows), width), padding_id, dtype=np.int64)
    for i, ids in enumerate(rows):
        row = list(ids)[:width]
        out[i, : len(row)] = row
    return out
