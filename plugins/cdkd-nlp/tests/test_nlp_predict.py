"""Raw input for ``cdkd predict``: each text domain's reader makes exactly the views its
``load`` made (the cleaning, the tokenizer, ``max_tokens``, the teacher's embedding), so a
run's test texts written back as files give the run's own test predictions."""

from __future__ import annotations

import hashlib
import html
import json

import cdkd_nlp
import numpy as np
import pytest
import torch
from cdkd_nlp import chatterbot, embeddings, multilingual_embeddings
from cdkd_nlp.chatterbot import Chatterbot
from cdkd_nlp.text_file import TextFile
from cdkd_nlp.vader import SentimentTweets

from cdkd_core import PluginHost, load_config, load_student, run_pipeline
from cdkd_core.plugin_api import InputOptions
from cdkd_core.testing import invoke_cli

PARAMS = {"max_examples": 120, "tokenizer": "hashed", "max_tokens": 32}


def _views(reader, path, options=None):
    batches = list(reader.batches(path, options or InputOptions(), 16))
    teacher = [b.teacher_x for b in batches]
    return (
        [i for b in batches for i in b.ids],
        torch.cat([b.student_x for b in batches]),
        None if teacher[0] is None else torch.cat(teacher),
    )


def _messy(text: str) -> str:
    """A raw form of a cleaned text: HTML entities and extra spaces, which load's
    clean_text removes."""
    return "  " + html.escape(text).replace(" ", "   ") + " "


@pytest.fixture
def sentiment_run(tmp_path, vader_archive, fake_embedder):
    host = PluginHost(entry_points=False, plugins=[("nlp", cdkd_nlp)])
    assert host.plugins["nlp"].ok, host.plugins["nlp"].errors
    config = load_config(
        {
            "name": "nlp-predict",
            "domains": [
                {"name": "nlp.sentiment_tweets", "role": "source", "params": PARAMS},
                {"name": "nlp.sentiment_nyt", "role": "unseen", "params": PARAMS},
            ],
            "teacher": {"trunk": {"name": "mlp", "params": {"width": 16, "depth": 1}}},
            "student": {
                "trunk": {"name": "mlp", "params": {"width": 8, "depth": 1}},
                "stems": {"text": {"name": "embedding_bag", "params": {"dim": 8}}},
            },
            "encoder": {"name": "pca", "params": {"dim": 4}},
            "losses": [{"name": "ce"}, {"name": "kd"}],
            "train": {"epochs": 1, "batch_size": 32, "lr": 0.003, "device": "cpu"},
        },
        host=host,
    )
    return run_pipeline(config, host=host, output=tmp_path / "runs"), host


def test_sentiment_predict_on_raw_test_texts_gives_the_runs_predictions(sentiment_run, tmp_path):
    result, host = sentiment_run
    name = "nlp.sentiment_tweets"
    data = SentimentTweets.from_params(PARAMS).load(0)
    test = data.splits["test"]
    assert data.texts is not None
    texts = data.texts["test"]
    student = load_student(result.run_dir, host=host)
    with torch.no_grad():
        module = student.student.domain_module(name)
        expected = torch.softmax(module(test.student_x), dim=1).numpy()

    plain = tmp_path / "tweets.txt"
    plain.write_text("".join(f"{_messy(t)}\n" for t in texts), encoding="utf-8")
    predictions = student.predict(plain, domain=name, chunk_size=7)
    assert predictions.ids == [str(i) for i in range(1, len(texts) + 1)]
    np.testing.assert_allclose(predictions.probabilities, expected, atol=2e-6)
    # the run's own test accuracy
    labels = [data.classes[int(y)] for y in test.y]
    accuracy = np.mean([p == y for p, y in zip(predictions.labels, labels, strict=True)])
    summary = json.loads((result.run_dir / "summary.json").read_text())
    reported = summary["domains"][name]["metrics"]["student"]["accuracy"]
    assert accuracy == pytest.approx(reported, abs=1e-9)
    # texts from Python
    direct = student.predict([_messy(t) for t in texts], domain=name)
    np.testing.assert_allclose(direct.probabilities, expected, atol=2e-6)

    # JSON Lines through the CLI, with ids
    lines = tmp_path / "tweets.jsonl"
    lines.write_text(
        "".join(json.dumps({"id": f"t{i}", "text": _messy(t)}) + "\n" for i, t in enumerate(texts)),
        encoding="utf-8",
    )
    out = tmp_path / "predictions.csv"
    res = invoke_cli(
        "predict", result.run_dir, lines, "--domain", name, "--id-column", "id", "-o", out
    )
    assert res.exit_code == 0, res.output
    rows = [line.split(",") for line in out.read_text(encoding="utf-8").splitlines()]
    assert rows[0] == ["id", "prediction", "p_negative", "p_positive"]
    assert [r[0] for r in rows[1:]] == [f"t{i}" for i in range(len(texts))]
    written = np.array([[float(v) for v in r[2:]] for r in rows[1:]])
    np.testing.assert_allclose(written, expected, atol=2e-6)


