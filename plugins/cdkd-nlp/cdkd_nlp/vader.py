"""Four human-rated sentiment domains from the VADER paper (Hutto & Gilbert, ICWSM 2014).

The ``vaderSentiment==3.3.2`` source archive (the wheel lacks it) holds
``additional_resources/hutto_ICWSM_2014.tar.gz`` with one ``*_GroundTruth.txt`` per domain:
tab-separated ``ID``, ``MEAN-SENTIMENT-RATING`` and the text, the mean of 20 or more
independent ratings on a -4 (extremely negative) .. +4 (extremely positive) scale.

Each domain: identical texts (up to case and spacing) merged, their mean ratings
averaged; texts whose |mean| is below ``neutral_threshold`` (default 0.5, and always a mean
of exactly 0) dropped as near-neutral; label = sign of the mean. All four share the task
``sentiment`` (classes ``negative``, ``positive``) and the input space ``nlp.text``, so a
pipeline can train on some and evaluate another zero-shot.
"""

from __future__ import annotations

import functools
import io
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
from pydantic import Field

from cdkd_core.plugin_api import DataError, Domain, DomainData, InputReader
from cdkd_nlp.textdata import (
    LabelledTexts,
    TextSplitConfig,
    build_domain_data,
    clean_text,
    dedupe,
    text_input_reader,
)

REQUIREMENT = "vaderSentiment==3.3.2"
INNER_ARCHIVE = "*/additional_resources/hutto_ICWSM_2014.tar.gz"
#: SHA-256 of the data read from the archive, checked on every read.
INNER_ARCHIVE_SHA256 = "d5bb07d87474b3eb8d30b4deccbc23f19d742a6c5718fbacc65485b70b95c5fa"
#: dataset -> (ground-truth file, documented number of rated texts)
DATASETS: dict[str, tuple[str, int]] = {
    "tweets": ("tweets_GroundTruth.txt", 4200),
    "movies": ("movieReviewSnippets_GroundTruth.txt", 10605),
    "amazon": ("amazonReviewSnippets_GroundTruth.txt", 3708),
    "nyt": ("nytEditorialSnippets_GroundTruth.txt", 5190),
}
CLASSES = ["negative", "positive"]
#: Headline first: ROC-AUC, because the four domains' class balance differs (31% to 60%
#: negative after the threshold) and zero-shot transfer to an unseen domain meets that
#: prior shift; AUC ranks examples irrespective of the decision threshold. Accuracy (with
#: the test split's ``majority_rate`` reported beside it) and macro-F1 follow.
METRICS = ["roc_auc", "accuracy", "f1_macro"]


@dataclass
class RatedTexts:
    """One VADER set, parsed: ``texts`` and their mean ``ratings`` (-4..4)."""

    dataset: str
    texts: list[str]
    ratings: np.ndarray
    source: str


def vader_archive() -> Path:
    """The ``vaderSentiment`` source archive, fetched once through the package index."""
    from cdkd_core.plugin_api import fetch_distribution

    return fetch_distribution(REQUIREMENT, sdist=True)


@functools.lru_cache(maxsize=4)
def _inner_archive(outer: Path) -> bytes:
    from cdkd_core.plugin_api import read_member

    return read_member(outer, INNER_ARCHIVE, INNER_ARCHIVE_SHA256)


def parse_ground_truth(data: bytes, source: str) -> tuple[list[str], np.ndarray]:
    """Texts and mean ratings of a ``*_GroundTruth.txt`` file (``ID\\tMEAN\\tTEXT`` lines)."""
    try:
        content = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(f"{source}, line {line}: not valid UTF-8") from exc
    texts: list[str] = []
    ratings: list[float] = []
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split("\t", 2)
        if len(parts) != 3:
            raise DataError(f"{source}, line {number}: expected ID, rating and text, tab-separated")
        try:
            rating = float(parts[1])
        except ValueError:
            raise DataError(
                f"{source}, line {number}: rating {parts[1]!r} is not a number"
            ) from None
        if not -4.0 <= rating <= 4.0:
            raise DataError(f"{source}, line {number}: rating {rating} is outside -4..4")
        texts.append(clean_text(parts[2]))
        ratings.append(rating)
    return texts, np.asarray(ratings, dtype=np.float64)


