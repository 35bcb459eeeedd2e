"""Reference peers (:mod:`cdkd_core.stages.peers`, ``cdkd report --peers``): fitted on exactly
the student's labelled train rows, ``C`` chosen on the labelled val rows, a TF-IDF peer for
domains with raw texts, and ``peers.json`` with its report section."""

from __future__ import annotations

import copy
import json
from dataclasses import replace

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from cdkd_core import load_config, run_pipeline
from cdkd_core.artifacts.report import REPORT
from cdkd_core.artifacts.run_peers import PEERS_FILE
from cdkd_core.cli import app
from cdkd_core.components.domain import DomainData, Split
from cdkd_core.config.models import DomainEntry
from cdkd_core.data.preparation import PreparedDomain, prepare_domains
from cdkd_core.stages.peers import C_GRID, DEFAULT_C, peer_probabilities, peer_results
from tests.conftest import TINY

torch.set_num_threads(1)
WINE_TARGET = {"name": "sklearn.wine", "role": "target", "label_fraction": 0.2}


@pytest.fixture(autouse=True)
def _builtins_only(monkeypatch):
    """Installed plugins stay out of these tests (the CLI host loads entry points)."""
    from cdkd_core.host import plugin_host as plugins

    monkeypatch.setattr(plugins, "entry_points", lambda group: [])


def _target(host) -> PreparedDomain:
    """sklearn.wine as a target with a fifth of its labels, prepared as a run does."""
    cfg = copy.deepcopy(TINY)
    cfg["domains"][0] = dict(WINE_TARGET)
    wine = prepare_domains(load_config(cfg, host=host), host)[0]
    assert wine.role == "target" and 0 < int(wine.labelled.sum()) < len(wine.train)
    return wine


def _relabel(split: Split, rows: torch.Tensor, num_classes: int) -> Split:
    """``split`` with the labels of ``rows`` moved to the next class."""
    y = split.y.clone()
    y[rows] = (y[rows] + 1) % num_classes
    return Split(split.teacher_x, split.student_x, y)


