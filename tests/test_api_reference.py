"""The API reference (docs/api/*.md, built by ``mkdocs build --strict`` in .ci/run) covers
the run API of ``cdkd_core`` and every public name of ``cdkd_core.plugin_api`` and
``cdkd_core.testing``, and their docstrings have what a reference needs: Args, Returns, an
Example that runs.

The docstrings are read from the source (the AST), as the site's generator (griffe) reads
them: a module attribute is documented by the string right below its assignment.
"""

from __future__ import annotations

import ast
import doctest
import importlib.util
import inspect
import re
import shutil
import subprocess
import sys
from functools import cache
from importlib import import_module
from pathlib import Path

import pytest

import cdkd_core
import cdkd_core.plugin_api as plugin_api

ROOT = Path(__file__).resolve().parents[1]
API_PAGES = sorted((ROOT / "docs" / "api").glob("*.md"))
#: the functions of ``cdkd_core``'s run API (docs/api/python-api.md); the rest of its names
#: are plugin_api's, documented there
RUN_API = ("load_config", "run_pipeline", "load_student", "load_teacher")
SECTION = re.compile(r"^(Args|Returns|Yields|Raises|Examples):\s*$", re.M)


@cache
def _tree(module: str) -> ast.Module:
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin, module
    return ast.parse(Path(spec.origin).read_text(encoding="utf-8"))


def _plugin_api_sources() -> dict[str, str]:
    """Each name ``cdkd_core.plugin_api`` imports (at the top or for type checkers, which
    is where the site's generator finds the re-exported objects) -> its module."""
    found = {}
    for node in ast.walk(_tree("cdkd_core.plugin_api")):
        if isinstance(node, ast.ImportFrom) and _reexported_from(node.module):
            found.update({alias.asname or alias.name: node.module for alias in node.names})
    return found


def _reexports(package: str) -> dict[str, str]:
    """Each name ``package``'s ``__init__`` imports from its own modules -> that module
    (``from cdkd_core.testing.fixtures import make_host, ...``)."""
    found = {}
    for node in _tree(package).body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(f"{package}."):
            found.update({alias.asname or alias.name: node.module for alias in node.names})
    return found


def _testing_public() -> list[str]:
    """The public names ``cdkd_core.testing`` re-exports from its modules or defines
    (fixtures, functions, values)."""
    names = list(_reexports("cdkd_core.testing"))
    for node in _tree("cdkd_core.testing").body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.append(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names += [t.id for t in targets if isinstance(t, ast.Name)]
    return [name for name in names if not name.startswith("_")]


def _public() -> dict[str, tuple[str, str]]:
    """Identifier in the reference -> (module that defines it, name there)."""
    sources = _plugin_api_sources()
    public = {f"cdkd_core.plugin_api.{n}": (sources[n], n) for n in plugin_api.__all__}
    for name in RUN_API:
        public[f"cdkd_core.{name}"] = (cdkd_core._LAZY[name], name)
    defined_in = _reexports("cdkd_core.testing")
    for name in _testing_public():
        if name not in plugin_api.__all__:  # the checks are documented as plugin API
            module = defined_in.get(name, "cdkd_core.testing")
            public[f"cdkd_core.testing.{name}"] = (module, name)
    return public


def _documented() -> list[str]:
    return [
        line[4:].strip()
        for page in API_PAGES
        for line in page.read_text(encoding="utf-8").splitlines()
        if line.startswith("::: ")
    ]


def _definition(module: str, name: str) -> tuple[ast.AST, str | None]:
    """The top-level node defining ``name`` in ``module`` (or in the module of its package
    that it re-exports ``name`` from) and its docstring (for an assignment: the string
    statement right below it)."""
    source = _reexports(module).get(name)
    if source is not None:
        return _definition(source, name)
    body = _tree(module).body
    for i, node in enumerate(body):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if node.name == name:
                return node, ast.get_docstring(node)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                after = body[i + 1] if i + 1 < len(body) else None
                is_doc = isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                doc = after.value.value if is_doc and isinstance(after.value.value, str) else None
                return node, inspect.cleandoc(doc) if doc else None
    raise AssertionError(f"{module} defines no {name}")


def _docstrings() -> list[tuple[str, ast.AST, str | None]]:
    """(identifier, node, docstring) of every public name and of the public methods of
    its classes (those the class itself defines)."""
    found = []
    for identifier, (module, name) in sorted(_public().items()):
        node, doc = _definition(module, name)
        found.append((identifier, node, doc))
        if isinstance(node, ast.ClassDef):
            for member in node.body:
                if isinstance(member, ast.FunctionDef) and not member.name.startswith("_"):
                    doc = ast.get_docstring(member)
                    found.append((f"{identifier}.{member.name}", member, doc))
    return found


def _sections(doc: str) -> set[str]:
    return set(SECTION.findall(doc))


def _parameters(node: ast.FunctionDef) -> list[str]:
    args = node.args
    names = [a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]]
    names += [a.arg for a in (args.vararg, args.kwarg) if a is not None]
    return [n for n in names if n not in ("self", "cls")]


