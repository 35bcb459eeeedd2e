"""Stage-level pieces for benchmarks and studies: **unstable**, no part of the public API.

A benchmark that measures a piece of the pipeline rather than a whole run (cdkd's training
loop against a hand-written one, a teacher recipe scored on val at its selected epoch, the
latency of a finished run's networks) needs the pieces the stages are made of. This module
is the one place they are imported from, so that what such code depends on is visible and
checked (an import-linter contract keeps ``benchmarks/`` to ``cdkd_core``,
``cdkd_core.plugin_api`` and this module). Everything here may change, move or go in any
release, without deprecation. A whole run goes through :func:`cdkd_core.run_pipeline` and
is read back from its run directory; a plugin imports ``cdkd_core`` and
``cdkd_core.plugin_api`` only, never this module.

Its one list of names is ``_SOURCES`` (each name and the module that defines it);
``__all__``, the imports for type checkers and this docstring are checked against it
(tests/test_experimental.py). Names are imported on first use, so
``import cdkd_core.experimental`` stays cheap.

- a finished run's pieces: :func:`load_run_teacher`, :func:`load_run_student`,
  :func:`export_run`, :func:`latency_table`, :func:`measure_latency`, :func:`read_metrics`
- the built-in quickstart: :data:`CORE_QUICKSTART`, :func:`quickstart_config`
- data as the runner prepares it: :class:`PreparedDomain`, :func:`prepare_domains`,
  :func:`shots_mask`, :func:`seed_everything`; the seeds a run derives from its own
  (:func:`student_seed`, :func:`domain_seed`, :func:`labelled_seed`)
- networks: :class:`MultiDomainNet`, :func:`build_network`, :func:`build_teacher`,
  :func:`count_parameters`
- the training loop and inference: :func:`fit`, :class:`FitSettings`, :class:`DomainPlan`,
  :class:`TeacherOutputs`, :func:`predict`; metrics :data:`METRICS`, :func:`compute`
- a stage's own steps: :func:`fit_settings`, :func:`domain_plans`, :func:`cross_entropy`
  (as ``train_stage`` sets a fit up), :func:`member_schedule`, :func:`fit_estimators` (as
  the teacher stage trains an ensemble's members and fits a classical teacher),
  :func:`peer_probabilities` (the run's classical peers)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cdkd_core.lazy_exports import lazy_exports

_SOURCES = {
    "cdkd_core.artifacts.export": ("export_run",),
    "cdkd_core.artifacts.latency": ("latency_table",),
    "cdkd_core.artifacts.run_student": ("load_run_student",),
    "cdkd_core.artifacts.run_teacher": ("load_run_teacher",),
    "cdkd_core.config.quickstart": ("CORE_QUICKSTART", "quickstart_config"),
    "cdkd_core.data.preparation": ("PreparedDomain", "prepare_domains"),
    "cdkd_core.data.splits": ("shots_mask",),
    "cdkd_core.engine.fit": ("fit",),
    "cdkd_core.engine.inference": ("predict",),
    "cdkd_core.engine.plans": ("DomainPlan", "TeacherOutputs"),
    "cdkd_core.engine.settings": ("FitSettings",),
    "cdkd_core.metrics": ("METRICS", "compute"),
    "cdkd_core.nets.assembly": ("build_network", "build_teacher"),
    "cdkd_core.nets.network": ("MultiDomainNet", "count_parameters"),
    "cdkd_core.run.footprint": ("measure_latency",),
    "cdkd_core.run.rundir": ("read_metrics",),
    "cdkd_core.seeds": ("domain_seed", "labelled_seed", "student_seed"),
    "cdkd_core.stages.context": ("seed_everything",),
    "cdkd_core.stages.peers": ("peer_probabilities",),
    "cdkd_core.stages.teacher": ("fit_estimators", "member_schedule"),
    "cdkd_core.stages.training": ("cross_entropy", "domain_plans", "fit_settings"),
}
_LAZY, __getattr__, __dir__ = lazy_exports(globals(), _SOURCES)

__all__ = [
    "CORE_QUICKSTART",
    "METRICS",
    "DomainPlan",
    "FitSettings",
    "MultiDomainNet",
    "PreparedDomain",
    "TeacherOutputs",
    "build_network",
    "build_teacher",
    "compute",
    "count_parameters",
    "cross_entropy",
    "domain_plans",
    "domain_seed",
    "export_run",
    "fit",
    "fit_estimators",
    "fit_settings",
    "labelled_seed",
    "latency_table",
    "load_run_student",
    "load_run_teacher",
    "measure_latency",
    "member_schedule",
    "peer_probabilities",
    "predict",
    "prepare_domains",
    "quickstart_config",
    "read_metrics",
    "seed_everything",
    "shots_mask",
    "student_seed",
]

if TYPE_CHECKING:  # pragma: no cover
    from cdkd_core.artifacts.export import export_run
    from cdkd_core.artifacts.latency import latency_table
    from cdkd_core.artifacts.run_student import load_run_student
    from cdkd_core.artifacts.run_teacher import load_run_teacher
    from cdkd_core.config.quickstart import CORE_QUICKSTART, quickstart_config
    from cdkd_core.data.preparation import PreparedDomain, prepare_domains
    from cdkd_core.data.splits import shots_mask
    from cdkd_core.engine.fit import fit
    from cdkd_core.engine.inference import predict
    from cdkd_core.engine.plans import DomainPlan, TeacherOutputs
    from cdkd_core.engine.settings import FitSettings
    from cdkd_core.metrics import METRICS, compute
    from cdkd_core.nets.assembly import build_network, build_teacher
    from cdkd_core.nets.network import MultiDomainNet, count_parameters
    from cdkd_core.run.footprint import measure_latency
    from cdkd_core.run.rundir import read_metrics
    from cdkd_core.seeds import domain_seed, labelled_seed, student_seed
    from cdkd_core.stages.context import seed_everything
    from cdkd_core.stages.peers import peer_probabilities
    from cdkd_core.stages.teacher import fit_estimators, member_schedule
    from cdkd_core.stages.training import cross_entropy, domain_plans, fit_settings
