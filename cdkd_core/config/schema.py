"""The pipeline config as JSON Schema (``cdkd schema``) and as a Markdown reference, both
generated from the pydantic models, with each registered component's params."""

from __future__ import annotations

import copy
import json
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from cdkd_core.config.models import PipelineConfig

if TYPE_CHECKING:
    from cdkd_core.host.plugin_host import PluginHost

#: where each kind of component is named in a config: (definition, kind)
COMPONENT_REFS = {
    "DomainEntry": "domains",
    "ArchitectureRef": "architectures",
    "EncoderRef": "encoders",
    "LossEntry": "losses",
    "FeedbackRef": "feedback",
}


def _rename_refs(node: Any, renames: dict[str, str]) -> Any:
    """``node`` with every ``#/$defs/<old>`` reference pointing at ``#/$defs/<new>``."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith("#/$defs/"):
                value = "#/$defs/" + renames.get(value.removeprefix("#/$defs/"), value[8:])
            out[key] = _rename_refs(value, renames)
        return out
    if isinstance(node, list):
        return [_rename_refs(v, renames) for v in node]
    return node


def _params_schema(config: type[BaseModel], prefix: str, defs: dict[str, Any]) -> dict[str, Any]:
    """A component ``Config``'s schema, its own definitions moved into ``defs`` under
    ``prefix`` so that two components' definitions never collide."""
    schema = config.model_json_schema()
    own = schema.pop("$defs", {})
    renames = {name: f"{prefix}.{name}" for name in own}
    for name, definition in own.items():
        defs[renames[name]] = _rename_refs(definition, renames)
    schema = _rename_refs(schema, renames)
    schema.pop("title", None)
    return schema


def pipeline_schema(host: PluginHost | None = None) -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of a pipeline config.

    With a plugin ``host``, every place that names a component (a domain, an architecture,
    the encoder, a loss, the feedback strategy) lists the registered names, and its
    ``params`` follow that component's ``Config`` (``if name == X then params: ...``), so
    an editor with a YAML language server checks params as ``cdkd validate`` does.
    """
    schema = PipelineConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    defs = schema["$defs"]
    # one definition per kind of component reference (pydantic shares ComponentRef)
    for name in ("ArchitectureRef", "EncoderRef", "FeedbackRef"):
        defs[name] = copy.deepcopy(defs["ComponentRef"])
        defs[name]["title"] = name
    schema["properties"]["encoder"] = {"$ref": "#/$defs/EncoderRef"}
    schema["properties"]["feedback"] = {"$ref": "#/$defs/FeedbackRef"}
    for spec in ("ModelSpec", "TeacherSpec", "StudentSpec"):  # the network slots
        if spec in defs:
            defs[spec] = _rename_refs(defs[spec], {"ComponentRef": "ArchitectureRef"})
    del defs["ComponentRef"]
    if host is None:
        return schema
    for definition, kind in COMPONENT_REFS.items():
        components = host.components(kind)
        target = defs[definition]
        target["properties"]["name"]["enum"] = sorted(components)
        target["allOf"] = [
            {
                "if": {"properties": {"name": {"const": name}}, "required": ["name"]},
                "then": {
                    "properties": {
                        "params": _params_schema(info.cls.Config, f"{kind}.{name}", defs)
                    }
                },
            }
            for name, info in sorted(components.items())
        ]
    return schema


def schema_json(host: PluginHost | None = None) -> str:
    """:func:`pipeline_schema` as indented JSON."""
    return json.dumps(pipeline_schema(host), indent=2) + "\n"


# --------------------------------------------------------------------------- Markdown


def _type(prop: dict[str, Any]) -> str:
    """A short type name for a property's schema."""
    if "$ref" in prop:
        return prop["$ref"].removeprefix("#/$defs/")
    if "enum" in prop:
        return " \\| ".join(f"`{v}`" for v in prop["enum"])
    if "const" in prop:
        return f"`{prop['const']}`"
    if "anyOf" in prop:
        return " or ".join(_type(p) for p in prop["anyOf"])
    kind = prop.get("type", "any")
    if kind == "array":
        return f"list of {_type(prop.get('items', {}))}"
    if kind == "object" and "additionalProperties" in prop:
        extra = prop["additionalProperties"]
        return f"map of {_type(extra) if isinstance(extra, dict) else 'any'}"
    return {"null": "null", "number": "float", "integer": "int", "boolean": "bool"}.get(
        kind, "string" if kind == "string" else kind
    )


