"""What every nlp domain shares: text clean-up, de-duplication, the split config, and
turning texts and labels into a :class:`~cdkd_core.DomainData` with two views per example
(teacher: cached MiniLM embedding; student: token ids of the teacher's own tokenizer, or
hashed word n-grams) and the raw texts of each split."""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

import numpy as np
import torch
from pydantic import Field

from cdkd_core.plugin_api import (
    ComponentConfig,
    DomainData,
    InputReader,
    Split,
    TextReader,
    cap_examples,
    stratified_split_indices,
)
from cdkd_nlp.embeddings import Embedder, default_embedder, embed_texts
from cdkd_nlp.resources import HASHED, MAX_TOKENS
from cdkd_nlp.student_tokenizers import StudentTokenizer, student_tokenizer

#: The input space of every nlp domain by default: a text, seen by the teacher as its
#: MiniLM embedding and by the student as token ids. Domains sharing it share stems.
TEXT_SPACE = "nlp.text"

_SPACES = re.compile(r"\s+")
T = TypeVar("T")


@dataclass(frozen=True)
class LabelledTexts:
    """A domain's texts (cleaned, de-duplicated) and labels before the cap, the split and
    the views: what its ``load`` gives :func:`build_domain_data`, and what a script that
    needs the raw texts of a domain reads (a domain's ``labelled_texts()``)."""

    texts: list[str]
    #: int64 ``[len(texts)]``, indices into ``classes``.
    labels: np.ndarray
    classes: list[str]
    task: str
    #: Metric names, headline first.
    metrics: list[str]


class TextSplitConfig(ComponentConfig):
    """Split sizes, the stratified cap and the student's token length."""

    val_fraction: float = Field(0.2, gt=0, lt=0.5, description="Fraction held out for val.")
    test_fraction: float = Field(0.2, gt=0, lt=0.5, description="Fraction held out for test.")
    split_seed: int = Field(0, ge=0, description="Seed of the split (fixed across run seeds).")
    max_examples: int | None = Field(
        None,
        ge=10,
        description="Stratified cap on examples, applied after de-duplication and before "
        "embedding (a capped domain embeds only what it keeps).",
    )
    max_tokens: int = Field(
        MAX_TOKENS,
        ge=8,
        le=4096,
        description="Length of the student view (token ids, 0-padded); domains sharing an "
        "input space must use the same.",
    )
    tokenizer: Literal["teacher", "hashed"] = Field(
        "teacher",
        description="The student view's tokens: teacher (the teacher model's own vocabulary: "
        "MiniLM's WordPiece, or USE's SentencePiece for multilingual domains; what "
        "student.weight_init: teacher_tokens needs) or hashed (hashed word uni/bigrams, "
        "for the embedding_bag stem). Domains sharing an input space must use the same.",
    )


def clean_text(text: str) -> str:
    """HTML entities decoded (``&amp;`` in the tweets), whitespace collapsed, stripped."""
    return _SPACES.sub(" ", html.unescape(text)).strip()


def dedup_key(text: str) -> str:
    """Texts with equal keys count as one example: NFKC, case-folded, spaces collapsed."""
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def dedupe(
    texts: Sequence[str], values: Sequence[T], combine: Callable[[list[T]], T]
) -> tuple[list[str], list[T], int]:
    """One entry per :func:`dedup_key`, in first-occurrence order, its text the first
    occurrence's and its value ``combine`` of all occurrences' values; also returns how many
    duplicates were merged. No text can then sit in two splits."""
    groups: dict[str, list[int]] = {}
    for i, text in enumerate(texts):
        groups.setdefault(dedup_key(text), []).append(i)
    out_texts = [texts[g[0]] for g in groups.values()]
    out_values = [combine([values[i] for i in g]) for g in groups.values()]
    return out_texts, out_values, len(texts) - len(groups)


