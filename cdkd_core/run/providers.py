"""Which plugin (and version) provided each component of a run: ``providers.json``.

A run directory records, for every component its config uses (default stems included),
the plugin that registered it and the plugin's version. ``cdkd run --resume`` compares
that record with the plugins installed now and refuses a component whose provider or
version changed, so a resumed run never mixes two implementations.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from cdkd_core.errors import ConfigError

if TYPE_CHECKING:
    from cdkd_core.config.models import PipelineConfig
    from cdkd_core.host.plugin_host import PluginHost

PROVIDERS = "providers.json"


def used_components(config: PipelineConfig) -> list[tuple[str, str]]:
    """``(kind, name)`` of every component ``config`` names, as written there (``ce`` is
    always used: teacher and baseline train with it)."""
    used = [("domains", entry.name) for entry in config.domains]
    if config.teacher.model is not None:
        used.append(("architectures", config.teacher.model.name))
    for spec in (config.teacher, config.student):
        if spec.trunk is not None:
            used.append(("architectures", spec.trunk.name))
        if spec.head is not None:
            used.append(("architectures", spec.head.name))
        used += [("architectures", ref.name) for ref in spec.stems.values()]
    used.append(("encoders", config.encoder.name))
    used += [("losses", ref.name) for ref in config.losses]
    used += [("losses", "ce"), ("feedback", config.feedback.name)]
    return list(dict.fromkeys(used))


def provider_record(
    config: PipelineConfig, host: PluginHost, stems: Iterable[type] = ()
) -> dict[str, dict[str, dict[str, str | None]]]:
    """``{kind: {name: {"plugin": ..., "version": ...}}}`` for every component ``config``
    uses, and the architectures ``stems`` (classes of the default stems it was given)."""
    record: dict[str, dict[str, dict[str, str | None]]] = {}
    infos = [(kind, name, host.info(kind, name)) for kind, name in used_components(config)]
    for cls in stems:
        info = host.provider("architectures", cls)
        if info is not None:
            infos.append(("architectures", info.name, info))
    for kind, name, info in infos:
        plugin = host.plugins.get(info.plugin)
        version = plugin.version if plugin is not None else None
        record.setdefault(kind, {})[name] = {"plugin": info.plugin, "version": version}
    return record


def check_providers(run_dir: Path, host: PluginHost) -> None:
    """Refuse to resume ``run_dir`` when a component it used now comes from another plugin
    or another version of its plugin (a run without ``providers.json`` is not checked)."""
    from cdkd_core.components.kinds import kind_label
    from cdkd_core.files import read_run_file

    path = Path(run_dir) / PROVIDERS
    if not path.is_file():
        return
    where = f"--resume {run_dir}"
    recorded = read_run_file(path)
    problems = []
    for kind, components in sorted(recorded.items()):
        for name, was in sorted(components.items()):
            label = f"{kind_label(kind)} {name!r}"
            then = f"plugin {was.get('plugin')!r} {was.get('version')}"
            try:
                info = host.info(kind, name)
            except ConfigError as exc:
                problems.append(f"{label} came from {then}; now: {exc}")
                continue
            plugin = host.plugins.get(info.plugin)
            now = f"plugin {info.plugin!r} {plugin.version if plugin is not None else None}"
            if now != then:
                problems.append(f"{label} came from {then} and now comes from {now}")
    if problems:
        raise ConfigError(
            f"{where}: the run's components changed since it started: "
            + "; ".join(problems)
            + f" (see {PROVIDERS}); reinstall the versions it used, or start a new run"
        )
