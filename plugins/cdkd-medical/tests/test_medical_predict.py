"""Raw input for ``cdkd predict``: each medical domain's reader makes its images (or FNA
feature rows) exactly as its ``load`` made the training ones, so a run's test split written
back as files gives the run's own test predictions."""

from __future__ import annotations

import csv
import io
import json
import shutil

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from cdkd_medical.dicom import Dicom
from cdkd_medical.fna import BreastCancerFNA
from cdkd_medical.image_folder import ImageFolder
from cdkd_medical.medmnist import MedMNIST
from cdkd_medical.nifti import Nifti
from cdkd_medical.nuclei import IMAGE_MEMBER, STARDIST, NucleiPatches
from PIL import Image
from pydicom.data import get_testdata_file

from cdkd_core import load_config, load_student, run_pipeline
from cdkd_core.plugin_api import (
    DataError,
    InputOptions,
    cap_examples,
    stratified_split_indices,
)
from cdkd_core.testing import invoke_cli

IMAGES = {"size": 16}
FNA = {"max_examples": 150}


def _images(root, per_class=8):
    """Two classes of PNG and JPEG images of different sizes (the domain resizes them)."""
    rng = np.random.default_rng(0)
    for c, colour in enumerate(((200, 40, 40), (40, 40, 200))):
        folder = root / ("benign", "malignant")[c] / "scans"
        folder.mkdir(parents=True)
        for i in range(per_class):
            shape = (18 + 3 * i, 20 + 2 * c, 3)
            pixels = np.clip(rng.normal(0, 25, shape) + colour, 0, 255).astype(np.uint8)
            Image.fromarray(pixels, "RGB").save(folder / f"img{i}.{'png' if i % 2 else 'jpg'}")
    return root


def _read_views(reader, source, teacher=False, chunk=5):
    batches = list(reader.batches(source, InputOptions(teacher=teacher), chunk))
    views = {}
    for batch in batches:
        for k, row_id in enumerate(batch.ids):
            teacher_x = None if batch.teacher_x is None else batch.teacher_x[k]
            views[row_id] = (batch.student_x[k], teacher_x)
    return views


def _expected(student, name, x):
    with torch.no_grad():
        return torch.softmax(student.student.domain_module(name)(x), dim=1).numpy()


@pytest.fixture
def medical_run(tmp_path, medical_host):
    root = _images(tmp_path / "scans")
    config = load_config(
        {
            "name": "medical-predict",
            "seed": 0,
            "domains": [
                {"name": "medical.image_folder", "params": {"path": str(root), **IMAGES}},
                {"name": "medical.breast_cancer_fna", "params": FNA},
            ],
            "teacher": {
                "trunk": {"name": "mlp", "params": {"width": 16, "depth": 1}},
                "stems": {"image": {"name": "resnet", "params": {"width": 4, "layers": [1, 1]}}},
            },
            "student": {
                "trunk": {"name": "mlp", "params": {"width": 8, "depth": 1}},
                "stems": {"image": {"name": "cnn", "params": {"channels": 4, "blocks": 2}}},
            },
            "encoder": {"name": "pca", "params": {"dim": 4}},
            "losses": [{"name": "ce"}, {"name": "kd"}],
            "train": {"epochs": 1, "batch_size": 32, "lr": 0.005, "device": "cpu", "threads": 1},
        },
        host=medical_host,
    )
    return run_pipeline(config, host=medical_host, output=tmp_path / "runs"), root


def test_image_folder_test_images_reproduce_the_run(medical_run, medical_host, tmp_path):
    result, root = medical_run
    name = "medical.image_folder"
    domain = ImageFolder.from_params({"path": str(root), **IMAGES})
    test = domain.load(0).splits["test"]
    files = domain.provenance["test"]
    new = tmp_path / "new"  # the test images, copied as they are
    for relative in files:
        (new / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / relative, new / relative)
    student = load_student(result.run_dir, host=medical_host)
    expected = _expected(student, name, test.student_x)
    predictions = student.predict(new, domain=name, chunk_size=3)
    assert sorted(predictions.ids) == sorted(files)
    got = dict(zip(predictions.ids, predictions.probabilities, strict=True))
    np.testing.assert_allclose([got[f] for f in files], expected, atol=2e-6)
    labels = [domain.load(0).classes[int(y)] for y in test.y]
    accuracy = np.mean([predictions.labels[predictions.ids.index(f)] == y
                        for f, y in zip(files, labels, strict=True)])  # fmt: skip
    reported = result.summary["domains"][name]["metrics"]["student"]["accuracy"]
    assert accuracy == pytest.approx(reported, abs=1e-9)
    # one image file through the CLI
    res = invoke_cli("predict", result.run_dir, new / files[0], "-d", name, "--format", "jsonl")
    assert res.exit_code == 0, res.output
    (record,) = [json.loads(line) for line in res.stdout.splitlines()]
    assert record["id"] == files[0].split("/")[-1]
    np.testing.assert_allclose(
        [record[f"p_{c}"] for c in ("benign", "malignant")], expected[0], atol=2e-6
    )
    # the teacher view is the same image
    views = _read_views(domain.input_reader(0), new, teacher=True)
    for k, relative in enumerate(files):
        student_x, teacher_x = views[relative]
        assert torch.equal(student_x, test.student_x[k]) and torch.equal(teacher_x, student_x)


