"""The ``arrays`` domain: your own train / val / test arrays as ``.npy`` files, memory-mapped.

Nothing is copied into RAM when the domain loads: every input array is mapped
copy-on-write (``np.load(..., mmap_mode="c")``), so data larger than memory streams from
disk as batches need it. Only the labels (one integer per example) are read whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from pydantic import Field

from cdkd_core.components.base import ComponentConfig
from cdkd_core.components.domain import SPLITS, Domain, DomainData, Split
from cdkd_core.components.raw_input import InputBatch, InputOptions, InputReader
from cdkd_core.data.path_id import path_digest
from cdkd_core.data.scratch import open_npy
from cdkd_core.errors import DataError

#: Input dtypes the domain maps as they are (torch reads them without a copy).
INPUT_DTYPES = ("float16", "float32", "float64", "uint8", "int8", "int16", "int32", "int64")


class ArraysConfig(ComponentConfig):
    """Where the ``.npy`` files are and what they hold."""

    path: Path = Field(
        description=(
            "Directory holding train_x.npy, train_y.npy, val_x.npy, val_y.npy, test_x.npy, "
            "test_y.npy, and optionally <split>_student_x.npy for every split."
        )
    )
    classes: list[str] | None = Field(
        None,
        min_length=2,
        description="Class names, label i naming classes[i] (default: '0'..max train label).",
    )
    modality: str = Field("tabular", description="Modality of the inputs (tabular, image, ...).")
    channel_dim: int = Field(1, description="Axis standardised per entry (1: features, channels).")
    standardize: bool = Field(True, description="z-score floating inputs with train statistics.")
    task: str | None = Field(None, description="Task id; domains with one task share a head.")
    input_space: str | None = Field(
        None, description="Domains with the same input space (and shape) share a stem."
    )
    metrics: list[str] = Field(default_factory=lambda: ["accuracy", "f1_macro"], min_length=1)


def _open_input(path: Path) -> torch.Tensor:
    """An input array, memory-mapped; :class:`DataError` naming the file when unusable."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        x = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise DataError(f"{path}: not a readable .npy array ({exc})") from None
    if x.dtype.name not in INPUT_DTYPES or not x.dtype.isnative:
        raise DataError(
            f"{path}: inputs of dtype {x.dtype.str} are not supported; save them as "
            "float32 (or float64, or integer ids) in native byte order"
        )
    if x.ndim < 2:
        raise DataError(
            f"{path}: inputs must have a row per example and at least one feature axis "
            f"([N, ...]), got shape {x.shape}"
        )
    if len(x) == 0:
        raise DataError(f"{path}: holds no examples")
    del x
    return open_npy(path)


class NpyReader(InputReader):
    """Rows of a ``.npy`` file (memory-mapped, read ``chunk_size`` rows at a time) of the
    training files' example shape and dtype; the teacher view is the same array where the
    domain has one view."""

    accepts = "a .npy file of examples shaped as the training inputs"

    def __init__(self, shape: tuple[int, ...], dtype: torch.dtype, same_view: bool) -> None:
        self.shape = shape
        self.dtype = dtype
        self.same_view = same_view

    def batches(self, source: Path, options: InputOptions, chunk_size: int) -> Iterator[InputBatch]:
        """The rows of ``source``, ``chunk_size`` at a time."""
        x = _open_input(Path(source))
        if tuple(x.shape[1:]) != self.shape:
            raise DataError(
                f"{source}: examples of shape {tuple(x.shape[1:])}, the training inputs have "
                f"{self.shape}"
            )
        if x.is_floating_point() != self.dtype.is_floating_point:
            raise DataError(f"{source}: dtype {x.dtype}, the training inputs are {self.dtype}")
        for start in range(0, len(x), chunk_size):
            chunk = x[start : start + chunk_size].to(self.dtype)
            teacher = chunk if options.teacher and self.same_view else None
            ids = [str(i) for i in range(start, start + len(chunk))]
            yield InputBatch(ids, chunk, teacher)

    def count(self, source: Path, options: InputOptions) -> int | None:
        """The number of rows of the array."""
        try:
            return len(np.load(source, mmap_mode="r", allow_pickle=False))
        except (ValueError, OSError):
            return None


