"""``cdkd_core.experimental`` (stage-level pieces for benchmarks) keeps one list of names,
each resolves, and the import contract in pyproject.toml keeps ``benchmarks/`` to the public
API and this module: every other cdkd_core module and every plugin submodule is forbidden."""

from __future__ import annotations

import ast
import importlib.util
import pkgutil
import re
from pathlib import Path

import pytest

import cdkd_core
import cdkd_core.experimental as experimental

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
#: what a benchmark may import of cdkd_core besides the root package
BENCHMARK_SURFACE = {"plugin_api", "experimental"}
PLUGINS = ("cdkd_medical", "cdkd_finance", "cdkd_nlp")


def _type_checking_imports() -> dict[str, tuple[str, ...]]:
    spec = importlib.util.find_spec("cdkd_core.experimental")
    assert spec is not None and spec.origin
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    found: dict[str, tuple[str, ...]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and _reexported_from(node.module):
            found[node.module] = tuple(alias.name for alias in node.names)
    return found


def _benchmark_contract() -> dict:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    (contract,) = [
        c
        for c in config["tool"]["importlinter"]["contracts"]
        if c["type"] == "forbidden" and c["source_modules"] == ["benchmarks"]
    ]
    return contract


def test_one_list_of_names() -> None:
    assert sorted(experimental.__all__) == sorted(experimental._LAZY)
    assert _type_checking_imports() == experimental._SOURCES
    documented = set(re.findall(r":(?:func|class|data):`(\w+)`", experimental.__doc__ or ""))
    assert documented == set(experimental.__all__)


@pytest.mark.parametrize("name", experimental.__all__)
def test_every_name_resolves_to_its_source(name: str) -> None:
    module = importlib.import_module(experimental._LAZY[name])
    assert getattr(experimental, name) is getattr(module, name)


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        experimental.nothing  # noqa: B018


def test_benchmarks_are_forbidden_every_core_module_but_the_surface() -> None:
    forbidden = set(_benchmark_contract()["forbidden_modules"])
    core = {m.removeprefix("cdkd_core.") for m in forbidden if m.startswith("cdkd_core.")}
    top_level = {m.name for m in pkgutil.iter_modules(cdkd_core.__path__)}
    assert core == top_level - BENCHMARK_SURFACE


def test_benchmarks_reach_plugins_only_through_their_root() -> None:
    forbidden = set(_benchmark_contract()["forbidden_modules"])
    assert {f"{plugin}.*" for plugin in PLUGINS} <= forbidden
    assert not forbidden & set(PLUGINS)


def test_every_name_a_benchmark_imports_of_the_surface_exists() -> None:
    """Benchmarks import most names inside functions; each must resolve (a moved or renamed
    name fails here, not an hour into a run)."""
    surface = {"cdkd_core", *(f"cdkd_core.{m}" for m in BENCHMARK_SURFACE)}
    missing = []
    for path in sorted((ROOT / "benchmarks").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module in surface:
                module = importlib.import_module(node.module)
                missing += [
                    f"{path.name}: {node.module}.{alias.name}"
                    for alias in node.names
                    if not hasattr(module, alias.name)
                ]
    assert not missing


def _reexported_from(module: str | None) -> bool:
    """Whether an import from ``module`` re-exports names (the lazy-export helper does not)."""
    return bool(module) and module.startswith("cdkd_") and module != "cdkd_core.lazy_exports"
