"""The student's hashing tokenizer: deterministic, padded, truncated, case-insensitive."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
from cdkd_nlp import tokenize
from cdkd_nlp.tokenize import MAX_TOKENS, VOCAB_SIZE, encode, features, token_ids, words


def test_words_keep_punctuation_and_contractions():
    assert words("I DON'T like it!! :)") == ["i", "don't", "like", "it", "!", "!", ":", ")"]
    assert words("\uff26\uff55\uff4c\uff4c-width") == ["full", "-", "width"]  # NFKC


def test_features_interleave_unigrams_and_bigrams():
    assert features("a b c") == ["w:a", "b:a b", "w:b", "b:b c", "w:c"]
    assert features("   ") == []


def test_ids_are_a_fixed_function_of_the_text():
    # pinned: the ids must not change between versions, processes or hash seeds
    assert token_ids("good movie") == [29186, 20116, 29154]
    assert token_ids("Good   MOVIE") == token_ids("good movie")
    code = "from cdkd_nlp.tokenize import token_ids; print(token_ids('good movie'))"
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == "[29186, 20116, 29154]"


def test_encode_pads_with_zero_and_truncates():
    long_text = " ".join(f"word{i}" for i in range(400))
    ids = encode(["good movie", "", long_text], max_tokens=16)
    assert ids.dtype == np.int64 and ids.shape == (3, 16)
    assert (ids[0, :3] > 0).all() and (ids[0, 3:] == 0).all()
    assert (ids[1] == 0).all()
    assert (ids[2] > 0).all()  # cut at 16
    assert ids.max() < VOCAB_SIZE and ids[ids > 0].min() >= 1
    assert encode(["x"]).shape == (1, MAX_TOKENS)
    np.testing.assert_array_equal(encode(["good movie"], 16), ids[:1])


def test_scheme_names_its_bucket_count():
    assert str(VOCAB_SIZE) in tokenize.SCHEME
