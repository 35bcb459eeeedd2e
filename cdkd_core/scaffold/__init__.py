"""``cdkd plugins new``: render a pip-installable plugin package from templates.

The templates (``templates/``, shipped as package data) are rendered with
:class:`string.Template`: a package with a ``pyproject.toml`` (setuptools, the ``cdkd``
entry point), one working example component of the chosen kind registered through the
same hook the built-ins use, a README and tests that use :mod:`cdkd_core.testing`.
"""

from __future__ import annotations

import functools
import importlib.util
import random
import re
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from string import Template

from cdkd_core.errors import ScaffoldError

#: ``--kind`` value -> the registry kind (hook ``register_<kind>``).
REGISTRY_KINDS = {
    "encoder": "encoders",
    "domain": "domains",
    "loss": "losses",
    "feedback": "feedback",
    "architecture": "architectures",
}
#: What the example component of each kind is (the package's description).
SUMMARIES = {
    "encoder": "a whitened-PCA knowledge encoder",
    "domain": "a domain that reads a CSV table (an example table is bundled)",
    "loss": "a similarity-preserving distillation loss",
    "feedback": "a feedback strategy that fine-tunes the teacher on what the student misses",
    "architecture": "a residual MLP trunk and stem",
}
_CLASS_SUFFIX = {
    "encoder": "Encoder",
    "domain": "Domain",
    "loss": "Loss",
    "feedback": "Feedback",
    "architecture": "Net",
}
DIST_PATTERN = re.compile(r"^[a-z][a-z0-9]*([-_][a-z0-9]+)*$")
PLUGIN_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
#: Longest NAME: the generated code keeps every line within 100 characters up to it.
MAX_NAME_LENGTH = 30
#: The example table the ``domain`` kind ships: classes, rows per class, numeric features,
#: and the categories of its categorical column (``colour``).
_CSV_CLASSES, _CSV_ROWS, _CSV_FEATURES = ("a", "b", "c"), 80, 4
_CSV_COLOURS = ("red", "green", "blue")


@dataclass(frozen=True)
class PluginNames:
    """Every name a new plugin package uses, derived from the NAME a user gives."""

    dist: str  #: distribution and directory name (``cdkd-whiten``)
    plugin: str  #: entry-point (plugin) name (``whiten``)
    package: str  #: import package (``cdkd_whiten``)
    kind: str  #: ``--kind`` (``encoder``)
    kind_plural: str  #: registry kind (``encoders``)
    module: str  #: module holding the component (``encoder``)
    component: str  #: registered component name (``whiten``; domains ``whiten.blobs``)
    class_name: str  #: component class (``WhitenEncoder``)


def plugin_names(name: str, kind: str) -> PluginNames:
    """The names of plugin ``name`` of ``kind``; a :class:`ScaffoldError` for an invalid
    NAME or kind, a package that would shadow an importable module, or a component name a
    built-in already has."""
    if kind not in REGISTRY_KINDS:
        raise ScaffoldError(f"unknown kind {kind!r}; choose one of {', '.join(REGISTRY_KINDS)}")
    if not DIST_PATTERN.match(name):
        raise ScaffoldError(
            f"invalid plugin name {name!r}: use lowercase letters and digits, starting with "
            "a letter, with single '-' or '_' between parts (e.g. cdkd-whiten)"
        )
    if len(name) > MAX_NAME_LENGTH:
        raise ScaffoldError(
            f"plugin name {name!r} is {len(name)} characters long; use at most {MAX_NAME_LENGTH}"
        )
    plugin = re.sub(r"^cdkd[-_]", "", name).replace("-", "_")
    if name == "cdkd" or not PLUGIN_PATTERN.match(plugin):
        raise ScaffoldError(
            f"invalid plugin name {name!r}: after the optional 'cdkd-' prefix it must start "
            "with a letter and say what the plugin adds (e.g. cdkd-whiten)"
        )
    package = f"cdkd_{plugin}"
    if plugin == "core":
        raise ScaffoldError(f"invalid plugin name {name!r}: package {package} is cdkd's own")
    if importlib.util.find_spec(package) is not None:
        raise ScaffoldError(
            f"a module named {package!r} is already importable here (an installed plugin?); "
            "choose another NAME"
        )
    component = f"{plugin}.blobs" if kind == "domain" else plugin
    taken = _builtin_names(REGISTRY_KINDS[kind])
    if component in taken:
        raise ScaffoldError(
            f"{kind} name {component!r} is taken by the built-in plugin {taken[component]!r}; "
            "choose another NAME"
        )
    camel = "".join(part.capitalize() for part in plugin.split("_") if part)
    suffix = _CLASS_SUFFIX[kind]
    class_name = camel if camel.endswith(suffix) else camel + suffix
    if class_name in _template_names(kind):  # plugin "loss": not `class Loss(Loss)`
        class_name = camel + "Component"
    return PluginNames(
        dist=name,
        plugin=plugin,
        package=package,
        kind=kind,
        kind_plural=REGISTRY_KINDS[kind],
        module=kind,
        component=component,
        class_name=class_name,
    )


