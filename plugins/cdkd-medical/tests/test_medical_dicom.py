"""medical.dicom: pydicom's bundled CT_small / MR_small files placed in class folders."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from cdkd_medical.dicom import Dicom
from pydicom.data import get_testdata_file

from cdkd_core.plugin_api import DataError

# only files bundled with pydicom (other test files are downloaded on demand)
CT = get_testdata_file("CT_small.dcm")
MR = get_testdata_file("MR_small.dcm")
RTPLAN = get_testdata_file("rtplan.dcm")


def make_folder(root, patients=4, per_patient=1):
    """Class folders ``ct`` and ``mr``: copies of the bundled files, one PatientID each
    (``per_patient`` files share one), pixel values shifted a little per copy."""
    for name, source in (("ct", CT), ("mr", MR)):
        folder = root / name
        folder.mkdir(parents=True)
        for p in range(patients):
            for k in range(per_patient):
                ds = pydicom.dcmread(source)
                ds.PatientID = f"{name}-{p}"
                pixels = ds.pixel_array.copy()
                pixels[0, 0] = pixels[0, 0] + p + k
                ds.PixelData = pixels.tobytes()
                ds.save_as(folder / f"IM{p}_{k}")  # DICOM files often have no extension
    return root


def test_loads_resized_and_labelled(tmp_path):
    root = make_folder(tmp_path / "dcm")
    domain = Dicom.from_params({"path": str(root), "size": 32})
    data = domain.load(seed=0)
    assert data.classes == ["ct", "mr"]
    assert sum(len(s) for s in data.splits.values()) == 8
    for split in data.splits.values():
        assert split.teacher_x.shape[1:] == (1, 32, 32)
        assert 0 <= float(split.teacher_x.min()) and float(split.teacher_x.max()) <= 1
    rgb = Dicom.from_params({"path": str(root), "size": 16, "mode": "RGB"}).load(0)
    assert rgb.splits["test"].teacher_x.shape[1:] == (3, 16, 16)


def test_rescale_and_window(tmp_path):
    root = make_folder(tmp_path / "dcm", patients=3)
    ds = pydicom.dcmread(CT)
    hu = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    domain = Dicom.from_params({"path": str(root), "window": [40, 400]})
    frames = domain._pixels(CT)
    assert frames.shape == (1, 1, 128, 128)
    expected = np.clip((hu - (40 - 200)) / 400, 0, 1)
    assert np.allclose(frames[0, 0], expected, atol=1e-6)
    minmax = Dicom.from_params({"path": str(root)})._pixels(CT)[0, 0]
    assert np.isclose(minmax.min(), 0) and np.isclose(minmax.max(), 1)
    mr = pydicom.dcmread(MR)
    filewin = Dicom.from_params({"path": str(root), "window": "file"})._pixels(MR)[0, 0]
    c, w = float(mr.WindowCenter), float(mr.WindowWidth)
    assert np.allclose(filewin, np.clip((mr.pixel_array - (c - w / 2)) / w, 0, 1), atol=1e-6)
    with pytest.raises(DataError, match="no WindowCenter"):
        Dicom.from_params({"path": str(root), "window": "file"})._pixels(CT)


def test_split_by_patient(tmp_path):
    root = make_folder(tmp_path / "dcm", patients=5, per_patient=2)
    domain = Dicom.from_params({"path": str(root), "size": 16})
    domain.load(seed=0)
    seen = {name: set(groups) for name, groups in domain.groups.items()}
    assert seen["train"].isdisjoint(seen["val"]) and seen["train"].isdisjoint(seen["test"])
    assert seen["val"].isdisjoint(seen["test"])
    assert sum(len(s) for s in seen.values()) == 10  # 5 patients x 2 classes
    by_file = Dicom.from_params({"path": str(root), "size": 16, "group_by": "file"})
    by_file.load(seed=0)
    assert sum(len(set(g)) for g in by_file.groups.values()) == 20


def test_non_dicom_and_non_image_refused(tmp_path):
    root = make_folder(tmp_path / "dcm", patients=3)
    (root / "ct" / "readme.txt").write_text("this is not DICOM")
    with pytest.raises(DataError, match=r"readme\.txt: not a DICOM file"):
        Dicom.from_params({"path": str(root), "size": 16}).load(0)
    (root / "ct" / "readme.txt").unlink()
    (root / "mr" / "plan.dcm").write_bytes(open(RTPLAN, "rb").read())
    with pytest.raises(DataError, match=r"plan\.dcm: DICOM RTPLAN .* is not an image"):
        Dicom.from_params({"path": str(root), "size": 16}).load(0)
    (root / "mr" / "plan.dcm").unlink()
    with pytest.raises(DataError, match=r"set params\.size"):  # 128 px CT, 64 px MR
        Dicom.from_params({"path": str(root), "size": None}).load(0)
    few = make_folder(tmp_path / "few", patients=1, per_patient=3)
    with pytest.raises(DataError, match="group_by: file"):
        Dicom.from_params({"path": str(few), "size": 16}).load(0)


def test_multiframe_colour_frames_are_examples(tmp_path):
    source = get_testdata_file("SC_rgb_rle_2frame.dcm")  # bundled: 2 RGB frames, RLE
    root = tmp_path / "mixed"
    for name, path in (("colour", source), ("mr", MR)):
        (root / name).mkdir(parents=True)
        for p in range(3):
            ds = pydicom.dcmread(path)
            ds.PatientID = f"{name}-{p}"
            ds.save_as(root / name / f"{p}.dcm")
    domain = Dicom.from_params({"path": str(root), "size": 16, "mode": "RGB"})
    data = domain.load(seed=0)
    assert sum(len(s) for s in data.splits.values()) == 3 * 2 + 3
    every = [p for s in domain.provenance.values() for p in s]
    assert sum(p.endswith("#frame1") for p in every) == 3
    assert data.splits["train"].teacher_x.shape[1:] == (3, 16, 16)
    middle = Dicom.from_params({"path": str(root), "size": 16, "frames": "middle"}).load(0)
    assert sum(len(s) for s in middle.splits.values()) == 6
