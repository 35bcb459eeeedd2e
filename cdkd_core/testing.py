"""Pytest fixtures for plugin authors: a plugin host, a tiny config, a run helper, the CLI.

Opt in from your tests' ``conftest.py`` and name your plugin in ``cdkd_plugins``::

    import pytest

    import cdkd_whiten

    pytest_plugins = ["cdkd_core.testing"]


    @pytest.fixture
    def cdkd_plugins():
        return [("whiten", cdkd_whiten)]

Fixtures: ``cdkd_plugins`` (override it), ``make_cdkd_host``, ``cdkd_host``,
``tiny_domain``, ``tiny_config``, ``run_tiny_pipeline``, ``cdkd_cli``. The plain functions
:func:`make_host`, :func:`tiny_pipeline_config` and :func:`invoke_cli` work outside pytest
too. Nothing here runs on import; the fixtures that train set one torch thread.
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

    from cdkd_core.pipeline import RunResult
    from cdkd_core.plugins import PluginHost

#: A plugin for :func:`make_host`: a module with ``@hookimpl`` functions (named after the
#: module), or a ``(name, module_or_object)`` pair.
PluginSpec = ModuleType | tuple[str, object]

#: The domain of ``tiny_domain``: 178 wines, 13 features, 3 classes (scikit-learn's copy).
TINY_DOMAIN: dict[str, Any] = {"name": "sklearn.wine", "role": "source"}

#: The second source domain of ``tiny_config``: 200 of the 569 breast-cancer FNA samples.
SECOND_DOMAIN: dict[str, Any] = {
    "name": "sklearn.breast_cancer",
    "role": "source",
    "params": {"max_examples": 200},
}


def tiny_pipeline_config(domain: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A two-domain pipeline config that trains in a second or two on one CPU thread:
    ``domain`` (default :data:`TINY_DOMAIN`) and 200 breast-cancer samples as sources, an
    mlp teacher of width 32 and student of width 8, a 4-dimensional ``pca`` encoder,
    ``ce`` + ``kd`` + ``hint`` losses, 2 epochs on the CPU. A new dict each call."""
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
    """A :class:`~cdkd_core.plugins.PluginHost` with the built-ins and ``plugins`` loaded
    in-process (installed plugins too with ``entry_points=True``); raises
    :class:`~cdkd_core.errors.PluginError` naming each given plugin that failed."""
    from cdkd_core.errors import PluginError
    from cdkd_core.plugins import PluginHost

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
    to return your plugin, e.g. ``[("whiten", cdkd_whiten)]`` (default: none)."""
    return []


@pytest.fixture
def make_cdkd_host() -> Callable[..., PluginHost]:
    """A factory: ``make_cdkd_host(*plugins, entry_points=False)`` is :func:`make_host`."""
    return make_host


@pytest.fixture
def cdkd_host(cdkd_plugins: list[PluginSpec]) -> PluginHost:
    """A plugin host with the built-ins and ``cdkd_plugins`` loaded in-process (installed
    plugins stay out, so the test sees exactly these); fails if one of them failed."""
    return make_host(*cdkd_plugins)


@pytest.fixture
def tiny_domain() -> dict[str, Any]:
    """A small real domain as a config entry (``sklearn.wine`` as a source): append it to
    ``domains`` or change its ``role``."""
    return copy.deepcopy(TINY_DOMAIN)


@pytest.fixture
def tiny_config(tiny_domain: dict[str, Any]) -> dict[str, Any]:
    """A pipeline config dict that trains in seconds (:func:`tiny_pipeline_config` over
    ``tiny_domain``); change it in a test to put your component in, then
    ``run_tiny_pipeline()``."""
    return tiny_pipeline_config(tiny_domain)


@pytest.fixture
def run_tiny_pipeline(
    cdkd_host: PluginHost, tiny_config: dict[str, Any], tmp_path: Path
) -> Callable[..., RunResult]:
    """``run_tiny_pipeline(config=None, *, host=None)`` runs a pipeline (default: the
    test's ``tiny_config``, as changed so far) with ``cdkd_host`` into ``tmp_path/runs`` on
    one torch thread and returns its :class:`~cdkd_core.pipeline.RunResult`."""

    def run(
        config: Mapping[str, Any] | None = None, *, host: PluginHost | None = None
    ) -> RunResult:
        import torch

        from cdkd_core.pipeline import run_pipeline

        torch.set_num_threads(1)
        chosen = copy.deepcopy(dict(config if config is not None else tiny_config))
        return run_pipeline(chosen, host=host or cdkd_host, output=tmp_path / "runs")

    return run


@pytest.fixture
def cdkd_cli() -> Callable[..., Result]:
    """``cdkd_cli("components", "encoders", env=None, input=None)`` runs the ``cdkd``
    command in-process (:func:`invoke_cli`) and returns Click's result (``exit_code``,
    ``stdout``, ``stderr``, ``output``, ``exception``)."""
    return invoke_cli


def _as_pairs(plugins: Iterable[PluginSpec]) -> list[tuple[str, object]]:
    """``plugins`` as ``(name, object)`` pairs (a bare module is named after itself)."""
    return [p if isinstance(p, tuple) else (p.__name__, p) for p in plugins]
