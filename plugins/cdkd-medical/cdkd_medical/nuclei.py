"""``medical.nuclei``: nucleus vs background patches from an annotated fluorescence image.

The default image is the 512x512 DAPI-stained nuclei image with 125 annotated instances
that ships in the ``stardist==0.9.2`` wheel (a crop from the 2018 Data Science Bowl, stage-1
training set, image set BBBC038v1 of the Broad Bioimage Benchmark Collection, CC0), fetched
once through the package index with ``cdkd data fetch medical``.

The patch protocol (all sizes in pixels):

1. The image is cut into a ``grid x grid`` lattice of blocks; whole blocks are assigned to
   train / val / test (``val_fraction`` / ``test_fraction`` of the blocks), choosing, among
   seeded random assignments, the one whose splits hold the share of nucleus and background
   candidates closest to those fractions.
2. A patch of ``patch x patch`` pixels is centred on every point of a lattice of ``stride``
   spacing whose whole window lies inside its block shrunk by ``ceil(guard / 2)`` at every
   border with another block. Windows of two blocks are therefore at least ``guard``
   (default: the patch width) apart: no pixel, and no neighbourhood of a patch up to
   ``guard`` pixels, is shared by two splits.
3. A centre on an instance pixel of the mask is a **nucleus** patch; a centre with no
   instance pixel within ``background_margin`` (Chebyshev distance) is a **background**
   patch; centres in between (on a nucleus border) are dropped as ambiguous.
4. In each split background patches are sampled (seeded) to ``background_ratio`` times the
   nucleus patches (default 1: balanced classes, headline metric accuracy; otherwise ROC-AUC
   leads).
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from pydantic import Field, model_validator

from cdkd_core.plugin_api import DataError, Domain, DomainData, InputReader, Split, cap_examples
from cdkd_medical._common import MultiImageReader, SplitFractions, to_unit_range

STARDIST = "stardist==0.9.2"
IMAGE_MEMBER = "stardist/data/images/img2d.tif"
MASK_MEMBER = "stardist/data/images/mask2d.tif"
#: SHA-256 of the data read from the archive, checked on every read.
IMAGE_SHA256 = "f9ccc1571b92c861ff87e28463068b43f61bd47357ed0503f711e5cd1eb97750"
MASK_SHA256 = "59ad5e820b7982ca9d13e946fa6e7f64e2714899e00a2ae6c69aa79aad53d46f"
SPLIT_NAMES = ("train", "val", "test")
#: image files ``cdkd predict`` reads (TIFF by tifffile, the others by Pillow)
IMAGE_SUFFIXES = (".tif", ".tiff", ".png")
CLASSES = ["background", "nucleus"]


class NucleiConfig(SplitFractions):
    """Patch geometry, block split and class balance (see the module docstring)."""

    patch: int = Field(24, ge=8, le=128, description="Patch width and height in pixels.")
    stride: int = Field(4, ge=1, le=64, description="Spacing of the lattice of patch centres.")
    grid: int = Field(4, ge=2, le=32, description="Blocks per side; blocks are split units.")
    guard: int | None = Field(
        None, ge=8, description="Gap between windows of two blocks (default and minimum: patch)."
    )
    background_margin: int = Field(
        4, ge=0, le=64, description="Background: no instance pixel within this many pixels."
    )
    background_ratio: float = Field(
        1.0, gt=0, le=20, description="Background patches per nucleus patch in each split."
    )
    val_fraction: float = Field(0.2, gt=0, lt=0.5, description="Fraction of blocks for val.")
    test_fraction: float = Field(0.2, gt=0, lt=0.5, description="Fraction of blocks for test.")
    image: Path | None = Field(
        None, description="Your own 2D image (TIFF/PNG; grey or RGB) instead of stardist's."
    )
    mask: Path | None = Field(
        None, description="Its instance mask (0 background, 1..K instances), same height/width."
    )
    task: str = Field("medical.nuclei", description="Task id (nucleus vs background).")
    input_space: str | None = Field(
        None, description="Input space id (default: the domain's name)."
    )

    @model_validator(mode="after")
    def _check(self) -> NucleiConfig:
        if (self.image is None) != (self.mask is None):
            raise ValueError("give both image and mask, or neither (stardist's annotated image)")
        if self.guard is not None and self.guard < self.patch:
            raise ValueError(
                f"guard ({self.guard}) must be at least the patch width ({self.patch}) so no "
                "patch's neighbourhood crosses splits"
            )
        return self


def _read_array(path: Path) -> np.ndarray:
    path = Path(path).expanduser()
    if path.is_dir():
        raise DataError(f"{path}: is a directory, not a file")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            return np.asarray(tifffile.imread(path))
        from PIL import Image

        with Image.open(path) as img:
            return np.asarray(img)
    except DataError:
        raise
    except Exception as exc:  # readers raise many types; name the file either way
        raise DataError(f"{path}: not a readable image ({type(exc).__name__}: {exc})") from exc


def _image_channels(image: np.ndarray, where: str) -> np.ndarray:
    """``[C, H, W]`` float32 in [0, 1] (1st-99.8th percentile per channel)."""
    if image.ndim == 2:
        image = image[None]
    elif image.ndim == 3 and image.shape[-1] in (3, 4) and image.shape[0] > 4:
        image = np.moveaxis(image[..., :3], -1, 0)  # RGB(A) -> RGB, channels first
    elif not (image.ndim == 3 and image.shape[0] <= 4):
        raise DataError(f"{where}: expected a 2D grey or RGB image, got shape {list(image.shape)}")
    out = np.empty(image.shape, dtype=np.float32)
    for c, channel in enumerate(image):
        low, high = np.percentile(channel, [1.0, 99.8])
        out[c] = to_unit_range(channel, float(low), float(high))
    return out


class NucleiPatches(Domain):
    """Nucleus vs background patches of a real annotated fluorescence image (stardist / DSB 2018).

    Patches of ``patch`` pixels centred on instance pixels (nucleus) or far from any
    instance (background), split by whole spatial blocks with a guard band of at least one
    patch width between splits, so no patch or its neighbourhood crosses splits. With the
    defaults: 3,070 patches (1,535 nucleus), balanced, 10 / 3 / 3 blocks for train / val / test.
    """

    name = "medical.nuclei"
    Config = NucleiConfig

    # -- data ---------------------------------------------------------------------------------
    @classmethod
    def fetch(cls) -> list[str]:
        """The stardist wheel (data only; nothing is installed), cached by the core."""
        from cdkd_core.plugin_api import fetch_distribution

        archive = fetch_distribution(STARDIST)
        return [f"{STARDIST} ({archive.name}): {IMAGE_MEMBER}, {MASK_MEMBER}"]

    def _arrays(self) -> tuple[np.ndarray, np.ndarray, str]:
        cfg: NucleiConfig = self.config  # type: ignore[assignment]
        if cfg.image is not None and cfg.mask is not None:
            image, mask = _read_array(cfg.image), _read_array(cfg.mask)
            where = str(cfg.mask)
            source = str(cfg.image)
        else:
            import tifffile

            from cdkd_core.plugin_api import fetch_distribution, read_member

            archive = fetch_distribution(STARDIST)  # cached after the first call
            image = tifffile.imread(io.BytesIO(read_member(archive, IMAGE_MEMBER, IMAGE_SHA256)))
            mask = tifffile.imread(io.BytesIO(read_member(archive, MASK_MEMBER, MASK_SHA256)))
            where = f"{archive.name}:{MASK_MEMBER}"
            source = f"{archive.name}:{IMAGE_MEMBER}"
        if mask.ndim != 2 or not np.issubdtype(mask.dtype, np.integer):
            raise DataError(
                f"{where}: the mask must be a 2D integer instance image, got shape "
                f"{list(mask.shape)} of {mask.dtype}"
            )
        channels = _image_channels(np.asarray(image), source)
        if channels.shape[1:] != mask.shape:
            raise DataError(
                f"{where}: mask shape {list(mask.shape)} differs from the image's "
                f"{list(channels.shape[1:])} ({source})"
            )
        if not (mask > 0).any():
            raise DataError(f"{where}: the mask has no annotated instance")
        return channels, mask, where

    # -- geometry -----------------------------------------------------------------------------
    def _candidates(
        self, mask: np.ndarray
    ) -> tuple[list[np.ndarray], list[np.ndarray], list[tuple[int, int, int, int]]]:
        """Per block: nucleus centres, background centres (``[n, 2]`` row, col) and the
        block's bounds ``(r0, r1, c0, c1)``."""
        from scipy.ndimage import maximum_filter

        cfg: NucleiConfig = self.config  # type: ignore[assignment]
        height, width = mask.shape
        p, g = cfg.patch, cfg.grid
        half = p // 2
        margin = math.ceil((cfg.guard or p) / 2)
        inside = mask > 0
        size = 2 * cfg.background_margin + 1
        near = maximum_filter(inside, size=size, mode="constant", cval=False)
        offset = cfg.stride // 2
        nucleus, background, bounds = [], [], []
        for bi in range(g):
            r0, r1 = bi * height // g, (bi + 1) * height // g
            lo_r = r0 + (margin if bi > 0 else 0)
            hi_r = r1 - (margin if bi < g - 1 else 0)
            rows = np.arange(lo_r + half, hi_r - p + half + 1)
            rows = rows[(rows - offset) % cfg.stride == 0]
            for bj in range(g):
                c0, c1 = bj * width // g, (bj + 1) * width // g
                lo_c = c0 + (margin if bj > 0 else 0)
                hi_c = c1 - (margin if bj < g - 1 else 0)
                cols = np.arange(lo_c + half, hi_c - p + half + 1)
                cols = cols[(cols - offset) % cfg.stride == 0]
                rr, cc = np.meshgrid(rows, cols, indexing="ij")
                rr, cc = rr.ravel(), cc.ravel()
                pos = inside[rr, cc]
                neg = ~near[rr, cc]
                nucleus.append(np.stack([rr[pos], cc[pos]], 1))
                background.append(np.stack([rr[neg], cc[neg]], 1))
                bounds.append((r0, r1, c0, c1))
        return nucleus, background, bounds

    def _assign_blocks(self, n_pos: np.ndarray, n_neg: np.ndarray) -> np.ndarray:
        """Split id (0 train, 1 val, 2 test) per block: among 256 seeded permutations, the
        one whose nucleus and background shares per split are closest to the fractions."""
        cfg: NucleiConfig = self.config  # type: ignore[assignment]
        blocks = len(n_pos)
        n_test = max(1, round(blocks * cfg.test_fraction))
        n_val = max(1, round(blocks * cfg.val_fraction))
        if blocks - n_test - n_val < 1:
            raise DataError(f"grid {cfg.grid}x{cfg.grid} has too few blocks for three splits")
        target = np.array([1 - cfg.val_fraction - cfg.test_fraction, cfg.val_fraction])
        target = np.append(target, cfg.test_fraction)
        rng = np.random.default_rng(cfg.split_seed)
        best, best_score = None, math.inf
        for _ in range(256):
            order = rng.permutation(blocks)
            split = np.zeros(blocks, dtype=np.int64)
            split[order[:n_test]] = 2
            split[order[n_test : n_test + n_val]] = 1
            score = 0.0
            for counts in (n_pos, n_neg):
                per = np.bincount(split, weights=counts, minlength=3)
                if (per == 0).any():
                    score = math.inf
                    break
                score += float(np.abs(per / per.sum() - target).sum())
            if score < best_score:
                best, best_score = split, score
        if best is None:
            raise DataError(
                "no assignment of blocks gives every split nucleus and background patches; "
                "use fewer grid blocks, a smaller patch or a larger image"
            )
        return best

    # -- load ---------------------------------------------------------------------------------
    def input_reader(self, seed: int) -> InputReader:
        """A whole 2D image (TIFF or PNG, grey or RGB, channels as the training image), or a
        folder of them: each image is scaled to [0, 1] by its own 1st-99.8th percentiles
        per channel, as :meth:`load` scales the training image (so a lone patch would be
        scaled differently: give the image it comes from), and cut into ``patch`` x
        ``patch`` patches centred on the whole ``stride`` lattice of the training image,
        blocks and guard bands aside (every training patch centre is on it). Ids are
        ``<file>#<row>,<col>``, the patch centre."""
        cfg: NucleiConfig = self.config  # type: ignore[assignment]

        def images(path: Path) -> Iterator[tuple[str, torch.Tensor]]:
            image = _image_channels(_read_array(path), str(path))
            rows, cols = lattice(image.shape[1:], cfg.patch, cfg.stride)
            if not len(rows) or not len(cols):
                raise DataError(
                    f"{path}: image {list(image.shape[1:])} is smaller than a "
                    f"{cfg.patch}-pixel patch"
                )
            for r in rows:
                centre = np.stack([np.full(len(cols), r), cols], axis=1)
                patches = patches_at(image, centre, cfg.patch)
                for (rr, cc), patch in zip(centre, patches, strict=True):
                    yield f"#{rr},{cc}", torch.from_numpy(patch)

        return MultiImageReader(_is_image, images, None, "a TIFF/PNG image")

    def load(self, seed: int) -> DomainData:
        """Extract the patches and split them by block (deterministic in ``split_seed``)."""
        cfg: NucleiConfig = self.config  # type: ignore[assignment]
        image, mask, where = self._arrays()
        if min(mask.shape) < cfg.grid * (cfg.patch + (cfg.guard or cfg.patch)):
            raise DataError(
                f"{where}: image {list(mask.shape)} too small for a {cfg.grid}x{cfg.grid} grid "
                f"of {cfg.patch}-pixel patches with guard bands"
            )
        nucleus, background, bounds = self._candidates(mask)
        n_pos = np.array([len(c) for c in nucleus], dtype=np.float64)
        n_neg = np.array([len(c) for c in background], dtype=np.float64)
        block_split = self._assign_blocks(n_pos, n_neg)

        rng = np.random.default_rng(cfg.split_seed + 1)
        centres, labels, blocks, split_of = [], [], [], []
        for s in range(3):
            ids = np.flatnonzero(block_split == s)
            pos = np.concatenate([nucleus[b] for b in ids])
            pos_block = np.concatenate([np.full(len(nucleus[b]), b) for b in ids])
            neg = np.concatenate([background[b] for b in ids])
            neg_block = np.concatenate([np.full(len(background[b]), b) for b in ids])
            take = min(len(neg), max(1, round(cfg.background_ratio * len(pos))))
            pick = np.sort(rng.choice(len(neg), size=take, replace=False))
            neg, neg_block = neg[pick], neg_block[pick]
            centres += [pos, neg]
            labels += [np.ones(len(pos), np.int64), np.zeros(len(neg), np.int64)]
            blocks += [pos_block, neg_block]
            split_of.append(np.full(len(pos) + len(neg), s))
        centre = np.concatenate(centres)
        y = np.concatenate(labels)
        block = np.concatenate(blocks)
        split = np.concatenate(split_of)
        keep = cap_examples(split * 2 + y, cfg.max_examples, cfg.split_seed)  # per split+class
        centre, y, block, split = centre[keep], y[keep], block[keep], split[keep]

        x = torch.from_numpy(patches_at(image, centre, cfg.patch))
        yt = torch.from_numpy(y)

        self.centres, self.blocks = {}, {}
        splits = {}
        for s, name in enumerate(SPLIT_NAMES):
            idx = np.flatnonzero(split == s)
            it = torch.from_numpy(idx)
            splits[name] = Split.single_view(x[it], yt[it])
            self.centres[name] = centre[idx]
            self.blocks[name] = block[idx]
        #: per block ``(r0, r1, c0, c1)`` and its split name; windows are
        #: ``[r - patch // 2, r - patch // 2 + patch)`` around each centre ``(r, c)``.
        self.block_bounds = bounds
        self.block_splits = [SPLIT_NAMES[s] for s in block_split]
        balanced = math.isclose(cfg.background_ratio, 1.0)
        return DomainData(
            modality="image",
            task=cfg.task,
            classes=list(CLASSES),
            splits=splits,
            metrics=["accuracy", "roc_auc"] if balanced else ["roc_auc", "accuracy"],
            input_space=cfg.input_space,
        )


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def lattice(shape: tuple[int, ...], patch: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the patch centres of an image of ``shape`` (height, width):
    every point of the ``stride`` lattice (offset ``stride // 2``, as the training patches'
    centres) whose ``patch`` window lies inside the image."""
    half, offset = patch // 2, stride // 2
    out = []
    for extent in shape[:2]:
        points = np.arange(half, extent - patch + half + 1)
        out.append(points[(points - offset) % stride == 0])
    return out[0], out[1]


def patches_at(image: np.ndarray, centre: np.ndarray, patch: int) -> np.ndarray:
    """The ``[N, C, patch, patch]`` float32 patches of ``image`` ``[C, H, W]`` centred on
    ``centre`` ``[N, 2]`` (row, col): the window ``[r - patch // 2, r - patch // 2 + patch)``."""
    from numpy.lib.stride_tricks import sliding_window_view

    half = patch // 2
    windows = sliding_window_view(image, (patch, patch), axis=(1, 2))
    patches = windows[:, centre[:, 0] - half, centre[:, 1] - half]  # [C, N, P, P]
    return np.ascontiguousarray(np.moveaxis(patches, 1, 0))
