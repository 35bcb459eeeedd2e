"""The built-in quickstart: the core's domains, or the installed plugins' fragments."""

from __future__ import annotations

import pytest

from cdkd_core import load_config
from cdkd_core.config.quickstart import CORE_QUICKSTART, quickstart_config
from cdkd_core.host import catalog
from tests.halves import make_host

FRAGMENT = {
    "domains": [
        {"name": "testing.digits_a", "role": "source"},
        {"name": "testing.digits_b", "role": "target", "label_fraction": 0.1},
    ],
    "teacher_stems": {"image": {"name": "mlp"}},
    "epochs": 5,
}


@pytest.fixture
def with_fragment(monkeypatch):
    entries = [{"name": "testing", "package": "cdkd-testing", "quickstart": FRAGMENT}]
    monkeypatch.setattr(catalog, "catalog", lambda: entries)


def test_core_quickstart_without_plugins(host, monkeypatch):
    monkeypatch.setattr(catalog, "catalog", lambda: [])
    assert quickstart_config(host) == CORE_QUICKSTART
    assert quickstart_config(host) is not CORE_QUICKSTART


def test_installed_plugin_fragments_replace_the_core_domains(with_fragment):
    config = quickstart_config(make_host())
    assert [d["name"] for d in config["domains"]] == ["testing.digits_a", "testing.digits_b"]
    assert config["teacher"]["stems"]["image"] == {"name": "mlp"}
    assert config["student"]["stems"] == CORE_QUICKSTART["student"]["stems"]
    assert config["train"]["epochs"] == 5
    load_config(config, host=make_host())  # valid as a whole


def test_fragment_of_a_missing_or_failed_plugin_is_skipped(with_fragment, host):
    assert quickstart_config(host) == CORE_QUICKSTART  # "testing" is not loaded here
    failed = make_host()
    failed.plugins["testing"].errors.append("broken")
    assert quickstart_config(failed) == CORE_QUICKSTART


def test_registry_fragments_are_valid_configs():
    from cdkd_core.host.plugin_host import PluginHost

    host = PluginHost()
    config = quickstart_config(host)
    load_config(config, host=host)
    for entry in catalog.catalog():
        fragment = entry.get("quickstart")
        assert fragment, f"{entry['name']} gives no quickstart fragment"
        if entry["name"] in host.plugins:
            names = {d["name"] for d in config["domains"]}
            assert {d["name"] for d in fragment["domains"]} <= names


def test_shipped_cross_domain_example_is_the_plugin_quickstart():
    from pathlib import Path

    import yaml

    from cdkd_core.host.plugin_host import PluginHost

    host = PluginHost()
    if not all(name in host.plugins for name in ("medical", "finance", "nlp")):
        pytest.skip("the three domain plugins are not installed")
    path = Path(__file__).parents[1] / "examples" / "cross_domain.yaml"
    assert yaml.safe_load(path.read_text()) == quickstart_config(host)