def read_vader(dataset: str, archive: Path | None = None) -> RatedTexts:
    """Every rated text of one VADER set, as published (duplicates and neutrals kept)."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown VADER dataset {dataset!r}; known: {sorted(DATASETS)}")
    outer = archive or vader_archive()
    filename = DATASETS[dataset][0]
    with tarfile.open(fileobj=io.BytesIO(_inner_archive(Path(outer)))) as inner:
        members = [m for m in inner.getmembers() if m.isfile() and m.name.endswith("/" + filename)]
        if not members:
            raise DataError(f"{outer.name}: hutto_ICWSM_2014.tar.gz has no {filename}")
        handle = inner.extractfile(members[0])  # a regular file (isfile): never None
        if handle is None:
            raise DataError(f"{outer.name}: {members[0].name} is not a regular file")
        data = handle.read()
    source = f"{Path(outer).name}:{members[0].name}"
    texts, ratings = parse_ground_truth(data, source)
    return RatedTexts(dataset, texts, ratings, source)


def label_by_rating(
    texts: list[str], ratings: np.ndarray, threshold: float
) -> tuple[list[str], np.ndarray, dict[str, int]]:
    """Merge duplicates (mean of their ratings), drop |mean| < ``threshold`` (and 0), label
    1 = positive, 0 = negative; returns texts, labels and counts of what was dropped."""
    merged, means, duplicates = dedupe(texts, list(ratings), lambda v: float(np.mean(v)))
    means_arr = np.asarray(means, dtype=np.float64)
    keep = (np.abs(means_arr) >= threshold) & (means_arr != 0)
    kept = [t for t, k in zip(merged, keep, strict=True) if k]
    labels = (means_arr[keep] > 0).astype(np.int64)
    return kept, labels, {"duplicates": duplicates, "neutral": int((~keep).sum())}


class VaderConfig(TextSplitConfig):
    """Split sizes, cap, student token length and the near-neutral threshold."""

    neutral_threshold: float = Field(
        0.5,
        ge=0,
        lt=4,
        description="Texts whose mean rating (-4..4) has |mean| below this are dropped as "
        "near-neutral; a mean of exactly 0 always is.",
    )


class _VaderSentiment(Domain):
    dataset: ClassVar[str] = ""
    Config = VaderConfig

    @classmethod
    def fetch(cls) -> list[str]:
        """Download the ``vaderSentiment`` source archive (once) into the data cache."""
        return [f"{REQUIREMENT} source archive (VADER human-rated sets): {vader_archive()}"]

    def labelled_texts(self) -> LabelledTexts:
        """The set's texts with duplicates merged and near-neutrals dropped, labelled by
        the sign of their mean rating."""
        cfg: VaderConfig = self.config  # type: ignore[assignment]
        rated = read_vader(self.dataset)
        texts, labels, _ = label_by_rating(rated.texts, rated.ratings, cfg.neutral_threshold)
        if len(np.unique(labels)) < 2:
            raise DataError(
                f"{rated.source}: neutral_threshold {cfg.neutral_threshold} leaves fewer than "
                "two classes"
            )
        return LabelledTexts(texts, labels, CLASSES, "sentiment", METRICS)

    def load(self, seed: int) -> DomainData:
        """Parse, merge duplicates, drop near-neutrals (:meth:`labelled_texts`), cap, split
        (by ``split_seed``), embed (cached) and tokenize. ``seed`` is unused: the split
        must not move."""
        corpus = self.labelled_texts()
        return build_domain_data(
            corpus.texts,
            corpus.labels,
            corpus.classes,
            self.config,  # type: ignore[arg-type]
            task=corpus.task,
            metrics=corpus.metrics,
        )

    def input_reader(self, seed: int) -> InputReader:
        """New texts (a text file, one per line; a CSV column; JSON Lines; or a list from
        Python), cleaned and tokenized as :meth:`load` does (``tokenizer``,
        ``max_tokens``); the teacher view is their MiniLM embedding. Needs no VADER data."""
        return text_input_reader(self.config)  # type: ignore[arg-type]


class SentimentTweets(_VaderSentiment):
    """Sentiment of 4,200 tweet-like texts rated by 20+ people each (VADER, ICWSM 2014).

    Label: sign of the mean rating (-4..4); |mean| < ``neutral_threshold`` (0.5) dropped.
    Teacher view: MiniLM embedding; student view: MiniLM's WordPiece token ids (hashed
    n-grams with ``tokenizer: hashed``). Task ``sentiment``.
    """

    name = "nlp.sentiment_tweets"
    dataset = "tweets"


class SentimentMovies(_VaderSentiment):
    """Sentiment of 10,605 movie-review snippets (Pang & Lee 2004), rated by 20+ people each.

    Snippets of rottentomatoes.com reviews, rated for VADER (Hutto & Gilbert, ICWSM 2014).

    Label: sign of the mean rating (-4..4); |mean| < ``neutral_threshold`` (0.5) dropped.
    """

    name = "nlp.sentiment_movies"
    dataset = "movies"


class SentimentAmazon(_VaderSentiment):
    """Sentiment of 3,708 Amazon review snippets (Hu & Liu 2004), rated by 20+ people each.

    Sentences of 309 reviews of 5 products, rated for VADER (Hutto & Gilbert, ICWSM 2014).

    Label: sign of the mean rating (-4..4); |mean| < ``neutral_threshold`` (0.5) dropped.
    """

    name = "nlp.sentiment_amazon"
    dataset = "amazon"


class SentimentNYT(_VaderSentiment):
    """Sentiment of 5,190 New York Times editorial sentences, rated by 20+ people each.

    Sentences of 500 opinion editorials, rated for VADER (Hutto & Gilbert, ICWSM 2014).

    Label: sign of the mean rating (-4..4); |mean| < ``neutral_threshold`` (0.5) dropped.
    """

    name = "nlp.sentiment_nyt"
    dataset = "nyt"


SENTIMENT_DOMAINS = (SentimentTweets, SentimentMovies, SentimentAmazon, SentimentNYT)
