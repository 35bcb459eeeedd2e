"""cdkd: cross-domain knowledge distillation with plugins.

The public API: hook markers for plugin authors, the component base classes, and
``load_config`` / ``run_pipeline`` for running a pipeline from Python. Heavy modules are
imported on first use, so ``import cdkd_core`` stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from cdkd_core.host.hookspecs import hookimpl, hookspec
from cdkd_core.version import __version__

_LAZY = {
    "Component": "cdkd_core.components.base",
    "ComponentConfig": "cdkd_core.components.base",
    "Domain": "cdkd_core.components.domain",
    "DomainData": "cdkd_core.components.domain",
    "Split": "cdkd_core.components.domain",
    "Architecture": "cdkd_core.components.architecture",
    "KnowledgeEncoder": "cdkd_core.components.encoder",
    "Loss": "cdkd_core.components.loss",
    "BatchContext": "cdkd_core.components.loss",
    "FeedbackStrategy": "cdkd_core.components.feedback",
    "FeedbackContext": "cdkd_core.components.feedback",
    "PipelineConfig": "cdkd_core.config.models",
    "load_config": "cdkd_core.config.loading",
    "run_pipeline": "cdkd_core.run.runner",
    "load_student": "cdkd_core.artifacts.predict",
    "load_teacher": "cdkd_core.artifacts.predict",
    "PluginHost": "cdkd_core.host.plugin_host",
    "CdkdError": "cdkd_core.errors",
}

__all__ = [
    "Architecture",
    "BatchContext",
    "CdkdError",
    "Component",
    "ComponentConfig",
    "Domain",
    "DomainData",
    "FeedbackContext",
    "FeedbackStrategy",
    "KnowledgeEncoder",
    "Loss",
    "PipelineConfig",
    "PluginHost",
    "Split",
    "__version__",
    "hookimpl",
    "hookspec",
    "load_config",
    "load_student",
    "load_teacher",
    "run_pipeline",
]

if TYPE_CHECKING:  # pragma: no cover
    from cdkd_core.artifacts.predict import load_student, load_teacher
    from cdkd_core.components.architecture import Architecture
    from cdkd_core.components.base import Component, ComponentConfig
    from cdkd_core.components.domain import Domain, DomainData, Split
    from cdkd_core.components.encoder import KnowledgeEncoder
    from cdkd_core.components.feedback import FeedbackContext, FeedbackStrategy
    from cdkd_core.components.loss import BatchContext, Loss
    from cdkd_core.config.loading import load_config
    from cdkd_core.config.models import PipelineConfig
    from cdkd_core.errors import CdkdError
    from cdkd_core.host.plugin_host import PluginHost
    from cdkd_core.run.runner import run_pipeline


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cdkd_core' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
