"""Installed plugins: real distributions with `cdkd` entry points, installed with pip into a
temporary target and used through the `cdkd` command in a subprocess (``CDKD_PLUGINS``,
which tests/conftest.py sets to the project's own plugins, is extended by these three)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

PACKAGES = Path(__file__).parent / "plugin_packages"
TEST_PLUGINS = ("broken", "clash", "example")


@pytest.fixture(scope="session")
def plugin_site(tmp_path_factory) -> Path:
    """A directory holding the three test plugin distributions, installed by pip."""
    target = tmp_path_factory.mktemp("site")
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "--target",
        str(target),
        *(str(p) for p in sorted(PACKAGES.iterdir())),
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    return target


def cdkd(args: list[str], site: Path, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "CDKD_DISABLE_PLUGINS"}
    allowed = [p for p in environ.get("CDKD_PLUGINS", "").split(",") if p]
    environ.update(PYTHONPATH=str(site), CDKD_PLUGINS=",".join([*allowed, *TEST_PLUGINS]))
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-m", "cdkd_core", *args],
        capture_output=True,
        text=True,
        env=environ,
        cwd=cwd,
        timeout=300,
    )


def test_plugins_list_reports_each_plugin(plugin_site, tmp_path):
    result = cdkd(["plugins", "list", "--json"], plugin_site, tmp_path)
    assert result.returncode == 0, result.stderr
    plugins = {p["name"]: p for p in json.loads(result.stdout)}
    example = plugins["example"]
    assert example["ok"] and example["version"] == "0.3.1"
    assert example["source"] == "entry point"
    assert example["components"] == {"encoders": ["random_projection"], "losses": ["logit_l2"]}
    broken = plugins["broken"]
    assert not broken["ok"] and "not installed" in broken["errors"][0]
    clash = plugins["clash"]
    # its pca does not take the built-in's name: not a failure, a note on how to select it
    assert clash["ok"] and clash["errors"] == []
    assert clash["distribution"] == "cdkd-clash-plugin"
    (note,) = clash["notes"]
    assert "a bare 'pca' means the built-in one ('cdkd.encoders:pca')" in note
    assert "write 'clash:pca' to select this plugin's" in note
    assert clash["components"] == {"encoders": ["pca"], "losses": ["zero"]}
    # every built-in component is listed
    builtin = {
        k: v
        for p in plugins.values()
        if p["source"] == "builtin"
        for k, v in p["components"].items()
    }
    assert builtin["encoders"] == ["pca", "linear", "graph", "knowledge_graph"]
    assert builtin["losses"] == ["ce", "kd", "hint", "relational", "graph", "graph_match"]
    assert builtin["feedback"] == ["none", "mutual", "hard_examples", "meta"]
    assert builtin["architectures"] == ["mlp", "cnn", "hist_gbm"]
    assert {"sklearn.wine", "tabular"} <= set(builtin["domains"])


def test_a_builtin_name_stays_the_builtin_and_plugin_name_selects_the_other(plugin_site, tmp_path):
    from tests.conftest import TINY

    listed = cdkd(["components", "encoders", "--json"], plugin_site, tmp_path)
    assert listed.returncode == 0, listed.stderr
    encoders = {c["name"]: c for c in json.loads(listed.stdout)["encoders"]}
    assert encoders["pca"]["plugin"] == "cdkd.encoders" and not encoders["pca"]["clash"]
    assert encoders["clash:pca"]["plugin"] == "clash" and encoders["clash:pca"]["clash"]
    assert "a bare 'pca' means the built-in one" in encoders["clash:pca"]["note"]
    assert "cdkd.encoders:pca" not in encoders
    path = tmp_path / "pipeline.yaml"
    for encoder in ("pca", "cdkd.encoders:pca", "clash:pca"):
        path.write_text(yaml.safe_dump({**TINY, "encoder": {"name": encoder}}))
        valid = cdkd(["validate", str(path)], plugin_site, tmp_path)
        assert valid.returncode == 0, (encoder, valid.stderr)
        assert "'clash'" not in valid.stderr  # no warning about it either


def test_disable_plugins_env(plugin_site, tmp_path):
    result = cdkd(
        ["plugins", "list", "--json"], plugin_site, tmp_path, CDKD_DISABLE_PLUGINS="broken,clash"
    )
    names = {p["name"] for p in json.loads(result.stdout)}
    assert "example" in names and "broken" not in names and "clash" not in names


def test_cdkd_plugins_env_names_the_installed_plugins_that_load(plugin_site, tmp_path):
    result = cdkd(
        ["plugins", "list", "--json"], plugin_site, tmp_path, CDKD_PLUGINS="cdkd-example-plugin"
    )
    assert result.returncode == 0, result.stderr
    plugins = {p["name"]: p["source"] for p in json.loads(result.stdout)}
    assert {n for n, source in plugins.items() if source == "entry point"} == {"example"}
    assert {n for n, source in plugins.items() if source == "builtin"} == {
        "cdkd.domains", "cdkd.architectures", "cdkd.encoders", "cdkd.losses", "cdkd.feedback"
    }  # fmt: skip


def test_run_with_a_plugin_component_despite_a_broken_plugin(plugin_site, tmp_path):
    from tests.conftest import TINY

    config = {
        **TINY,
        "encoder": {"name": "random_projection", "params": {"dim": 4}},
        "losses": [{"name": "ce"}, {"name": "logit_l2", "weight": 0.1}, {"name": "hint"}],
    }
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    result = cdkd(["run", str(path), "--output", "runs", "--quiet"], plugin_site, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "plugin 'broken' 0.3.1 failed" in result.stderr  # warned with its version
    (run_dir,) = (tmp_path / "runs").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert set(summary["domains"]) == {"sklearn.wine", "sklearn.breast_cancer"}
    assert "sklearn.wine" in result.stdout and "teacher" in result.stdout
