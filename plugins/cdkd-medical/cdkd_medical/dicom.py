"""``medical.dicom``: the user's own DICOM images, one sub-folder per class.

```
my_dicom/
├── normal/    IM0001  IM0002 ...      (any file name; DICOM files often have no extension)
└── nodule/    1.dcm   2.dcm  ...
```

Every file in a class folder must be a DICOM image (hidden files and ``DICOMDIR`` index
files are skipped); anything else (a text file, an RT plan or structured report with no
pixel data, undecodable pixel data) is refused with a DataError naming the file.

Pixels: stored values are rescaled with ``RescaleSlope`` / ``RescaleIntercept`` (CT
Hounsfield units), windowed to [0, 1] (``window``: ``minmax`` per image, ``file`` for the
file's ``WindowCenter`` / ``WindowWidth``, or ``[center, width]`` such as ``[40, 400]`` for
a CT soft-tissue window), inverted for ``MONOCHROME1``, and resized to ``size``. Colour
images (RGB, YBR, palette) become RGB in [0, 1]; ``mode`` gives one grey or three channels.
Each frame of a multi-frame file is one example (``frames: middle`` keeps one).

Split: images of one patient (``group_by: patient``, the default; or study, series, file)
always share a split, stratified by class over the groups, so one patient's slices never
sit in train and test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field

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

GROUP_TAGS = {"patient": "PatientID", "study": "StudyInstanceUID", "series": "SeriesInstanceUID"}


class DicomConfig(ClassFoldersConfig):
    """The folder, intensity window, grouping and colour mode."""

    window: Literal["minmax", "file"] | tuple[float, float] = Field(
        "minmax",
        description="minmax per image | file (WindowCenter/Width) | [center, width].",
    )
    group_by: Literal["patient", "study", "series", "file"] = Field(
        "patient", description="Files sharing this keep to one split (missing tag: per file)."
    )
    frames: Literal["all", "middle"] = Field(
        "all", description="Multi-frame files: every frame an example, or the middle one."
    )
    mode: Literal["L", "RGB"] = Field("L", description="L: one grey channel; RGB: three.")
    force: bool = Field(False, description="Read files lacking the DICOM preamble/meta header.")


def _first(value) -> float:
    """A number from a DICOM value that may be multi-valued (the first value)."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        return float(value)
    return float(value[0])


def _as_rgb(array: np.ndarray, ds, photometric: str) -> np.ndarray:
    """Palette images through their colour LUT; YBR as RGB (pydicom 3 converts YBR in
    ``pixel_array`` already; pydicom 2 only for compressed data it decodes with Pillow)."""
    import pydicom

    major = int(str(pydicom.__version__).split(".")[0])
    if photometric == "PALETTE COLOR":
        if major >= 3:
            from pydicom.pixels import apply_color_lut
        else:  # pragma: no cover - pydicom 2
            from pydicom.pixel_data_handlers.util import apply_color_lut
        return np.asarray(apply_color_lut(array, ds))
    if major < 3 and photometric.startswith("YBR_FULL"):  # pragma: no cover - pydicom 2
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        if syntax is not None and not syntax.is_compressed:
            from pydicom.pixel_data_handlers.util import convert_color_space

            return np.asarray(convert_color_space(array, photometric, "RGB"))
    return array


def _is_candidate(path: Path) -> bool:
    return path.name.upper() != "DICOMDIR"