def test_fna_feature_rows_reproduce_the_run(medical_run, medical_host, tmp_path):
    import sklearn.datasets

    result, _ = medical_run
    name = "medical.breast_cancer_fna"
    bunch = sklearn.datasets.load_breast_cancer()
    y = (bunch.target == 0).astype(np.int64)  # malignant is 0 in scikit-learn
    keep = cap_examples(y, FNA["max_examples"], 0)
    rows = keep[stratified_split_indices(y[keep], 0.2, 0.2, 0)["test"]]
    path = tmp_path / "cases.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["diagnosis", *reversed(bunch.feature_names)])
        for i in rows:
            values = [repr(float(v)) for v in bunch.data[i][::-1]]
            w.writerow([("malignant", "benign")[bunch.target[i]], *values])
    student = load_student(result.run_dir, host=medical_host)
    test = BreastCancerFNA.from_params(FNA).load(0).splits["test"]
    predictions = student.predict(path, domain=name)
    expected = _expected(student, name, test.student_x)
    np.testing.assert_allclose(predictions.probabilities, expected, atol=2e-6)
    path.write_text("mean radius\n12\n")
    with pytest.raises(DataError, match="not in the header"):
        student.predict(path, domain=name)


def test_medmnist_reads_png_and_npy_images(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 30), ("val", 9), ("test", 12)):
        arrays[f"{split}_images"] = rng.integers(0, 256, size=(n, 20, 20, 3), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 3).reshape(n, 1).astype(np.uint8)
    np.savez(tmp_path / "derma.npz", **arrays)
    domain = MedMNIST.from_params({"path": str(tmp_path / "derma.npz"), "size": 12})
    test = domain.load(0).splits["test"]
    new = tmp_path / "new"
    new.mkdir()
    for i, image in enumerate(arrays["test_images"]):
        if i % 2:
            Image.fromarray(image, "RGB").save(new / f"{i:02d}.png")
        else:
            np.save(new / f"{i:02d}.npy", image)
    views = _read_views(domain.input_reader(0), new)
    x = torch.stack([views[f"{i:02d}.{'png' if i % 2 else 'npy'}"][0] for i in range(12)])
    assert torch.equal(x, test.student_x)
    np.save(new / "grey.npy", arrays["test_images"][0, ..., 0])
    with pytest.raises(DataError, match=r"grey\.npy: 1 channel\(s\); the training images have 3"):
        _read_views(domain.input_reader(0), new / "grey.npy")


def test_nifti_reads_volumes_into_the_loaded_slices(tmp_path):
    rng = np.random.default_rng(0)
    for c, name in enumerate(("control", "patient")):
        (tmp_path / "vols" / name).mkdir(parents=True)
        for i in range(3):
            data = rng.normal(c, 1, (10, 12, 9)).astype(np.float32)
            affine = np.diag([-1.0, 1.0, 1.0, 1.0])  # reoriented by canonical
            nib.save(nib.Nifti1Image(data, affine), tmp_path / "vols" / name / f"s{i}.nii.gz")
    domain = Nifti.from_params({"path": str(tmp_path / "vols"), "size": 8, "slices": 3})
    test = domain.load(0).splits["test"]
    views = _read_views(domain.input_reader(0), tmp_path / "vols")
    assert len(views) == 18 and next(iter(views)) == "control/s0.nii.gz#axis2:1"
    x = torch.stack([views[source][0] for source in domain.provenance["test"]])
    assert torch.equal(x, test.student_x)


def test_dicom_reads_files_into_the_loaded_images(tmp_path):
    for name, source in (("ct", "CT_small.dcm"), ("mr", "MR_small.dcm")):
        (tmp_path / "dcm" / name).mkdir(parents=True)
        for p in range(3):
            ds = pydicom.dcmread(get_testdata_file(source))
            ds.PatientID = f"{name}-{p}"
            ds.save_as(tmp_path / "dcm" / name / f"IM{p}")
    colour = get_testdata_file("SC_rgb_rle_2frame.dcm")  # two frames: ids #frame0, #frame1
    shutil.copy2(colour, tmp_path / "dcm" / "mr" / "two.dcm")
    params = {"path": str(tmp_path / "dcm"), "size": 16, "group_by": "file", "window": [40, 400]}
    domain = Dicom.from_params(params)
    test = domain.load(0).splits["test"]
    views = _read_views(domain.input_reader(0), tmp_path / "dcm")
    assert {"mr/two.dcm#frame0", "mr/two.dcm#frame1", "ct/IM0"} <= set(views)
    x = torch.stack([views[source][0] for source in domain.provenance["test"]])
    assert torch.equal(x, test.student_x)
    (tmp_path / "dcm" / "ct" / "notes.txt").write_text("not DICOM")
    with pytest.raises(DataError, match=r"notes\.txt: not a DICOM file"):
        _read_views(domain.input_reader(0), tmp_path / "dcm")


def test_nuclei_reads_the_whole_image_into_the_loaded_patches(tmp_path):
    import tifffile

    from cdkd_core.plugin_api import fetch_distribution, read_member

    image = tifffile.imread(io.BytesIO(read_member(fetch_distribution(STARDIST), IMAGE_MEMBER)))
    tifffile.imwrite(tmp_path / "img.tif", image)
    domain = NucleiPatches.from_params({"max_examples": 200})
    test = domain.load(0).splits["test"]
    views = _read_views(domain.input_reader(0), tmp_path / "img.tif", chunk=4096)
    x = torch.stack([views[f"img.tif#{r},{c}"][0] for r, c in domain.centres["test"]])
    assert torch.equal(x, test.student_x)
