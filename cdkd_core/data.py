"""Loading the configured domains and preparing their splits for training.

Inputs are standardised per domain with statistics of its train split; a target domain
gets its stratified labelled subset; a quiz split is carved from each source domain's
train split when the feedback strategy asks for one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from cdkd_core.config import DomainEntry, PipelineConfig
from cdkd_core.domain import DomainData, Split
from cdkd_core.errors import CdkdError, DataError
from cdkd_core.metrics import METRICS
from cdkd_core.splits import stratified_subset_mask


@dataclass
class PreparedDomain:
    """A configured domain with standardised splits, ready for the stages."""

    entry: DomainEntry
    data: DomainData
    train: Split
    val: Split
    test: Split
    quiz: Split | None
    labelled: torch.Tensor
    val_labelled: torch.Tensor
    #: the fitted z-scoring of each view ("teacher_x", "student_x"); None where a view is
    #: used as it is (integer ids, or a domain that asks for no standardisation)
    standardizers: dict[str, Standardizer | None] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The domain's name in results (alias or registered name)."""
        return self.entry.key

    @property
    def role(self) -> str:
        """source | target | unseen."""
        return self.entry.role

    @property
    def task(self) -> str:
        """Task id (domains with one task share a head)."""
        return self.data.task

    @property
    def space(self) -> str:
        """Input space id (domains with one input space share a stem)."""
        return self.data.input_space or self.entry.name

    @property
    def modality(self) -> str:
        """The domain's modality."""
        return self.data.modality

    @property
    def num_classes(self) -> int:
        """Classes of the task."""
        return self.data.num_classes

    @property
    def headline(self) -> str:
        """The domain's headline metric."""
        return self.data.metrics[0]

    @property
    def trained(self) -> bool:
        """Whether the student trains on this domain."""
        return self.role in ("source", "target")


class Standardizer:
    """Per-channel z-scoring fitted on a train tensor (channels on ``channel_dim``)."""

    def __init__(self, x: torch.Tensor, channel_dim: int) -> None:
        dims = [d for d in range(x.dim()) if d != channel_dim % x.dim()]
        self.mean = x.double().mean(dim=dims, keepdim=True)
        std = x.double().std(dim=dims, keepdim=True, unbiased=False)
        self.std = torch.where(std > 1e-8, std, torch.ones_like(std))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return ((x.double() - self.mean) / self.std).float()


def _check(name: str, data: DomainData) -> None:
    unknown = [m for m in data.metrics if m not in METRICS]
    if unknown:
        raise DataError(f"domain {name!r}: unknown metric(s) {unknown}; known: {sorted(METRICS)}")
    for split_name, split in data.splits.items():
        for view in ("teacher_x", "student_x"):
            x = getattr(split, view)
            if x.is_floating_point() and not bool(torch.isfinite(x).all()):
                row = int((~torch.isfinite(x.reshape(len(x), -1))).any(1).nonzero()[0])
                raise DataError(
                    f"domain {name!r}: {split_name} split, example {row}: "
                    f"{view} has NaN or infinite values"
                )


def _standardize(
    data: DomainData,
) -> tuple[dict[str, Split], dict[str, Standardizer | None]]:
    views: dict[str, Standardizer | None] = {"teacher_x": None, "student_x": None}
    if not data.standardize:
        return dict(data.splits), views
    train = data.splits["train"]
    for view in views:
        x = getattr(train, view)
        views[view] = Standardizer(x, data.channel_dim) if x.is_floating_point() else None
    out = {}
    for split_name, split in data.splits.items():
        t = views["teacher_x"](split.teacher_x) if views["teacher_x"] else split.teacher_x
        if split.student_x is split.teacher_x:
            s = t
        else:
            s = views["student_x"](split.student_x) if views["student_x"] else split.student_x
        out[split_name] = Split(t, s, split.y)
    return out, views


def prepare_domains(
    config: PipelineConfig, host, quiz_fraction: float = 0.0
) -> list[PreparedDomain]:
    """Load every configured domain and prepare its splits."""
    prepared = []
    for i, entry in enumerate(config.domains):
        cls = host.get("domains", entry.name, where=f"domains.{i}.name")
        domain = cls.from_params(entry.params)
        try:
            data = domain.load(config.seed)
        except CdkdError:
            raise
        except (ValueError, OSError) as exc:
            raise DataError(f"domain {entry.key!r} ({entry.name}): {exc}") from exc
        _check(entry.key, data)
        splits, standardizers = _standardize(data)
        train, quiz = splits["train"], None
        seed = config.seed * 1000 + i
        if quiz_fraction > 0 and entry.role == "source":
            quiz_mask = stratified_subset_mask(train.y, quiz_fraction, seed + 17)
            quiz, train = train.subset(quiz_mask), train.subset(~quiz_mask)
        # a target's label_fraction holds for its val split too: model selection may use
        # no more of its labels than training does
        labelled = stratified_subset_mask(train.y, entry.fraction, seed)
        val_labelled = stratified_subset_mask(splits["val"].y, entry.fraction, seed + 1)
        prepared.append(
            PreparedDomain(
                entry,
                data,
                train,
                splits["val"],
                splits["test"],
                quiz,
                labelled,
                val_labelled,
                standardizers,
            )
        )
    return prepared
