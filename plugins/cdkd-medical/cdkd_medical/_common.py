"""Helpers the medical loaders share: split configs, class folders, grouped splits, caps,
resizing and the default task / input-space ids of a user's files.

Only numpy, torch, pydantic and cdkd_core are imported here (all cheap); each loader
imports its file reader (PIL, pydicom, nibabel, tifffile) inside ``load``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from pydantic import Field

from cdkd_core.plugin_api import (
    ClassList,
    ComponentConfig,
    DataError,
    DomainData,
    InputBatch,
    InputOptions,
    InputReader,
    Split,
    cap_examples,
    encode_labels,
    path_digest,
    stratified_split_indices,
)

#: Largest/smallest train class count above which ROC-AUC becomes the headline metric.
IMBALANCE_RATIO = 1.5


class SplitFractions(ComponentConfig):
    """Split sizes, the split seed and a cap, shared by the medical domains."""

    val_fraction: float = Field(0.2, gt=0, lt=0.5, description="Fraction held out for val.")
    test_fraction: float = Field(0.2, gt=0, lt=0.5, description="Fraction held out for test.")
    split_seed: int = Field(0, ge=0, description="Seed of the split (fixed across run seeds).")
    max_examples: int | None = Field(
        None, ge=10, description="Stratified cap on examples (each split keeps its share)."
    )


class UserFilesConfig(SplitFractions):
    """Params of a loader for the user's own files."""

    path: Path = Field(description="The file or folder to read.")
    size: int | None = Field(
        64, ge=4, le=1024, description="Resize every image to size x size (none: keep)."
    )
    task: str | None = Field(None, description="Task id; domains with one task share a head.")
    input_space: str | None = Field(
        None, description="Domains with the same input space (and shapes) share a stem."
    )
    metrics: list[str] | None = Field(
        None,
        min_length=1,
        description="Metrics, headline first (default: accuracy, or roc_auc if imbalanced).",
    )


class ClassFoldersConfig(UserFilesConfig):
    """Params of a loader reading one sub-folder per class."""

    classes: ClassList = Field(
        None,
        description="Class names in order (class i is classes[i]); each sub-folder name "
        "matches a class exactly, as a number, or ignoring case. Default: the sorted names.",
    )


def default_id(kind: str, path: Path) -> str:
    """``medical.<kind>.<name>.<digest>``: two different files or folders with one name never
    share a stem or head by accident (the same convention as the core's ``tabular``)."""
    resolved = Path(path).expanduser().resolve()
    stem = resolved.name.split(".")[0] or "data"
    stem = re.sub(r"[^A-Za-z0-9_]", "_", stem)
    digest = path_digest(resolved)
    return f"medical.{kind}.{stem}.{digest}"


def headline_metrics(y_train: np.ndarray, num_classes: int, chosen: list[str] | None) -> list[str]:
    """The configured metrics, else accuracy first for balanced classes and ROC-AUC first when
    the largest train class outnumbers the smallest by more than ``IMBALANCE_RATIO``."""
    if chosen:
        return list(chosen)
    counts = np.bincount(np.asarray(y_train, dtype=np.int64), minlength=num_classes)
    counts = counts[counts > 0]
    if len(counts) >= 2 and counts.max() > IMBALANCE_RATIO * counts.min():
        return ["roc_auc", "accuracy"]
    return ["accuracy", "roc_auc"]


