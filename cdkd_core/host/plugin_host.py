"""The plugin host: loads built-in and installed plugins and collects their components.

Built-ins are ordinary plugin modules registered through the same hooks as installed
plugins (entry-point group ``cdkd``). Each plugin's hook implementation is called on its
own: one that fails to import or raises is recorded with its error and the others still
register.

Name clashes: when two plugins register one name within a kind, both components stay
registered under their qualified names ``<plugin>:<name>`` (e.g. ``cdkd.encoders:pca``,
the plugin being its entry-point name) and the bare name is refused at use, naming both
plugins; the clash is recorded against the later plugin, whose other components stay.
"""

from __future__ import annotations

import difflib
import os
import re
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import pluggy

from cdkd_core.components.kinds import KINDS, kind_label
from cdkd_core.errors import ConfigError
from cdkd_core.host import hookspecs
from cdkd_core.host.builtins import builtin_plugins, kind_plugin

ENTRY_POINT_GROUP = "cdkd"
DISABLE_ENV = "CDKD_DISABLE_PLUGINS"
#: The core's own plugins (plugin name -> module), registered like any other plugin.
BUILTIN_PLUGINS = builtin_plugins(KINDS)
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$")


def base_class(kind: str) -> type:
    """The class every component of ``kind`` subclasses."""
    from cdkd_core.components.architecture import Architecture
    from cdkd_core.components.domain import Domain
    from cdkd_core.components.encoder import KnowledgeEncoder
    from cdkd_core.components.feedback import FeedbackStrategy
    from cdkd_core.components.loss import Loss

    return {
        "domains": Domain,
        "architectures": Architecture,
        "encoders": KnowledgeEncoder,
        "losses": Loss,
        "feedback": FeedbackStrategy,
    }[kind]


@dataclass
class ComponentInfo:
    """A registered component and the plugin that registered it."""

    kind: str
    name: str
    cls: type
    plugin: str

    @property
    def qualified(self) -> str:
        """``<plugin>:<name>``: the name that selects this component even when another
        plugin registers the same name."""
        return f"{self.plugin}:{self.name}"

    @property
    def summary(self) -> str:
        """First line of the component's docstring."""
        return self.cls.summary()


