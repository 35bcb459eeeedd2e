"""cdkd: cross-domain knowledge distillation with plugins.

The public API: hook markers for plugin authors, the component base classes, and
``load_config`` / ``run_pipeline`` for running a pipeline from Python. Heavy modules are
imported on first use, so ``import cdkd_core`` stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from cdkd_core.hookspecs import hookimpl, hookspec

__version__ = "0.1.0"

_LAZY = {
    "Component": "cdkd_core.component",
    "ComponentConfig": "cdkd_core.component",
    "Domain": "cdkd_core.domain",
    "DomainData": "cdkd_core.domain",
    "Split": "cdkd_core.domain",
    "Architecture": "cdkd_core.architecture",
    "KnowledgeEncoder": "cdkd_core.encoder",
    "Loss": "cdkd_core.loss",
    "BatchContext": "cdkd_core.loss",
    "FeedbackStrategy": "cdkd_core.feedback",
    "FeedbackContext": "cdkd_core.feedback",
    "PipelineConfig": "cdkd_core.config",
    "load_config": "cdkd_core.config",
    "run_pipeline": "cdkd_core.pipeline",
    "PluginHost": "cdkd_core.plugins",
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
    "run_pipeline",
]

if TYPE_CHECKING:  # pragma: no cover
    from cdkd_core.architecture import Architecture
    from cdkd_core.component import Component, ComponentConfig
    from cdkd_core.config import PipelineConfig, load_config
    from cdkd_core.domain import Domain, DomainData, Split
    from cdkd_core.encoder import KnowledgeEncoder
    from cdkd_core.errors import CdkdError
    from cdkd_core.feedback import FeedbackContext, FeedbackStrategy
    from cdkd_core.loss import BatchContext, Loss
    from cdkd_core.pipeline import run_pipeline
    from cdkd_core.plugins import PluginHost


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cdkd_core' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
