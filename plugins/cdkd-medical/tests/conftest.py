"""Shared fixtures of the cdkd-medical tests: one thread, a host with this plugin only."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture
def medical_host():
    """The core's built-ins plus this plugin (other installed plugins stay out)."""
    import cdkd_medical

    from cdkd_core import PluginHost

    host = PluginHost(entry_points=False, plugins=[("medical", cdkd_medical)])
    assert host.plugins["medical"].ok, host.plugins["medical"].errors
    return host
