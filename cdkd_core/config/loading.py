"""Loading a config: reading YAML, applying ``key.path=value`` overrides, validating the
mapping against the pipeline models (errors name each field path) and then each
component's params, and dumping the resolved config."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from cdkd_core.config.models import DEFAULT_TEACHER_TRAIN, PipelineConfig
from cdkd_core.config.validation import validate_components
from cdkd_core.config.yaml_reader import MAX_BYTES, MAX_DEPTH, load_yaml
from cdkd_core.errors import ConfigError

if TYPE_CHECKING:
    from cdkd_core.host.plugin_host import PluginHost

_EXAMPLE = "domains: [{name: sklearn.wine, role: source}]"


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping as ``safe_load`` does, within the limits of
    :mod:`cdkd_core.config.yaml_reader` (size, nesting, values, no duplicate keys); errors
    name the file (and line)."""
    path = Path(path)
    if path.is_dir():
        yamls = sorted(p.name for p in path.glob("*.y*ml") if p.is_file())[:3]
        inside = f" (YAML files in it: {', '.join(yamls)})" if yamls else ""
        raise ConfigError(f"{path}: a directory, not a config file{inside}")
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    if not path.is_file():
        raise ConfigError(f"{path}: not a regular file (give the config's YAML file)")
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if len(raw) > MAX_BYTES:
        size = max(path.stat().st_size, len(raw))
        raise ConfigError(
            f"{path}: {size:,} bytes, over the limit of {MAX_BYTES:,} bytes (1 MiB) for a config"
        )
    try:
        text = raw.decode("utf-8")
        data = load_yaml(text, str(path))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    if data is None:
        raise ConfigError(
            f"{path}: the config is empty (no YAML mapping in it); `domains` is required, "
            f"e.g. `{_EXAMPLE}` (`cdkd init` writes a starter config)"
        )
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the config must be a YAML mapping, got {type(data).__name__}")
    return data


def _shown(item: str, limit: int = 80) -> str:
    """An override as a message quotes it (a long one cut short)."""
    return repr(item) if len(item) <= limit else repr(item[:limit]) + f"... ({len(item):,} chars)"


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.path=value`` overrides (value parsed as YAML within the limits a config
    file is read with; list items by index)."""
    data = copy.deepcopy(data)
    for item in overrides:
        shown = _shown(item)
        if "=" not in item:
            raise ConfigError(f"override {shown}: expected KEY.PATH=VALUE, e.g. train.epochs=3")
        path, raw = item.split("=", 1)
        parts = [p for p in path.strip().split(".") if p]
        if not parts:
            raise ConfigError(f"override {shown}: empty key path")
        if len(parts) > MAX_DEPTH:
            raise ConfigError(
                f"override {shown}: a key path of {len(parts)} keys, over the nesting limit "
                f"of {MAX_DEPTH} levels"
            )
        try:
            value = load_yaml(raw, f"override {shown}", key_path=".".join(parts))
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {shown}: value is not valid YAML: {exc}") from exc
        node: Any = data
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            where = ".".join(parts[: i + 1])
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ConfigError(
                        f"override {shown}: {where} is not an index of a list of {len(node)}"
                    )
                if last:
                    node[int(part)] = value
                else:
                    node = node[int(part)]
            elif isinstance(node, dict):
                if last:
                    node[part] = value
                else:
                    node = node.setdefault(part, {})
            else:
                raise ConfigError(f"override {shown}: {where} is inside a non-mapping value")
    return data


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pipeline model a location inside the config is a mapping of (None if unknown)."""
    model: type[BaseModel] = PipelineConfig
    parts = list(loc)
    while parts:
        field = model.model_fields.get(parts.pop(0))
        if field is None:
            return None
        found = [
            a
            for a in (field.annotation, *get_args(field.annotation))
            if isinstance(a, type) and get_origin(a) is None and issubclass(a, BaseModel)
        ]
        if not found:
            return None
        if get_origin(field.annotation) in (list, dict) and parts:
            parts.pop(0)  # the list index or the mapping key
        model = found[0]
    return model


