"""medical.nifti: nibabel's bundled volumes and small volumes written by the tests."""

from __future__ import annotations

import os

import nibabel as nib
import numpy as np
import pytest
from cdkd_medical.nifti import Nifti

from cdkd_core.plugin_api import DataError

NIB_DATA = os.path.join(os.path.dirname(nib.__file__), "tests", "data")


def synthetic(path, shape=(10, 12, 9), seed=0):
    """A volume whose voxel (x, y, z) is 10 z + x + small noise (no blank slice)."""
    rng = np.random.default_rng(seed)
    x, _, z = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    data = (10.0 * z + x + rng.normal(0, 0.01, shape)).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    return data


def make_folder(root, with_bundled=True, per_class=3):
    for c, name in enumerate(("control", "patient")):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            synthetic(folder / f"sub{i}.nii.gz", seed=10 * c + i)
    if with_bundled:
        (root / "control" / "example4d.nii.gz").write_bytes(
            open(os.path.join(NIB_DATA, "example4d.nii.gz"), "rb").read()
        )
        (root / "patient" / "anatomical.nii").write_bytes(
            open(os.path.join(NIB_DATA, "anatomical.nii"), "rb").read()
        )
    return root


def test_bundled_and_written_volumes(tmp_path):
    root = make_folder(tmp_path / "vols")
    domain = Nifti.from_params({"path": str(root), "size": 32, "slices": 4})
    data = domain.load(seed=0)
    assert data.classes == ["control", "patient"]
    every = [p for s in domain.provenance.values() for p in s]
    volumes = {p.split("#")[0] for p in every}
    assert volumes == {
        "control/example4d.nii.gz",
        "patient/anatomical.nii",
        *(f"{c}/sub{i}.nii.gz" for c in ("control", "patient") for i in range(3)),
    }
    for volume in volumes:  # at most 4 axial slices per volume
        assert 1 <= sum(p.startswith(volume + "#axis2:") for p in every) <= 4
    for split in data.splits.values():
        assert split.teacher_x.shape[1:] == (1, 32, 32)
        assert 0 <= float(split.teacher_x.min()) and float(split.teacher_x.max()) <= 1


def test_split_is_by_volume(tmp_path):
    root = make_folder(tmp_path / "vols", per_class=5)
    domain = Nifti.from_params({"path": str(root), "size": 16, "slices": 3})
    data = domain.load(seed=0)
    owner = {}
    for split, sources in domain.provenance.items():
        assert len(sources) == len(data.splits[split])
        for source in sources:
            owner.setdefault(source.split("#")[0], set()).add(split)
    assert len(owner) == 12
    assert all(len(splits) == 1 for splits in owner.values()), owner
    assert {s for splits in owner.values() for s in splits} == {"train", "val", "test"}
    assert set(domain.volumes["train"]).isdisjoint(domain.volumes["test"])


def test_slice_content_range_and_axis(tmp_path):
    root = make_folder(tmp_path / "vols", with_bundled=False)
    params = {"path": str(root), "size": None, "slices": [2, 5], "clip_percentiles": None}
    domain = Nifti.from_params(params)
    data = domain.load(seed=0)
    every = [p for s in domain.provenance.values() for p in s]
    assert sorted({p.split(":")[1] for p in every}) == ["2", "3", "4"]
    volume = synthetic(tmp_path / "check.nii.gz", seed=0)  # the same data as control/sub0
    scaled = (volume - volume.min()) / (volume.max() - volume.min())
    split = next(s for s, ps in domain.provenance.items() if "control/sub0.nii.gz#axis2:3" in ps)
    k = domain.provenance[split].index("control/sub0.nii.gz#axis2:3")
    assert np.allclose(data.splits[split].teacher_x[k, 0].numpy(), scaled[:, :, 3], atol=1e-5)
    sagittal = Nifti.from_params({**params, "axis": 0, "slices": 2}).load(0)
    assert sagittal.splits["train"].teacher_x.shape[1:] == (1, 12, 9)


def test_bad_volumes_refused(tmp_path):
    root = make_folder(tmp_path / "vols")
    with pytest.raises(DataError, match=r"example4d\.nii\.gz: volume 5 requested"):
        Nifti.from_params({"path": str(root), "volume": 5}).load(0)
    flat = root / "patient" / "flat.nii"
    nib.save(nib.Nifti1Image(np.ones((8, 8), np.float32), np.eye(4)), flat)
    with pytest.raises(DataError, match=r"flat\.nii: expected a 3D volume"):
        Nifti.from_params({"path": str(root)}).load(0)
    flat.unlink()
    (root / "patient" / "broken.nii.gz").write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(DataError, match=r"broken\.nii\.gz: not a readable NIfTI"):
        Nifti.from_params({"path": str(root)}).load(0)
    (root / "patient" / "broken.nii.gz").unlink()
    nib.save(nib.Nifti1Image(np.zeros((6, 6, 6), np.float32), np.eye(4)), root / "control/z.nii")
    with pytest.raises(DataError, match=r"z\.nii: every selected slice .* is blank"):
        Nifti.from_params({"path": str(root)}).load(0)
    few = make_folder(tmp_path / "few", with_bundled=False, per_class=1)
    with pytest.raises(DataError, match="by volume"):
        Nifti.from_params({"path": str(few)}).load(0)
