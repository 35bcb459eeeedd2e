"""``medical.nifti``: the user's own NIfTI volumes, one sub-folder per class, as 2D slices.

```
my_volumes/
├── control/  sub-01.nii.gz  sub-02.nii ...
└── patient/  sub-11.nii.gz  ...
```

Each ``.nii`` / ``.nii.gz`` volume is read with nibabel, reoriented to the closest canonical
(RAS+) orientation (``canonical``), so ``axis: 2`` cuts axial slices (0 sagittal,
1 coronal); a 4D series contributes its ``volume``-th 3D volume. Intensities are clipped to
the volume's ``clip_percentiles`` and scaled to [0, 1]. The volume contributes ``slices``
slices: a count, evenly spaced over the central ``span`` of the axis, or a ``[start, stop)``
index range (negative counts from the end). Constant slices are dropped (``drop_blank``).
Slices are resized to ``size``.

**The split is by volume**: a volume's slices all sit in one split (stratified by class over
volumes), so neighbouring, nearly identical slices never sit in train and test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import torch
from pydantic import Field, field_validator

from cdkd_core.plugin_api import DataError, Domain, DomainData, InputReader
from cdkd_medical._common import (
    ClassFoldersConfig,
    MultiImageReader,
    assign_classes,
    build_domain_data,
    cap_splits,
    check_splits,
    class_folders,
    default_id,
    grouped_split,
    resize,
    stack_images,
    to_unit_range,
)


def _is_nifti(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith(".nii") or name.endswith(".nii.gz")


class NiftiConfig(ClassFoldersConfig):
    """The folder, slicing and intensity normalisation."""

    axis: Literal[0, 1, 2] = Field(2, description="Slicing axis (canonical: 2 axial).")
    slices: Annotated[int, Field(ge=1)] | tuple[int, int] = Field(
        8, description="Slices per volume: a count, or a [start, stop) index range."
    )
    span: float = Field(
        0.8, gt=0, le=1, description="Central share of the axis a slice count is spread over."
    )
    volume: int = Field(0, ge=0, description="4D files: which volume (4th index) is read.")
    canonical: bool = Field(True, description="Reorient to the closest RAS+ orientation.")
    clip_percentiles: tuple[float, float] | None = Field(
        (0.5, 99.5), description="Intensity window per volume (none: min-max)."
    )
    drop_blank: bool = Field(True, description="Drop constant slices (e.g. outside the head).")

    @field_validator("clip_percentiles")
    @classmethod
    def _percentiles(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and not 0 <= value[0] < value[1] <= 100:
            raise ValueError("clip_percentiles must be [low, high] with 0 <= low < high <= 100")
        return value


class Nifti(Domain):
    """Your own NIfTI volumes (.nii/.nii.gz), one sub-folder per class, as 2D slices.

    Each volume gives ``slices`` slices along ``axis``; the split is by volume, so slices
    of one volume never sit in two splits.
    """

    name = "medical.nifti"
    Config = NiftiConfig

    def _volume(self, path: Path) -> np.ndarray:
        """The 3D volume of one file, float32 in [0, 1]."""
        import nibabel as nib

        cfg: NiftiConfig = self.config  # type: ignore[assignment]
        try:
            img = nib.load(path)
            if cfg.canonical:
                img = nib.as_closest_canonical(img)
            shape = tuple(img.shape)
            while len(shape) > 4 and shape[-1] == 1:
                shape = shape[:-1]
            if len(shape) == 4:
                if cfg.volume >= shape[3]:
                    raise DataError(
                        f"{path}: volume {cfg.volume} requested but the 4D file has "
                        f"{shape[3]} volume(s) (shape {list(img.shape)})"
                    )
                data = np.asarray(img.dataobj[..., cfg.volume], dtype=np.float32)
            elif len(shape) == 3:
                data = np.asarray(img.dataobj, dtype=np.float32)
            else:
                raise DataError(
                    f"{path}: expected a 3D volume (or a 4D series), got shape {list(img.shape)}"
                )
        except DataError:
            raise
        except Exception as exc:  # ImageFileError, EOFError, zlib.error, OSError ...
            raise DataError(
                f"{path}: not a readable NIfTI volume ({type(exc).__name__}: {exc})"
            ) from exc
        data = data.reshape(shape[:3])
        if data.size == 0 or min(data.shape) == 0:
            raise DataError(f"{path}: the volume is empty (shape {list(data.shape)})")
        finite = np.isfinite(data)
        if not finite.any():
            raise DataError(f"{path}: the volume holds no finite value")
        if not finite.all():
            data = np.where(finite, data, data[finite].min())
        if cfg.clip_percentiles is None:
            low, high = float(data.min()), float(data.max())
        else:
            low, high = (float(v) for v in np.percentile(data, cfg.clip_percentiles))
        return to_unit_range(data, low, high)

    def _slice_ids(self, count: int, path: Path) -> np.ndarray:
        cfg: NiftiConfig = self.config  # type: ignore[assignment]
        if isinstance(cfg.slices, tuple):
            ids = np.arange(count)[slice(*cfg.slices)]
            if len(ids) == 0:
                raise DataError(
                    f"{path}: slice range {list(cfg.slices)} selects nothing from the "
                    f"{count} slices along axis {cfg.axis}"
                )
            return ids
        margin = (1 - cfg.span) / 2 * (count - 1)
        ids = np.round(np.linspace(margin, count - 1 - margin, min(cfg.slices, count)))
        return np.unique(ids.astype(np.int64))

    def _slices(self, path: Path) -> tuple[np.ndarray, torch.Tensor]:
        """The slice indices a volume contributes and the slices ``[S, 1, size, size]``."""
        cfg: NiftiConfig = self.config  # type: ignore[assignment]
        volume = self._volume(path)
        ids = self._slice_ids(volume.shape[cfg.axis], path)
        stack = np.moveaxis(np.take(volume, ids, axis=cfg.axis), cfg.axis, 0)
        if cfg.drop_blank:
            spread = np.ptp(stack.reshape(len(stack), -1), axis=1)
            ids, stack = ids[spread > 1e-6], stack[spread > 1e-6]
        if len(stack) == 0:
            raise DataError(
                f"{path}: every selected slice along axis {cfg.axis} is blank "
                "(constant); choose other slices or set drop_blank: false"
            )
        return ids, resize(torch.from_numpy(np.ascontiguousarray(stack))[:, None], cfg.size)

    def input_reader(self, seed: int) -> InputReader:
        """A NIfTI volume (``.nii``/``.nii.gz``), or a folder of them (searched
        recursively): each volume gives the slices :meth:`load` takes from a training
        volume (``axis``, ``slices``, ``span``, ``volume``, reorientation, its own intensity
        window, blank slices dropped, resized), ids ``<file>#axis<a>:<k>``."""
        cfg: NiftiConfig = self.config  # type: ignore[assignment]

        def images(path: Path) -> Iterator[tuple[str, torch.Tensor]]:
            ids, tensor = self._slices(path)
            for k, image in zip(ids, tensor, strict=True):
                yield f"#axis{cfg.axis}:{int(k)}", image

        return MultiImageReader(_is_nifti, images, cfg.size, "a NIfTI volume (.nii, .nii.gz)")

    def load(self, seed: int) -> DomainData:
        """Slice every volume, split by volume, cap (``seed`` is not used)."""
        cfg: NiftiConfig = self.config  # type: ignore[assignment]
        folders = class_folders(cfg.path, _is_nifti, "NIfTI volumes (.nii, .nii.gz)")
        folders = assign_classes(folders, cfg.classes, cfg.path)
        root = cfg.path.expanduser()
        images, sources, labels, groups = [], [], [], []
        for label, (_, paths) in enumerate(folders):
            for path in paths:
                ids, tensor = self._slices(path)
                relative = str(path.relative_to(root))
                for k, image in zip(ids, tensor, strict=True):
                    images.append(image)
                    sources.append(f"{relative}#axis{cfg.axis}:{int(k)}")
                    labels.append(label)
                    groups.append(relative)
        y = np.asarray(labels, dtype=np.int64)
        index = grouped_split(y, groups, cfg.val_fraction, cfg.test_fraction, cfg.split_seed)
        check_splits(
            index,
            str(cfg.path),
            f"volumes ({len(set(groups))} found)",
            "the split is by volume: each class needs at least 3 volumes",
        )
        index = cap_splits(index, y, cfg.max_examples, cfg.split_seed)
        x = stack_images(images, [str(root / s) for s in sources], cfg.size)
        #: ``relative/path.nii.gz#axis2:12`` for each example of each split
        self.provenance = {s: [sources[i] for i in idx] for s, idx in index.items()}
        self.volumes = {s: sorted({groups[i] for i in idx}) for s, idx in index.items()}
        ident = default_id("nifti", cfg.path)
        return build_domain_data(
            x,
            y,
            index,
            [name for name, _ in folders],
            modality="image",
            task=cfg.task or ident,
            input_space=cfg.input_space or f"{ident}.axis{cfg.axis}",
            metrics=cfg.metrics,
        )
