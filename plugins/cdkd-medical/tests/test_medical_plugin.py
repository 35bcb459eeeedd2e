"""The plugin as cdkd sees it: the entry point, registration, and a short pipeline."""

from __future__ import annotations

import cdkd_medical
import pytest

from cdkd_core import load_config, run_pipeline

DOMAINS = {
    "medical.nuclei",
    "medical.breast_cancer_fna",
    "medical.medmnist",
    "medical.image_folder",
    "medical.dicom",
    "medical.nifti",
}


def test_entry_point_registers_every_component():
    from importlib.metadata import entry_points

    from cdkd_core import PluginHost

    names = {ep.name: ep.value for ep in entry_points(group="cdkd")}
    if names.get("medical") != "cdkd_medical":
        pytest.skip("cdkd-medical is not installed (pip install -e plugins/cdkd-medical)")
    host = PluginHost()
    info = host.plugins["medical"]
    assert info.ok, info.errors
    domains = {n for n, c in host.components("domains").items() if c.plugin == "medical"}
    assert domains == DOMAINS
    assert host.components("architectures")["resnet"].plugin == "medical"


def test_components_are_well_formed(medical_host):
    for name in DOMAINS:
        cls = medical_host.get("domains", name)
        assert cls.summary() and cls.__doc__
    assert set(cdkd_medical.__all__) >= {"NucleiPatches", "ResNetStem"}
    resnet = medical_host.get("architectures", "resnet")
    assert resnet.modalities == ("image",) and not resnet.provides_trunk
    assert resnet.default_for == ()  # installing the plugin changes no one's default stem


def test_nuclei_fetch_lists_the_wheel():
    items = cdkd_medical.NucleiPatches.fetch()
    assert len(items) == 1 and "stardist==0.9.2" in items[0] and "img2d.tif" in items[0]
    assert cdkd_medical.BreastCancerFNA.fetch() == []


def test_short_pipeline(tmp_path, medical_host):
    config = load_config(
        {
            "name": "medical-e2e",
            "seed": 0,
            "domains": [
                {"name": "medical.nuclei", "params": {"max_examples": 240}},
                {"name": "medical.breast_cancer_fna", "params": {"max_examples": 150}},
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
            "losses": [{"name": "ce"}, {"name": "kd"}, {"name": "hint", "weight": 0.5}],
            "train": {"epochs": 2, "batch_size": 64, "lr": 0.005, "device": "cpu", "threads": 1},
        },
        host=medical_host,
    )
    result = run_pipeline(config, host=medical_host, output=tmp_path)
    summary = result.summary
    for name, metric in (("medical.nuclei", "accuracy"), ("medical.breast_cancer_fna", "roc_auc")):
        row = summary["domains"][name]
        assert row["metric"] == metric
        for model in ("teacher", "student", "baseline"):
            assert row[model] is not None and 0.0 <= row[model] <= 1.0
    assert summary["params"]["teacher"] > summary["params"]["student"]
    assert (result.run_dir / "summary.json").is_file()
