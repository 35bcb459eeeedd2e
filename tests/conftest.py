"""Shared fixtures: one thread, only the project's own installed plugins (``CDKD_PLUGINS``),
a plugin host without installed plugins, and the fixtures cdkd ships for plugin tests
(:mod:`cdkd_core.testing`: ``tiny_config``, ``cdkd_host``, ``run_tiny_pipeline``,
``cdkd_cli``, ...)."""

from __future__ import annotations

import os
from typing import Any

import pytest
import torch

#: the installed plugins the core's tests see: the project's own, whatever else is installed
#: (set here, at import, so subprocesses inherit it; a test that installs or injects another
#: plugin extends it with ``monkeypatch.setenv``)
PROJECT_PLUGINS = ("medical", "finance", "nlp")
os.environ["CDKD_PLUGINS"] = ",".join(PROJECT_PLUGINS)

# the shipped fixtures (a pytest plugin), with pytest's assertion messages in their checks
pytest.register_assert_rewrite("cdkd_core.testing")
pytest_plugins = ["cdkd_core.testing"]

from cdkd_core.testing import tiny_pipeline_config  # noqa: E402

torch.set_num_threads(1)

#: the shipped tiny config (:func:`cdkd_core.testing.tiny_pipeline_config`), for tests that
#: build a config at import time
TINY: dict[str, Any] = tiny_pipeline_config()


@pytest.fixture
def host():
    """Built-in plugins only (installed plugins do not leak into unit tests)."""
    from cdkd_core.host.plugin_host import PluginHost

    return PluginHost(entry_points=False)


#: the test files that take longest (subprocesses: kill and resume, torchrun; whole runs),
#: slowest first: they start first, so pytest-xdist's two workers (``--dist loadfile``: a
#: file to a worker) fill the end with short files and finish together
SLOW_FILES = (
    "test_resume.py",
    "test_distributed.py",
    "test_class_identity.py",
    "test_scaffold.py",
    "test_pipeline.py",
    "test_adaptation.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow files' tests first (in :data:`SLOW_FILES` order), the rest as collected."""
    rank = {name: i for i, name in enumerate(SLOW_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
