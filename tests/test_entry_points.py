"""Installed plugins: real distributions with `cdkd` entry points, installed with pip into a
temporary target and used through the `cdkd` command in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

PACKAGES = Path(__file__).parent / "plugin_packages"


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
    environ.update(PYTHONPATH=str(site), **env)
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
    assert not clash["ok"]
    assert "'pca' is registered by plugin 'cdkd.encoders'" in clash["errors"][0]
    assert "'cdkd.encoders:pca' or 'clash:pca'" in clash["errors"][0]
    # both pca stay (qualified), and so does everything else the later plugin registers
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


def test_a_clashing_name_is_refused_at_use_and_plugin_name_selects_one(plugin_site, tmp_path):
    from tests.conftest import TINY

    listed = cdkd(["components", "encoders", "--json"], plugin_site, tmp_path)
    assert listed.returncode == 0, listed.stderr
    encoders = {c["name"]: c for c in json.loads(listed.stdout)["encoders"]}
    assert "pca" not in encoders
    assert encoders["clash:pca"]["plugin"] == "clash" and encoders["clash:pca"]["clash"]
    assert encoders["cdkd.encoders:pca"]["plugin"] == "cdkd.encoders"
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(TINY))  # encoder: pca
    refused = cdkd(["validate", str(path)], plugin_site, tmp_path)
    assert refused.returncode == 2
    (line,) = [x for x in refused.stderr.splitlines() if x.startswith("error:")]
    assert "encoder.name: encoder 'pca' is registered by 2 plugins" in line
    assert "'cdkd.encoders'" in line and "'clash' 0.3.1" in line
    assert "write 'cdkd.encoders:pca' or 'clash:pca'" in line
    path.write_text(yaml.safe_dump({**TINY, "encoder": {"name": "cdkd.encoders:pca"}}))
    chosen = cdkd(["validate", str(path)], plugin_site, tmp_path)
    assert chosen.returncode == 0, chosen.stderr


def test_disable_plugins_env(plugin_site, tmp_path):
    result = cdkd(
        ["plugins", "list", "--json"], plugin_site, tmp_path, CDKD_DISABLE_PLUGINS="broken,clash"
    )
    names = {p["name"] for p in json.loads(result.stdout)}
    assert "example" in names and "broken" not in names and "clash" not in names


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