def _is_property(node: ast.FunctionDef) -> bool:
    return any(
        isinstance(d, ast.Name) and d.id in ("property", "cached_property")
        for d in node.decorator_list
    )


def test_the_api_pages_list_every_public_name_once() -> None:
    """A name exported without an entry (or an entry for a name no longer exported)
    fails here: add ``::: cdkd_core.plugin_api.NAME`` to docs/api/plugin-api.md."""
    documented = _documented()
    duplicated = sorted({d for d in documented if documented.count(d) > 1})
    assert not duplicated, f"listed twice in docs/api/: {duplicated}"
    public = set(_public())
    assert not public - set(documented), (
        f"missing from docs/api/: {sorted(public - set(documented))}"
    )
    assert not set(documented) - public, f"not public: {sorted(set(documented) - public)}"


def test_every_plugin_api_name_is_imported_where_the_generator_finds_it() -> None:
    """The site's generator reads the source: each name of ``__all__`` must be imported in
    plugin_api (the ``TYPE_CHECKING`` block), from the module that defines it."""
    sources = _plugin_api_sources()
    missing = [n for n in plugin_api.__all__ if n not in sources]
    assert not missing, f"add to plugin_api's TYPE_CHECKING imports: {missing}"
    for name in plugin_api.__all__:
        _definition(sources[name], name)


def test_every_public_name_has_args_returns_and_an_example() -> None:
    problems = []
    for identifier, node, doc in _docstrings():
        top_level = identifier.count(".") == 2
        if not doc:
            problems.append(f"{identifier}: no docstring")
            continue
        sections = _sections(doc)
        if re.search(r"^\s*Example:\s*$", doc, re.M):  # griffe shows it as a note, not code
            problems.append(f"{identifier}: 'Example:' (write 'Examples:')")
        if top_level and "Examples" not in sections:
            problems.append(f"{identifier}: no Examples section")
        if isinstance(node, ast.FunctionDef) and not _is_property(node):
            if _parameters(node) and "Args" not in sections:
                problems.append(f"{identifier}: no Args section")
            returns = node.returns
            none = returns is None or (isinstance(returns, ast.Constant) and returns.value is None)
            if not none and not sections & {"Returns", "Yields"}:
                problems.append(f"{identifier}: no Returns section")
            for parameter in _parameters(node) if "Args" in sections else []:
                if not re.search(rf"^\s+\**{parameter}\b.*:", doc, re.M):
                    problems.append(f"{identifier}: Args does not name {parameter!r}")
    assert not problems, "\n".join(problems)


