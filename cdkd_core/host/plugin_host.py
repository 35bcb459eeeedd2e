"""The plugin host: loads built-in and installed plugins and collects their components.

Built-ins are ordinary plugin modules registered through the same hooks as installed
plugins (entry-point group ``cdkd``). Each plugin's hook implementation is called on its
own: one that fails to import or raises is recorded with its error and the others still
register. Any exception counts, ``SystemExit`` (a plugin calling ``sys.exit()``) and other
``BaseException`` subclasses included; only ``KeyboardInterrupt`` (the user's Ctrl-C) stops
the command.

Names and clashes: every component is reachable by its qualified name ``<plugin>:<name>``
(e.g. ``cdkd.encoders:pca``, the plugin being its entry-point name). A bare name that a
built-in component has always means the built-in, so the defaults keep working whatever is
installed: an installed plugin's component of that name is reachable only qualified, and
the plugin carries a note saying so (it has not failed). When two installed plugins
register one name that no built-in has, the bare name is refused at use, naming both
plugins, and the clash is recorded against the later plugin, whose other components stay.

A component of a plugin that failed to load (or whose hook for the kind raised) is named as
such: ``encoder 'ica' is not available: plugin 'ica' (cdkd-ica 0.1.0) failed to load
(ImportError: ...)`` when that plugin is its plausible provider (by entry-point name,
distribution name, ``<plugin>.`` prefix, or ``registry.yaml``).

Which installed plugins load: all entry points of group ``cdkd``, less those named in
``CDKD_DISABLE_PLUGINS``; when ``CDKD_PLUGINS`` is set, only the entry points it names
(by entry-point or distribution name; empty: none). Built-ins always load.
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
#: When set, only the installed plugins it names load (built-ins always load).
ONLY_ENV = "CDKD_PLUGINS"
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
    #: set when the bare name means another (built-in) component: how to select this one
    note: str | None = None

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
    distribution: str | None = None
    hooks: list[str] = field(default_factory=list)
    components: dict[str, list[str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    error_details: list[str] = field(default_factory=list)
    #: things a user should know that are not failures (a name the built-ins keep)
    notes: list[str] = field(default_factory=list)

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
            "distribution": self.distribution,
            "hooks": self.hooks,
            "components": self.components,
            "ok": self.ok,
            "errors": self.errors,
            "notes": self.notes,
        }


class ComponentValidationError(Exception):
    """Raised by ``register`` for a component class that breaks the contract."""


def _names(value: str) -> set[str]:
    return {p for p in re.split(r"[,\s]+", value) if p}


def disabled_from_env() -> set[str]:
    """Plugin names listed (comma- or space-separated) in ``CDKD_DISABLE_PLUGINS``."""
    return _names(os.environ.get(DISABLE_ENV, ""))


def only_from_env() -> set[str] | None:
    """The installed plugins ``CDKD_PLUGINS`` allows (comma- or space-separated entry-point
    or distribution names; empty: none), or None when it is unset (all of them)."""
    value = os.environ.get(ONLY_ENV)
    return None if value is None else _names(value)


def _normal(name: str) -> str:
    """A plugin, distribution or component name compared loosely (PEP 503 style)."""
    return re.sub(r"[-_.]+", "-", name).lower()


class PluginHost:
    """Loads plugins and holds the component registry (one namespace per kind).

    ``entry_points=False`` skips installed plugins (only built-ins and ``plugins``);
    ``disabled`` names plugins to skip (default: ``CDKD_DISABLE_PLUGINS``);
    ``only``, when not None, names the installed plugins to load, by entry-point or
    distribution name (default: ``CDKD_PLUGINS`` where set, else all);
    ``plugins`` are extra in-process ``(name, module_or_object)`` pairs.
    """

    def __init__(
        self,
        *,
        entry_points: bool = True,
        disabled: Iterable[str] | None = None,
        only: Iterable[str] | None = None,
        plugins: Iterable[tuple[str, object]] = (),
    ) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.disabled = set(disabled) if disabled is not None else disabled_from_env()
        self.only = set(only) if only is not None else only_from_env()
        self.plugins: dict[str, PluginInfo] = {}
        #: installed plugins found but not loaded (``disabled``, or not in ``only``)
        self.skipped: set[str] = set()
        # plugin -> what failed: "load" (its import) or a kind (its hook for that kind) ->
        # "ExcType: message"
        self._failures: dict[str, dict[str, str]] = {}
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
        only = {_normal(name) for name in self.only} if self.only is not None else None
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            dist = getattr(ep, "dist", None)
            version = dist.version if dist is not None else None
            dist_name = _dist_name(dist)
            allowed = {_normal(ep.name)} | ({_normal(dist_name)} if dist_name else set())
            if only is not None and not allowed & only:
                self.skipped.add(ep.name)
                continue
            self._add(
                ep.name, "entry point", ep.load, version=version, module=ep.value, dist=dist_name
            )

    def _add(
        self,
        name: str,
        source: str,
        load: Any,
        version: str | None = None,
        module: str | None = None,
        dist: str | None = None,
    ) -> None:
        if name in self.disabled:
            if source != "builtin":
                self.skipped.add(name)
            return
        if source == "builtin":
            from cdkd_core.version import __version__

            version = __version__
        if name in self.plugins:
            info = PluginInfo(name=f"{name} ({source})", source=source, version=version)
            info.errors.append(f"a plugin named {name!r} is already loaded; this one is skipped")
            self.plugins[info.name] = info
            return
        info = PluginInfo(
            name=name, source=source, version=version, module=module, distribution=dist
        )
        self.plugins[name] = info
        try:
            obj = load()
            self.pm.register(obj, name=name)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # a broken plugin must not break the rest (sys.exit too)
            text = failure_text(exc, "at import" if source == "entry point" else "as it loaded")
            self._fail(info, f"failed to load: {text}")
            self._failures.setdefault(name, {})["load"] = text
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
    def _is_builtin(self, plugin: str) -> bool:
        return plugin in self.plugins and self.plugins[plugin].source == "builtin"

    def _collect(self) -> None:
        for kind in KINDS:
            caller = getattr(self.pm.hook, f"register_{kind}")
            # the built-ins first (a bare name they have is theirs), then in registration order
            impls = sorted(
                caller.get_hookimpls(), key=lambda impl: not self._is_builtin(impl.plugin_name)
            )
            for impl in impls:
                info = self.plugins[impl.plugin_name]
                pending: dict[str, ComponentInfo] = {}

                def register(cls: type, _kind=kind, _plugin=info.name, _pending=pending) -> None:
                    self._check(_kind, cls, _plugin, _pending)
                    _pending[cls.name] = ComponentInfo(_kind, cls.name, cls, _plugin)

                try:
                    impl.function(register=register)
                except KeyboardInterrupt:
                    raise
                except BaseException as exc:  # sys.exit() in a hook too
                    text = failure_text(exc, f"in register_{kind}")
                    self._fail(info, f"register_{kind} failed: {text}")
                    self._failures.setdefault(info.name, {})[kind] = text
                    continue
                for name, component in pending.items():
                    others = self._registry[kind].setdefault(name, [])
                    builtin = next((o for o in others if self._is_builtin(o.plugin)), None)
                    if builtin is not None and not self._is_builtin(info.name):
                        component.note = (
                            f"{kind_label(kind)} {name!r} is also built in: a bare {name!r} "
                            f"means the built-in one ({builtin.qualified!r}); write "
                            f"{component.qualified!r} to select this plugin's"
                        )
                        info.notes.append(component.note)
                        others.append(component)
                        continue
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
        ``<plugin>:<name>`` for each component whose bare name means another one (the
        built-in of that name) or is refused (two installed plugins clash on it)."""
        if kind not in self._registry:
            raise ConfigError(f"unknown component kind {kind!r}; choose one of {list(KINDS)}")
        listing: dict[str, ComponentInfo] = {}
        for infos in self._registry[kind].values():
            bare = self._bare(infos)
            for info in infos:
                listing[info.name if info is bare else info.qualified] = info
        return listing

    def _bare(self, infos: list[ComponentInfo]) -> ComponentInfo | None:
        """The component a bare name means among ``infos`` (one name's components): the
        only one, else the built-in; None when the name is refused."""
        if len(infos) == 1:
            return infos[0]
        return next((info for info in infos if self._is_builtin(info.plugin)), None)

    def clashes(self, kind: str) -> dict[str, list[ComponentInfo]]:
        """Names of ``kind`` that several plugins register, with their components (the
        built-in first where one has the name: the bare name means it)."""
        return {name: list(infos) for name, infos in self._registry[kind].items() if len(infos) > 1}

    def info(self, kind: str, name: str, where: str | None = None) -> ComponentInfo:
        """The registered component ``name`` (or ``<plugin>:<name>``) of ``kind``; a
        :class:`ConfigError` when it is unknown (see :meth:`unknown_message`) or when
        several installed plugins, and no built-in, register the bare name (naming them).
        A bare name a built-in has means the built-in."""
        plugin, _, bare = name.rpartition(":")
        infos = self._registry[kind].get(bare, [])
        if plugin:
            found = [info for info in infos if info.plugin == plugin]
            if found:
                return found[0]
            raise ConfigError(self.unknown_message(kind, name, where))
        chosen = self._bare(infos) if infos else None
        if chosen is not None:
            return chosen
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
        """The message for an unregistered component name: that it is not available
        because a plugin failed, where a failed plugin is its plausible provider; else
        suggestions, the package to install (from ``registry.yaml``) and what is there."""
        from cdkd_core.host.catalog import provider_of

        label = kind_label(kind)
        place = f"{where}: " if where else ""
        plugin, _, bare = name.rpartition(":")
        entry = provider_of(kind, bare)
        failed = self._failed_providers(kind, plugin, bare, entry)
        if failed:
            reasons = [self._failure_text(kind, p) for p in failed]
            reason = reasons[0] if len(reasons) == 1 else "it may come from " + " or ".join(reasons)
            return f"{place}{label} {name!r} is not available: {reason}"
        known = sorted(self.components(kind))
        parts = [f"{place}unknown {label} {name!r}"]
        if plugin and plugin not in self.plugins:
            parts.append(f"no plugin named {plugin!r} is loaded")
        elif plugin:
            parts.append(f"plugin {plugin!r} registers no {label} {bare!r}")
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        if close:
            parts.append(f"did you mean {', '.join(repr(c) for c in close)}")
        if entry is not None and entry["name"] in self.plugins:
            parts.append(
                f"plugin {self.describe(entry['name'])} is installed but registers no "
                f"{label} {bare!r} (another version of {entry['package']!r} may)"
            )
        elif entry is not None:
            parts.append(
                f"it is provided by {entry['package']!r}: "
                f"install it with `cdkd plugins install {entry['name']}`"
            )
        others = [p for p, what in self._failures.items() if "load" in what or kind in what]
        if plugin:
            others = []  # the plugin named is loaded: another's failure is beside the point
        if len(others) == 1:
            parts.append(
                f"{self._failure_text(kind, others[0])}; if the {label} comes from it, "
                "fix that first"
            )
        elif others:
            names = ", ".join(repr(p) for p in others)
            parts.append(f"plugins {names} failed (see `cdkd plugins list`)")
        parts.append(f"available: {', '.join(known) if known else '(none)'}")
        return "; ".join(parts)

    def _failed_providers(
        self, kind: str, plugin: str, bare: str, entry: dict[str, Any] | None
    ) -> list[str]:
        """The plugins that failed to load (or to register ``kind``) and plausibly provide
        ``[plugin:]bare``: the named plugin itself, else those whose entry-point or
        distribution name (``cdkd-`` prefix dropped) is the name or its ``<plugin>.``
        prefix, or that ``registry.yaml`` says provides it."""
        failed = [p for p, what in self._failures.items() if "load" in what or kind in what]
        if plugin:
            return [plugin] if plugin in failed else []
        wanted = {_normal(bare), _normal(bare.split(".", 1)[0])}
        found = []
        for name in failed:
            info = self.plugins[name]
            names = {_normal(name)}
            if info.distribution:
                dist = _normal(info.distribution)
                names |= {dist, dist.removeprefix("cdkd-")}
            catalogued = entry is not None and (
                entry.get("name") == name
                or (info.distribution and _normal(entry.get("package", "")) in names)
            )
            if names & wanted or catalogued:
                found.append(name)
        return found

    def _failure_text(self, kind: str, plugin: str) -> str:
        """``plugin 'ica' (cdkd-ica 0.1.0) failed to load (ImportError: ...)``."""
        info = self.plugins[plugin]
        who = f"plugin {self.describe(plugin)}"
        if info.distribution and _normal(info.distribution) != _normal(plugin):
            version = f" {info.version}" if info.version else ""
            who = f"plugin {plugin!r} ({info.distribution}{version})"
        what = self._failures[plugin]
        if "load" in what:
            return f"{who} failed to load ({what['load']})"
        return f"{who} failed to register its {kind} ({what[kind]})"

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


def failure_text(exc: BaseException, where: str = "") -> str:
    """``ExcType: message`` for an exception raised by plugin code; a ``SystemExit`` as the
    call that raised it and ``where`` (``SystemExit: sys.exit(3) at import``), so that a
    plugin exiting is reported like any other failure instead of ending the command."""
    if isinstance(exc, SystemExit):
        code = "" if exc.code is None else repr(exc.code)
        return f"SystemExit: sys.exit({code})" + (f" {where}" if where else "")
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _dist_name(dist: Any) -> str | None:
    """The name of an entry point's distribution (None when unknown)."""
    if dist is None:
        return None
    name = getattr(dist, "name", None)
    if not name:
        try:
            name = dist.metadata["Name"]
        except Exception:
            return None
    return str(name) if name else None
