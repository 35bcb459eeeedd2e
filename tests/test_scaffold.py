"""`cdkd plugins new`: a package of each kind is scaffolded, installed with pip into a
temporary target (the shared environment stays as it is), passes its own generated tests
unchanged and ruff, and shows up in `cdkd plugins list` and `cdkd components`; invalid
names and occupied directories are refused with one message."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cdkd_core import hookimpl
from cdkd_core.cli import app
from cdkd_core.errors import PluginError, ScaffoldError
from cdkd_core.scaffold import MAX_NAME_LENGTH, plugin_names, scaffold_plugin
from cdkd_core.testing import make_host, tiny_pipeline_config

KINDS = ("encoder", "domain", "loss", "feedback", "architecture")
PLURAL = {
    "encoder": "encoders",
    "domain": "domains",
    "loss": "losses",
    "feedback": "feedback",
    "architecture": "architectures",
}
runner = CliRunner()


def _env(site: Path) -> dict[str, str]:
    """This environment plus the temporary install target, every plugin enabled (the
    scaffolded ones added to ``CDKD_PLUGINS``, which tests/conftest.py sets)."""
    env = {k: v for k, v in os.environ.items() if k != "CDKD_DISABLE_PLUGINS"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    allowed = [p for p in env.get("CDKD_PLUGINS", "").split(",") if p]
    allowed += [plugin_names(f"cdkd-new-{kind}", kind).plugin for kind in KINDS]
    env["CDKD_PLUGINS"] = ",".join(allowed)
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """The five packages, scaffolded by the command and pip-installed into ``site``."""
    root = tmp_path_factory.mktemp("scaffold")
    packages, site = root / "packages", root / "site"
    for kind in KINDS:
        result = runner.invoke(
            app, ["plugins", "new", f"cdkd-new-{kind}", "--kind", kind, "-o", str(packages)]
        )
        assert result.exit_code == 0, result.output
        assert f"created {packages / f'cdkd-new-{kind}'}" in result.output
        assert "pip install -e" in result.output
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
    pip += ["--no-build-isolation", "--no-index", "--target", str(site)]
    pip += [str(packages / f"cdkd-new-{kind}") for kind in KINDS]
    done = subprocess.run(pip, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return packages, site


def test_generated_tests_pass_unchanged(installed, tmp_path):
    packages, site = installed
    junit = tmp_path / "junit.xml"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    command += ["--import-mode=importlib", "--rootdir", str(packages), f"--junitxml={junit}"]
    command += [str(packages / f"cdkd-new-{kind}" / "tests") for kind in KINDS]
    done = subprocess.run(
        command, cwd=packages, env=_env(site), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    cases: dict[str, list[str]] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        assert not list(case), f"{case.get('name')}: {[c.tag for c in case]}"  # no fail/skip
        cases.setdefault(case.get("classname", "").split(".")[-1], []).append(case.get("name"))
    for kind in KINDS:
        names = cases[f"test_new_{kind}"]
        assert len(names) >= 6, names
        assert {"test_runs_in_a_tiny_pipeline", "test_the_cdkd_command_lists_it"} <= set(names)


def test_cdkd_lists_the_installed_plugins(installed, tmp_path):
    _, site = installed
    cdkd = [sys.executable, "-m", "cdkd_core"]
    listing = subprocess.run(
        [*cdkd, "plugins", "list", "--json"],
        cwd=tmp_path,
        env=_env(site),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert listing.returncode == 0, listing.stderr
    plugins = {p["name"]: p for p in json.loads(listing.stdout)}
    components = subprocess.run(
        [*cdkd, "components", "--json"],
        cwd=tmp_path,
        env=_env(site),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert components.returncode == 0, components.stderr
    registered = json.loads(components.stdout)
    for kind in KINDS:
        names = plugin_names(f"cdkd-new-{kind}", kind)
        plugin = plugins[names.plugin]
        assert plugin["ok"] and plugin["source"] == "entry point", plugin
        assert plugin["version"] == "0.1.0" and plugin["module"] == names.package
        assert plugin["components"] == {PLURAL[kind]: [names.component]}
        listed = {c["name"]: c for c in registered[PLURAL[kind]]}
        assert listed[names.component]["plugin"] == names.plugin
        assert listed[names.component]["summary"]


def test_generated_packages_are_ruff_clean_for_short_and_long_names(tmp_path):
    longest = ("a" + "b" * MAX_NAME_LENGTH)[:MAX_NAME_LENGTH]
    for kind in KINDS:
        for name in (f"cdkd-new-{kind}", "x", longest):
            scaffold_plugin(name, kind, tmp_path / kind)
    for args in (["check", "--no-cache"], ["format", "--check", "--no-cache"]):
        done = subprocess.run(
            [sys.executable, "-m", "ruff", *args, "."],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_generated_packages_import_only_the_plugin_api(tmp_path):
    """A generated package (its tests included) reaches the core through ``cdkd_core``,
    ``cdkd_core.plugin_api`` and ``cdkd_core.testing`` only, as the shipped plugins must."""
    import re

    allowed = {"cdkd_core", "cdkd_core.plugin_api", "cdkd_core.testing"}
    for kind in KINDS:
        scaffold_plugin(f"cdkd-new-{kind}", kind, tmp_path / kind)
    for path in tmp_path.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        used = set(re.findall(r"^\s*from (cdkd_core[\w.]*) import", text, re.MULTILINE))
        used |= set(re.findall(r"^\s*import (cdkd_core[\w.]*)", text, re.MULTILINE))
        assert used <= allowed, (path.relative_to(tmp_path), sorted(used - allowed))


def test_the_domain_scaffold_one_hot_encodes_categorical_columns(tmp_path, monkeypatch):
    """The generated domain reads a CSV through the plugin API's table helpers: a column of
    words is one-hot encoded with the train split's categories, a missing number imputed,
    the labels matched by the core's rule."""
    import importlib

    target = scaffold_plugin("cdkd-hues", "domain", tmp_path / "packages")
    table = tmp_path / "shades.csv"
    colours = ["red", "green", "blue"]
    rows = [
        f"{i % 5}.25,{colours[i % 3]},{'NA' if i == 7 else i % 4},{'Yes' if i % 2 else 'no'}"
        for i in range(36)
    ]
    table.write_text("size,colour,count,outcome\n" + "\n".join(rows) + "\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(target))
    try:
        module = importlib.import_module("cdkd_hues.domain")
        domain = module.HuesDomain.from_params(
            {"path": str(table), "label": "outcome", "classes": ["no", "yes"]}
        )
        data = domain.load(seed=0)
    finally:
        for name in [m for m in sys.modules if m == "cdkd_hues" or m.startswith("cdkd_hues.")]:
            del sys.modules[name]
    assert data.classes == ["no", "yes"]
    assert domain.feature_names == ["size", "colour=blue", "colour=green", "colour=red", "count"]
    x = torch.cat([split.student_x for split in data.splits.values()])
    y = torch.cat([split.y for split in data.splits.values()])
    assert x.shape == (36, 5) and bool(torch.isfinite(x).all())
    assert torch.equal(x[:, 1:4].sum(1), torch.ones(36))  # one colour per row, one-hot
    assert sorted(torch.bincount(y).tolist()) == [18, 18]  # "Yes" matched to the class "yes"


def test_class_names_never_shadow_what_the_templates_use():
    assert plugin_names("cdkd-whiten", "encoder").class_name == "WhitenEncoder"
    assert plugin_names("cdkd-knowledge", "encoder").class_name == "KnowledgeComponent"
    assert plugin_names("cdkd-loss", "loss").class_name == "LossComponent"
    assert plugin_names("cdkd-domain", "domain").class_name == "DomainComponent"


def test_layout_entry_point_and_dependency(tmp_path):
    target = scaffold_plugin("cdkd-whiten", "domain", tmp_path)
    files = {str(p.relative_to(target)) for p in target.rglob("*") if p.is_file()}
    assert files == {
        "pyproject.toml",
        "README.md",
        "cdkd_whiten/__init__.py",
        "cdkd_whiten/domain.py",
        "cdkd_whiten/data/blobs.csv",
        "tests/conftest.py",
        "tests/test_whiten.py",
    }
    pyproject = (target / "pyproject.toml").read_text()
    assert '[project.entry-points.cdkd]\nwhiten = "cdkd_whiten"' in pyproject
    assert 'dependencies = ["cdkd>=0.1,<0.2"]' in pyproject
    assert 'build-backend = "setuptools.build_meta"' in pyproject
    assert '"cdkd_whiten.data" = ["*.csv"]' in pyproject
    assert 'pytest_plugins = ["cdkd_core.testing"]' in (target / "tests/conftest.py").read_text()
    assert 'name = "whiten.blobs"' in (target / "cdkd_whiten/domain.py").read_text()
    assert "$" not in (target / "README.md").read_text()  # every placeholder filled


@pytest.mark.parametrize(
    "name",
    ["Bad-Name", "my plugin", "cdkd", "cdkd-9x", "my--plugin", "x-", "core", "a" * 31],
)
def test_invalid_names_are_refused(name, tmp_path):
    result = runner.invoke(app, ["plugins", "new", name, "--kind", "loss", "-o", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_a_name_taken_by_a_built_in_or_an_importable_module_is_refused(tmp_path, monkeypatch):
    with pytest.raises(ScaffoldError, match="'pca' is taken by the built-in plugin"):
        plugin_names("cdkd-pca", "encoder")
    (tmp_path / "cdkd_taken").mkdir()
    (tmp_path / "cdkd_taken" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ScaffoldError, match="'cdkd_taken' is already importable"):
        plugin_names("cdkd-taken", "loss")
    with pytest.raises(ScaffoldError, match="unknown kind 'trunk'"):
        plugin_names("cdkd-fine", "trunk")


def test_an_occupied_directory_is_refused_and_left_alone(tmp_path):
    (tmp_path / "cdkd-busy").mkdir()
    (tmp_path / "cdkd-busy" / "notes.txt").write_text("mine")
    result = runner.invoke(
        app, ["plugins", "new", "cdkd-busy", "--kind", "encoder", "-o", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "exists and is not empty" in result.stderr and "Traceback" not in result.output
    assert [p.name for p in (tmp_path / "cdkd-busy").iterdir()] == ["notes.txt"]
    (tmp_path / "cdkd-file").write_text("a file")
    with pytest.raises(ScaffoldError, match="is not a directory"):
        scaffold_plugin("cdkd-file", "encoder", tmp_path)
    (tmp_path / "cdkd-empty").mkdir()  # an empty directory is fine
    assert (scaffold_plugin("cdkd-empty", "loss", tmp_path) / "pyproject.toml").is_file()


def test_help_has_an_example():
    result = runner.invoke(app, ["plugins", "new", "--help"])
    assert result.exit_code == 0 and "Example: cdkd plugins new" in result.output


def test_make_host_names_a_plugin_that_fails():
    class Broken:
        @hookimpl
        def register_losses(self, register):
            raise RuntimeError("boom")

    with pytest.raises(PluginError, match="broken: register_losses failed: RuntimeError: boom"):
        make_host(("broken", Broken()))
    assert "pca" in make_host().components("encoders")


def test_tiny_pipeline_config_is_fresh_each_call():
    first = tiny_pipeline_config()
    first["domains"].append({"name": "sklearn.iris"})
    first["train"]["epochs"] = 99
    second = tiny_pipeline_config({"name": "sklearn.iris", "role": "target"})
    assert [d["name"] for d in second["domains"]] == ["sklearn.iris", "sklearn.breast_cancer"]
    assert second["train"]["epochs"] == 2 and second["train"]["threads"] == 1