def test_the_docstring_examples_run(tmp_path, monkeypatch) -> None:
    """Every ``>>>`` example of the reference's docstrings runs as written (in a fresh
    namespace each, in a temporary working directory)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CDKD_DATA_DIR", str(tmp_path / "cache"))
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    ran = 0
    for identifier, node, doc in _docstrings():
        if doc and ">>>" in doc:
            test = parser.get_doctest(doc, {}, identifier, None, getattr(node, "lineno", 0))
            runner.run(test, out=sys.stdout.write)
            ran += 1
    assert ran >= 20
    results = runner.summarize(verbose=False)
    assert results.failed == 0, f"{results.failed} docstring example(s) failed (above)"


def _mkdocs() -> str | None:
    """The ``mkdocs`` command of this environment (the ``docs`` extra), else on PATH."""
    beside = Path(sys.executable).parent / "mkdocs"
    return str(beside) if beside.exists() else shutil.which("mkdocs")


@pytest.mark.skipif(_mkdocs() is None, reason="the docs extra is not installed")
def test_the_site_builds_strict(tmp_path) -> None:
    """What .ci/run builds: every page, warnings as errors, an entry per plugin API name."""
    command = [_mkdocs(), "build", "--strict", "--site-dir", str(tmp_path / "site")]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "WARNING" not in done.stderr, done.stderr[-4000:]
    page = (tmp_path / "site" / "api" / "plugin-api" / "index.html").read_text(encoding="utf-8")
    for identifier in _public():
        if identifier.startswith("cdkd_core.plugin_api."):
            assert f'id="{identifier}"' in page, identifier


def test_plugin_api_lists_its_names_once_and_agrees_everywhere():
    """``plugin_api``'s one name list (its lazy map, ``_SOURCES``) is what ``__all__``
    exports, what type checkers see imported, what its docstring and the plugin guide's
    table name: none of them may drift from it."""
    listed = set(plugin_api._LAZY) | {"Register", "hookimpl"}
    assert set(plugin_api.__all__) == listed
    assert set(_plugin_api_sources()) == listed
    doc = plugin_api.__doc__ or ""
    in_doc = set(re.findall(r":(?:class|func|data):`([A-Za-z_]+)`", doc))
    assert in_doc == listed, (sorted(listed - in_doc), sorted(in_doc - listed))
    guide = (ROOT / "docs" / "writing-plugins.md").read_text(encoding="utf-8")
    table = guide[guide.index("| what | names in `cdkd_core.plugin_api` |") :]
    table = table[: table.index("\n\n")]
    in_table = set(re.findall(r"`([A-Za-z_]+)`", table)) - {"cdkd_core"}
    assert in_table - {"Config"} == listed, (sorted(listed - in_table), sorted(in_table - listed))


def test_cdkd_core_lists_its_names_once_and_shares_the_component_bases():
    """``cdkd_core``'s one name list (``_SOURCES``) is what ``__all__`` exports, what type
    checkers see imported and what its docstring names; the component base classes it
    re-exports are the very objects ``plugin_api`` exports."""
    listed = set(cdkd_core._LAZY) | {"hookimpl", "hookspec", "__version__"}
    assert set(cdkd_core.__all__) == listed
    imported = set()
    for node in ast.walk(_tree("cdkd_core")):
        if isinstance(node, ast.ImportFrom) and _reexported_from(node.module):
            imported.update(alias.asname or alias.name for alias in node.names)
    assert imported == listed
    in_doc = set(re.findall(r":(?:class|func|data):`([A-Za-z_]+)`", cdkd_core.__doc__ or ""))
    assert in_doc == listed, (sorted(listed - in_doc), sorted(in_doc - listed))
    for module, names in cdkd_core._SOURCES.items():
        for name in names:
            assert getattr(cdkd_core, name) is getattr(import_module(module), name), name
    shared = set(cdkd_core.__all__) & set(plugin_api.__all__)
    assert {"Domain", "Loss", "hookimpl"} <= shared
    for name in shared:
        assert getattr(cdkd_core, name) is getattr(plugin_api, name), name


def _reexported_from(module: str | None) -> bool:
    """Whether an import from ``module`` re-exports names (the lazy-export helper does not)."""
    return bool(module) and module.startswith("cdkd_") and module != "cdkd_core.lazy_exports"
