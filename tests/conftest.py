"""Shared fixtures: one thread, a plugin host without installed plugins, tiny configs."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch

torch.set_num_threads(1)

TINY: dict[str, Any] = {
    "name": "tiny",
    "seed": 0,
    "domains": [
        {"name": "sklearn.wine", "role": "source"},
        {"name": "sklearn.breast_cancer", "role": "source"},
    ],
    "teacher": {"trunk": {"name": "mlp", "params": {"width": 32, "depth": 1}}},
    "student": {"trunk": {"name": "mlp", "params": {"width": 8, "depth": 1}}},
    "encoder": {"name": "pca", "params": {"dim": 4}},
    "losses": [
        {"name": "ce"},
        {"name": "kd", "params": {"temperature": 2.0}},
        {"name": "hint", "weight": 0.5},
    ],
    "train": {"epochs": 2, "batch_size": 64, "lr": 0.01, "device": "cpu"},
}


@pytest.fixture
def tiny_config() -> dict[str, Any]:
    """A two-domain pipeline that trains in about a second."""
    return copy.deepcopy(TINY)


@pytest.fixture
def host():
    """Built-in plugins only (installed plugins do not leak into unit tests)."""
    from cdkd_core.host.plugin_host import PluginHost

    return PluginHost(entry_points=False)