def class_folders(
    root: Path, accept: Callable[[Path], bool], what: str
) -> list[tuple[str, list[Path]]]:
    """``[(class name, sorted files)]`` of a folder with one sub-folder per class.

    Hidden entries are skipped; ``accept`` picks the files a loader reads. A missing root,
    fewer than two class folders, or a class folder with no accepted file is a DataError.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"{root}: no such folder")
    if not root.is_dir():
        raise DataError(f"{root}: not a folder; expected one sub-folder of {what} per class")
    classes = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(
            p
            for p in folder.rglob("*")
            if p.is_file()
            and not any(part.startswith(".") for part in p.relative_to(folder).parts)
            and accept(p)
        )
        if not files:
            raise DataError(f"{folder}: class folder holds no {what}")
        classes.append((folder.name, files))
    if len(classes) < 2:
        found = [name for name, _ in classes]
        raise DataError(
            f"{root}: needs at least two class sub-folders of {what}, found {len(classes)} {found}"
        )
    return classes


def assign_classes(
    folders: list[tuple[str, list[Path]]], classes: Sequence[str] | None, root: Path
) -> list[tuple[str, list[Path]]]:
    """``[(class name, files)]`` in class order: the sub-folder names read as labels by the
    core's rule (:mod:`cdkd_core.data.labels`): folders equal as numbers (``1``, ``1.0``) are one
    class, folders differing only in case are refused unless ``classes`` says which class
    each is; a folder matching none of ``classes`` is an error naming it. A listed class
    with no folder is kept with no files (and warned about)."""
    labels = encode_labels(
        [name for name, _ in folders],
        path=Path(root).expanduser(),
        column="class sub-folder",
        classes=classes,
    )
    out: list[tuple[str, list[Path]]] = [(name, []) for name in labels.classes]
    for code, (_, files) in zip(labels.codes, folders, strict=True):
        out[int(code)][1].extend(files)
    return out


def grouped_split(
    labels: np.ndarray,
    groups: Sequence[object],
    val_fraction: float,
    test_fraction: float,
    seed: int,
) -> dict[str, np.ndarray]:
    """Train / val / test example indices where every group (a volume, a patient) sits in
    one split, stratified by each group's majority label. Sorted, deterministic in ``seed``."""
    labels = np.asarray(labels)
    keys = list(dict.fromkeys(groups))  # first-seen order, deterministic
    position = {key: i for i, key in enumerate(keys)}
    group_of = np.asarray([position[g] for g in groups], dtype=np.int64)
    group_label = np.asarray(
        [np.bincount(labels[group_of == g]).argmax() for g in range(len(keys))], dtype=np.int64
    )
    by_group = stratified_split_indices(group_label, val_fraction, test_fraction, seed)
    return {name: np.sort(np.flatnonzero(np.isin(group_of, idx))) for name, idx in by_group.items()}


def check_splits(index: dict[str, np.ndarray], where: str, unit: str, hint: str = "") -> None:
    """A DataError naming ``where`` when a split ended up empty (too few examples/groups)."""
    empty = [name for name, idx in index.items() if len(idx) == 0]
    if empty:
        sizes = {name: len(idx) for name, idx in index.items()}
        raise DataError(
            f"{where}: too few {unit} to fill train/val/test (sizes {sizes}; empty: {empty})"
            + (f"; {hint}" if hint else "")
        )


def cap_splits(
    index: dict[str, np.ndarray], labels: np.ndarray, max_examples: int | None, seed: int
) -> dict[str, np.ndarray]:
    """At most ``max_examples`` in all, each split keeping its share, stratified within the
    split (so a grouped split stays grouped: examples are only dropped, never moved)."""
    total = sum(len(idx) for idx in index.values())
    if max_examples is None or max_examples >= total:
        return index
    labels = np.asarray(labels)
    out = {}
    for name, idx in index.items():
        present = len(np.unique(labels[idx]))
        quota = max(present, round(max_examples * len(idx) / total), 1)
        out[name] = idx[cap_examples(labels[idx], quota, seed)]
    return out


def resize(x: torch.Tensor, size: int | None) -> torch.Tensor:
    """``[N, C, H, W]`` float images resized to ``size x size`` (bilinear, antialiased; the
    aspect ratio is not kept); unchanged when ``size`` is None or already matches."""
    if size is None or tuple(x.shape[-2:]) == (size, size):
        return x
    return torch.nn.functional.interpolate(
        x, size=(size, size), mode="bilinear", align_corners=False, antialias=True
    )


def stack_images(images: list[torch.Tensor], sources: list[str], size: int | None) -> torch.Tensor:
    """One ``[N, C, H, W]`` tensor from ``[C, H, W]`` images; a shape mismatch (possible only
    without ``size``) is a DataError naming the first file that differs."""
    first = tuple(images[0].shape)
    for image, source in zip(images, sources, strict=True):
        if tuple(image.shape) != first:
            raise DataError(
                f"{source}: image shape {list(image.shape)} differs from {list(first)} "
                f"({sources[0]}); set params.size to resize every image"
            )
    return torch.stack(images).float()


