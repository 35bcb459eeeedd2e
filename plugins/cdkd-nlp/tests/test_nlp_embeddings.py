"""The real MiniLM embedder (a handful of sentences) and the on-disk embedding cache."""

from __future__ import annotations

import numpy as np
import pytest
from cdkd_nlp.embeddings import DIM, EmbeddingCache, MiniLMEmbedder, embed_texts, text_key

SENTENCES = [
    "The film was wonderful and I loved every minute of it.",
    "I really enjoyed this movie, it was great.",
    "The central bank raised interest rates by half a point.",
    "A terrible, boring film that I hated.",
    "Stocks fell sharply after the inflation report.",
]


class Counting(MiniLMEmbedder):
    def __init__(self) -> None:
        super().__init__(batch_size=4)
        self.seen: list[str] = []

    def encode(self, texts):
        self.seen.extend(texts)
        return super().encode(texts)


@pytest.fixture(scope="module")
def minilm() -> Counting:
    return Counting()


def test_minilm_vectors_are_unit_384d_and_meaningful(minilm, tmp_path):
    vectors = embed_texts(SENTENCES, minilm, root=tmp_path)
    assert vectors.shape == (5, DIM) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sim = vectors @ vectors.T
    assert sim[0, 1] > sim[0, 2] + 0.3  # two film reviews vs film and central bank
    assert sim[2, 4] > sim[2, 1]  # two finance sentences
    assert sim[0, 3] > sim[0, 4]  # a film review is nearer a film review than finance


def test_minilm_matches_sentence_transformers(minilm):
    st = pytest.importorskip("sentence_transformers")
    from cdkd_nlp.resources import minilm_model_dir

    reference = st.SentenceTransformer(str(minilm_model_dir()), device="cpu").encode(
        SENTENCES[:3], normalize_embeddings=True
    )
    np.testing.assert_allclose(minilm.encode(SENTENCES[:3]), reference, atol=1e-5)


def test_cache_hit_avoids_recomputation(minilm, tmp_path):
    minilm.seen.clear()
    first = embed_texts(SENTENCES, minilm, root=tmp_path)
    assert sorted(minilm.seen) == sorted(SENTENCES)
    minilm.seen.clear()
    second = embed_texts(SENTENCES[::-1], minilm, root=tmp_path)
    assert minilm.seen == []
    np.testing.assert_array_equal(second, first[::-1])
    extra = "An entirely new sentence about gardening."
    third = embed_texts([*SENTENCES[:2], extra, SENTENCES[0]], minilm, root=tmp_path)
    assert minilm.seen == [extra]  # only the text not yet cached, once
    np.testing.assert_array_equal(third[0], third[3])
    cache = EmbeddingCache(minilm.model_id, DIM, tmp_path)
    assert all(p.suffix == ".safetensors" for p in cache.directory.iterdir())
    assert set(cache.lookup([text_key(extra)])) == {text_key(extra)}


def test_cache_is_keyed_by_model_and_survives_a_bad_shard(tmp_path):
    a = EmbeddingCache("model-a", 4, tmp_path)
    b = EmbeddingCache("model-b", 4, tmp_path)
    key = text_key("hello")
    a.store([key], np.ones((1, 4), dtype=np.float32))
    assert a.directory != b.directory
    assert b.lookup([key]) == {}
    (a.directory / "0000-torn.safetensors").write_bytes(b"not a safetensors file")
    np.testing.assert_array_equal(a.lookup([key])[key], np.ones(4, dtype=np.float32))
    with pytest.raises(ValueError, match="expected vectors"):
        a.store([key], np.ones((1, 5), dtype=np.float32))