def _constraints(prop: dict[str, Any]) -> str:
    """Bounds and lengths of a property, as text."""
    marks = {
        "minimum": "≥",
        "exclusiveMinimum": ">",
        "maximum": "≤",
        "exclusiveMaximum": "<",
        "minItems": "items ≥",
        "minLength": "length ≥",
    }
    parts = [f"{sign} {prop[key]}" for key, sign in marks.items() if key in prop]
    for option in prop.get("anyOf", []):
        parts += [f"{sign} {option[key]}" for key, sign in marks.items() if key in option]
    return ", ".join(parts)


def _defaults(model: type[BaseModel] | None) -> dict[str, Any]:
    """Each optional field's default, default factories called (as JSON-ready values)."""
    if model is None:
        return {}
    out = {}
    for name, field in model.model_fields.items():
        if not field.is_required():
            value = field.get_default(call_default_factory=True)
            if isinstance(value, BaseModel):
                value = value.model_dump(mode="json", exclude_defaults=True)
            elif isinstance(value, list):
                value = [
                    v.model_dump(mode="json", exclude_defaults=True)
                    if isinstance(v, BaseModel)
                    else v
                    for v in value
                ]
            out[name] = value
    return out


def _table(schema: dict[str, Any], model: type[BaseModel] | None = None) -> list[str]:
    """A Markdown table of an object schema's properties (defaults from ``model``)."""
    required = set(schema.get("required", []))
    defaults = _defaults(model)
    lines = ["| key | type | default | description |", "|---|---|---|---|"]
    for key, prop in schema.get("properties", {}).items():
        if key in required:
            default = "required"
        elif key in defaults:
            default = f"`{json.dumps(defaults[key], ensure_ascii=False)}`"
        else:
            default = f"`{json.dumps(prop.get('default'))}`"
        text = prop.get("description", "")
        limits = _constraints(prop)
        text = f"{text} ({limits})" if limits and text else text or limits
        text = text.replace("|", "\\|").replace("\n", " ")
        lines.append(f"| `{key}` | {_type(prop)} | {default} | {text} |")
    return lines


def markdown_reference(host: PluginHost | None = None) -> str:
    """Every config key (type, default, bounds, description) and every registered
    component's params, as Markdown, from the same models :func:`pipeline_schema` reads."""
    from cdkd_core.config import models as models

    schema = pipeline_schema()
    defs = schema["$defs"]
    sections = [("top level (`PipelineConfig`)", schema, PipelineConfig)] + [
        (f"`{name}`", defs[name], getattr(models, model))
        for name, model in (
            ("DomainEntry", "DomainEntry"),
            ("ModelSpec", "ModelSpec"),
            ("TeacherSpec", "TeacherSpec"),
            ("MamlConfig", "MamlConfig"),
            ("StudentSpec", "StudentSpec"),
            ("ArchitectureRef", "ComponentRef"),
            ("LossEntry", "LossEntry"),
            ("TrainConfig", "TrainConfig"),
        )
        if name in defs
    ]
    lines = [
        "# Config reference",
        "",
        "Generated from the pydantic models by `cdkd schema --markdown` (a test keeps this",
        "file equal to its output). [configuration.md](configuration.md) explains the keys;",
        "`cdkd schema` prints the same as JSON Schema, for editors.",
        "",
    ]
    for title, section, model in sections:
        text = section.get("description", "")
        lines += [f"## {title}", "", text, "", *_table(section, model), ""]
    if host is not None:
        from cdkd_core.components.kinds import kind_label

        lines += [
            "## Component params",
            "",
            "Of the components registered when this was generated (`cdkd schema --markdown`",
            "lists those of the plugins you have installed too).",
            "",
        ]
        for kind in COMPONENT_REFS.values():
            for name, info in sorted(host.components(kind).items()):
                params = info.cls.Config.model_json_schema()
                lines += [f"### {kind_label(kind)} `{name}` ({info.plugin})", ""]
                if params.get("properties"):
                    lines += [*_table(params, info.cls.Config), ""]
                else:
                    lines += ["No params.", ""]
    return "\n".join(lines).rstrip() + "\n"
