"""The shipped plugins' tests reach the core through ``cdkd_core``, ``cdkd_core.plugin_api``
and ``cdkd_core.testing`` only, as a plugin's own code does (import-linter cannot take the
``tests`` directories as packages: they are not packages, and three of them share the name,
so each file's imports are read here with ``ast``, those inside functions too)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ALLOWED = {"cdkd_core", "cdkd_core.plugin_api", "cdkd_core.testing"}
TEST_DIRS = sorted(ROOT.glob("plugins/cdkd-*/tests"))


def _core_imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of each import of a ``cdkd_core`` module in the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules = [node.module]
        else:
            continue
        found += [(node.lineno, m) for m in modules if m.split(".")[0] == "cdkd_core"]
    return found


def test_every_plugin_has_tests():
    assert {d.parent.name for d in TEST_DIRS} >= {"cdkd-medical", "cdkd-finance", "cdkd-nlp"}


@pytest.mark.parametrize("tests", TEST_DIRS, ids=lambda d: d.parent.name)
def test_plugin_tests_import_only_the_public_api(tests):
    internal = [
        f"{path.relative_to(ROOT)}:{line}: {module}"
        for path in sorted(tests.rglob("*.py"))
        for line, module in _core_imports(path)
        if module not in ALLOWED
    ]
    assert not internal, (
        "plugin tests import core internals (use cdkd_core, cdkd_core.plugin_api or "
        "cdkd_core.testing):\n" + "\n".join(internal)
    )


def test_the_check_finds_imports_inside_functions_too(tmp_path):
    path = tmp_path / "test_x.py"
    path.write_text(
        "import cdkd_core.testing\n"
        "from cdkd_core import PluginHost\n"
        "def test_x():\n"
        "    from cdkd_core.errors import DataError\n"
        "    import cdkd_core.run.driver as driver\n"
        "    from . import helpers\n"
    )
    assert _core_imports(path) == [
        (1, "cdkd_core.testing"),
        (2, "cdkd_core"),
        (4, "cdkd_core.errors"),
        (5, "cdkd_core.run.driver"),
    ]
