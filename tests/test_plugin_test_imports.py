"""The shipped plugins' tests reach the core through ``cdkd_core``, ``cdkd_core.plugin_api``
and ``cdkd_core.testing`` only, as a plugin's own code does. ``lint-imports`` holds them to
it with a contract of its own (``file_imports``, :mod:`cdkd_core.import_contract`: the test
folders are not importable packages, so their files are read); this file checks that
contract on small files, and that each plugin's tests are under one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cdkd_core.import_contract import file_imports, is_allowed

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = ["cdkd_core", "cdkd_core.plugin_api", "cdkd_core.testing"]


def _file_contracts() -> list[dict]:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    return [c for c in contracts if c["type"] == "file_imports"]


@pytest.mark.parametrize("plugin", ["medical", "finance", "nlp"])
def test_each_plugins_tests_are_held_to_the_public_surface(plugin):
    (contract,) = [c for c in _file_contracts() if f"cdkd-{plugin}/" in c["files"][0]]
    assert contract["files"] == [f"plugins/cdkd-{plugin}/tests/**/*.py"]
    assert {"cdkd_core", "cdkd_medical", "cdkd_finance", "cdkd_nlp"} <= set(contract["guarded"])
    package = f"cdkd_{plugin}"
    assert contract["allowed"] == [*PUBLIC, package, f"{package}.*"]
    assert list(ROOT.glob(contract["files"][0]))


def test_imports_are_found_inside_functions_and_from_imports_name_modules(tmp_path):
    path = tmp_path / "test_x.py"
    path.write_text(
        "import cdkd_core.testing\n"
        "from cdkd_core import PluginHost, seeds\n"
        "def test_x():\n"
        "    from cdkd_core.errors import DataError\n"
        "    import cdkd_core.run.driver as driver\n"
        "    from . import helpers\n"
        "    import numpy, cdkd_nlp\n"  # not under the packages asked for
        "    from json import loads\n"
    )
    assert file_imports(path, ["cdkd_core"]) == [
        (1, "cdkd_core.testing"),
        (2, "cdkd_core"),
        (2, "cdkd_core.seeds"),
        (4, "cdkd_core.errors"),
        (5, "cdkd_core.run.driver"),
    ]


def test_allowed_names_a_module_or_a_package_and_all_below_it():
    allowed = [*PUBLIC, "cdkd_nlp", "cdkd_nlp.*"]
    assert is_allowed("cdkd_core.plugin_api", allowed)
    assert is_allowed("cdkd_nlp.architectures", allowed)
    assert is_allowed("cdkd_nlp", allowed)
    assert not is_allowed("cdkd_core.errors", allowed)
    assert not is_allowed("cdkd_core.testing.extra", allowed)
    assert not is_allowed("cdkd_nlpx", allowed)


def _lint(project: Path) -> subprocess.CompletedProcess:
    lint = Path(sys.executable).parent / "lint-imports"
    return subprocess.run(
        [str(lint), "--no-cache"], cwd=project, capture_output=True, text=True, timeout=300
    )


def _project(tmp_path: Path, files: str) -> Path:
    (tmp_path / "pyproject.toml").write_text(
        "[tool.importlinter]\n"
        'root_packages = ["cdkd_core"]\n'
        'contract_types = ["file_imports: cdkd_core.import_contract.FileImportsContract"]\n'
        "[[tool.importlinter.contracts]]\n"
        'name = "tests use the public surface"\n'
        'type = "file_imports"\n'
        f"files = [{files!r}]\n"
        'guarded = ["cdkd_core"]\n'
        'allowed = ["cdkd_core", "cdkd_core.plugin_api", "cdkd_core.testing"]\n'
    )
    return tmp_path


def test_lint_imports_names_each_forbidden_import_and_passes_the_public_ones(tmp_path):
    project = _project(tmp_path, "tests/**/*.py")
    (project / "tests" / "unit").mkdir(parents=True)
    (project / "tests" / "test_ok.py").write_text("from cdkd_core.plugin_api import DataError\n")
    (project / "tests" / "unit" / "test_bad.py").write_text(
        "import numpy\n\ndef test_x():\n    from cdkd_core.run.driver import Runner\n"
    )
    done = _lint(project)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "tests/unit/test_bad.py:4: imports cdkd_core.run.driver" in done.stdout
    assert "test_ok.py" not in done.stdout and "numpy" not in done.stdout
    (project / "tests" / "unit" / "test_bad.py").write_text("from cdkd_core import Domain\n")
    done = _lint(project)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 kept, 0 broken" in done.stdout


def test_a_pattern_that_matches_no_file_breaks_the_contract(tmp_path):
    done = _lint(_project(tmp_path, "tset/**/*.py"))
    assert done.returncode == 1
    assert "no file matches tset/**/*.py" in done.stdout