@dataclass
class PluginInfo:
    """A plugin as the host saw it: where it came from, what it registered, what failed."""

    name: str
    source: str
    version: str | None = None
    module: str | None = None
    hooks: list[str] = field(default_factory=list)
    components: dict[str, list[str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    error_details: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing about this plugin failed."""
        return not self.errors

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready view (as printed by ``cdkd plugins list --json``)."""
        return {
            "name": self.name,
            "version": self.version,
            "source": self.source,
            "module": self.module,
            "hooks": self.hooks,
            "components": self.components,
            "ok": self.ok,
            "errors": self.errors,
        }


class ComponentValidationError(Exception):
    """Raised by ``register`` for a component class that breaks the contract."""


def disabled_from_env() -> set[str]:
    """Plugin names listed (comma- or space-separated) in ``CDKD_DISABLE_PLUGINS``."""
    return {p for p in re.split(r"[,\s]+", os.environ.get(DISABLE_ENV, "")) if p}


class PluginHost:
    """Loads plugins and holds the component registry (one namespace per kind).

    ``entry_points=False`` skips installed plugins (only built-ins and ``plugins``);
    ``disabled`` names plugins to skip (default: ``CDKD_DISABLE_PLUGINS``);
    ``plugins`` are extra in-process ``(name, module_or_object)`` pairs.
    """

    def __init__(
        self,
        *,
        entry_points: bool = True,
        disabled: Iterable[str] | None = None,
        plugins: Iterable[tuple[str, object]] = (),
    ) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.disabled = set(disabled) if disabled is not None else disabled_from_env()
        self.plugins: dict[str, PluginInfo] = {}
        # kind -> name -> the components of that name, in registration order (several
        # only when plugins clash)
        self._registry: dict[str, dict[str, list[ComponentInfo]]] = {kind: {} for kind in KINDS}
        for kind, (name, module) in zip(KINDS, BUILTIN_PLUGINS.items(), strict=True):
            self._add(name, "builtin", lambda k=kind: kind_plugin(k), module=module)
        if entry_points:
            self._load_entry_points()
        for name, obj in plugins:
            self._add(name, "in-process", lambda o=obj: o)
        self._collect()

    # -- loading -------------------------------------------------------------------------
    def _load_entry_points(self) -> None:
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            dist = getattr(ep, "dist", None)
            version = dist.version if dist is not None else None
            self._add(ep.name, "entry point", ep.load, version=version, module=ep.value)

    def _add(
        self,
        name: str,
        source: str,
        load: Any,
        version: str | None = None,
        module: str | None = None,
    ) -> None:
        if name in self.disabled:
            return
        if source == "builtin":
            from cdkd_core import __version__

            version = __version__
        if name in self.plugins:
            info = PluginInfo(name=f"{name} ({source})", source=source, version=version)
            info.errors.append(f"a plugin named {name!r} is already loaded; this one is skipped")
            self.plugins[info.name] = info
            return
        info = PluginInfo(name=name, source=source, version=version, module=module)
        self.plugins[name] = info
        try:
            obj = load()
            self.pm.register(obj, name=name)
        except Exception as exc:  # a broken plugin must not break the rest
            self._fail(info, f"failed to load: {type(exc).__name__}: {exc}")
            return
        info.hooks = sorted(
            caller.name for caller in self.pm.get_hookcallers(obj) or [] if caller.name
        )
        unknown = [
            attr
            for attr in dir(obj)
            if hasattr(getattr(obj, attr, None), f"{hookspecs.PROJECT}_impl")
            and attr.removeprefix("register_") not in KINDS
        ]
        for attr in unknown:
            info.errors.append(f"implements unknown hook {attr!r} (ignored)")

    def _fail(self, info: PluginInfo, message: str) -> None:
        info.errors.append(message)
        info.error_details.append(traceback.format_exc())

    # -- registration --------------------------------------------------------------------
    def _collect(self) -> None:
        for kind in KINDS:
            caller = getattr(self.pm.hook, f"register_{kind}")
            for impl in caller.get_hookimpls():  # in registration order
                info = self.plugins[impl.plugin_name]
                pending: dict[str, ComponentInfo] = {}

                def register(cls: type, _kind=kind, _plugin=info.name, _pending=pending) -> None:
                    self._check(_kind, cls, _plugin, _pending)
                    _pending[cls.name] = ComponentInfo(_kind, cls.name, cls, _plugin)

                try:
                    impl.function(register=register)
                except Exception as exc:
                    self._fail(info, f"register_{kind} failed: {type(exc).__name__}: {exc}")
                    continue
                for name, component in pending.items():
                    others = self._registry[kind].setdefault(name, [])
                    for other in others:
                        info.errors.append(
                            f"{kind_label(kind)} name {name!r} is registered by plugin "
                            f"{other.plugin!r} too: both are kept, and a config names one as "
                            f"{other.qualified!r} or {component.qualified!r} (the bare name "
                            "is refused)"
                        )
                    others.append(component)
                if pending:
                    info.components.setdefault(kind, []).extend(pending)

    def _check(self, kind: str, cls: Any, plugin: str, pending: dict[str, ComponentInfo]) -> None:
        from pydantic import BaseModel

        base = base_class(kind)
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise ComponentValidationError(
                f"{cls!r} registered as {kind_label(kind)} is not a subclass of {base.__name__}"
            )
        name = getattr(cls, "name", "")
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise ComponentValidationError(
                f"{cls.__name__}.name={name!r} is not a lowercase name "
                "(letters, digits, '_', dot-separated parts)"
            )
        config = getattr(cls, "Config", None)
        if not (isinstance(config, type) and issubclass(config, BaseModel)):
            raise ComponentValidationError(f"{cls.__name__}.Config is not a pydantic model")
        if not (cls.__dict__.get("__doc__") or "").strip():
            raise ComponentValidationError(f"{cls.__name__} has no docstring")
        other = pending.get(name)
        if other is not None:
            raise ComponentValidationError(
                f"{kind} name {name!r} is registered by plugin {other.plugin!r}; "
                f"plugin {plugin!r} tried to register it again"
            )

    # -- lookup ---------------------------------------------------------------------------
    def components(self, kind: str) -> dict[str, ComponentInfo]:
        """Registered components of ``kind`` by the name a config uses: the bare name, or
        ``<plugin>:<name>`` for each of the components whose name plugins clash on."""
        if kind not in self._registry:
            raise ConfigError(f"unknown component kind {kind!r}; choose one of {list(KINDS)}")
        listing: dict[str, ComponentInfo] = {}
        for name, infos in self._registry[kind].items():
            if len(infos) == 1:
                listing[name] = infos[0]
            else:
                listing.update((info.qualified, info) for info in infos)
        return listing

    def clashes(self, kind: str) -> dict[str, list[ComponentInfo]]:
        """Names of ``kind`` that several plugins register, with their components."""
        return {name: list(infos) for name, infos in self._registry[kind].items() if len(infos) > 1}

    def info(self, kind: str, name: str, where: str | None = None) -> ComponentInfo:
        """The registered component ``name`` (or ``<plugin>:<name>``) of ``kind``; a
        :class:`ConfigError` when it is unknown (with suggestions and, from
        ``registry.yaml``, the package to install) or when several plugins register the
        bare name (naming them)."""
        plugin, _, bare = name.rpartition(":")
        infos = self._registry[kind].get(bare, [])
        if plugin:
            found = [info for info in infos if info.plugin == plugin]
            if found:
                return found[0]
            raise ConfigError(self.unknown_message(kind, name, where))
        if len(infos) == 1:
            return infos[0]
        if infos:
            place = f"{where}: " if where else ""
            plugins = " and ".join(self.describe(info.plugin) for info in infos)
            choices = " or ".join(repr(info.qualified) for info in infos)
            raise ConfigError(
                f"{place}{kind_label(kind)} {name!r} is registered by {len(infos)} plugins "
                f"({plugins}); write {choices} to choose one"
            )
        raise ConfigError(self.unknown_message(kind, name, where))

    def get(self, kind: str, name: str, where: str | None = None) -> type:
        """The component class ``name`` (or ``<plugin>:<name>``) of ``kind``; see
        :meth:`info` for the errors."""
        return self.info(kind, name, where).cls

    def provider(self, kind: str, component: Any) -> ComponentInfo | None:
        """The registered component whose class is ``component``'s (an instance or a
        class), or the closest registered base class; None when there is none."""
        cls = component if isinstance(component, type) else type(component)
        best: ComponentInfo | None = None
        for infos in self._registry.get(kind, {}).values():
            for info in infos:
                if info.cls is cls:
                    return info
                if issubclass(cls, info.cls) and (best is None or issubclass(info.cls, best.cls)):
                    best = info
        return best

    def describe(self, plugin: str) -> str:
        """``'name' VERSION`` of a loaded plugin (the way every message names a plugin)."""
        version = self.plugins[plugin].version if plugin in self.plugins else None
        return f"{plugin!r}" + (f" {version}" if version else "")

    def unknown_message(self, kind: str, name: str, where: str | None = None) -> str:
        """The message for an unknown component name."""
        from cdkd_core.host.catalog import provider_of

        known = sorted(self.components(kind))
        label = kind_label(kind)
        place = f"{where}: " if where else ""
        plugin, _, bare = name.rpartition(":")
        parts = [f"{place}unknown {label} {name!r}"]
        if plugin and plugin not in self.plugins:
            parts.append(f"no plugin named {plugin!r} is loaded")
        elif plugin:
            parts.append(f"plugin {plugin!r} registers no {label} {bare!r}")
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        if close:
            parts.append(f"did you mean {', '.join(repr(c) for c in close)}")
        entry = provider_of(kind, bare)
        if entry is not None:
            failed = self.plugins.get(entry["name"])
            if failed is not None and not failed.ok:
                parts.append(
                    f"it comes from plugin {entry['name']!r}, which failed: "
                    + "; ".join(failed.errors)
                )
            else:
                parts.append(
                    f"it is provided by {entry['package']!r}: "
                    f"install it with `cdkd plugins install {entry['name']}`"
                )
        parts.append(f"available: {', '.join(known) if known else '(none)'}")
        return "; ".join(parts)

    def blame(self, exc: BaseException) -> tuple[PluginInfo, ComponentInfo | None] | None:
        """The plugin (not a built-in) whose code raised ``exc``, found from the innermost
        traceback frame in one of its modules, and the component whose method was running
        there if any; None when no plugin code is on the traceback."""
        owners: dict[str, str] = {}  # module -> plugin
        packages: dict[str, str] = {}  # top-level package -> plugin (installed plugins)
        classes: list[ComponentInfo] = []
        for kind in KINDS:
            for infos in self._registry[kind].values():
                for info in infos:
                    if info.plugin in BUILTIN_PLUGINS:
                        continue
                    owners[info.cls.__module__] = info.plugin
                    classes.append(info)
        for plugin in self.plugins.values():
            if plugin.source == "entry point" and plugin.module:
                packages[plugin.module.split(":")[0].split(".")[0]] = plugin.name
        frames = [frame for frame, _ in traceback.walk_tb(exc.__traceback__)]
        for i in range(len(frames) - 1, -1, -1):
            module = str(frames[i].f_globals.get("__name__", ""))
            name = owners.get(module) or packages.get(module.split(".")[0])
            if name is None:
                continue
            component = None
            for frame in reversed(frames[: i + 1]):
                obj = frame.f_locals.get("self", frame.f_locals.get("cls"))
                cls = obj if isinstance(obj, type) else type(obj)
                component = next(
                    (c for c in classes if c.plugin == name and issubclass(cls, c.cls)), None
                )
                if component is not None:
                    break
            return self.plugins[name], component
        return None

    def failed_plugins(self) -> list[PluginInfo]:
        """Plugins with errors."""
        return [p for p in self.plugins.values() if not p.ok]