def build_domain_data(
    x: torch.Tensor,
    y: np.ndarray,
    index: dict[str, np.ndarray],
    classes: list[str],
    *,
    modality: str,
    task: str,
    input_space: str | None,
    metrics: list[str] | None,
) -> DomainData:
    """DomainData with one view per example (teacher and student read the same input)."""
    yt = torch.as_tensor(np.asarray(y), dtype=torch.long)
    splits = {}
    for name, idx in index.items():
        it = torch.as_tensor(idx, dtype=torch.long)
        splits[name] = Split.single_view(x[it], yt[it])
    return DomainData(
        modality=modality,
        task=task,
        classes=classes,
        splits=splits,
        metrics=headline_metrics(np.asarray(y)[index["train"]], len(classes), metrics),
        input_space=input_space,
    )


def to_unit_range(x: np.ndarray, low: float, high: float) -> np.ndarray:
    """``x`` clipped to ``[low, high]`` and mapped to ``[0, 1]`` (zeros when high <= low)."""
    x = np.asarray(x, dtype=np.float64)
    if not np.isfinite(low) or not np.isfinite(high) or high <= low:
        return np.zeros_like(x, dtype=np.float32)
    return ((np.clip(x, low, high) - low) / (high - low)).astype(np.float32)


class MultiImageReader(InputReader):
    """Raw input files each giving one image or several (a DICOM file's frames, a NIfTI
    volume's slices, an image's patches): one file, or a folder searched recursively (hidden
    entries skipped, files in sorted path order). Row ids are the file's path relative to
    the folder (its name, for one file) plus the suffix ``images`` gives each image.

    Args:
        accept: which files of a folder are read (a file given directly must pass too).
        images: a file -> ``(id suffix, [C, H, W] float32 image)`` of each of its images,
            made exactly as the domain's ``load`` makes its training images.
        size: the domain's ``size`` (``None``: images must share one shape).
        accepts: what the reader reads, for messages.
    """

    def __init__(
        self,
        accept: Callable[[Path], bool],
        images: Callable[[Path], Iterable[tuple[str, torch.Tensor]]],
        size: int | None,
        accepts: str,
    ) -> None:
        self.accept = accept
        self.images = images
        self.size = size
        self.accepts = accepts

    def files(self, source: Path) -> tuple[Path, list[Path]]:
        """The folder ids are relative to, and the files of ``source`` read."""
        source = Path(source).expanduser()
        if source.is_file():
            if not self.accept(source):
                raise DataError(f"{source}: not {self.accepts}")
            return source.parent, [source]
        if not source.is_dir():
            raise DataError(f"input not found: {source}")
        files = sorted(
            p
            for p in source.rglob("*")
            if p.is_file()
            and not any(part.startswith(".") for part in p.relative_to(source).parts)
            and self.accept(p)
        )
        if not files:
            raise DataError(f"{source}: no files of {self.accepts} in the folder")
        return source, files

    def batches(self, source: Path, options: InputOptions, chunk_size: int) -> Iterator[InputBatch]:
        """The images of the files of ``source``, ``chunk_size`` at a time."""
        if options.column is not None or options.id_column is not None:
            raise DataError("--column and --id-column read tables and texts, not images")
        root, files = self.files(source)
        ids: list[str] = []
        images: list[torch.Tensor] = []
        for path in files:
            name = path.relative_to(root).as_posix()
            for suffix, image in self.images(path):
                ids.append(name + suffix)
                images.append(image)
                if len(images) == chunk_size:
                    yield self._batch(ids, images, root, options.teacher)
                    ids, images = [], []
        if images:
            yield self._batch(ids, images, root, options.teacher)

    def _batch(
        self, ids: list[str], images: list[torch.Tensor], root: Path, teacher: bool
    ) -> InputBatch:
        x = stack_images(images, [str(root / i) for i in ids], self.size)
        return InputBatch(ids, x, x if teacher else None)