def format_validation_error(exc: ValidationError, source: str) -> str:
    """One message listing each invalid field path and what is wrong with it."""
    lines = [f"invalid config ({source}):"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        key_error = err["type"] == "invalid_key" or err["loc"][-1:] == ("[key]",)
        if key_error and not isinstance(err.get("input"), str):
            # a key YAML read as a boolean, null or number (`on:`, `null:`, `1:`)
            parent = err["loc"][:-2] if err["loc"][-1:] == ("[key]",) else err["loc"][:-1]
            loc = ".".join(str(p) for p in parent) or "(top level)"
            msg = (
                f"a key YAML reads as {err['input']!r}, not a string (unquoted yes, no, on, "
                "off, true and false are booleans, null and ~ null, digits numbers): quote it"
            )
        elif err["type"] == "extra_forbidden":
            model = _model_at(tuple(err["loc"][:-1]))
            valid = f" (valid: {', '.join(model.model_fields)})" if model is not None else ""
            msg = f"unknown key{valid}"
        elif err["type"] == "literal_error":
            expected = err.get("ctx", {}).get("expected")
            msg = f"must be one of {expected}" if expected else msg
        lines.append(f"  {loc}: {msg}")
    return "\n".join(lines)


def parse_config(data: dict[str, Any], source: str = "config") -> PipelineConfig:
    """Validate a config mapping against the pipeline schema (component params not yet)."""
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None


def load_config(
    source: str | Path | dict[str, Any] | None = None,
    overrides: list[str] | None = None,
    *,
    host: PluginHost | None = None,
    machine: bool = True,
) -> PipelineConfig:
    """Read (path), or take (mapping), a config, apply overrides and validate it fully —
    including each component's params against its own ``Config`` and, with ``machine``,
    that this machine has the CPU threads and the device ``train`` names.

    Args:
        source: a YAML file's path, a mapping, or ``None`` for the built-in quickstart
            config (what ``cdkd run`` runs with no config).
        overrides: ``key.path=value`` strings, as ``cdkd run``'s ``--set`` takes them.
        host: the plugin host whose components the config names; by default one over the
            built-ins and the installed plugins.
        machine: check this machine's threads and device too (off for a finished run's
            config read elsewhere, e.g. to export it).

    Returns:
        The validated :class:`PipelineConfig`.

    Raises:
        ConfigError: the file is unreadable, a key or value is wrong (the message names
            where), or a component it names is not installed.

    Examples:
        >>> from cdkd_core import load_config
        >>> config = load_config(overrides=["train.epochs=3"])
        >>> config.train.epochs
        3
    """
    if host is None:
        from cdkd_core.host.plugin_host import PluginHost

        host = PluginHost()
    if source is None:
        from cdkd_core.config.quickstart import quickstart_config

        data, label = quickstart_config(host), "built-in quickstart"
    elif isinstance(source, dict):
        data, label = source, "config"
    else:
        data, label = read_yaml(Path(source)), str(source)
    data = apply_overrides(data, overrides or [])
    config = parse_config(data, label)
    validate_components(config, host, machine=machine)
    return config


def config_mapping(config: PipelineConfig) -> dict[str, Any]:
    """The resolved config as plain data that validates back to it. The train settings
    whose being unset means something (``lr``, ``epochs`` and ``patience`` left unset let a
    teacher over tables take the tabular recipe,
    :data:`~cdkd_core.config.models.DEFAULT_TEACHER_TRAIN`) stay unset."""
    data = config.model_dump(mode="json")
    for key in DEFAULT_TEACHER_TRAIN:
        base = key.removeprefix("teacher_")
        if base not in config.train.model_fields_set:
            data["train"].pop(base, None)
    return data


def dump_config(config: PipelineConfig) -> str:
    """The resolved config as YAML (:func:`config_mapping`), so a run resumed from its
    ``config.yaml`` trains as it started."""
    return yaml.safe_dump(config_mapping(config), sort_keys=False)
