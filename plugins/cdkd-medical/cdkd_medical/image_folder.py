"""``medical.image_folder``: the user's own images, one sub-folder per class.

```
my_images/
├── benign/     a.png  b.jpg  ...
└── malignant/  c.png  d.jpeg ...
```

PNG and JPEG files (``.png``, ``.jpg``, ``.jpeg``, any case; other files are ignored, as in
torchvision's ``ImageFolder``) are read with Pillow, turned upright by their EXIF
orientation, converted to grey (``mode: L``) or RGB (``mode: RGB``), scaled to [0, 1] and
resized to ``size x size``. Classes are the sub-folder names in sorted order (or in the
order of ``classes``, read by the core's label rule, :mod:`cdkd_core.data.labels`); the split is
stratified by class and fixed by ``split_seed``. One image per file: when several images
come from one patient or slide, split them yourself (one folder per split is not read
here) or use ``medical.dicom``'s ``group_by``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field

from cdkd_core.plugin_api import (
    DataError,
    Domain,
    DomainData,
    InputReader,
    cap_examples,
    stratified_split_indices,
)
from cdkd_medical._common import (
    ClassFoldersConfig,
    assign_classes,
    build_domain_data,
    check_splits,
    class_folders,
    default_id,
    resize,
    stack_images,
)

EXTENSIONS = (".png", ".jpg", ".jpeg")


class ImageFolderConfig(ClassFoldersConfig):
    """The folder, colour mode and size."""

    mode: Literal["L", "RGB"] = Field("L", description="L: one grey channel; RGB: three.")


def read_image(path: Path, mode: str) -> torch.Tensor:
    """One image file as ``[C, H, W]`` float32 in [0, 1] (C = 1 for L, 3 for RGB)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            img = ImageOps.exif_transpose(img)
            if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16-bit / float grey
                array = np.asarray(img, dtype=np.float32)
                peak = 65535.0 if img.mode.startswith("I;16") else float(array.max() or 1.0)
                array = np.clip(array / peak, 0, 1)
                if mode == "RGB":
                    array = np.repeat(array[..., None], 3, axis=-1)
            else:
                array = np.asarray(img.convert(mode), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"{path}: not a readable PNG/JPEG image ({exc})") from exc
    if array.size == 0:
        raise DataError(f"{path}: the image is empty (0 pixels)")
    array = array[None] if array.ndim == 2 else np.moveaxis(array, -1, 0)
    return torch.from_numpy(np.ascontiguousarray(array))


class ImageFolder(Domain):
    """Your own PNG/JPEG images, one sub-folder per class; grey or RGB, resized to ``size``.

    Stratified train / val / test by ``split_seed``; classes are the sorted folder names.
    """

    name = "medical.image_folder"
    Config = ImageFolderConfig

    def load(self, seed: int) -> DomainData:
        """List, cap, split, then read only the images kept (``seed`` is not used)."""
        cfg: ImageFolderConfig = self.config  # type: ignore[assignment]
        folders = class_folders(
            cfg.path, lambda p: p.suffix.lower() in EXTENSIONS, "PNG/JPEG images"
        )
        folders = assign_classes(folders, cfg.classes, cfg.path)
        files = [f for _, fs in folders for f in fs]
        labels = np.concatenate([np.full(len(fs), c) for c, (_, fs) in enumerate(folders)])
        keep = cap_examples(labels, cfg.max_examples, cfg.split_seed)
        files, labels = [files[i] for i in keep], labels[keep]
        index = stratified_split_indices(
            labels, cfg.val_fraction, cfg.test_fraction, cfg.split_seed
        )
        check_splits(index, str(cfg.path), "images", "each class needs at least 3 images")
        x = self._images(files)
        root = cfg.path.expanduser()
        self.provenance = {
            s: [str(files[i].relative_to(root)) for i in idx] for s, idx in index.items()
        }
        ident = default_id("image_folder", cfg.path)
        return build_domain_data(
            x,
            labels,
            index,
            [name for name, _ in folders],
            modality="image",
            task=cfg.task or ident,
            input_space=cfg.input_space or f"{ident}.{cfg.mode}",
            metrics=cfg.metrics,
        )

    def input_reader(self, seed: int) -> InputReader:
        """A PNG/JPEG image, or a folder of them (searched recursively; ids are the paths
        relative to it), read as :meth:`load` reads the training images: upright by EXIF,
        converted to ``mode``, scaled to [0, 1] and resized to ``size``."""
        from cdkd_core.plugin_api import ImageReader

        def views(paths: list[Path], teacher: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
            x = self._images(paths)
            return x, x if teacher else None

        return ImageReader(views, EXTENSIONS)

    def _images(self, files: list[Path]) -> torch.Tensor:
        """``[N, C, size, size]`` float32 of image files (training or new)."""
        cfg: ImageFolderConfig = self.config  # type: ignore[assignment]
        images = [resize(read_image(f, cfg.mode)[None], cfg.size)[0] for f in files]
        return stack_images(images, [str(f) for f in files], cfg.size)
