"""Loading the configured domains and preparing their splits for training.

Inputs are standardised per domain with statistics of its train split; a target domain
gets its stratified labelled subset (``label_fraction`` of each class, or ``shots``
examples of each); a quiz split is carved from each source domain's
train split when the feedback strategy asks for one (a text domain's raw texts follow its
rows into it). Large splits are checked and
standardised chunk by chunk, into memory-mapped scratch files where ``train.out_of_core``
says so (:mod:`cdkd_core.data.scratch`).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from cdkd_core import seeds
from cdkd_core.components.domain import DomainData, Split
from cdkd_core.config.models import DomainEntry, PipelineConfig
from cdkd_core.data.class_identity import align_classes
from cdkd_core.data.scratch import ScratchSpace, is_memory_mapped, row_chunks, rows_per_chunk
from cdkd_core.data.splits import shots_mask, stratified_subset_mask
from cdkd_core.errors import CdkdError, DataError
from cdkd_core.metrics import METRICS

if TYPE_CHECKING:
    from cdkd_core.host.plugin_host import PluginHost


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
    #: what preparation changed that a user should know, one line each (e.g. labels mapped
    #: to their task's class order, see :mod:`cdkd_core.data.class_identity`)
    notes: list[str] = field(default_factory=list)
    #: the raw texts of a domain that gives them (:attr:`DomainData.texts`), per prepared
    #: split ("train", "val", "test", and "quiz" when carved), row by row as those splits
    #: hold their examples; None for a domain without texts
    texts: dict[str, list[str]] | None = None

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
    """Per-channel z-scoring fitted on a train tensor (channels on ``channel_dim``).

    The statistics are float64; a tensor larger than one chunk (see
    :mod:`cdkd_core.data.scratch`) is read chunk by chunk, its per-chunk means and sums of
    squared deviations merged by Chan et al.'s (1979) pairwise update, so no float64 copy
    of the whole tensor is made. One chunk or several, the numbers agree to float64
    rounding.
    """

    def __init__(self, x: torch.Tensor, channel_dim: int) -> None:
        channel = channel_dim % x.dim()
        dims = [d for d in range(x.dim()) if d != channel]
        rows = rows_per_chunk(x)
        if channel == 0 or len(x) <= rows:
            self.mean = x.double().mean(dim=dims, keepdim=True)
            std = x.double().std(dim=dims, keepdim=True, unbiased=False)
        else:
            count, mean, m2 = 0, None, None
            for chunk in row_chunks(len(x), rows):
                c = x[chunk].double()
                n = c.numel() // c.shape[channel]
                c_mean = c.mean(dim=dims, keepdim=True)
                c_m2 = (c - c_mean).square().sum(dim=dims, keepdim=True)
                if mean is None:
                    count, mean, m2 = n, c_mean, c_m2
                    continue
                delta, total = c_mean - mean, count + n
                mean = mean + delta * (n / total)
                m2 = m2 + c_m2 + delta.square() * (count * n / total)
                count = total
            self.mean = mean
            std = (m2 / count).sqrt()
        self.std = torch.where(std > 1e-8, std, torch.ones_like(std))

    def __call__(self, x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """``(x - mean) / std`` as float32; written chunk by chunk into ``out`` when given
        (e.g. a memory-mapped scratch tensor) or when ``x`` is larger than one chunk."""
        rows = rows_per_chunk(x)
        if out is None and len(x) <= rows:
            return ((x.double() - self.mean) / self.std).float()
        if out is None:
            out = torch.empty(x.shape, dtype=torch.float32)
        for chunk in row_chunks(len(x), rows):
            out[chunk] = ((x[chunk].double() - self.mean) / self.std).float()
        return out


def _check(name: str, data: DomainData) -> None:
    unknown = [m for m in data.metrics if m not in METRICS]
    if unknown:
        raise DataError(f"domain {name!r}: unknown metric(s) {unknown}; known: {sorted(METRICS)}")
    for split_name, split in data.splits.items():
        for view in ("teacher_x", "student_x"):
            x = getattr(split, view)
            if not x.is_floating_point() or (view == "student_x" and x is split.teacher_x):
                continue
            for chunk in row_chunks(len(x), rows_per_chunk(x)):
                flat = x[chunk].reshape(chunk.stop - chunk.start, -1)
                finite = torch.isfinite(flat).all(1)
                if not bool(finite.all()):
                    row = int((~finite).nonzero()[0])
                    entry = int((~torch.isfinite(flat[row])).nonzero()[0])
                    position = tuple(
                        int(i) for i in torch.unravel_index(torch.tensor(entry), tuple(x.shape[1:]))
                    )
                    raise DataError(
                        f"domain {name!r}: {split_name} split, example {chunk.start + row}: "
                        f"{view} has NaN or infinite values (entry {list(position)} is "
                        f"{float(flat[row, entry])} in {str(x.dtype).removeprefix('torch.')})"
                    )


def _standardized(
    standardizer: Standardizer | None, x: torch.Tensor, scratch: ScratchSpace, key: str
) -> torch.Tensor:
    """One view of one split standardised: in RAM, or into a scratch file when it is large
    or memory-mapped (see :class:`~cdkd_core.data.scratch.ScratchSpace`)."""
    if standardizer is None:
        return x
    if scratch.on_disk(x.numel() * 4, mapped=is_memory_mapped(x)):
        return standardizer(x, out=scratch.empty(key, tuple(x.shape), torch.float32))
    return standardizer(x)


def _standardize(
    data: DomainData, scratch: ScratchSpace, name: str
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
        key = f"{name}-{split_name}"
        t = _standardized(views["teacher_x"], split.teacher_x, scratch, f"{key}-teacher_x")
        if split.student_x is split.teacher_x:
            s = t
        else:
            s = _standardized(views["student_x"], split.student_x, scratch, f"{key}-student_x")
        out[split_name] = Split(t, s, split.y)
    return out, views


def _subset(split: Split, mask: torch.Tensor, scratch: ScratchSpace, key: str) -> Split:
    """``split.subset(mask)``; a view that is large or memory-mapped is gathered chunk by
    chunk into a scratch file instead of RAM."""
    index = torch.nonzero(mask).flatten()
    views = {"teacher_x": split.teacher_x, "student_x": split.student_x}
    disk = {
        view: scratch.on_disk(
            len(index) * math.prod(x.shape[1:]) * x.element_size(), mapped=is_memory_mapped(x)
        )
        for view, x in views.items()
    }
    if not any(disk.values()):
        return split.subset(mask)
    out: dict[str, torch.Tensor] = {}
    for view, x in views.items():
        if view == "student_x" and x is split.teacher_x:
            out[view] = out["teacher_x"]
        elif not disk[view]:
            out[view] = x[index]
        else:
            out[view] = scratch.empty(f"{key}-{view}", (len(index), *x.shape[1:]), x.dtype)
            for chunk in row_chunks(len(index), rows_per_chunk(x)):
                out[view][chunk] = x[index[chunk]]
    return Split(out["teacher_x"], out["student_x"], split.y[index])


def _shots(
    entry: DomainEntry, train: Split, val: Split, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """A few-shot target's labelled masks: ``entry.shots`` per class of its train and val
    splits (all of a class with fewer, with a warning)."""
    assert entry.shots is not None
    masks = []
    for split, name in ((train, "train"), (val, "val")):
        mask, short = shots_mask(split.y, entry.shots, seeds.labelled_seed(seed, name))
        if short:
            warnings.warn(
                f"domain {entry.key!r}: shots={entry.shots} but its {name} split has fewer "
                "examples of class(es) "
                + ", ".join(f"{c} ({n})" for c, n in sorted(short.items()))
                + "; all of them are labelled",
                stacklevel=3,
            )
        masks.append(mask)
    return masks[0], masks[1]


def _provided(host: PluginHost, cls: type, name: str) -> str:
    """``name``, and the plugin (with its version) that provides it unless a built-in."""
    from cdkd_core.host.plugin_host import BUILTIN_PLUGINS

    info = host.provider("domains", cls)
    if info is None or info.plugin in BUILTIN_PLUGINS:
        return name
    return f"{name} from plugin {host.describe(info.plugin)}"


def _check_returned(host: PluginHost, domain, data, seed: int) -> None:
    """``load`` gave a DomainData; a broken contract names the plugin and its version."""
    from cdkd_core.components.contracts import ContractError, check_domain_data

    try:
        check_domain_data(domain, data, seed)
    except ContractError as exc:
        info = host.provider("domains", domain)
        plugin = host.plugins.get(info.plugin) if info is not None else None
        version = plugin.version if plugin is not None else None
        exc.attribute(info.plugin if info is not None else None, version, "loading domains")
        raise


def prepare_domains(
    config: PipelineConfig,
    host: PluginHost,
    quiz_fraction: float = 0.0,
    scratch: ScratchSpace | None = None,
) -> list[PreparedDomain]:
    """Load every configured domain and prepare its splits.

    Domains sharing a task get one class order (the first one's; labels mapped by class
    name, a mismatch refused: :mod:`cdkd_core.data.class_identity`) before anything reads a
    label. Derived arrays that ``train.out_of_core`` sends to disk go to ``scratch`` (default: a
    temporary directory removed when the space is garbage collected)."""
    if scratch is None:
        scratch = ScratchSpace(None, config.train.out_of_core, config.train.out_of_core_mb)
    loaded = []
    for i, entry in enumerate(config.domains):
        cls = host.get("domains", entry.name, where=f"domains.{i}.name")
        domain = cls.from_params(entry.params)
        try:
            data = domain.load(config.seed)
        except CdkdError:
            raise
        except (ValueError, OSError) as exc:
            raise DataError(
                f"domain {entry.key!r} ({_provided(host, cls, entry.name)}): {exc}"
            ) from exc
        _check_returned(host, domain, data, config.seed)
        _check(entry.key, data)
        loaded.append(data)
    from cdkd_core.data.feature_identity import check_domains

    check_domains(config.domains, loaded)  # one feature identity per input space
    # one class identity per task, before any split, mask or model reads a label
    aligned = align_classes([(e.key, d) for e, d in zip(config.domains, loaded, strict=True)])
    prepared = []
    for i, (entry, (data, note)) in enumerate(zip(config.domains, aligned, strict=True)):
        splits, standardizers = _standardize(data, scratch, f"domain{i}")
        train, quiz, quiz_mask = splits["train"], None, None
        seed = seeds.domain_seed(config.seed, i)
        if quiz_fraction > 0 and entry.role == "source":
            quiz_mask = stratified_subset_mask(train.y, quiz_fraction, seeds.quiz_seed(seed))
            quiz = _subset(train, quiz_mask, scratch, f"domain{i}-quiz")
            train = _subset(train, ~quiz_mask, scratch, f"domain{i}-train")
        # a target's label_fraction holds for its val split too: model selection may use
        # no more of its labels than training does
        if entry.shots is not None:  # few-shot: k per class, in val as in train
            labelled, val_labelled = _shots(entry, train, splits["val"], seed)
        else:
            labelled = stratified_subset_mask(
                train.y, entry.fraction, seeds.labelled_seed(seed, "train")
            )
            val_labelled = stratified_subset_mask(
                splits["val"].y, entry.fraction, seeds.labelled_seed(seed, "val")
            )
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
                [note] if note is not None else [],
                _split_texts(data.texts, quiz_mask),
            )
        )
    return prepared


def _split_texts(
    texts: dict[str, list[str]] | None, quiz_mask: torch.Tensor | None
) -> dict[str, list[str]] | None:
    """A domain's texts per prepared split: those of the rows a quiz carves out of train
    move to "quiz", in the order :func:`_subset` keeps them (ascending row index)."""
    if texts is None:
        return None
    out = {name: list(rows) for name, rows in texts.items()}
    if quiz_mask is not None:
        train = out["train"]
        out["quiz"] = [train[int(i)] for i in torch.nonzero(quiz_mask).flatten()]
        out["train"] = [train[int(i)] for i in torch.nonzero(~quiz_mask).flatten()]
    return out
