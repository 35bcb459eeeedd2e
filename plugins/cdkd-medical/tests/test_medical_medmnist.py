"""medical.medmnist: small .npz files in the MedMNIST format, written by the tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cdkd_medical.medmnist import MedMNIST

from cdkd_core.plugin_api import DataError

SIZES = {"train": 30, "val": 9, "test": 12}


def write(path, rgb=False, labels=None, drop=(), **extra):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in SIZES.items():
        shape = (n, 28, 28, 3) if rgb else (n, 28, 28)
        arrays[f"{split}_images"] = rng.integers(0, 256, size=shape, dtype=np.uint8)
        arrays[f"{split}_labels"] = (
            labels(n) if labels else (np.arange(n) % 3).reshape(n, 1).astype(np.uint8)
        )
    for key in drop:
        arrays.pop(key)
    arrays.update(extra)
    np.savez(path, **arrays)
    return arrays


def test_grey_keeps_the_file_splits(tmp_path):
    arrays = write(tmp_path / "pathmnist.npz")
    domain = MedMNIST.from_params({"path": str(tmp_path / "pathmnist.npz")})
    data = domain.load(seed=0)
    assert data.classes == ["0", "1", "2"]
    assert data.metrics[0] == "accuracy"
    for split, n in SIZES.items():
        s = data.splits[split]
        assert s.teacher_x.shape == (n, 1, 28, 28)
        expected = torch.from_numpy(arrays[f"{split}_images"]).float()[:, None] / 255
        assert torch.allclose(s.teacher_x, expected)
        assert torch.equal(s.y, torch.from_numpy(arrays[f"{split}_labels"][:, 0]).long())
        assert domain.provenance[split][0] == f"{split}_images[0]"
    assert data.task.startswith("medical.medmnist.pathmnist.")


def test_rgb_resize_and_names(tmp_path):
    arrays = write(tmp_path / "derma.npz", rgb=True)
    params = {"path": str(tmp_path / "derma.npz"), "classes": ["a", "b", "c"]}
    data = MedMNIST.from_params(params).load(seed=0)
    x = data.splits["train"].teacher_x
    assert x.shape == (30, 3, 28, 28)
    assert torch.allclose(x[0, 1], torch.from_numpy(arrays["train_images"][0, :, :, 1]) / 255.0)
    small = MedMNIST.from_params({**params, "size": 16}).load(seed=0)
    assert small.splits["val"].teacher_x.shape == (9, 3, 16, 16)
    assert small.classes == ["a", "b", "c"]


def test_multilabel_needs_a_column(tmp_path):
    def multi(n):
        return (np.arange(n * 4).reshape(n, 4) % 2).astype(np.uint8)

    write(tmp_path / "chest.npz", labels=multi)
    with pytest.raises(DataError, match=r"multi-label.*label_column"):
        MedMNIST.from_params({"path": str(tmp_path / "chest.npz")}).load(seed=0)
    data = MedMNIST.from_params({"path": str(tmp_path / "chest.npz"), "label_column": 1}).load(0)
    assert data.classes == ["0", "1"]
    assert torch.equal(data.splits["train"].y, torch.from_numpy(multi(30)[:, 1]).long())
    with pytest.raises(DataError, match="out of range"):
        MedMNIST.from_params({"path": str(tmp_path / "chest.npz"), "label_column": 7}).load(0)


def test_without_val_arrays_val_is_carved_from_train(tmp_path):
    write(tmp_path / "noval.npz", drop=("val_images", "val_labels"))
    domain = MedMNIST.from_params({"path": str(tmp_path / "noval.npz"), "val_fraction": 0.2})
    data = domain.load(seed=0)
    assert len(data.splits["train"]) + len(data.splits["val"]) == 30
    assert len(data.splits["test"]) == 12
    assert set(domain.provenance["train"]).isdisjoint(domain.provenance["val"])
    assert all(p.startswith("train_images[") for p in domain.provenance["val"])


def test_bad_files_are_refused(tmp_path):
    write(tmp_path / "a.npz", drop=("test_labels",))
    with pytest.raises(DataError, match=r"a\.npz.*test_labels"):
        MedMNIST.from_params({"path": str(tmp_path / "a.npz")}).load(0)
    (tmp_path / "junk.npz").write_text("not a zip")
    with pytest.raises(DataError, match=r"junk\.npz"):
        MedMNIST.from_params({"path": str(tmp_path / "junk.npz")}).load(0)
    with pytest.raises(DataError, match="no such file"):
        MedMNIST.from_params({"path": str(tmp_path / "missing.npz")}).load(0)
    vol = np.zeros((30, 8, 28, 28), np.uint8)
    write(tmp_path / "organ3d.npz", train_images=vol)
    with pytest.raises(DataError, match="3D volumes"):
        MedMNIST.from_params({"path": str(tmp_path / "organ3d.npz")}).load(0)
    write(tmp_path / "short.npz", train_labels=np.zeros((5, 1), np.uint8))
    with pytest.raises(DataError, match="30 images but train_labels 5"):
        MedMNIST.from_params({"path": str(tmp_path / "short.npz")}).load(0)


def test_cap_keeps_each_split(tmp_path):
    write(tmp_path / "big.npz")
    data = MedMNIST.from_params({"path": str(tmp_path / "big.npz"), "max_examples": 20}).load(0)
    sizes = {k: len(s) for k, s in data.splits.items()}
    assert sum(sizes.values()) <= 22 and min(sizes.values()) >= 3