class Dicom(Domain):
    """Your own DICOM images, one sub-folder per class: rescaled, windowed, resized.

    Split by patient (or study, series, file) so one patient's images stay in one split.
    """

    name = "medical.dicom"
    Config = DicomConfig

    def _read(self, path: Path, *, pixels: bool):
        import pydicom
        from pydicom.errors import InvalidDicomError

        cfg: DicomConfig = self.config  # type: ignore[assignment]
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=not pixels, force=cfg.force)
        except InvalidDicomError as exc:
            raise DataError(
                f"{path}: not a DICOM file ({exc}); only DICOM images may sit in the class "
                "folders (set params.force for DICOM files without a meta header)"
            ) from exc
        except Exception as exc:
            raise DataError(f"{path}: unreadable DICOM file ({type(exc).__name__}: {exc})") from exc
        if "Rows" not in ds or "Columns" not in ds:
            kind = ds.get("Modality") or "object"
            sop = ds.get("SOPClassUID")
            what = f"{kind} ({sop.name})" if sop is not None else str(kind)
            raise DataError(f"{path}: DICOM {what} is not an image: it has no pixel data")
        return ds

    def _pixels(self, path: Path) -> np.ndarray:
        """All frames of one file as ``[F, C, H, W]`` float32 in [0, 1]."""
        cfg: DicomConfig = self.config  # type: ignore[assignment]
        ds = self._read(path, pixels=True)
        if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
            raise DataError(f"{path}: DICOM file has image attributes but no pixel data")
        try:
            array = np.asarray(ds.pixel_array)
            photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
            array = _as_rgb(array, ds, photometric)
        except DataError:
            raise
        except Exception as exc:  # missing decoder, truncated data, bad attributes ...
            raise DataError(
                f"{path}: cannot decode pixel data ({type(exc).__name__}: {exc})"
            ) from exc
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        colour = array.shape[-1] in (3, 4) and (
            int(ds.get("SamplesPerPixel", 1)) > 1 or photometric == "PALETTE COLOR"
        )
        if frames == 1:
            array = array[None]
        if not colour:
            array = array[..., None]
        if array.ndim != 4 or min(array.shape[1:3]) < 1:
            raise DataError(f"{path}: unexpected pixel array shape {list(array.shape)}")
        if colour:
            if photometric == "PALETTE COLOR":
                bits = 16 if array.max() > 255 else 8
            else:
                bits = int(ds.get("BitsStored", 8))
            out = array[..., :3].astype(np.float32) / float(2**bits - 1)
            out = np.clip(out, 0, 1)
            if cfg.mode == "L":
                out = out @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
                out = out[..., None]
        else:
            values = array[..., 0].astype(np.float64)
            slope = float(ds.get("RescaleSlope", 1) or 1)
            intercept = float(ds.get("RescaleIntercept", 0) or 0)
            values = values * slope + intercept
            out = np.stack([self._window(frame, ds, path) for frame in values])[..., None]
            if photometric == "MONOCHROME1":
                out = 1.0 - out
            if cfg.mode == "RGB":
                out = np.repeat(out, 3, axis=-1)
        return np.ascontiguousarray(np.moveaxis(out, -1, 1), dtype=np.float32)

    def _window(self, values: np.ndarray, ds, path: Path) -> np.ndarray:
        cfg: DicomConfig = self.config  # type: ignore[assignment]
        if cfg.window == "minmax":
            return to_unit_range(values, float(values.min()), float(values.max()))
        if cfg.window == "file":
            if "WindowCenter" not in ds or "WindowWidth" not in ds:
                raise DataError(
                    f"{path}: window 'file' but the file has no WindowCenter/WindowWidth; "
                    "use window: minmax or [center, width]"
                )

            center, width = _first(ds.WindowCenter), _first(ds.WindowWidth)
        else:
            center, width = cfg.window
        return to_unit_range(values, center - width / 2, center + width / 2)

    def _frame_ids(self, ds) -> list[int]:
        """The frames of a file that are examples: all, or the middle one."""
        cfg: DicomConfig = self.config  # type: ignore[assignment]
        count = int(ds.get("NumberOfFrames", 1) or 1)
        return list(range(count)) if cfg.frames == "all" else [count // 2]

    def _image(self, frames: np.ndarray, k: int, path: Path) -> torch.Tensor:
        """Frame ``k`` of a file's decoded ``frames``, resized: one example's image."""
        cfg: DicomConfig = self.config  # type: ignore[assignment]
        if k >= len(frames):
            raise DataError(f"{path}: NumberOfFrames says more frames than the pixel data has")
        return resize(torch.from_numpy(frames[k])[None], cfg.size)[0]

    def input_reader(self, seed: int) -> InputReader:
        """A DICOM image file, or a folder of them (searched recursively; any file name,
        ``DICOMDIR`` and hidden files skipped; every other file must be a DICOM image):
        each kept frame (``frames``) is rescaled, windowed, inverted, converted and resized
        as :meth:`load` does. Ids are the file's path (``#frame<k>`` for a multi-frame
        file)."""
        cfg: DicomConfig = self.config  # type: ignore[assignment]

        def images(path: Path) -> Iterator[tuple[str, torch.Tensor]]:
            chosen = self._frame_ids(self._read(path, pixels=False))
            frames = self._pixels(path)
            for k in chosen:
                yield (f"#frame{k}" if len(frames) > 1 else ""), self._image(frames, k, path)

        return MultiImageReader(_is_candidate, images, cfg.size, "a DICOM image file")

    def load(self, seed: int) -> DomainData:
        """Read headers, split by group, cap, then decode only the files kept."""
        cfg: DicomConfig = self.config  # type: ignore[assignment]
        folders = class_folders(cfg.path, _is_candidate, "DICOM files")
        folders = assign_classes(folders, cfg.classes, cfg.path)
        root = cfg.path.expanduser()
        files, frame_ids, labels, groups = [], [], [], []
        for label, (_, paths) in enumerate(folders):
            for path in paths:
                ds = self._read(path, pixels=False)
                chosen = self._frame_ids(ds)
                tag = GROUP_TAGS.get(cfg.group_by)
                key = str(ds.get(tag, "") or "").strip() if tag else ""
                group = f"{cfg.group_by}:{key}" if key else f"file:{path}"
                for frame in chosen:
                    files.append(path)
                    frame_ids.append(frame)
                    labels.append(label)
                    groups.append(group)
        y = np.asarray(labels, dtype=np.int64)
        index = grouped_split(y, groups, cfg.val_fraction, cfg.test_fraction, cfg.split_seed)
        check_splits(
            index,
            str(cfg.path),
            f"{cfg.group_by} groups ({len(set(groups))} found)",
            "splits keep each group whole; add data or set group_by: file",
        )
        index = cap_splits(index, y, cfg.max_examples, cfg.split_seed)
        used = np.sort(np.concatenate(list(index.values())))
        decoded: dict[Path, np.ndarray] = {}
        images, sources = [], []
        for i in used:
            path = files[i]
            if path not in decoded:
                decoded[path] = self._pixels(path)
            frames = decoded[path]
            images.append(self._image(frames, frame_ids[i], path))
            multi = len(frames) > 1
            sources.append(f"{path}" + (f"#frame{frame_ids[i]}" if multi else ""))
        x_used = stack_images(images, sources, cfg.size)
        position = {int(i): k for k, i in enumerate(used)}
        local = {
            s: np.array([position[int(i)] for i in idx], dtype=np.int64) for s, idx in index.items()
        }
        self.provenance = {
            s: [str(Path(sources[k]).relative_to(root)) for k in idx] for s, idx in local.items()
        }
        self.groups = {s: [groups[int(i)] for i in idx] for s, idx in index.items()}
        ident = default_id("dicom", cfg.path)
        return build_domain_data(
            x_used,
            y[used],
            local,
            [name for name, _ in folders],
            modality="image",
            task=cfg.task or ident,
            input_space=cfg.input_space or f"{ident}.{cfg.mode}",
            metrics=cfg.metrics,
        )
