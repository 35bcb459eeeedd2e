"""VADER sets: parsing, labels from the mean rating, the neutral threshold, de-duplication,
published sizes, and stratified, disjoint splits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cdkd_nlp.textdata import dedup_key
from cdkd_nlp.vader import (
    CLASSES,
    DATASETS,
    SentimentAmazon,
    SentimentNYT,
    SentimentTweets,
    label_by_rating,
    parse_ground_truth,
    read_vader,
)

from cdkd_core.plugin_api import DataError

# texts per set after merging duplicates and dropping |mean| < 0.5: (negative, positive)
AFTER_THRESHOLD = {
    "tweets": (1057, 2315),
    "movies": (5075, 4995),
    "amazon": (1233, 1743),
    "nyt": (1754, 1171),
}


def test_parse_ground_truth_reads_id_mean_text():
    data = b"1\t2.5\tLoved it &amp; more\r\n2\t-1.25\tMeh.  Bad\r\n\r\n3_1\t0\tA\ttab\r\n"
    texts, ratings = parse_ground_truth(data, "x.txt")
    assert texts == ["Loved it & more", "Meh. Bad", "A tab"]
    np.testing.assert_allclose(ratings, [2.5, -1.25, 0.0])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"1\t2.0\tok\n2\tabc\tno\n", "x.txt, line 2: rating 'abc' is not a number"),
        (b"1\t2.0\n", "x.txt, line 1: expected ID, rating and text"),
        (b"1\t9\ttoo high\n", "line 1: rating 9.0 is outside -4..4"),
        (b"1\t1\tok\n2\t1\tbad \xff byte\n", "x.txt, line 2: not valid UTF-8"),
    ],
)
def test_parse_ground_truth_errors_name_file_and_line(data, message):
    with pytest.raises(DataError, match=message):
        parse_ground_truth(data, "x.txt")


def test_labels_are_the_sign_of_the_mean_and_near_neutrals_drop():
    texts = ["great", "awful", "fine", "meh", "zero", "GREAT ", "Awful", "awful"]
    ratings = np.array([3.0, -2.0, 0.6, -0.4, 0.0, 1.0, -1.0, -3.0])
    kept, labels, info = label_by_rating(texts, ratings, threshold=0.5)
    # "great"/"GREAT " merge to mean 2.0; the three "awful" to -2.0; "meh" and "zero" drop
    assert kept == ["great", "awful", "fine"]
    assert labels.tolist() == [1, 0, 1]
    assert info == {"duplicates": 3, "neutral": 2}
    kept, labels, _ = label_by_rating(texts, ratings, threshold=0.0)
    assert kept == ["great", "awful", "fine", "meh"]  # a mean of exactly 0 always drops
    assert labels.tolist() == [1, 0, 1, 0]
    kept, _, info = label_by_rating(["a", "A"], np.array([0.8, -0.4]), threshold=0.5)
    assert kept == [] and info["neutral"] == 1  # merged mean 0.2


def test_published_sizes_and_counts_after_threshold(vader_archive):
    for dataset, (_, size) in DATASETS.items():
        rated = read_vader(dataset, vader_archive)
        assert len(rated.texts) == size, dataset
        assert rated.ratings.min() >= -4 and rated.ratings.max() <= 4
        texts, labels, info = label_by_rating(rated.texts, rated.ratings, 0.5)
        assert (int((labels == 0).sum()), int(labels.sum())) == AFTER_THRESHOLD[dataset]
        assert len(texts) + info["duplicates"] + info["neutral"] == size
        assert len({dedup_key(t) for t in texts}) == len(texts)  # no duplicates left
        loose, _, _ = label_by_rating(rated.texts, rated.ratings, 1.0)
        assert len(loose) < len(texts)


def _rows(x: torch.Tensor) -> set[bytes]:
    return {row.numpy().tobytes() for row in x}


def test_domain_splits_are_stratified_disjoint_and_capped_before_embedding(
    vader_archive, fake_embedder
):
    data = SentimentNYT.from_params({"max_examples": 200}).load(seed=0)
    assert fake_embedder.calls == [200]  # only the capped texts were embedded
    assert (data.modality, data.task, data.input_space) == ("text", "sentiment", "nlp.text")
    assert data.classes == CLASSES
    assert data.metrics == ["roc_auc", "accuracy", "f1_macro"]
    sizes = {k: len(s) for k, s in data.splits.items()}
    assert sum(sizes.values()) == 200
    assert sizes == {"train": 120, "val": 40, "test": 40}
    overall = 1754 / (1754 + 1171)  # NYT's negative share after the threshold
    for split in data.splits.values():
        assert split.teacher_x.dtype == torch.float32 and split.teacher_x.shape[1] == 384
        assert split.student_x.dtype == torch.int64 and split.student_x.shape[1] == 256
        assert abs(float((split.y == 0).double().mean()) - overall) < 0.03
    train, val, test = (_rows(data.splits[k].student_x) for k in ("train", "val", "test"))
    assert not (train & val) and not (train & test) and not (val & test)
    assert data.reference["majority_rate"] == pytest.approx(
        float((data.splits["test"].y == 0).double().mean())
    )
    again = SentimentNYT.from_params({"max_examples": 200}).load(seed=7)  # seed: no effect
    assert fake_embedder.calls == [200]  # all from the cache
    assert torch.equal(again.splits["test"].student_x, data.splits["test"].student_x)
    assert torch.equal(again.splits["test"].teacher_x, data.splits["test"].teacher_x)


def test_threshold_and_split_seed_are_params(vader_archive, fake_embedder):
    strict = SentimentAmazon.from_params({"max_examples": 60, "neutral_threshold": 2.0})
    other = SentimentAmazon.from_params({"max_examples": 60, "split_seed": 1})
    a, b = strict.load(0), other.load(0)
    assert not torch.equal(a.splits["test"].student_x, b.splits["test"].student_x)
    with pytest.raises(ValueError):
        SentimentTweets.from_params({"neutral_threshold": -1})


def test_fetch_returns_the_archive(vader_archive):
    (item,) = SentimentTweets.fetch()
    assert str(vader_archive) in item
