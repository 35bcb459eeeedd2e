"""The multilingual domains' data: texts in any of USE's 16 languages, seen by the teacher
as their multilingual USE v3 embedding (:mod:`cdkd_nlp.multilingual_embeddings`) and by the
student as USE's SentencePiece ids.

The teacher stem stays ``minilm``: it is a projection (LayerNorm -> Linear -> ...) that
reads whatever ``[N, D]`` vector it is given, so it fits the 512-d USE vectors unchanged
(nothing inside it is MiniLM). :func:`build_multilingual_data` is
:func:`~cdkd_nlp.textdata.build_domain_data` with the multilingual embedder.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cdkd_core.plugin_api import DomainData, InputReader
from cdkd_nlp.embeddings import Embedder
from cdkd_nlp.multilingual_embeddings import multilingual_embedder
from cdkd_nlp.textdata import TextSplitConfig, build_domain_data, text_input_reader

#: The input space of the multilingual domains: a text in one of USE's 16 languages, seen by
#: the teacher as its 512-d USE embedding and by the student as USE's SentencePiece ids
#: (hashed n-gram ids with ``tokenizer: hashed``).
MULTILINGUAL_SPACE = "nlp.multilingual"


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
