"""The teacher behind a student vocabulary: a tokenizer
(:mod:`cdkd_nlp.student_tokenizers`) paired with the embedder whose vectors the teacher
reads for the input space that uses it (:mod:`cdkd_nlp.embeddings`,
:mod:`cdkd_nlp.multilingual_embeddings`), shown one token at a time
(:meth:`~cdkd_nlp.embeddings.Embedder.embed_tokens`).

``student.weight_init: teacher_tokens`` fills a ``static_embedding`` table from such a
teacher (:func:`cdkd_core.plugin_api.token_table`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from cdkd_nlp.embeddings import Embedder, default_embedder
from cdkd_nlp.multilingual_embeddings import multilingual_embedder
from cdkd_nlp.resources import SENTENCEPIECE, WORDPIECE
from cdkd_nlp.student_tokenizers import StudentTokenizer, no_token_strings, student_tokenizer

#: The embedder of the input space whose student view uses each vocabulary (looked up
#: when a teacher is asked for: :func:`~cdkd_nlp.embeddings.set_default_embedder` and
#: :func:`~cdkd_nlp.multilingual_embeddings.set_multilingual_embedder` can replace it).
_EMBEDDERS: dict[str, Callable[[], Embedder]] = {
    WORDPIECE: default_embedder,
    SENTENCEPIECE: multilingual_embedder,
}


class EmbedderTokenTeacher:
    """A token teacher (:class:`~cdkd_core.components.token_vocabulary.TokenTeacher`): an
    embedder shown one token of a student vocabulary at a time."""

    def __init__(self, embedder: Embedder, tokenizer: StudentTokenizer) -> None:
        self.embedder = embedder
        self.tokenizer = tokenizer
        self.model_id = f"{embedder.model_id};tokens={tokenizer.id}"

    def embed_tokens(self, token_ids: Sequence[int]) -> np.ndarray:
        """The embedder's vector of each token on its own."""
        return self.embedder.embed_tokens(self.tokenizer, token_ids)


def token_teacher(vocabulary: str) -> EmbedderTokenTeacher:
    """The teacher behind a vocabulary: the embedder of the input space that uses it.

    Raises:
        ConfigError: The vocabulary is unknown, or has no token strings to show a teacher
            (hashed n-grams).
    """
    tokenizer = student_tokenizer(vocabulary)
    embedder = _EMBEDDERS.get(vocabulary)
    if embedder is None:
        raise no_token_strings(vocabulary)
    return EmbedderTokenTeacher(embedder(), tokenizer)