def _same(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for peer in a:
        assert (a[peer].C, a[peer].labelled) == (b[peer].C, b[peer].labelled)
        np.testing.assert_allclose(a[peer].probabilities, b[peer].probabilities, atol=1e-9)


def test_peers_use_exactly_the_labelled_train_and_val_rows(host):
    wine = _target(host)
    fits = peer_probabilities(wine, seed=0)
    assert set(fits) == {"logreg"}  # no raw texts: no TF-IDF peer
    assert fits["logreg"].labelled == int(wine.labelled.sum())
    assert fits["logreg"].probabilities.shape == (len(wine.test), wine.num_classes)
    # the unlabelled train and val rows carry wrong labels: nothing changes
    flipped = replace(
        wine,
        train=_relabel(wine.train, ~wine.labelled, wine.num_classes),
        val=_relabel(wine.val, ~wine.val_labelled, wine.num_classes),
    )
    _same(fits, peer_probabilities(flipped, seed=0))
    # the unlabelled train rows are not there at all: nothing changes
    absent = replace(
        wine,
        train=wine.train.subset(wine.labelled),
        labelled=torch.ones(int(wine.labelled.sum()), dtype=torch.bool),
    )
    _same(fits, peer_probabilities(absent, seed=0))
    # ... while a peer that read them would differ
    everything = replace(flipped, labelled=torch.ones(len(wine.train), dtype=torch.bool))
    leaked = peer_probabilities(everything, seed=0)["logreg"]
    assert not np.allclose(leaked.probabilities, fits["logreg"].probabilities)


def _blobs(n: int, seed: int, flip: bool = False) -> Split:
    """Two Gaussian blobs in 2-D, means ±2 (``flip`` swaps the labels)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randn(n, 2, generator=g) + (y[:, None].float() * 4 - 2)
    return Split.single_view(x, 1 - y if flip else y)


def _domain(
    metrics: list[str],
    val: Split,
    *,
    train: Split | None = None,
    test: Split | None = None,
    texts: dict[str, list[str]] | None = None,
    labelled: torch.Tensor | None = None,
    val_labelled: torch.Tensor | None = None,
) -> PreparedDomain:
    splits = {"train": train or _blobs(40, 1), "val": val, "test": test or _blobs(30, 3)}
    data = DomainData("tabular", "toy", ["a", "b"], splits, metrics=metrics, texts=texts)
    return PreparedDomain(
        DomainEntry(name="toy"),
        data,
        splits["train"],
        splits["val"],
        splits["test"],
        None,
        torch.ones(len(splits["train"]), dtype=torch.bool) if labelled is None else labelled,
        torch.ones(len(val), dtype=torch.bool) if val_labelled is None else val_labelled,
        texts=texts,
    )


def test_c_is_chosen_on_the_labelled_val_rows_and_never_on_test():
    # separable blobs: the larger C, the more confident the model. A val split like train
    # rewards confidence (log loss is best at the largest C); one with every label swapped
    # punishes it (best at the smallest C)
    fair = peer_probabilities(_domain(["neg_log_loss"], _blobs(30, 2)), seed=0)["logreg"]
    swapped = _domain(["neg_log_loss"], _blobs(30, 2, flip=True))
    adverse = peer_probabilities(swapped, seed=0)["logreg"]
    assert list(fair.val_scores) == list(C_GRID)
    assert list(fair.val_scores.values()) == sorted(fair.val_scores.values())
    assert fair.C == max(C_GRID)
    assert list(adverse.val_scores.values()) == sorted(adverse.val_scores.values(), reverse=True)
    assert adverse.C == min(C_GRID)
    # the test labels choose nothing
    retested = _domain(["neg_log_loss"], _blobs(30, 2, flip=True), test=_blobs(30, 3, True))
    assert peer_probabilities(retested, seed=0)["logreg"].C == min(C_GRID)
    # ties (every C classifies val perfectly) go to the smallest C
    assert peer_probabilities(_domain(["accuracy"], _blobs(30, 2)), seed=0)["logreg"].C == 0.01
    # an undefined val headline (ROC-AUC of one class; no labelled val rows): C = 1
    one_class = Split.single_view(torch.randn(6, 2), torch.zeros(6, dtype=torch.long))
    fit = peer_probabilities(_domain(["roc_auc"], one_class), seed=0)["logreg"]
    assert fit.C == DEFAULT_C and all(np.isnan(v) for v in fit.val_scores.values())
    none = _domain(["accuracy"], _blobs(30, 2), val_labelled=torch.zeros(30, dtype=torch.bool))
    assert peer_probabilities(none, seed=0)["logreg"].C == DEFAULT_C


def test_a_domain_without_two_labelled_classes_has_no_peers(host):
    wine = _target(host)
    one = wine.labelled & (wine.train.y == 0)
    assert peer_probabilities(replace(wine, labelled=one), seed=0) == {}
    unlabelled = replace(wine, labelled=torch.zeros(len(wine.train), dtype=torch.bool))
    unseen = replace(wine, entry=wine.entry.model_copy(update={"role": "unseen"}))
    results = peer_results([unlabelled, unseen], seed=0)
    assert results == {"sklearn.wine": {}}  # the unseen domain is absent


SPORT = ["goal", "match", "striker", "league", "referee", "penalty", "keeper"]
FOOD = ["recipe", "oven", "flour", "simmer", "garlic", "butter", "saucepan"]


def _texts(n: int, seed: int) -> tuple[list[str], torch.Tensor]:
    rng = np.random.default_rng(seed)
    y = torch.arange(n) % 2
    words = [SPORT, FOOD]
    texts = [" ".join(rng.choice(words[int(c)], 4)) + f" note{seed}x{i}" for i, c in enumerate(y)]
    return texts, y


def _text_domain(labelled: torch.Tensor, train_texts=None) -> PreparedDomain:
    """A text domain whose teacher view is noise: only the raw texts tell the classes."""
    parts = {
        name: _texts(n, s) for name, n, s in (("train", 40, 1), ("val", 20, 2), ("test", 30, 3))
    }
    if train_texts is not None:
        parts["train"] = (train_texts, parts["train"][1])
    g = torch.Generator().manual_seed(0)
    splits = {
        n: Split.single_view(torch.randn(len(y), 3, generator=g), y) for n, (_, y) in parts.items()
    }
    texts = {n: t for n, (t, _) in parts.items()}
    return _domain(
        ["accuracy", "roc_auc"],
        splits["val"],
        train=splits["train"],
        test=splits["test"],
        texts=texts,
        labelled=labelled,
    )


def test_the_tfidf_peer_reads_only_the_labelled_train_texts():
    labelled = torch.arange(40) % 4 < 2  # half of each class
    d = _text_domain(labelled)
    fits = peer_probabilities(d, seed=0)
    assert set(fits) == {"logreg", "tfidf_logreg"}
    assert fits["tfidf_logreg"].labelled == 20
    results = peer_results([d], seed=0)["toy"]
    assert results["tfidf_logreg"]["headline"] == 1.0  # the words give the class away
    assert results["tfidf_logreg"]["metrics"]["roc_auc"] == 1.0
    assert results["logreg"]["headline"] < 0.8  # the noise does not
    # other texts in the unlabelled rows (new words, other counts): the same fit
    texts = list(d.texts["train"])
    for i in torch.nonzero(~labelled).flatten().tolist():
        texts[i] = "penalty penalty oven unseenword " + texts[i]
    _same(fits, peer_probabilities(_text_domain(labelled, texts), seed=0))


def test_domain_texts_must_match_the_splits():
    splits = {"train": _blobs(4, 1), "val": _blobs(4, 2), "test": _blobs(4, 3)}
    texts = {name: ["t"] * 4 for name in splits}
    assert DomainData("tabular", "toy", ["a", "b"], splits, texts=texts).texts == texts
    with pytest.raises(ValueError, match="split 'val' has 4 rows but 3 texts"):
        DomainData("tabular", "toy", ["a", "b"], splits, texts={**texts, "val": ["t"] * 3})
    with pytest.raises(ValueError, match=r"missing \['test'\]"):
        DomainData(
            "tabular",
            "toy",
            ["a", "b"],
            splits,
            texts={"train": texts["train"], "val": texts["val"]},
        )


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished tiny run: wine a target with a fifth of its labels, breast cancer a source."""
    from cdkd_core.host.plugin_host import PluginHost

    host = PluginHost(entry_points=False)
    cfg = copy.deepcopy(TINY)
    cfg["domains"][0] = dict(WINE_TARGET)
    config = load_config(cfg, host=host)
    with pytest.warns(UserWarning, match="'sklearn.wine' gets no teacher knowledge"):
        return run_pipeline(config, output=tmp_path_factory.mktemp("runs"), host=host).run_dir


def test_report_peers_writes_peers_json_and_the_table(run_dir):
    runner = CliRunner()
    result = runner.invoke(app, ["report", str(run_dir), "--peers"])
    assert result.exit_code == 0, result.output
    assert f"wrote {run_dir / PEERS_FILE}" in result.output
    peers = json.loads((run_dir / PEERS_FILE).read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert peers["seed"] == 0 and peers["c_grid"] == list(C_GRID)
    assert set(peers["domains"]) == {"sklearn.wine", "sklearn.breast_cancer"}
    for name, fits in peers["domains"].items():
        d = summary["domains"][name]
        assert set(fits) == {"logreg"}
        fit = fits["logreg"]
        assert fit["labelled"] == d["sizes"]["labelled"]
        assert fit["C"] in C_GRID
        assert set(fit["metrics"]) == set(d["metrics"]["student"])
        assert fit["headline"] == fit["metrics"][d["metric"]]
    page = (run_dir / REPORT).read_text()
    assert '<section id="peers"><h2>Reference peers</h2>' in page
    assert "Δ student vs best peer" in page and "logreg" in page
    # without --peers, the peers.json already there is still shown
    (run_dir / REPORT).unlink()
    assert runner.invoke(app, ["report", str(run_dir)]).exit_code == 0
    assert 'id="peers"' in (run_dir / REPORT).read_text()
    # with neither, no section
    (run_dir / PEERS_FILE).unlink()
    assert runner.invoke(app, ["report", str(run_dir)]).exit_code == 0
    assert 'id="peers"' not in (run_dir / REPORT).read_text()


def test_report_peers_of_a_run_whose_domains_cannot_load_is_one_line(run_dir, tmp_path):
    import shutil

    broken = tmp_path / run_dir.name
    shutil.copytree(run_dir, broken)
    config = yaml.safe_load((broken / "config.yaml").read_text())
    config["domains"][0]["name"] = "sklearn.no_such_set"
    (broken / "config.yaml").write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(app, ["report", str(broken), "--peers"])
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: --peers: cannot load the run's")
    assert "sklearn.no_such_set" in lines[0] and "Traceback" not in result.output
    assert not (broken / PEERS_FILE).exists()
