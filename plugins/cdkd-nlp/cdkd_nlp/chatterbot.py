"""ChatterBot's dialogue corpus (``chatterbot-corpus==1.3.3``) as a multilingual topic task.

The package ships YAML files ``data/<language>/<topic>.yml``, each
``{categories: [...], conversations: [[line, reply, ...], ...]}``. Every dialogue line is one
example, labelled by its file's topic. The languages are not translations of one another
(though several, e.g. italian, japanese and korean, follow the english files closely).

Topics are named by file (localized names mapped: ``IA`` -> ``ai``, ``dinero`` -> ``money``,
``emociones`` -> ``emotion``, ``perfilbot`` -> ``botprofile``, ``psicologia`` ->
``psychology``, ``sport`` -> ``sports``, ``greeting`` -> ``greetings``). The classes are one
fixed list, :data:`CLASSES`, for every language selection, so domains of different languages
share a head: the topics found in at least 8 of the 14 chatterbot languages that the
multilingual USE teacher was trained on (:data:`USE_CORPUS_LANGUAGES`), sorted. Files of
other topics are ignored; a language need not have every class.
"""

from __future__ import annotations

import importlib.util
from collections import Counter
from pathlib import Path

import numpy as np
from pydantic import Field, field_validator

from cdkd_core.plugin_api import DataError, Domain, DomainData, InputReader
from cdkd_nlp.multilingual import build_multilingual_data, multilingual_input_reader
from cdkd_nlp.textdata import LabelledTexts, TextSplitConfig, clean_text, dedupe

#: The task every ``nlp.chatterbot`` selection shares (one head, :data:`CLASSES`).
TASK = "chat_topic"
#: chatterbot-corpus languages that multilingual USE v3 covers.
USE_CORPUS_LANGUAGES = (
    "chinese dutch english french german italian japanese korean portuguese russian spanish "
    "thai traditionalchinese turkish"
).split()
#: Least number of :data:`USE_CORPUS_LANGUAGES` a topic must appear in to be a class.
MIN_LANGUAGES = 8
#: Localized or variant topic (file) names and the topic they stand for.
TOPIC_ALIASES = {
    "ia": "ai",
    "dinero": "money",
    "emociones": "emotion",
    "perfilbot": "botprofile",
    "psicologia": "psychology",
    "sport": "sports",
    "greeting": "greetings",
}
#: The fixed classes (``derive_classes`` of chatterbot-corpus 1.3.3, checked by a test).
CLASSES = [
    "ai",
    "botprofile",
    "conversations",
    "emotion",
    "food",
    "greetings",
    "history",
    "money",
    "movies",
    "trivia",
]


def corpus_dir() -> Path:
    """``chatterbot_corpus/data`` of the installed package (found without importing it)."""
    spec = importlib.util.find_spec("chatterbot_corpus")
    if spec is None or spec.origin is None:
        raise DataError(
            "nlp.chatterbot needs the package chatterbot-corpus: "
            "pip install chatterbot-corpus==1.3.3"
        )
    path = Path(spec.origin).parent / "data"
    if not path.is_dir():
        raise DataError(f"{path}: the corpus files are missing; reinstall chatterbot-corpus")
    return path


def topic_of(path: Path) -> str:
    """The (canonical) topic of a corpus file: its lower-cased stem, aliases mapped."""
    stem = path.stem.lower()
    return TOPIC_ALIASES.get(stem, stem)


def languages_of(root: Path | None = None) -> list[str]:
    """The language folders of the corpus, sorted."""
    root = root or corpus_dir()
    return sorted(
        p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))
    )


def derive_classes(
    root: Path | None = None,
    languages: list[str] | None = None,
    min_languages: int = MIN_LANGUAGES,
) -> list[str]:
    """Topics present in at least ``min_languages`` of ``languages``, sorted."""
    root = root or corpus_dir()
    languages = languages or USE_CORPUS_LANGUAGES
    counts: Counter[str] = Counter()
    for lang in languages:
        counts.update({topic_of(p) for p in (root / lang).glob("*.yml")})
    return sorted(t for t, n in counts.items() if n >= min_languages)


def _lines(conversation: object) -> list[str]:
    items = conversation if isinstance(conversation, list) else [conversation]
    out = []
    for item in items:
        if isinstance(item, str | int | float) and not isinstance(item, bool):
            text = clean_text(str(item))
            if text:
                out.append(text)
    return out


