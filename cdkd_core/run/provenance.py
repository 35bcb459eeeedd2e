"""``providers.json``: the plugin and version behind every component a run uses (default
stems included), checked by ``cdkd run --resume``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cdkd_core.config.models import PipelineConfig
from cdkd_core.data.preparation import PreparedDomain
from cdkd_core.files import atomic_write_json
from cdkd_core.nets.assembly import stem_architecture
from cdkd_core.run.providers import PROVIDERS, provider_record

if TYPE_CHECKING:
    from cdkd_core.host.plugin_host import PluginHost


def write_providers(
    run_dir: Path, config: PipelineConfig, host: PluginHost, domains: list[PreparedDomain]
) -> None:
    """Write the run's ``providers.json``."""
    sources = [d for d in domains if d.role == "source"]
    trained = [d for d in domains if d.trained]
    stems = {
        type(stem_architecture(spec, d.modality, host, view))
        for spec, view, of in (
            (config.teacher, "teacher", sources),
            (config.student, "student", trained),
        )
        for d in of
        if d.modality not in spec.stems
    }
    record = provider_record(config, host, sorted(stems, key=lambda c: c.name))
    atomic_write_json(run_dir / PROVIDERS, record)
