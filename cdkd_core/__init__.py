"""cdkd: cross-domain knowledge distillation with plugins.

The Python API: what a notebook or script needs to do what ``cdkd run`` does, and the
marker a plugin's hook implementations carry. Its one list of names is ``_SOURCES`` (each
name and the module that defines it); ``__all__``, the imports for type checkers and this
docstring are checked against it (tests/test_api_reference.py).

- running a pipeline: :func:`load_config`, :class:`PipelineConfig`, :func:`run_pipeline`,
  :class:`PluginHost`
- using what a run wrote: :func:`load_student`, :func:`load_teacher`
- errors: :class:`CdkdError`
- writing a plugin: :data:`hookimpl`, :data:`hookspec`; the component base classes
  :class:`Component`, :class:`ComponentConfig`, :class:`Domain`, :class:`DomainData`,
  :class:`Split`, :class:`Architecture`, :class:`KnowledgeEncoder`, :class:`Loss`,
  :class:`BatchContext`, :class:`FeedbackStrategy`, :class:`FeedbackContext` (the same
  objects as in :mod:`cdkd_core.plugin_api`, the one import path for everything else a
  plugin uses)
- :data:`__version__`

Heavy modules are imported on first use, so ``import cdkd_core`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cdkd_core.host.hookspecs import hookimpl, hookspec
from cdkd_core.lazy_exports import lazy_exports
from cdkd_core.version import __version__

_SOURCES = {
    "cdkd_core.config.loading": ("load_config",),
    "cdkd_core.config.models": ("PipelineConfig",),
    "cdkd_core.run.runner": ("run_pipeline",),
    "cdkd_core.host.plugin_host": ("PluginHost",),
    "cdkd_core.artifacts.predict": ("load_student", "load_teacher"),
    "cdkd_core.errors": ("CdkdError",),
    "cdkd_core.components.base": ("Component", "ComponentConfig"),
    "cdkd_core.components.domain": ("Domain", "DomainData", "Split"),
    "cdkd_core.components.architecture": ("Architecture",),
    "cdkd_core.components.encoder": ("KnowledgeEncoder",),
    "cdkd_core.components.loss": ("BatchContext", "Loss"),
    "cdkd_core.components.feedback": ("FeedbackContext", "FeedbackStrategy"),
}
_LAZY, __getattr__, __dir__ = lazy_exports(globals(), _SOURCES)

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
