"""The plugin host, the tiny config and the CLI a plugin's tests start from:
:data:`PluginSpec`, :func:`make_host`, :data:`TINY_DOMAIN`, :data:`SECOND_DOMAIN`,
:func:`tiny_pipeline_config`, :func:`invoke_cli`, and the pytest fixtures over them
(``cdkd_plugins``, ``make_cdkd_host``, ``cdkd_host``, ``tiny_domain``, ``tiny_config``,
``run_tiny_pipeline``, ``cdkd_cli``). :mod:`cdkd_core.testing` re-exports them all, which is
where pytest finds the fixtures (``pytest_plugins = ["cdkd_core.testing"]``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # pragma: no cover
    from click.testing import Result

    from cdkd_core.host.plugin_host import PluginHost
    from cdkd_core.run.runner import RunResult

PluginSpec = ModuleType | tuple[str, object]
"""A plugin for :func:`make_host`: a module with ``@hookimpl`` functions (named after the
module), or a ``(name, module_or_object)`` pair.

Examples:
    >>> import types
    >>> from cdkd_core.testing import PluginSpec, make_host
    >>> module = types.ModuleType("cdkd_empty")  # a plugin module that registers nothing
    >>> plugins: list[PluginSpec] = [module, ("other", object())]
    >>> host = make_host(*plugins)
    >>> "cdkd_empty" in host.plugins and "other" in host.plugins
    True
