"""The import contracts in pyproject.toml (checked by ``lint-imports`` in .ci/run) cover
every module of cdkd_core: a new package or module cannot slip past them."""

from __future__ import annotations

import pkgutil
from pathlib import Path

import pytest

import cdkd_core

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
#: outside the layers: the plugin-facing surface, the fixtures and scaffold, the entry point
OUTSIDE_LAYERS = {"plugin_api", "testing", "scaffold", "__main__"}


def _contracts() -> dict[str, dict]:
    """The first contract of each type (the first ``forbidden`` one is the plugins')."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts: dict[str, dict] = {}
    for contract in config["tool"]["importlinter"]["contracts"]:
        contracts.setdefault(contract["type"], contract)
    return contracts


def _top_level() -> set[str]:
    return {m.name for m in pkgutil.iter_modules(cdkd_core.__path__)}


def test_plugins_are_forbidden_every_module_but_the_root_and_the_plugin_api() -> None:
    forbidden = {
        m.removeprefix("cdkd_core.") for m in _contracts()["forbidden"]["forbidden_modules"]
    }
    assert forbidden == _top_level() - {"plugin_api"}


def test_every_package_and_module_has_a_layer() -> None:
    layered = {
        name.strip()
        for layer in _contracts()["layers"]["layers"]
        for name in layer.replace(":", "|").split("|")
    }
    assert layered == _top_level() - OUTSIDE_LAYERS
