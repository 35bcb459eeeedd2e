"""Fixtures of the cdkd-nlp tests: one thread, a private data cache (the VADER archive is
copied in from the user's cache, fetched there once if missing), and fast stand-in
embedders for the tests that are not about MiniLM or USE."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(1)
_USER_DATA_DIR = os.environ.get("CDKD_DATA_DIR")

from cdkd_nlp import embeddings, multilingual_embeddings  # noqa: E402


class HashEmbedder(embeddings.Embedder):
    """Deterministic 384-d stand-in for MiniLM: signed hashed bag of words, L2-normalised.
    Its own ``model_id`` (one per instance), so it never shares cache entries with MiniLM,
    nor with another test."""

    dim = embeddings.DIM

    def __init__(self, tag: str = "") -> None:
        self.model_id = f"cdkd-nlp-tests/hashed-bag-of-words/{tag}"
        self.calls: list[int] = []

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(len(texts))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                h = int.from_bytes(hashlib.md5(word.encode()).digest()[:4], "little")
                out[i, h % self.dim] += 1.0 if h & 1 << 31 else -1.0
            out[i] /= max(float(np.linalg.norm(out[i])), 1e-6)
        return out


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private data cache shared by this plugin's tests (the user's caches stay untouched)."""
    return tmp_path_factory.mktemp("cdkd-data")


@pytest.fixture(autouse=True)
def _isolated_cache(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test of this plugin runs with ``CDKD_DATA_DIR`` set to the private cache."""
    monkeypatch.setenv("CDKD_DATA_DIR", str(data_dir))


@pytest.fixture(scope="session")
def vader_archive(data_dir: Path) -> Path:
    """The vaderSentiment sdist inside the private cache (copied from the user's cache,
    where it is fetched once through the package index if missing)."""
    from cdkd_core.plugin_api import DataError, fetch_distribution

    target = data_dir / "dists" / "vadersentiment-3.3.2"
    if not target.is_dir():
        with pytest.MonkeyPatch.context() as mp:
            # the user's own cache (CDKD_DATA_DIR as the session started, or the default)
            if _USER_DATA_DIR is None:
                mp.delenv("CDKD_DATA_DIR", raising=False)
            else:
                mp.setenv("CDKD_DATA_DIR", _USER_DATA_DIR)
            try:
                source = fetch_distribution("vaderSentiment==3.3.2", sdist=True)
            except DataError as exc:  # no package index reachable
                pytest.skip(f"cannot fetch the VADER data: {exc}")
        target.mkdir(parents=True)
        shutil.copy2(source, target / source.name)
    return next(target.glob("*.tar.gz"))


@pytest.fixture
def fake_embedder(request: pytest.FixtureRequest) -> Iterator[HashEmbedder]:
    """Domains embed with a :class:`HashEmbedder` of their own during the test."""
    embedder = HashEmbedder(request.node.nodeid)
    previous = embeddings.set_default_embedder(embedder)
    try:
        yield embedder
    finally:
        embeddings.set_default_embedder(previous)


class MultilingualHashEmbedder(HashEmbedder):
    """The 512-d stand-in for multilingual USE (the same hashed bag of words)."""

    dim = multilingual_embeddings.USE_DIM


@pytest.fixture
def fake_multilingual_embedder(request: pytest.FixtureRequest) -> Iterator[HashEmbedder]:
    """Multilingual domains embed with a :class:`MultilingualHashEmbedder` of their own
    during the test."""
    embedder = MultilingualHashEmbedder(request.node.nodeid)
    previous = multilingual_embeddings.set_multilingual_embedder(embedder)
    try:
        yield embedder
    finally:
        multilingual_embeddings.set_multilingual_embedder(previous)
