"""medical.image_folder: PNG and JPEG files written by the tests with Pillow."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cdkd_medical.image_folder import ImageFolder
from PIL import Image

from cdkd_core.plugin_api import DataError


def make_folder(root, per_class=5):
    rng = np.random.default_rng(0)
    for c, (name, colour) in enumerate([("benign", (200, 30, 30)), ("malignant", (30, 30, 200))]):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            size = (20 + 3 * i, 24 + 2 * c)  # sizes differ: the loader resizes
            pixels = np.clip(rng.normal(0, 10, (size[1], size[0], 3)) + colour, 0, 255)
            img = Image.fromarray(pixels.astype(np.uint8), "RGB")
            ext = "png" if i % 2 == 0 else "jpg"
            img.save(folder / f"img{i}.{ext}")
        (folder / "notes.txt").write_text("ignored: not an image extension")
    return root


def test_grey_and_rgb(tmp_path):
    root = make_folder(tmp_path / "imgs")
    domain = ImageFolder.from_params({"path": str(root), "size": 16})
    data = domain.load(seed=0)
    assert data.classes == ["benign", "malignant"]
    assert sum(len(s) for s in data.splits.values()) == 10
    for split in data.splits.values():
        assert split.teacher_x.shape[1:] == (1, 16, 16)
        assert 0 <= float(split.teacher_x.min()) and float(split.teacher_x.max()) <= 1
    files = [f for s in domain.provenance.values() for f in s]
    assert sorted(files) == sorted(str(p.relative_to(root)) for p in root.rglob("img*"))
    rgb = ImageFolder.from_params({"path": str(root), "size": 8, "mode": "RGB"}).load(0)
    x, y = rgb.splits["train"].teacher_x, rgb.splits["train"].y
    assert x.shape[1:] == (3, 8, 8)
    red = x[y == 0].mean(dim=(0, 2, 3))
    blue = x[y == 1].mean(dim=(0, 2, 3))
    assert red[0] > 0.7 and red[2] < 0.2 and blue[2] > 0.7 and blue[0] < 0.2
    assert rgb.input_space != data.input_space  # RGB and grey views never share a stem


def test_split_is_stratified_and_fixed(tmp_path):
    root = make_folder(tmp_path / "imgs", per_class=10)
    a = ImageFolder.from_params({"path": str(root)}).load(seed=0)
    b = ImageFolder.from_params({"path": str(root)}).load(seed=3)
    for name in ("train", "val", "test"):
        assert torch.equal(a.splits[name].teacher_x, b.splits[name].teacher_x)
        assert set(a.splits[name].y.tolist()) == {0, 1}
    assert a.splits["train"].teacher_x.shape[1:] == (1, 64, 64)  # default size


def test_errors_name_the_file(tmp_path):
    root = make_folder(tmp_path / "imgs")
    (root / "benign" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match=r"broken\.png.*not a readable"):
        ImageFolder.from_params({"path": str(root)}).load(0)
    (root / "benign" / "broken.png").unlink()
    with pytest.raises(DataError, match=r"set params\.size"):
        ImageFolder.from_params({"path": str(root), "size": None}).load(0)
    lonely = tmp_path / "lonely"
    (lonely / "only").mkdir(parents=True)
    Image.new("L", (8, 8)).save(lonely / "only" / "a.png")
    with pytest.raises(DataError, match="at least two class sub-folders"):
        ImageFolder.from_params({"path": str(lonely)}).load(0)
    (lonely / "empty").mkdir()
    with pytest.raises(DataError, match="empty: class folder holds no"):
        ImageFolder.from_params({"path": str(lonely)}).load(0)


def test_classes_fix_the_order_and_case_clashes_are_refused(tmp_path):
    root = make_folder(tmp_path / "imgs")
    data = ImageFolder.from_params(
        {"path": str(root), "size": 8, "classes": ["Malignant", "benign"]}
    ).load(0)
    assert data.classes == ["Malignant", "benign"]
    y = torch.cat([s.y for s in data.splits.values()])
    x = torch.cat([s.teacher_x for s in data.splits.values()])
    assert len(y) == 10 and int((y == 0).sum()) == 5
    with pytest.raises(DataError, match=r"label 'malignant' is not one of the classes"):
        ImageFolder.from_params({"path": str(root), "classes": ["benign", "cyst"]}).load(0)
    (root / "Benign").mkdir()
    for f in (root / "benign").glob("img*"):
        (root / "Benign" / f.name).write_bytes(f.read_bytes())
    with pytest.raises(DataError) as info:
        ImageFolder.from_params({"path": str(root), "size": 8}).load(0)
    assert "['Benign', 'benign']" in str(info.value) and "classes:" in str(info.value)
    merged = ImageFolder.from_params(
        {"path": str(root), "size": 8, "classes": ["benign", "malignant"]}
    ).load(0)
    assert sum(len(s) for s in merged.splits.values()) == 15
    assert x.shape[1:] == (1, 8, 8)