def test_text_reader_teacher_view_is_the_loaded_one(tmp_path, vader_archive, fake_embedder):
    """Default tokenizer (MiniLM's WordPiece): the reader's student and teacher views of
    the raw test texts are the ones load made."""
    domain = SentimentTweets.from_params({"max_examples": 60, "max_tokens": 24})
    data = domain.load(0)
    assert data.texts is not None
    path = tmp_path / "raw.txt"
    path.write_text("\n".join(_messy(t) for t in data.texts["test"]), encoding="utf-8")
    reader = domain.input_reader(0)
    _, student, teacher = _views(reader, path, InputOptions(teacher=True))
    assert torch.equal(student, data.splits["test"].student_x)
    assert teacher is not None and torch.equal(teacher, data.splits["test"].teacher_x)
    _, student_only, none = _views(reader, path)
    assert none is None and torch.equal(student_only, student)


def test_text_file_reads_its_own_text_column(tmp_path, fake_embedder):
    rows = [(f"review {i} says {'good' if i % 2 else 'bad'} &amp; more", i % 2) for i in range(30)]
    train = tmp_path / "reviews.csv"
    train.write_text("review,stars\n" + "".join(f'"{t}",{y}\n' for t, y in rows), encoding="utf-8")
    domain = TextFile.from_params({"path": str(train), "text": "review", "label": "stars"})
    data = domain.load(0)
    assert data.texts is not None
    new = tmp_path / "new.csv"
    new.write_text(
        "stars,review\n" + "".join(f'0,"{html.escape(t)}"\n' for t in data.texts["test"]),
        encoding="utf-8",
    )
    reader = domain.input_reader(0)
    ids, student, teacher = _views(reader, new, InputOptions(teacher=True))
    assert ids == [str(i) for i in range(2, 2 + len(data.texts["test"]))]
    assert torch.equal(student, data.splits["test"].student_x)
    assert teacher is not None and torch.equal(teacher, data.splits["test"].teacher_x)
    tab = tmp_path / "new.tab"  # a tab-separated table, as nlp.text_file reads it
    tab.write_text(
        "stars\treview\n" + "".join(f"0\t{html.escape(t)}\n" for t in data.texts["test"]),
        encoding="utf-8",
    )
    _, from_tab, _ = _views(reader, tab)
    assert torch.equal(from_tab, student)


class _UseStandIn(embeddings.Embedder):
    """A fast stand-in for USE (512-d, its SentencePiece vocabulary): hashed words."""

    dim = multilingual_embeddings.USE_DIM
    vocabulary = "use-sentencepiece"
    model_id = "cdkd-nlp-tests/test_nlp_predict/use-stand-in"

    def encode(self, texts):
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                out[i, int(hashlib.md5(word.encode()).hexdigest()[:6], 16) % self.dim] += 1.0
        return out


def test_chatterbot_reads_with_the_sentencepiece_tokenizer(tmp_path, monkeypatch):
    """The multilingual domain: USE's SentencePiece ids and the multilingual embedder."""
    (tmp_path / "english").mkdir()
    for topic in ("food", "money", "greetings"):
        body = [f"categories:\n- {topic}\nconversations:\n"]
        for i in range(5):
            line = f"the {topic} line {i}, Tom & Jerry's très bien"
            body.append(f"- - {line}\n  - {topic} reply {i} 日本語\n")
        (tmp_path / "english" / f"{topic}.yml").write_text("".join(body), encoding="utf-8")
    monkeypatch.setattr(chatterbot, "corpus_dir", lambda: tmp_path)
    previous = multilingual_embeddings.set_multilingual_embedder(_UseStandIn())
    try:
        domain = Chatterbot.from_params({"languages": ["english"], "max_tokens": 16})
        data = domain.load(0)
        assert data.student_vocabulary == "use-sentencepiece" and data.texts is not None
        raw = [_messy(t) for t in data.texts["test"]]
        batch = domain.input_reader(0).texts(raw, InputOptions(teacher=True))
    finally:
        multilingual_embeddings.set_multilingual_embedder(previous)
    assert torch.equal(batch.student_x, data.splits["test"].student_x)
    assert batch.teacher_x is not None
    assert torch.equal(batch.teacher_x, data.splits["test"].teacher_x)
