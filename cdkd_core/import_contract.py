"""An import-linter contract for files that are not importable packages, such as a plugin's
``tests`` folder: every import they make of a guarded package names an allowed module.

import-linter builds its graph from importable packages, so it cannot see test folders
(pytest imports them by path; several share the name ``tests``). This contract reads the
files themselves, imports inside functions included. Register it in ``pyproject.toml``
(``lint-imports`` runs from the project's root, where the patterns are resolved)::

    [tool.importlinter]
    contract_types = ["file_imports: cdkd_core.import_contract.FileImportsContract"]

    [[tool.importlinter.contracts]]
    name = "my plugin's tests use the public surface"
    type = "file_imports"
    files = ["tests/**/*.py"]
    guarded = ["cdkd_core", "my_plugin"]
    allowed = ["cdkd_core", "cdkd_core.plugin_api", "cdkd_core.testing", "my_plugin.*"]

Only ``lint-imports`` imports this module (it needs import-linter, in the test extra).
"""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Iterable
from pathlib import Path

from importlinter import Contract, ContractCheck, fields, output


def file_imports(path: Path, packages: Iterable[str]) -> list[tuple[int, str]]:
    """``(line, module)`` of each absolute import of a module under the root ``packages``
    in the file at ``path``, those inside functions too. ``from package import name``
    names ``package.name`` where that is a module, else ``package`` (only modules under
    ``packages`` are looked up, so no other library is imported to tell)."""
    roots = set(packages)
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] not in roots:
                continue
            modules = [_imported_module(node.module, alias.name) for alias in node.names]
        else:
            continue
        found += [(node.lineno, m) for m in modules if m.split(".")[0] in roots]
    return sorted(set(found))


def _imported_module(package: str, name: str) -> str:
    """``package.name`` when it is a module (``from cdkd_core import seeds``), else
    ``package`` (``from cdkd_core import load_config``)."""
    candidate = f"{package}.{name}"
    try:
        return candidate if importlib.util.find_spec(candidate) is not None else package
    except (ImportError, ValueError):  # package itself is not importable here
        return package


def is_allowed(module: str, allowed: Iterable[str]) -> bool:
    """Whether ``module`` is one of ``allowed``: a module name, or ``package.*`` for a
    package and every module below it."""
    for pattern in allowed:
        if pattern.endswith(".*"):
            root = pattern[:-2]
            if module == root or module.startswith(root + "."):
                return True
        elif module == pattern:
            return True
    return False


class FileImportsContract(Contract):
    """The files matching ``files`` (glob patterns from the working directory) import
    nothing under the ``guarded`` packages but the ``allowed`` modules (``package.*``: a
    package and every module below it). Broken too when no file matches, so that a
    mistyped pattern or a run from another folder cannot pass unseen."""

    files = fields.ListField(subfield=fields.StringField())
    guarded = fields.ListField(subfield=fields.StringField())
    allowed = fields.ListField(subfield=fields.StringField())

    def check(self, graph: object, verbose: bool) -> ContractCheck:
        """Read every matching file's imports (the import graph is not used)."""
        root = Path.cwd()
        paths = sorted({p for pattern in self.files for p in root.glob(str(pattern))})
        if not paths:
            return ContractCheck(kept=False, metadata={"problems": [self._no_files(root)]})
        guarded = [str(g) for g in self.guarded]
        allowed = [str(a) for a in self.allowed]
        problems = [
            f"{path.relative_to(root)}:{line}: imports {module}"
            for path in paths
            for line, module in file_imports(path, guarded)
            if not is_allowed(module, allowed)
        ]
        return ContractCheck(kept=not problems, metadata={"problems": problems})

    def render_broken_contract(self, check: ContractCheck) -> None:
        """One line per forbidden import, then what is allowed."""
        for problem in check.metadata["problems"]:
            output.print_error(problem, bold=False)
        output.new_line()
        output.print(f"Allowed: {', '.join(str(a) for a in self.allowed)}")

    def _no_files(self, root: Path) -> str:
        patterns = ", ".join(str(p) for p in self.files)
        return f"no file matches {patterns} under {root} (run lint-imports from the project root)"