"""

TINY_DOMAIN: dict[str, Any] = {"name": "sklearn.wine", "role": "source"}
"""The domain of ``tiny_domain``: 178 wines, 13 features, 3 classes (scikit-learn's copy).

Examples:
    >>> from cdkd_core.testing import TINY_DOMAIN, tiny_pipeline_config
    >>> TINY_DOMAIN
    {'name': 'sklearn.wine', 'role': 'source'}
    >>> tiny_pipeline_config()["domains"][0] == TINY_DOMAIN
    True
"""

SECOND_DOMAIN: dict[str, Any] = {"name": "sklearn.breast_cancer", "role": "source"}
"""The second source domain of ``tiny_config``: the 569 breast-cancer FNA samples.

Examples:
    >>> from cdkd_core.testing import SECOND_DOMAIN, tiny_pipeline_config
    >>> tiny_pipeline_config()["domains"][1] == SECOND_DOMAIN
    True
"""


def tiny_pipeline_config(domain: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A two-domain pipeline config that trains in a second or two on one CPU thread:
    ``domain`` (default :data:`TINY_DOMAIN`) and breast-cancer FNA (569 samples) as sources, an
    mlp teacher of width 32 and student of width 8, a 4-dimensional ``pca`` encoder,
    ``ce`` + ``kd`` + ``hint`` losses, 2 epochs on the CPU. A new dict each call.

    Args:
        domain: The first domain's config entry (copied).

    Returns:
        The config as a dict (what a YAML config reads as), to change and run.

    Examples:
        >>> from cdkd_core.testing import tiny_pipeline_config
        >>> config = tiny_pipeline_config({"name": "sklearn.iris", "role": "target"})
        >>> [d["name"] for d in config["domains"]], config["train"]["epochs"]
        (['sklearn.iris', 'sklearn.breast_cancer'], 2)
    """
    return {
        "name": "tiny",
        "seed": 0,
        "domains": [dict(copy.deepcopy(domain or TINY_DOMAIN)), copy.deepcopy(SECOND_DOMAIN)],
        "teacher": {"trunk": {"name": "mlp", "params": {"width": 32, "depth": 1}}},
        "student": {"trunk": {"name": "mlp", "params": {"width": 8, "depth": 1}}},
        "encoder": {"name": "pca", "params": {"dim": 4}},
        "losses": [
            {"name": "ce"},
            {"name": "kd", "params": {"temperature": 2.0}},
            {"name": "hint", "weight": 0.5},
        ],
        "train": {"epochs": 2, "batch_size": 64, "lr": 0.01, "device": "cpu", "threads": 1},
    }


def make_host(*plugins: PluginSpec, entry_points: bool = False) -> PluginHost:
    """A :class:`~cdkd_core.host.plugin_host.PluginHost` with the built-ins and ``plugins`` loaded
    in-process (installed plugins too with ``entry_points=True``); raises
    :class:`~cdkd_core.errors.PluginError` naming each given plugin that failed.

    Args:
        *plugins: The plugins to load besides the built-ins.
        entry_points: Load the installed plugins (entry points of the group ``cdkd``) too.

    Returns:
        The host: ``components(kind)`` lists the registered components,
        ``get(kind, name)`` returns a component class, ``plugins`` what each plugin
        loaded.

    Raises:
        PluginError: A given plugin failed to load or register (all of them named).

    Examples:
        >>> from cdkd_core.testing import make_host
        >>> host = make_host()
        >>> "pca" in host.components("encoders"), host.get("losses", "kd").name
        (True, 'kd')
    """
    from cdkd_core.errors import PluginError
    from cdkd_core.host.plugin_host import PluginHost

    pairs = _as_pairs(plugins)
    host = PluginHost(entry_points=entry_points, disabled=(), plugins=pairs)
    failed = [
        f"{name}: {'; '.join(host.plugins[name].errors)}"
        for name, _ in pairs
        if name in host.plugins and not host.plugins[name].ok
    ]
    if failed:
        raise PluginError("plugin(s) failed to load or register: " + " | ".join(failed))
    return host


def invoke_cli(
    *args: str, env: Mapping[str, str] | None = None, input: str | None = None
) -> Result:
    """Run ``cdkd ARGS`` in-process (Typer's CliRunner) and return Click's result:
    ``exit_code``, ``stdout``, ``stderr``, ``output`` (both), ``exception``.

    The command builds its own plugin host from installed entry points, as ``cdkd`` does,
    so a plugin shows up here once it is installed (``pip install -e .``).

    Args:
        *args: The command's arguments (``"components", "losses", "--json"``).
        env: Environment variables to set for the command.
        input: Text for its standard input.

    Returns:
        Click's ``Result``.

    Examples:
        >>> import json
        >>> from cdkd_core.testing import invoke_cli
        >>> result = invoke_cli("components", "losses", "--json")
        >>> result.exit_code, "kd" in [c["name"] for c in json.loads(result.stdout)["losses"]]
        (0, True)
    """
    import torch
    from typer.testing import CliRunner

    from cdkd_core.cli import app

    torch.set_num_threads(1)
    try:
        runner = CliRunner(mix_stderr=False)  # Click < 8.2 mixes stderr in by default
    except TypeError:
        runner = CliRunner()  # Click >= 8.2 keeps stdout and stderr apart
    return runner.invoke(app, [str(a) for a in args], env=dict(env or {}), input=input)


@pytest.fixture
def cdkd_plugins() -> list[PluginSpec]:
    """The plugins ``cdkd_host`` loads besides the built-ins; override it in your conftest
    to return your plugin, e.g. ``[("whiten", cdkd_whiten)]`` (default: none).

    Returns:
        A list of :data:`PluginSpec`.

    Examples:
        In the tests' ``conftest.py``:

        ```python
        import pytest

        import cdkd_whiten

        pytest_plugins = ["cdkd_core.testing"]


        @pytest.fixture
        def cdkd_plugins():
            return [("whiten", cdkd_whiten)]
        ```
    """
    return []


@pytest.fixture
def make_cdkd_host() -> Callable[..., PluginHost]:
    """A factory: ``make_cdkd_host(*plugins, entry_points=False)`` is :func:`make_host`.

    Returns:
        :func:`make_host`.

    Examples:
        ```python
        def test_the_built_ins_alone_lack_it(make_cdkd_host):
            assert "whiten" not in make_cdkd_host().components("encoders")
        ```
    """
    return make_host


@pytest.fixture
def cdkd_host(cdkd_plugins: list[PluginSpec]) -> PluginHost:
    """A plugin host with the built-ins and ``cdkd_plugins`` loaded in-process (installed
    plugins stay out, so the test sees exactly these); fails if one of them failed.

    Args:
        cdkd_plugins: The fixture: the plugins to load.

    Returns:
        The host (:func:`make_host`).

    Raises:
        PluginError: One of ``cdkd_plugins`` failed to load or register.

    Examples:
        ```python
        def test_registered_by_the_plugin(cdkd_host):
            info = cdkd_host.components("encoders")["whiten"]
            assert info.plugin == "whiten"
        ```
    """
    return make_host(*cdkd_plugins)


@pytest.fixture
def tiny_domain() -> dict[str, Any]:
    """A small real domain as a config entry (``sklearn.wine`` as a source): append it to
    ``domains`` or change its ``role``.

    Returns:
        A copy of :data:`TINY_DOMAIN`.

    Examples:
        Override it to make your domain the tiny run's first one:

        ```python
        @pytest.fixture
        def tiny_domain():
            return {"name": "whiten.blobs", "role": "source"}
        ```
    """
    return copy.deepcopy(TINY_DOMAIN)


@pytest.fixture
def tiny_config(tiny_domain: dict[str, Any]) -> dict[str, Any]:
    """A pipeline config dict that trains in seconds (:func:`tiny_pipeline_config` over
    ``tiny_domain``); change it in a test to put your component in, then
    ``run_tiny_pipeline()``.

    Args:
        tiny_domain: The fixture: the first domain's entry.

    Returns:
        A new config dict for each test.

    Examples:
        ```python
        def test_trains_with_my_encoder(tiny_config, run_tiny_pipeline):
            tiny_config["encoder"] = {"name": "whiten", "params": {"dim": 4}}
            result = run_tiny_pipeline()
            assert 0.0 <= result.summary["domains"]["sklearn.wine"]["student"] <= 1.0
        ```
    """
    return tiny_pipeline_config(tiny_domain)


@pytest.fixture
def run_tiny_pipeline(
    cdkd_host: PluginHost, tiny_config: dict[str, Any], tmp_path: Path
) -> Callable[..., RunResult]:
    """``run_tiny_pipeline(config=None, *, host=None)`` runs a pipeline (default: the
    test's ``tiny_config``, as changed so far) with ``cdkd_host`` into ``tmp_path/runs`` on
    one torch thread and returns its :class:`~cdkd_core.run.runner.RunResult`.

    Args:
        cdkd_host: The fixture: the host the run uses unless ``host`` is given.
        tiny_config: The fixture: the config run unless ``config`` is given.
        tmp_path: pytest's fixture: where the run directory goes.

    Returns:
        ``run_tiny_pipeline(config=None, *, host=None)``: it returns the ``RunResult``
        (``summary``: the run's ``summary.json`` as a dict; ``run_dir``).

    Examples:
        ```python
        def test_runs_as_a_target(tiny_config, run_tiny_pipeline):
            tiny_config["domains"].append({"name": "whiten.blobs", "role": "target"})
            result = run_tiny_pipeline()
            assert result.summary["domains"]["whiten.blobs"]["sizes"]["test"] > 0
        ```
    """

    def run(
        config: Mapping[str, Any] | None = None, *, host: PluginHost | None = None
    ) -> RunResult:
        import torch

        from cdkd_core.run.runner import run_pipeline

        torch.set_num_threads(1)
        chosen = copy.deepcopy(dict(config if config is not None else tiny_config))
        return run_pipeline(chosen, host=host or cdkd_host, output=tmp_path / "runs")

    return run


@pytest.fixture
def cdkd_cli() -> Callable[..., Result]:
    """``cdkd_cli("components", "encoders", env=None, input=None)`` runs the ``cdkd``
    command in-process (:func:`invoke_cli`) and returns Click's result (``exit_code``,
    ``stdout``, ``stderr``, ``output``, ``exception``).

    Returns:
        :func:`invoke_cli`.

    Examples:
        ```python
        def test_the_cdkd_command_lists_it(cdkd_cli):
            result = cdkd_cli("components", "encoders", "--json")
            assert result.exit_code == 0, result.output
            assert "whiten" in [c["name"] for c in json.loads(result.stdout)["encoders"]]
        ```
    """
    return invoke_cli


def _as_pairs(plugins: Iterable[PluginSpec]) -> list[tuple[str, object]]:
    """``plugins`` as ``(name, object)`` pairs (a bare module is named after itself)."""
    return [p if isinstance(p, tuple) else (p.__name__, p) for p in plugins]
