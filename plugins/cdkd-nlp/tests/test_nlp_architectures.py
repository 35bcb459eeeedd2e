"""The text stems: shapes, padding, and the vocabulary check."""

from __future__ import annotations

import pytest
import torch
from cdkd_nlp.architectures import EmbeddingBagStem, MiniLMStem
from cdkd_nlp.tokenize import VOCAB_SIZE, encode

from cdkd_core.plugin_api import ConfigError


def test_minilm_stem_maps_embeddings_to_trunk_width():
    stem = MiniLMStem.from_params({}).build_stem((384,), 32)
    out = stem(torch.randn(5, 384))
    assert out.shape == (5, 32)
    with pytest.raises(ConfigError, match="sentence-embedding vectors"):
        MiniLMStem.from_params({}).build_stem((4, 96), 32)


def test_embedding_bag_stem_shapes_and_gradients():
    stem = EmbeddingBagStem.from_params({"dim": 8}).build_stem((16,), 12)
    ids = torch.from_numpy(encode(["a good movie", "awful", "great fun!"], 16))
    out = stem(ids)
    assert out.shape == (3, 12)
    out.sum().backward()
    grad = stem.bag.weight.grad
    assert grad is not None and grad[0].abs().sum() == 0  # padding id 0 never learns
    assert grad[ids[0, 0]].abs().sum() > 0


def test_embedding_bag_padding_only_row_is_a_zero_bag():
    stem = EmbeddingBagStem.from_params({"dim": 8}).build_stem((6,), 4)
    assert torch.equal(stem.bag.weight[0], torch.zeros(8))
    assert abs(float(stem.bag.weight[1:].detach().std()) - 0.01) < 1e-3  # init_std
    ids = torch.tensor([[0, 0, 0, 0, 0, 0], [5, 7, 0, 0, 0, 0]])
    bags = stem.bag(ids)
    assert torch.equal(bags[0], torch.zeros(8))
    expected = (stem.bag.weight[5] + stem.bag.weight[7]) / 2
    assert torch.allclose(bags[1], expected)


def test_vocab_default_matches_tokenizer_and_mismatch_is_a_clear_error():
    assert EmbeddingBagStem.from_params({}).config.vocab_size == VOCAB_SIZE
    stem = EmbeddingBagStem.from_params({"vocab_size": 100, "dim": 4}).build_stem((8,), 4)
    with pytest.raises(ConfigError, match="vocab_size 100"):
        stem(torch.from_numpy(encode(["hashed ids exceed a small vocabulary"], 8)))
    with pytest.raises(ConfigError, match="integer token ids"):
        stem(torch.rand(2, 8))


def test_embedding_bag_stem_exports_with_a_dynamic_batch():
    """The id range check stays out of the captured graph, so torch.export (and the ONNX
    exporter built on it) can capture the stem."""
    stem = EmbeddingBagStem.from_params({"dim": 8}).build_stem((6,), 4).eval()
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(
        stem, (torch.zeros(2, 6, dtype=torch.long),), dynamic_shapes=({0: batch},)
    )
    ids = torch.from_numpy(encode(["a good movie", "awful", "great fun!"], 6))
    with torch.no_grad():
        assert torch.allclose(program.module()(ids), stem(ids))
