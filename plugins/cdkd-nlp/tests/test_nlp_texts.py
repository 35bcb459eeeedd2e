"""Raw texts travel with their rows: ``DomainData.texts`` from the shared builder, and
``PreparedDomain.texts`` through the core's preparation (a quiz carved from train, labels
mapped to the task's class order, a target's labelled subset)."""

from __future__ import annotations

import cdkd_nlp
import numpy as np
import pytest
import torch

from cdkd_core import PluginHost, load_config
from cdkd_core.testing import prepare_domains

WORDS = ["apple", "river", "stone", "cloud", "maple", "ember", "frost", "grove", "harbor"]


def _write(path, labels: list[str]) -> None:
    """A CSV whose every text starts with its label (so a row's text names its class)."""
    lines = ["text,label"]
    for i in range(60):
        label = labels[i % len(labels)]
        lines.append(f'"{label} review {i} {WORDS[i % len(WORDS)]} {WORDS[(i * 5) % 9]}",{label}')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_the_builder_keeps_each_splits_texts_in_row_order(tmp_path, fake_embedder):
    from cdkd_nlp.text_file import TextFile

    _write(tmp_path / "a.csv", ["neg", "pos"])
    data = TextFile.from_params({"path": tmp_path / "a.csv", "tokenizer": "hashed"}).load(0)
    assert data.texts is not None and set(data.texts) == {"train", "val", "test"}
    for name, split in data.splits.items():
        texts = data.texts[name]
        assert len(texts) == len(split)
        assert [t.split()[0] for t in texts] == [data.classes[int(y)] for y in split.y]
        assert torch.equal(split.teacher_x, torch.from_numpy(fake_embedder.encode(texts)))
    assert sum(len(t) for t in data.texts.values()) == 60


def test_prepared_texts_line_up_with_the_prepared_rows(tmp_path, fake_embedder):
    _write(tmp_path / "a.csv", ["neg", "pos"])
    _write(tmp_path / "b.csv", ["pos", "neg"])
    hashed = {"tokenizer": "hashed", "task": "sentiment"}
    host = PluginHost(entry_points=False, plugins=[("nlp", cdkd_nlp)])
    config = load_config(
        {
            "name": "texts",
            "domains": [
                {
                    "name": "nlp.text_file",
                    "alias": "a",
                    "role": "source",
                    "params": {"path": str(tmp_path / "a.csv"), **hashed},
                },
                # classes listed in the other order: its labels are mapped to a's
                {
                    "name": "nlp.text_file",
                    "alias": "b",
                    "role": "target",
                    "label_fraction": 0.3,
                    "params": {
                        "path": str(tmp_path / "b.csv"),
                        "classes": ["pos", "neg"],
                        **hashed,
                    },
                },
            ],
            "teacher": {"trunk": {"name": "mlp", "params": {"width": 16, "depth": 1}}},
            "student": {
                "trunk": {"name": "mlp", "params": {"width": 8, "depth": 1}},
                "stems": {"text": {"name": "embedding_bag", "params": {"dim": 8}}},
            },
            "encoder": {"name": "pca", "params": {"dim": 4}},
            "feedback": {"name": "hard_examples", "params": {"quiz_fraction": 0.25}},
            "train": {"epochs": 1, "device": "cpu"},
        },
        host=host,
    )
    with pytest.warns(UserWarning, match="labels of 'b' are mapped by name"):
        a, b = prepare_domains(config, host, quiz_fraction=0.25)
    assert a.quiz is not None and b.quiz is None
    for d in (a, b):
        assert d.texts is not None
        splits = {"train": d.train, "val": d.val, "test": d.test}
        if d.quiz is not None:
            splits["quiz"] = d.quiz
        assert set(d.texts) == set(splits)
        standardize = d.standardizers["teacher_x"]
        for name, split in splits.items():
            texts = d.texts[name]
            assert len(texts) == len(split), (d.name, name)
            assert [t.split()[0] for t in texts] == [d.data.classes[int(y)] for y in split.y]
            embedded = standardize(torch.from_numpy(fake_embedder.encode(texts)))
            assert torch.allclose(embedded, split.teacher_x, atol=1e-6), (d.name, name)
        # the quiz is carved from train: together they are the loaded train split's texts
        loaded = d.data.texts["train"]
        assert sorted(d.texts["train"] + d.texts.get("quiz", [])) == sorted(loaded)
    labelled = [b.texts["train"][int(i)] for i in np.flatnonzero(b.labelled.numpy())]
    assert {t.split()[0] for t in labelled} == {"neg", "pos"}
