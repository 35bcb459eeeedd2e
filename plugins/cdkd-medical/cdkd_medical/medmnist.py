"""``medical.medmnist``: a MedMNIST ``.npz`` file the user has (Yang et al. 2023).

The MedMNIST package downloads its data at run time, which cannot work offline; this loader
reads the files it produces: ``train_images``, ``train_labels``, ``val_images``,
``val_labels``, ``test_images``, ``test_labels``. The file's own splits are kept (a file
without ``val_*`` arrays gets a stratified ``val_fraction`` of train). Images are grey
``[N, H, W]`` or RGB ``[N, H, W, 3]`` (uint8 scaled to [0, 1]); labels ``[N]`` or ``[N, 1]``
are class indices. Multi-label files (``[N, L]`` labels, e.g. ChestMNIST) are refused unless
``label_column`` picks one binary label; 3D files (``[N, D, H, W]``) are refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from pydantic import Field

from cdkd_core.plugin_api import (
    DataError,
    Domain,
    DomainData,
    InputReader,
    stratified_split_indices,
)
from cdkd_medical._common import (
    UserFilesConfig,
    build_domain_data,
    cap_splits,
    default_id,
    resize,
)

SPLIT_NAMES = ("train", "val", "test")
#: what ``cdkd predict`` reads: one image per file
INPUT_SUFFIXES = (".png", ".jpg", ".jpeg", ".npy")


class MedMNISTConfig(UserFilesConfig):
    """The .npz file, label choice and resizing."""

    size: int | None = Field(
        None, ge=4, le=1024, description="Resize to size x size (none: keep the file's size)."
    )
    label_column: int | None = Field(
        None, ge=0, description="Multi-label files: the label column used as a binary task."
    )
    classes: list[str] | None = Field(
        None, min_length=2, description="Class names (default: '0', '1', ...)."
    )


def _images(array: np.ndarray, where: str) -> torch.Tensor:
    """``[N, C, H, W]`` float32 from grey ``[N, H, W]`` or channels-last ``[N, H, W, C]``."""
    if array.ndim == 3:
        array = array[:, None]
    elif array.ndim == 4 and array.shape[-1] in (1, 3):
        array = np.moveaxis(array, -1, 1)
    elif array.ndim == 4:
        raise DataError(
            f"{where}: shape {list(array.shape)} looks like 3D volumes [N, D, H, W]; "
            "this loader reads 2D MedMNIST files (grey [N, H, W] or RGB [N, H, W, 3]); "
            "save slices, or volumes as NIfTI for medical.nifti"
        )
    else:
        raise DataError(
            f"{where}: expected images [N, H, W] or [N, H, W, 3], got shape {list(array.shape)}"
        )
    if array.dtype == np.uint8:
        scale = 255.0
    elif array.dtype == np.uint16:
        scale = 65535.0
    elif np.issubdtype(array.dtype, np.number) and not np.issubdtype(
        array.dtype, np.complexfloating
    ):
        scale = 1.0
    else:
        raise DataError(f"{where}: images of dtype {array.dtype} are not numeric")
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32) / scale)


class MedMNIST(Domain):
    """A MedMNIST .npz file (train/val/test images and labels), its own splits kept.

    Grey [N, H, W] or RGB [N, H, W, 3] images; multi-class labels, or one column of a
    multi-label file with ``label_column``; optional resize to ``size``.
    """

    name = "medical.medmnist"
    Config = MedMNISTConfig

    def _labels(self, array: np.ndarray, where: str) -> np.ndarray:
        cfg: MedMNISTConfig = self.config  # type: ignore[assignment]
        if array.ndim == 2 and array.shape[1] == 1 and cfg.label_column is None:
            array = array[:, 0]
        if array.ndim == 2:
            if cfg.label_column is None:
                raise DataError(
                    f"{where}: labels of shape {list(array.shape)} are multi-label "
                    f"({array.shape[1]} labels per image); set params.label_column "
                    f"(0..{array.shape[1] - 1}) to learn one of them as a binary task"
                )
            if cfg.label_column >= array.shape[1]:
                raise DataError(
                    f"{where}: label_column {cfg.label_column} is out of range: the file has "
                    f"{array.shape[1]} label column(s)"
                )
            array = array[:, cfg.label_column]
        elif array.ndim != 1:
            raise DataError(f"{where}: expected labels [N] or [N, L], got {list(array.shape)}")
        if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
            raise DataError(f"{where}: labels of dtype {array.dtype} are not class indices")
        labels = np.asarray(array)
        if not np.all(np.isfinite(labels)) or not np.all(labels == np.round(labels)):
            raise DataError(f"{where}: labels must be whole numbers (class indices)")
        labels = labels.astype(np.int64)
        if labels.size and labels.min() < 0:
            raise DataError(f"{where}: negative label {int(labels.min())}")
        return labels

    def _arrays(self) -> tuple[Path, dict[str, np.ndarray]]:
        """The file's path and arrays, read as they are."""
        cfg: MedMNISTConfig = self.config  # type: ignore[assignment]
        path = cfg.path.expanduser()
        if not path.is_file():
            raise DataError(f"{path}: no such file")
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {key: npz[key] for key in npz.files}
        except Exception as exc:  # BadZipFile, ValueError (pickled), OSError, ...
            raise DataError(
                f"{path}: not a readable .npz file ({type(exc).__name__}: {exc})"
            ) from exc
        return path, arrays

    def load(self, seed: int) -> DomainData:
        """Read the file's splits (``seed`` is not used)."""
        cfg: MedMNISTConfig = self.config  # type: ignore[assignment]
        path, arrays = self._arrays()
        required = ["train_images", "train_labels", "test_images", "test_labels"]
        missing = [k for k in required if k not in arrays]
        has_val = "val_images" in arrays or "val_labels" in arrays
        if has_val:
            missing += [k for k in ("val_images", "val_labels") if k not in arrays]
        if missing:
            raise DataError(
                f"{path}: missing array(s) {missing}; a MedMNIST file has "
                f"train_/val_/test_images and train_/val_/test_labels (found {sorted(arrays)})"
            )
        images, labels, origin = {}, {}, {}
        for split in SPLIT_NAMES if has_val else ("train", "test"):
            x = _images(arrays[f"{split}_images"], f"{path}[{split}_images]")
            y = self._labels(arrays[f"{split}_labels"], f"{path}[{split}_labels]")
            if len(x) != len(y):
                raise DataError(
                    f"{path}: {split}_images has {len(x)} images but {split}_labels {len(y)} labels"
                )
            if len(x) == 0:
                raise DataError(f"{path}: {split}_images is empty")
            if cfg.size is None and images and x.shape[1:] != next(iter(images.values())).shape[1:]:
                raise DataError(
                    f"{path}: {split}_images have shape {list(x.shape[1:])}, train "
                    f"{list(images['train'].shape[1:])}; set params.size to resize"
                )
            images[split], labels[split] = resize(x, cfg.size), y
            origin[split] = np.asarray([f"{split}_images[{i}]" for i in range(len(y))])
        if not has_val:
            idx = stratified_split_indices(labels["train"], cfg.val_fraction, 0.0, cfg.split_seed)
            for split in ("val", "train"):  # val first: train is overwritten last
                it = torch.from_numpy(idx[split])
                images[split] = images["train"][it]
                labels[split] = labels["train"][idx[split]]
                origin[split] = origin["train"][idx[split]]
        channels = {split: int(x.shape[1]) for split, x in images.items()}
        if len(set(channels.values())) > 1:
            raise DataError(f"{path}: splits differ in channels {channels}")

        top = max(int(y.max()) for y in labels.values())
        classes = list(cfg.classes) if cfg.classes else [str(c) for c in range(max(top + 1, 2))]
        if top >= len(classes):
            raise DataError(f"{path}: label {top} but only {len(classes)} class names given")
        x = torch.cat([images[s] for s in SPLIT_NAMES])
        y = np.concatenate([labels[s] for s in SPLIT_NAMES])
        bounds = np.cumsum([0] + [len(labels[s]) for s in SPLIT_NAMES])
        index = {s: np.arange(bounds[i], bounds[i + 1]) for i, s in enumerate(SPLIT_NAMES)}
        index = cap_splits(index, y, cfg.max_examples, cfg.split_seed)
        ident = default_id("medmnist", path)
        if cfg.label_column is not None:
            ident = f"{ident}.label{cfg.label_column}"
        every = np.concatenate([origin[s] for s in SPLIT_NAMES])
        #: where each example of each split comes from in the file
        self.provenance = {s: [str(o) for o in every[index[s]]] for s in SPLIT_NAMES}
        return build_domain_data(
            x,
            y,
            index,
            classes,
            modality="image",
            task=cfg.task or ident,
            input_space=cfg.input_space or ident,
            metrics=cfg.metrics,
        )

    def input_reader(self, seed: int) -> InputReader:
        """New images: PNG files or ``.npy`` arrays of one image each (grey ``[H, W]`` or
        ``[H, W, C]``), or a folder of them (searched recursively), scaled as :meth:`load`
        scales the file's images (uint8 / 255, uint16 / 65535, floats as they are) and
        resized to ``size``. A PNG is converted to the training images' channels (grey or
        RGB); a ``.npy`` must have them. The training file is read to learn its channels."""
        from cdkd_core.plugin_api import ImageReader

        cfg: MedMNISTConfig = self.config  # type: ignore[assignment]
        path, arrays = self._arrays()
        if "train_images" not in arrays:
            raise DataError(f"{path}: no train_images array")
        channels = int(_images(arrays["train_images"][:1], f"{path}[train_images]").shape[1])

        def views(paths: list[Path], teacher: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
            images = []
            for file in paths:
                x = _images(_raw_image(file, channels)[None], str(file))
                if x.shape[1] != channels:
                    raise DataError(
                        f"{file}: {x.shape[1]} channel(s); the training images have {channels}"
                    )
                images.append(resize(x, cfg.size))
            x = torch.cat(images)
            return x, x if teacher else None

        return ImageReader(views, INPUT_SUFFIXES)


def _raw_image(path: Path, channels: int) -> np.ndarray:
    """One image file as its array, unscaled: ``.npy`` as stored, PNG/JPEG as decoded (grey
    or RGB as the training images, unless 16-bit grey)."""
    if path.suffix.lower() == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except Exception as exc:  # ValueError (pickled), OSError, ...
            what = f"{type(exc).__name__}: {exc}"
            raise DataError(f"{path}: not a readable .npy array ({what})") from exc
        if array.ndim not in (2, 3):
            shape = list(array.shape)
            raise DataError(f"{path}: expected one image [H, W] or [H, W, C], got {shape}")
        return array
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            if img.mode.startswith("I;16") and channels == 1:
                return np.asarray(img)
            return np.asarray(img.convert("L" if channels == 1 else "RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable PNG/JPEG image ({exc})") from exc
