"""Naming the plugin (its version and component) behind an error raised in its code."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cdkd_core.components.contracts import ContractError
from cdkd_core.errors import PluginError

if TYPE_CHECKING:
    from cdkd_core.host.plugin_host import PluginHost


def plugin_error(
    host: PluginHost, exc: BaseException, stage: str | None = None
) -> PluginError | None:
    """A :class:`PluginError` naming the plugin (and its version and component) whose code
    raised ``exc``, and the pipeline ``stage`` it was in; None when the error did not come
    from a plugin, and for ``KeyboardInterrupt`` (the user's Ctrl-C, never a plugin's
    failure). A ``SystemExit`` or other ``BaseException`` from plugin code is blamed like
    an ``Exception``: a plugin calling ``sys.exit()`` must not end the run silently."""
    from cdkd_core.host.plugin_host import failure_text, kind_label

    if isinstance(exc, KeyboardInterrupt):
        return None

    blamed = host.blame(exc)
    if blamed is None:
        return None
    plugin, component = blamed
    where = f", {kind_label(component.kind)} {component.name!r}," if component is not None else ""
    during = f" during {stage}" if stage else ""
    return PluginError(
        f"plugin {host.describe(plugin.name)}{where} failed{during}: {failure_text(exc)} "
        "(run with --debug for the traceback)"
    )


def attribute_contract(host: PluginHost, exc: ContractError, stage: str | None) -> None:
    """Name the plugin (and version) that provides the component of a broken contract."""
    info = host.provider(exc.kind, exc.cls)
    plugin = host.plugins.get(info.plugin) if info is not None else None
    if plugin is not None:
        exc.attribute(plugin.name, plugin.version, stage)
    else:
        exc.attribute(None, None, stage)
