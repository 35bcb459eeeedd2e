"""One short cross-domain pipeline: two sentiment sources, a third set unseen (zero-shot)."""

from __future__ import annotations

import json

import cdkd_nlp

from cdkd_core import PluginHost, load_config, run_pipeline


def test_sentiment_sources_and_an_unseen_domain(tmp_path, vader_archive, fake_embedder):
    host = PluginHost(entry_points=False, plugins=[("nlp", cdkd_nlp)])
    assert host.plugins["nlp"].ok, host.plugins["nlp"].errors
    capped = {"max_examples": 150, "tokenizer": "hashed"}  # embedding_bag reads hashed ids
    config = load_config(
        {
            "name": "nlp-e2e",
            "domains": [
                {"name": "nlp.sentiment_tweets", "role": "source", "params": capped},
                {"name": "nlp.sentiment_movies", "role": "source", "params": capped},
                {"name": "nlp.sentiment_nyt", "role": "unseen", "params": capped},
            ],
            "teacher": {"trunk": {"name": "mlp", "params": {"width": 32, "depth": 1}}},
            "student": {
                "trunk": {"name": "mlp", "params": {"width": 16, "depth": 1}},
                "stems": {"text": {"name": "embedding_bag", "params": {"dim": 16}}},
            },
            "encoder": {"name": "pca", "params": {"dim": 4}},
            "losses": [{"name": "ce"}, {"name": "kd"}, {"name": "hint", "weight": 0.5}],
            "train": {"epochs": 2, "batch_size": 32, "lr": 0.003, "device": "cpu"},
        },
        host=host,
    )
    result = run_pipeline(config, host=host, output=tmp_path)
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert set(summary["domains"]) == {
        "nlp.sentiment_tweets",
        "nlp.sentiment_movies",
        "nlp.sentiment_nyt",
    }
    for name, row in summary["domains"].items():
        assert row["metric"] == "roc_auc", name
        for model in ("teacher", "student", "baseline"):
            assert isinstance(row[model], float) and 0.0 <= row[model] <= 1.0, (name, model)
            assert set(row["metrics"][model]) == {"roc_auc", "accuracy", "f1_macro"}
        assert 0.5 <= row["reference"]["majority_rate"] <= 1.0
    assert summary["domains"]["nlp.sentiment_nyt"]["role"] == "unseen"
    assert summary["domains"]["nlp.sentiment_tweets"]["sizes"]["train"] == 90
    # the student's embedding bag is the largest part of it; the teacher has no MiniLM inside
    assert summary["params"]["student"] > 2**15 * 16
    assert sorted(fake_embedder.calls) == [150, 150, 150]
