"""``cdkd schema``: the JSON Schema accepts every shipped config and refuses what
``cdkd validate`` refuses; the generated config reference is up to date."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from cdkd_core.cli import app
from cdkd_core.config.quickstart import quickstart_config
from cdkd_core.config.schema import markdown_reference, pipeline_schema
from cdkd_core.host.plugin_host import PluginHost

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted([*ROOT.glob("examples/*.yaml"), *ROOT.glob("plugins/*/examples/*.yaml")])


@pytest.fixture(scope="module")
def full_host() -> PluginHost:
    """Built-ins and the installed domain plugins (the shipped examples use them)."""
    return PluginHost()


@pytest.fixture(scope="module")
def validator(full_host: PluginHost) -> jsonschema.Draft202012Validator:
    schema = pipeline_schema(full_host)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _errors(validator, config: dict) -> list[str]:
    return [e.message for e in validator.iter_errors(config)]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_config_is_valid(validator, path: Path) -> None:
    assert _errors(validator, yaml.safe_load(path.read_text())) == []


def test_the_quickstart_and_tiny_configs_are_valid(validator, full_host, tiny_config) -> None:
    assert _errors(validator, quickstart_config(full_host)) == []
    assert _errors(validator, tiny_config) == []


@pytest.mark.parametrize(
    ("change", "wanted"),
    [
        (lambda c: c["train"].update(epochs=0), "less than the minimum of 1"),
        (lambda c: c["train"].update(unknown=1), "Additional properties"),
        (lambda c: c["encoder"]["params"].update(dim=0), "less than the minimum of 1"),
        (lambda c: c["encoder"].update(name="nope"), "is not one of"),
        (lambda c: c["losses"][1]["params"].update(temperature=-1), "less than or equal to"),
        (lambda c: c["losses"][0].update(params={"smoothing": 0.1}), "Additional properties"),
        (lambda c: c["domains"][0].update(role="teacher"), "is not one of"),
        (lambda c: c["student"]["trunk"]["params"].update(width="wide"), "is not of type"),
    ],
)
def test_the_schema_refuses_bad_values_and_params(validator, tiny_config, change, wanted) -> None:
    change(tiny_config)
    errors = _errors(validator, tiny_config)
    assert errors and any(wanted in e for e in errors), errors


def test_component_definitions_do_not_collide(full_host) -> None:
    """Each component's own nested definitions are kept apart under its name."""
    schema = pipeline_schema(full_host)
    params_defs = [name for name in schema["$defs"] if "." in name]
    assert len(params_defs) == len(set(params_defs))
    for name in params_defs:
        kind = name.split(".")[0]
        assert kind in ("domains", "architectures", "encoders", "losses", "feedback")


def test_cdkd_schema_prints_json_schema() -> None:
    result = CliRunner().invoke(app, ["schema", "--core-only"])
    assert result.exit_code == 0, result.output
    schema = json.loads(result.output)
    assert schema == pipeline_schema(PluginHost(entry_points=False))
    assert "pca" in schema["$defs"]["EncoderRef"]["properties"]["name"]["enum"]


def test_the_config_reference_is_generated_from_the_models() -> None:
    """docs/config-reference.md is what `cdkd schema --markdown --core-only` prints:
    regenerate it after changing a model or a built-in component's Config."""
    expected = markdown_reference(PluginHost(entry_points=False))
    committed = (ROOT / "docs" / "config-reference.md").read_text(encoding="utf-8")
    assert committed == expected, (
        "docs/config-reference.md is stale: cdkd schema --markdown --core-only "
        "> docs/config-reference.md"
    )
    for key in ("epochs", "precision", "label_fraction", "feature_layer", "temperature"):
        assert f"`{key}`" in committed