def build_domain_data(
    texts: Sequence[str],
    labels: np.ndarray,
    classes: list[str],
    config: TextSplitConfig,
    *,
    task: str,
    metrics: list[str],
    input_space: str = TEXT_SPACE,
    embedder: Embedder | None = None,
) -> DomainData:
    """Cap (stratified), split (stratified, by ``split_seed``), embed (with ``embedder``,
    default MiniLM; cached) and tokenize; the raw texts are kept too
    (:attr:`DomainData.texts`, row by row with each split).

    ``texts`` must already be de-duplicated. Only the texts kept by the cap are embedded.
    """
    labels = np.asarray(labels, dtype=np.int64)
    keep = cap_examples(labels, config.max_examples, config.split_seed)
    texts = [texts[i] for i in keep]
    labels = labels[keep]
    index = stratified_split_indices(
        labels, config.val_fraction, config.test_fraction, config.split_seed
    )
    embedder = embedder or default_embedder()
    tokenizer = view_tokenizer(config, embedder)
    student = student_view(texts, config, embedder)
    teacher = teacher_view(texts, embedder)
    y = torch.from_numpy(labels)
    splits = {
        name: Split(teacher_x=teacher[idx], student_x=student[idx], y=y[idx])
        for name, idx in index.items()
    }
    split_texts = {name: [texts[int(i)] for i in idx] for name, idx in index.items()}
    test_y = labels[index["test"]]
    majority = float(np.bincount(test_y, minlength=len(classes)).max() / max(len(test_y), 1))
    return DomainData(
        modality="text",
        task=task,
        classes=list(classes),
        splits=splits,
        metrics=list(metrics),
        input_space=input_space,
        reference={"majority_rate": round(majority, 6)},
        teacher_view_params=embedder.params,
        student_vocabulary=tokenizer.id,
        texts=split_texts,
    )


def view_tokenizer(config: TextSplitConfig, embedder: Embedder) -> StudentTokenizer:
    """The tokenizer of the student view: hashed n-grams with ``tokenizer: hashed``, else
    the vocabulary of ``embedder`` (the teacher's own tokenizer)."""
    return student_tokenizer(HASHED if config.tokenizer == "hashed" else embedder.vocabulary)


def student_view(texts: Sequence[str], config: TextSplitConfig, embedder: Embedder) -> torch.Tensor:
    """The student's int64 token ids ``[N, max_tokens]`` of (cleaned) ``texts``
    (:func:`view_tokenizer`)."""
    tokenizer = view_tokenizer(config, embedder)
    return torch.from_numpy(tokenizer.encode(list(texts), config.max_tokens))


def teacher_view(texts: Sequence[str], embedder: Embedder) -> torch.Tensor:
    """The teacher's float32 embedding ``[N, dim]`` of (cleaned) ``texts`` by ``embedder``
    (cached)."""
    return torch.from_numpy(embed_texts(list(texts), embedder))


def text_views(
    texts: Sequence[str], config: TextSplitConfig, embedder: Embedder, *, teacher: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The two views of (cleaned) ``texts``, as every nlp domain makes them: the student's
    (:func:`student_view`) and, where ``teacher``, the teacher's (:func:`teacher_view`);
    else ``None``. :func:`build_domain_data` and :func:`text_input_reader` both make their
    views with these two functions, so training and raw input can never encode a text
    differently."""
    texts = list(texts)
    student = student_view(texts, config, embedder)
    return student, teacher_view(texts, embedder) if teacher else None


def text_input_reader(
    config: TextSplitConfig, embedder: Embedder | None = None, column: str | None = None
) -> InputReader:
    """A reader of raw texts for a domain built by :func:`build_domain_data` with ``config``
    and ``embedder`` (default: the default MiniLM embedder, as there): each text is cleaned
    by :func:`clean_text` -- what every domain's ``load`` does to its texts -- and turned
    into the same views by :func:`text_views` (the teacher view, which runs the embedder,
    only where asked). Reads a text file (one text per line), a CSV column or JSON Lines
    key (``column`` where the options name none; default ``text``, or a CSV's only
    column), or a list of texts from Python."""
    embedder = embedder or default_embedder()
    view_tokenizer(config, embedder)  # a missing tokenizer fails now, not on the first row

    def encode(texts: list[str], teacher: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        return text_views([clean_text(t) for t in texts], config, embedder, teacher=teacher)

    return TextReader(encode, column=column)