def _read_labels(path: Path) -> np.ndarray:
    """A label array read whole, as int64; :class:`DataError` naming the file."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        y = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise DataError(f"{path}: not a readable .npy array ({exc})") from None
    if y.ndim != 1:
        raise DataError(
            f"{path}: labels must be one integer per example ([N]), got shape {y.shape}"
        )
    if not (np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_):
        raise DataError(
            f"{path}: labels must be integer class indices, got dtype {y.dtype}; "
            "save them with y.astype(np.int64)"
        )
    return y.astype(np.int64)


class ArraysDomain(Domain):
    """Your own arrays: train/val/test inputs and labels as ``.npy`` files, memory-mapped.

    The inputs are never read whole: larger-than-memory data streams from disk, and with
    ``train.out_of_core: auto`` everything the run derives from it goes to disk too.
    """

    name = "arrays"
    Config = ArraysConfig

    def input_reader(self, seed: int) -> InputReader:
        """New examples as one ``.npy`` file of the domain's input view (``x``; the
        student's ``student_x`` where the domain has two views), memory-mapped and read in
        chunks; row ids are the row indices."""
        cfg: ArraysConfig = self.config  # type: ignore[assignment]
        root = Path(cfg.path)
        two_views = any((root / f"{s}_student_x.npy").is_file() for s in SPLITS)
        reference = _open_input(root / ("train_student_x.npy" if two_views else "train_x.npy"))
        return NpyReader(tuple(reference.shape[1:]), reference.dtype, same_view=not two_views)

    def load(self, seed: int) -> DomainData:
        """Map the files, check their shapes, dtypes and labels, and return the splits."""
        cfg: ArraysConfig = self.config  # type: ignore[assignment]
        root = Path(cfg.path)
        if not root.is_dir():
            raise DataError(f"arrays: no such directory: {root}")
        two_views = any((root / f"{s}_student_x.npy").is_file() for s in SPLITS)
        files: dict[str, dict[str, Path]] = {
            s: {
                "x": root / f"{s}_x.npy",
                "y": root / f"{s}_y.npy",
                **({"student_x": root / f"{s}_student_x.npy"} if two_views else {}),
            }
            for s in SPLITS
        }
        labels = {s: _read_labels(files[s]["y"]) for s in SPLITS}
        classes = _classes(cfg, labels, files)
        splits, shapes = {}, {}
        for s in SPLITS:
            views = {}
            for view in ("x", "student_x") if two_views else ("x",):
                views[view] = _open_view(cfg, files[s], view, len(labels[s]), shapes)
            y = torch.from_numpy(labels[s])
            splits[s] = Split(views["x"], views.get("student_x", views["x"]), y)
        digest = path_digest(root)
        default_id = f"arrays.{root.resolve().name}.{digest}"
        return DomainData(
            modality=cfg.modality,
            task=cfg.task or default_id,
            classes=list(classes),
            splits=splits,
            metrics=list(cfg.metrics),
            input_space=cfg.input_space or default_id,
            channel_dim=cfg.channel_dim,
            standardize=cfg.standardize,
        )


def _classes(
    cfg: ArraysConfig, labels: dict[str, np.ndarray], files: dict[str, dict[str, Path]]
) -> list[str]:
    """The class names (given, or ``0..C-1`` from the largest train label), every split's
    labels checked to lie in their range."""
    classes = cfg.classes
    if classes is None:
        top = int(labels["train"].max()) if len(labels["train"]) else 0
        if top < 1:
            raise DataError(
                f"{files['train']['y']}: the labels hold a single class ({top}); a task "
                "needs at least two (labels are class indices 0..C-1; or give classes)"
            )
        classes = [str(c) for c in range(top + 1)]
    for s in SPLITS:
        bad = np.flatnonzero((labels[s] < 0) | (labels[s] >= len(classes)))
        if len(bad):
            row = int(bad[0])
            origin = (
                f"the {len(classes)} classes given"
                if cfg.classes is not None
                else f"classes 0..{len(classes) - 1}, from the largest label of train_y.npy"
            )
            raise DataError(
                f"{files[s]['y']}: label {int(labels[s][row])} of example {row} is outside "
                f"0..{len(classes) - 1} ({origin})"
            )
    return classes


def _open_view(
    cfg: ArraysConfig,
    files: dict[str, Path],
    view: str,
    n_labels: int,
    shapes: dict[str, tuple[Path, tuple[int, ...]]],
) -> torch.Tensor:
    """Map one split's input file of ``view`` and check it: one example per label, a
    ``channel_dim`` that is a feature axis, the same example shape in every split
    (``shapes`` remembers the first), float32 when not standardised."""
    path = files[view]
    x = _open_input(path)
    if len(x) != n_labels:
        raise DataError(f"{path}: {len(x)} examples, but {files['y'].name} has {n_labels} labels")
    axis = cfg.channel_dim
    if view == "x" and not (-x.dim() < axis < x.dim() and axis % x.dim()):
        raise DataError(
            f"{path}: channel_dim {cfg.channel_dim} is not a feature axis of "
            f"inputs of shape {tuple(x.shape)} (axis 0 is the example)"
        )
    first = shapes.setdefault(view, (path, tuple(x.shape[1:])))
    if tuple(x.shape[1:]) != first[1]:
        raise DataError(
            f"{path}: examples of shape {tuple(x.shape[1:])}, but {first[0].name} has {first[1]}"
        )
    if not cfg.standardize and x.is_floating_point() and x.dtype != torch.float32:
        raise DataError(
            f"{path}: with standardize: false, floating inputs must be float32 "
            f"(got {x.dtype}); the networks read float32"
        )
    return x
