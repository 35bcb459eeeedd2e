"""medical.nuclei: patches of the real stardist image, labels against the mask, block split."""

from __future__ import annotations

import io
import itertools

import numpy as np
import pytest
import torch
from cdkd_medical.nuclei import IMAGE_MEMBER, MASK_MEMBER, STARDIST, NucleiPatches
from pydantic import ValidationError

from cdkd_core.plugin_api import DataError


@pytest.fixture(scope="module")
def real():
    """The annotated image and mask, read from the fetched wheel."""
    import tifffile

    from cdkd_core.plugin_api import fetch_distribution, read_member

    archive = fetch_distribution(STARDIST)
    image = tifffile.imread(io.BytesIO(read_member(archive, IMAGE_MEMBER)))
    mask = tifffile.imread(io.BytesIO(read_member(archive, MASK_MEMBER)))
    return image, mask


@pytest.fixture(scope="module")
def loaded():
    domain = NucleiPatches.from_params({})
    return domain, domain.load(seed=0)


def test_real_annotation(real):
    image, mask = real
    assert image.shape == mask.shape == (512, 512)
    assert len(np.unique(mask)) - 1 == 125


def test_counts_and_balance(loaded):
    domain, data = loaded
    assert data.modality == "image" and data.classes == ["background", "nucleus"]
    assert data.metrics[0] == "accuracy"  # balanced by default
    sizes = {k: len(s) for k, s in data.splits.items()}
    assert 2500 <= sum(sizes.values()) <= 5000, sizes
    assert sizes["train"] > sizes["val"] > 0 and sizes["train"] > sizes["test"] > 0
    for split in data.splits.values():
        positives = int(split.y.sum())
        assert positives == len(split) - positives  # one background per nucleus patch
        assert split.teacher_x.shape[1:] == (1, 24, 24)
        assert split.teacher_x.dtype == torch.float32
        assert split.student_x is split.teacher_x
    assert sorted(set(domain.block_splits)) == ["test", "train", "val"]
    assert domain.block_splits.count("test") == domain.block_splits.count("val") == 3


def test_labels_match_mask_at_centres(loaded, real):
    domain, data = loaded
    _, mask = real
    inside = mask > 0
    m = domain.config.background_margin
    for name, split in data.splits.items():
        centres = domain.centres[name]
        y = split.y.numpy()
        assert len(centres) == len(y)
        for (r, c), label in zip(centres, y, strict=True):
            if label == 1:
                assert inside[r, c]
            else:
                assert not inside[r - m : r + m + 1, c - m : c + m + 1].any()


def test_patch_pixels_come_from_the_image(loaded, real):
    domain, data = loaded
    image, _ = real
    channels, _, _ = domain._arrays()
    split = data.splits["test"]
    half = 12
    for k in (0, len(split) // 2, len(split) - 1):
        r, c = domain.centres["test"][k]
        window = channels[0, r - half : r + half, c - half : c + half]
        assert np.array_equal(split.teacher_x[k, 0].numpy(), window)
        raw = image[r - half : r + half, c - half : c + half].astype(float)
        assert np.corrcoef(raw.ravel(), window.ravel())[0, 1] > 0.99  # monotone rescaling


def test_splits_are_spatially_separated(loaded):
    """Windows of two splits are at least one patch width (the guard) apart, and every
    window lies inside its own block."""
    domain, _ = loaded
    patch = domain.config.patch
    guard = domain.config.guard or patch
    for a, b in itertools.combinations(("train", "val", "test"), 2):
        ca, cb = domain.centres[a], domain.centres[b]
        gap = np.abs(ca[:, None, :] - cb[None, :, :]).max(axis=2) - patch  # window gap
        assert gap.min() >= guard, (a, b, gap.min())
    half = patch // 2
    for name in ("train", "val", "test"):
        for (r, c), block in zip(domain.centres[name], domain.blocks[name], strict=True):
            r0, r1, c0, c1 = domain.block_bounds[block]
            assert r0 <= r - half and r - half + patch <= r1
            assert c0 <= c - half and c - half + patch <= c1
            assert domain.block_splits[block] == name


def test_deterministic_and_seeded(loaded):
    domain, data = loaded
    again = NucleiPatches.from_params({}).load(seed=5)  # the run seed does not move splits
    for name in data.splits:
        assert torch.equal(again.splits[name].teacher_x, data.splits[name].teacher_x)
    other = NucleiPatches.from_params({"split_seed": 1})
    other.load(seed=0)
    assert other.block_splits != domain.block_splits


def test_cap_ratio_and_config():
    domain = NucleiPatches.from_params({"max_examples": 300, "background_ratio": 2.0})
    data = domain.load(seed=0)
    assert sum(len(s) for s in data.splits.values()) <= 301
    assert data.metrics[0] == "roc_auc"  # imbalanced: ROC-AUC leads
    for split in data.splits.values():
        positives = int(split.y.sum())
        assert 0 < positives < len(split)
        assert abs((len(split) - positives) / positives - 2.0) < 0.2
    with pytest.raises(ValidationError, match="guard"):
        NucleiPatches.from_params({"patch": 24, "guard": 16})
    with pytest.raises(ValidationError, match="both"):
        NucleiPatches.from_params({"image": "x.tif"})


def test_own_image_and_mask(tmp_path):
    import tifffile

    rng = np.random.default_rng(0)
    size = 256
    mask = np.zeros((size, size), np.uint16)
    yy, xx = np.mgrid[:size, :size]
    for i, (r, c) in enumerate(rng.integers(10, size - 10, size=(60, 2)), start=1):
        mask[(yy - r) ** 2 + (xx - c) ** 2 <= 36] = i
    image = (mask > 0) * 150 + rng.integers(0, 40, size=(size, size))
    tifffile.imwrite(tmp_path / "img.tif", image.astype(np.uint16))
    tifffile.imwrite(tmp_path / "mask.tif", mask)
    params = {"image": str(tmp_path / "img.tif"), "mask": str(tmp_path / "mask.tif")}
    params.update({"patch": 16, "grid": 3})
    data = NucleiPatches.from_params(params).load(seed=0)
    assert data.splits["train"].teacher_x.shape[1:] == (1, 16, 16)
    tifffile.imwrite(tmp_path / "small.tif", mask[:128])
    params["mask"] = str(tmp_path / "small.tif")
    with pytest.raises(DataError, match=r"small\.tif"):
        NucleiPatches.from_params(params).load(seed=0)


def test_no_nucleus_is_seen_by_two_splits(loaded, real):
    """With the default guard no annotated instance has pixels in windows of two splits."""
    domain, _ = loaded
    _, mask = real
    half, patch = domain.config.patch // 2, domain.config.patch
    owner: dict[int, set[str]] = {}
    for name in ("train", "val", "test"):
        for r, c in domain.centres[name]:
            window = mask[r - half : r - half + patch, c - half : c - half + patch]
            for instance in np.unique(window[window > 0]):
                owner.setdefault(int(instance), set()).add(name)
    assert len(owner) > 100
    assert all(len(splits) == 1 for splits in owner.values())