def read_chatterbot(
    languages: list[str], root: Path | None = None, classes: list[str] | None = None
) -> tuple[list[str], list[str], list[str]]:
    """Every dialogue line of the ``languages``' files whose topic is in ``classes``
    (default :data:`CLASSES`): texts, topics and languages, in sorted language and file
    order."""
    import yaml

    root = root or corpus_dir()
    classes = CLASSES if classes is None else classes
    texts: list[str] = []
    topics: list[str] = []
    langs: list[str] = []
    for lang in sorted(set(languages)):
        folder = root / lang
        if not folder.is_dir():
            raise DataError(
                f"nlp.chatterbot: no language {lang!r} in {root}; "
                f"available: {', '.join(languages_of(root))}"
            )
        for path in sorted(folder.glob("*.yml")):
            topic = topic_of(path)
            if topic not in classes:
                continue
            try:
                doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            except yaml.YAMLError as exc:
                raise DataError(f"{path}: not valid YAML: {exc}") from exc
            for conversation in doc.get("conversations") or []:
                for line in _lines(conversation):
                    texts.append(line)
                    topics.append(topic)
                    langs.append(lang)
    if not texts:
        raise DataError(f"nlp.chatterbot: no lines of the classes {classes} in {languages}")
    return texts, topics, langs


def prepare(texts: list[str], topics: list[str]) -> tuple[list[str], np.ndarray, dict[str, int]]:
    """De-duplicate (a line repeated within one topic counts once; a line found under two
    topics, e.g. ``Hello``, is dropped as ambiguous); returns texts, label indices into
    :data:`CLASSES` and counts of what was dropped."""
    texts_d, topics_d, merged = dedupe(texts, topics, lambda v: v[0] if len(set(v)) == 1 else "")
    keep = [i for i, t in enumerate(topics_d) if t]
    labels = np.asarray([CLASSES.index(topics_d[i]) for i in keep], dtype=np.int64)
    return (
        [texts_d[i] for i in keep],
        labels,
        {
            "duplicates": merged,
            "ambiguous": len(topics_d) - len(keep),
        },
    )


class ChatterbotConfig(TextSplitConfig):
    """Which languages this domain holds, plus the split and cap."""

    languages: list[str] = Field(
        default_factory=lambda: ["english"],
        min_length=1,
        description="chatterbot-corpus language folders (e.g. english, spanish, italian); "
        "the teacher understands " + ", ".join(USE_CORPUS_LANGUAGES) + ".",
    )

    @field_validator("languages")
    @classmethod
    def _lower(cls, value: list[str]) -> list[str]:
        return [v.strip().lower() for v in value]


class Chatterbot(Domain):
    """ChatterBot dialogue lines of some languages, classified by topic (10 classes).

    Classes (the same for every language selection): ai, botprofile, conversations,
    emotion, food, greetings, history, money, movies, trivia. Task ``chat_topic``, input
    space ``nlp.multilingual`` (teacher: cached 512-d multilingual USE embedding; student:
    USE's own SentencePiece ids, or hashed n-grams with ``tokenizer: hashed``). Use one
    entry per language group, with aliases, to train on some languages and evaluate others
    as ``unseen``. The default teacher stem ``minilm`` is a
    projection that reads the 512-d USE vectors as they are.
    """

    name = "nlp.chatterbot"
    Config = ChatterbotConfig

    def labelled_texts(self) -> LabelledTexts:
        """The dialogue lines of the ``languages``, de-duplicated (:func:`prepare`),
        labelled by topic."""
        cfg: ChatterbotConfig = self.config  # type: ignore[assignment]
        texts, topics, _ = read_chatterbot(cfg.languages)
        texts, labels, _ = prepare(texts, topics)
        return LabelledTexts(texts, labels, CLASSES, TASK, ["accuracy", "f1_macro"])

    def load(self, seed: int) -> DomainData:
        """Read the languages' YAML files, de-duplicate (:meth:`labelled_texts`), cap, split
        (by ``split_seed``), embed and tokenize. ``seed`` is unused: the split must not
        move."""
        corpus = self.labelled_texts()
        return build_multilingual_data(
            corpus.texts,
            corpus.labels,
            corpus.classes,
            self.config,  # type: ignore[arg-type]
            task=corpus.task,
            metrics=corpus.metrics,
        )

    def input_reader(self, seed: int) -> InputReader:
        """New dialogue lines in any language (a text file, one per line; a CSV column;
        JSON Lines; or a list from Python), cleaned and tokenized as :meth:`load` does (USE's
        SentencePiece ids, or hashed n-grams); the teacher view is their USE embedding."""
        return multilingual_input_reader(self.config)  # type: ignore[arg-type]
