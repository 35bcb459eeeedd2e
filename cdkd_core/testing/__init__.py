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

Contract checks, one call per kind (the checks a run makes, :mod:`cdkd_core.components.contracts`,
raising ``AssertionError`` with the text a run would print): :func:`check_domain`,
:func:`check_encoder`, :func:`check_loss`, :func:`check_architecture`,
:func:`check_feedback`. Each is a sequence of named checks; :func:`component_checks` yields
them one by one and :func:`parametrize_with_checks` makes one test of each, for every
component of a plugin, as scikit-learn's ``parametrize_with_checks`` does::

    @parametrize_with_checks(["whiten"], plugins=[("whiten", cdkd_whiten)])
    def test_components_keep_their_contracts(component, check):
        check(component)

What a plugin's tests would otherwise take from the core's inside:
:func:`stem_architecture`, :func:`prepare_domains`, :func:`export_run`,
:func:`load_run_student`, :func:`export_formats`.
"""

from __future__ import annotations

from cdkd_core.testing.architecture_checks import check_architecture
from cdkd_core.testing.core_access import (
    export_formats,
    export_run,
    load_run_student,
    prepare_domains,
    stem_architecture,
)
from cdkd_core.testing.domain_checks import check_domain
from cdkd_core.testing.encoder_checks import check_encoder
from cdkd_core.testing.feedback_checks import check_feedback
from cdkd_core.testing.fixtures import (
    SECOND_DOMAIN,
    TINY_DOMAIN,
    PluginSpec,
    cdkd_cli,
    cdkd_host,
    cdkd_plugins,
    invoke_cli,
    make_cdkd_host,
    make_host,
    run_tiny_pipeline,
    tiny_config,
    tiny_domain,
    tiny_pipeline_config,
)
from cdkd_core.testing.loss_checks import check_loss
from cdkd_core.testing.named_checks import (
    ComponentEntry,
    ExpectedFailures,
    component_checks,
    parametrize_with_checks,
)

__all__ = [
    "SECOND_DOMAIN",
    "TINY_DOMAIN",
    "ComponentEntry",
    "ExpectedFailures",
    "PluginSpec",
    "cdkd_cli",
    "cdkd_host",
    "cdkd_plugins",
    "check_architecture",
    "check_domain",
    "check_encoder",
    "check_feedback",
    "check_loss",
    "component_checks",
    "export_formats",
    "export_run",
    "invoke_cli",
    "load_run_student",
    "make_cdkd_host",
    "make_host",
    "parametrize_with_checks",
    "prepare_domains",
    "run_tiny_pipeline",
    "stem_architecture",
    "tiny_config",
    "tiny_domain",
    "tiny_pipeline_config",
]
