"""Every component of the plugin keeps the contract of its kind: one test per component and
named check (``cdkd_core.testing.parametrize_with_checks``), e.g.
``nlp.sentiment_tweets(max_examples=300)-check_splits_are_disjoint``. The domains embed with
the stand-in embedders of ``conftest.py``; ``nlp.text_file`` reads the user's file and has
no default data (``test_nlp_text_file.py`` loads it from files it writes)."""

from __future__ import annotations

import cdkd_nlp
import torch

from cdkd_core.testing import parametrize_with_checks

#: The VADER domains, which read the archive of the ``vader_archive`` fixture.
VADER = {cls.name for cls in cdkd_nlp.SENTIMENT_DOMAINS}

#: What ``minilm`` reads: a batch of 4 sentence embeddings of MiniLM's 384 dimensions.
SENTENCE_VECTORS = torch.randn(4, 384, generator=torch.Generator().manual_seed(0))


@parametrize_with_checks(
    [
        ("nlp.sentiment_tweets", {"max_examples": 300}),
        ("nlp.sentiment_movies", {"max_examples": 150}),
        ("nlp.sentiment_amazon", {"max_examples": 150}),
        ("nlp.sentiment_nyt", {"max_examples": 150}),
        ("nlp.bbc_news", {"max_examples": 100}),
        ("nlp.chatterbot", {"max_examples": 150}),
        ("minilm", {}, {"inputs": SENTENCE_VECTORS}),
        # its table is sized by the vocabulary its ids come from
        ("static_embedding", {"dim": 8}, {"vocabulary": cdkd_nlp.WORDPIECE}),
        ("embedding_bag", {"dim": 8}),
    ],
    plugins=[("nlp", cdkd_nlp)],
)
def test_components_keep_their_contracts(
    component, check, request, fake_embedder, fake_multilingual_embedder
):
    if component.name in VADER:
        request.getfixturevalue("vader_archive")
    check(component)