@functools.cache
def _template_names(kind: str) -> frozenset[str]:
    """Capitalised words of the templates of ``kind`` (the names they import or define,
    among others), which a generated class name must not shadow."""
    parts = [f"{kind}/component.py.tmpl", f"{kind}/test.py.tmpl", "plugin_init.py.tmpl"]
    return frozenset(w for part in parts for w in re.findall(r"\b[A-Z]\w*", _read(part)))


@functools.cache
def _builtin_names(kind: str) -> dict[str, str]:
    """Names of the core's own components of ``kind`` -> their plugin (they do not change
    while the process runs)."""
    from cdkd_core.host.plugin_host import PluginHost

    host = PluginHost(entry_points=False, disabled=())
    return {name: info.plugin for name, info in host.components(kind).items()}


def cdkd_requirement() -> str:
    """The ``cdkd`` requirement of a new plugin: this release's minor series (``>=0.1,<0.2``)
    before 1.0, its major series after."""
    from cdkd_core.version import __version__

    major, minor = (int(part) for part in __version__.split(".")[:2])
    if major == 0:
        return f"cdkd>=0.{minor},<0.{minor + 1}"
    return f"cdkd>={major}.{minor},<{major + 1}"


def _read(relative: str) -> str:
    """The text of template ``templates/<relative>``."""
    return (resources.files(__package__) / "templates" / relative).read_text(encoding="utf-8")


def _render(relative: str, values: dict[str, str]) -> str:
    """Template ``templates/<relative>`` with ``values`` substituted (all must be given)."""
    return Template(_read(relative)).substitute(values)


def example_csv(seed: int = 0) -> str:
    """The ``domain`` kind's example table: three Gaussian blobs in four numeric features,
    unit noise around centres 2 apart on the axes, and a categorical ``colour`` (the
    class's own colour in 60% of its rows, any colour otherwise); 80 rows each, shuffled
    (deterministic in ``seed``)."""
    rng = random.Random(seed)
    rows = []
    for index, label in enumerate(_CSV_CLASSES):
        centre = [2.0 if j == index else 0.0 for j in range(_CSV_FEATURES)]
        for _ in range(_CSV_ROWS):
            own = rng.random() < 0.6
            colour = _CSV_COLOURS[index] if own else rng.choice(_CSV_COLOURS)
            rows.append([*(f"{c + rng.gauss(0.0, 1.0):.4f}" for c in centre), colour, label])
    rng.shuffle(rows)
    header = [f"x{j + 1}" for j in range(_CSV_FEATURES)] + ["colour", "label"]
    return "\n".join(",".join(row) for row in [header, *rows]) + "\n"


def render_plugin(names: PluginNames) -> dict[str, str]:
    """The files of the package (path relative to its directory -> text)."""
    package, kind = names.package, names.kind
    domain = kind == "domain"  # the one kind that ships a data file
    values = {
        **asdict(names),
        "summary": SUMMARIES[kind],
        "cdkd": cdkd_requirement(),
        "package_data": (
            f'\n[tool.setuptools.package-data]\n"{package}.data" = ["*.csv"]\n' if domain else ""
        ),
        "module_branch": "├──" if domain else "└──",
        "layout_data": "\n│   └── data/blobs.csv" if domain else "",
        "data_bullet": (
            f"\n- `{package}/data/blobs.csv`: the example table, shipped as package data."
            if domain
            else ""
        ),
    }
    values["about"] = _render(f"{kind}/about.md.tmpl", values).rstrip("\n")
    files = {
        "pyproject.toml": _render("pyproject.toml.tmpl", values),
        "README.md": _render("README.md.tmpl", values),
        f"{package}/__init__.py": _render("plugin_init.py.tmpl", values),
        f"{package}/{names.module}.py": _render(f"{kind}/component.py.tmpl", values),
        "tests/conftest.py": _render("conftest.py.tmpl", values),
        f"tests/test_{names.plugin}.py": _render(f"{kind}/test.py.tmpl", values),
    }
    if domain:
        files[f"{package}/data/blobs.csv"] = example_csv()
    return files


def scaffold_plugin(name: str, kind: str, output: Path | str = ".") -> Path:
    """Create the plugin package ``output/name`` with an example component of ``kind`` and
    return its directory; refuses an invalid name and a directory that exists and is not
    empty (:class:`ScaffoldError`)."""
    names = plugin_names(name, kind)
    target = Path(output) / name
    if target.exists() and not target.is_dir():
        raise ScaffoldError(f"{target} exists and is not a directory")
    if target.is_dir() and any(target.iterdir()):
        raise ScaffoldError(f"{target} exists and is not empty; choose another NAME or --output")
    files = render_plugin(names)  # everything rendered before anything is written
    try:
        for relative, text in files.items():
            path = target / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ScaffoldError(f"cannot write {target}: {exc}") from exc
    return target
