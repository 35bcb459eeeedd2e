"""The plugin host: in-process plugins, attribution, clashes, failures, and the contract every
registered component keeps."""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pydantic
import pytest
import torch

from cdkd_core.components.base import ComponentConfig
from cdkd_core.components.domain import Domain
from cdkd_core.components.encoder import KnowledgeEncoder
from cdkd_core.components.feedback import FeedbackStrategy
from cdkd_core.components.loss import Loss
from cdkd_core.errors import ConfigError
from cdkd_core.host.hookspecs import hookimpl
from cdkd_core.host.plugin_host import (
    BUILTIN_PLUGINS,
    KINDS,
    NAME_PATTERN,
    PluginHost,
    base_class,
)

torch.set_num_threads(1)


# --------------------------------------------------------------------------- helpers


def _plugin(**hooks: Any) -> types.ModuleType:
    """A module-like plugin whose ``register_<kind>`` hooks register the given classes
    (a callable value is used as the hook body itself)."""
    module = types.ModuleType("fake_cdkd_plugin")
    for kind, value in hooks.items():
        if callable(value) and not isinstance(value, type):
            body = value
        else:
            classes = value if isinstance(value, (list, tuple)) else [value]

            def body(register, _classes=tuple(classes)) -> None:
                for cls in _classes:
                    register(cls)

        def impl(register, _body=body) -> None:
            _body(register)

        impl.__name__ = f"register_{kind}"
        setattr(module, f"register_{kind}", hookimpl(impl))
    return module


def _encoder(name: str, doc: str = "A toy encoder.") -> type:
    return type(f"Enc_{name}", (KnowledgeEncoder,), {"name": name, "__doc__": doc})


def _host(*plugins: tuple[str, object], **kwargs: Any) -> PluginHost:
    return PluginHost(entry_points=False, plugins=list(plugins), **kwargs)


class ToyLoss(Loss):
    """A toy loss."""

    name = "toy_loss"

    class Config(ComponentConfig):
        scale: float = 1.0


class ToyFeedback(FeedbackStrategy):
    """A toy feedback strategy."""

    name = "toy_feedback"


# --------------------------------------------------------------------------- registration


def test_in_process_plugin_registers_and_is_attributed() -> None:
    enc = _encoder("toy_enc")
    host = _host(("toyplug", _plugin(encoders=enc, losses=ToyLoss, feedback=ToyFeedback)))
    assert host.get("encoders", "toy_enc") is enc
    assert host.get("losses", "toy_loss") is ToyLoss
    assert host.get("feedback", "toy_feedback") is ToyFeedback
    info = host.components("encoders")["toy_enc"]
    assert info.plugin == "toyplug"
    assert info.kind == "encoders"
    assert info.summary == "A toy encoder."
    plugin = host.plugins["toyplug"]
    assert plugin.ok and plugin.errors == []
    assert plugin.source == "in-process"
    assert plugin.components == {
        "encoders": ["toy_enc"],
        "losses": ["toy_loss"],
        "feedback": ["toy_feedback"],
    }
    assert plugin.hooks == ["register_encoders", "register_feedback", "register_losses"]
    assert plugin.as_dict()["ok"] is True
    # built-ins are still there
    assert "pca" in host.components("encoders")
    assert host.components("encoders")["pca"].plugin != "toyplug"


def test_components_returns_a_copy() -> None:
    host = _host()
    comps = host.components("encoders")
    comps.clear()
    assert "pca" in host.components("encoders")


def test_a_clashing_name_is_refused_at_use_and_selected_by_plugin_name() -> None:
    first, second = _encoder("toy_enc"), _encoder("toy_enc")
    beta_only = _encoder("beta_enc")
    host = _host(
        ("alpha", _plugin(encoders=first)),
        ("beta", _plugin(encoders=[second, beta_only], losses=ToyLoss)),
        ("gamma", _plugin(encoders=_encoder("other_enc"))),
    )
    host.plugins["beta"].version = "2.0"
    # the bare name is ambiguous: refused, naming both plugins and how to choose
    with pytest.raises(ConfigError) as info:
        host.get("encoders", "toy_enc", where="encoder.name")
    message = str(info.value)
    assert message.startswith("encoder.name: encoder 'toy_enc' is registered by 2 plugins")
    assert "'alpha'" in message and "'beta' 2.0" in message
    assert "'alpha:toy_enc' or 'beta:toy_enc'" in message
    # plugin:name selects one
    assert host.get("encoders", "alpha:toy_enc") is first
    assert host.get("encoders", "beta:toy_enc") is second
    # the later plugin's other components stay registered, bare
    assert host.get("encoders", "beta_enc") is beta_only
    assert host.get("losses", "toy_loss") is ToyLoss
    assert host.get("losses", "beta:toy_loss") is ToyLoss  # any component, qualified
    listing = host.components("encoders")
    assert "toy_enc" not in listing
    assert listing["alpha:toy_enc"].plugin == "alpha" and listing["beta:toy_enc"].cls is second
    assert set(host.clashes("encoders")) == {"toy_enc"}
    # the clash is recorded against the later plugin, for `cdkd plugins list`
    assert host.plugins["alpha"].ok
    beta = host.plugins["beta"]
    assert not beta.ok and len(beta.errors) == 1
    assert "'toy_enc'" in beta.errors[0]
    assert "'alpha'" in beta.errors[0] and "'beta:toy_enc'" in beta.errors[0]
    assert beta.components == {"encoders": ["toy_enc", "beta_enc"], "losses": ["toy_loss"]}
    assert host.plugins["gamma"].ok
    assert host.components("encoders")["other_enc"].plugin == "gamma"
    assert [p.name for p in host.failed_plugins()] == ["beta"]


def test_a_qualified_name_of_an_unknown_plugin_or_component_is_refused() -> None:
    host = _host(("alpha", _plugin(encoders=_encoder("toy_enc"))))
    with pytest.raises(ConfigError, match="no plugin named 'nope' is loaded"):
        host.get("encoders", "nope:toy_enc")
    with pytest.raises(ConfigError, match="plugin 'alpha' registers no encoder 'pca'"):
        host.get("encoders", "alpha:pca")


def test_a_builtin_name_means_the_builtin_and_the_plugin_s_is_qualified() -> None:
    fake_pca, other_pca = _encoder("pca"), _encoder("pca")
    host = _host(("clash", _plugin(encoders=fake_pca)), ("again", _plugin(encoders=other_pca)))
    builtin = host.get("encoders", "pca")  # the bare name: the built-in, not refused
    assert builtin is host.get("encoders", "cdkd.encoders:pca")
    assert builtin not in (fake_pca, other_pca)
    assert host.provider("encoders", builtin).plugin == "cdkd.encoders"
    assert host.get("encoders", "clash:pca") is fake_pca
    assert host.get("encoders", "again:pca") is other_pca
    # neither plugin failed: each carries a note saying how to select its pca
    for name in ("clash", "again"):
        plugin = host.plugins[name]
        assert plugin.ok and plugin.errors == [] and len(plugin.notes) == 1
        assert "a bare 'pca' means the built-in one ('cdkd.encoders:pca')" in plugin.notes[0]
        assert f"write '{name}:pca' to select this plugin's" in plugin.notes[0]
        assert plugin.as_dict()["notes"] == plugin.notes and plugin.as_dict()["ok"]
    assert host.failed_plugins() == []
    listing = host.components("encoders")
    assert listing["pca"].cls is builtin and listing["pca"].note is None
    assert listing["clash:pca"].cls is fake_pca and listing["clash:pca"].note
    assert "cdkd.encoders:pca" not in listing


def test_duplicate_within_one_plugin_drops_its_registrations() -> None:
    host = _host(("twice", _plugin(encoders=[_encoder("dup_enc"), _encoder("dup_enc")])))
    assert "dup_enc" not in host.components("encoders")
    assert "registered by plugin 'twice'" in host.plugins["twice"].errors[0]


def test_a_raising_hook_is_recorded_and_its_partial_registrations_dropped() -> None:
    partial = _encoder("partial_enc")

    def broken(register) -> None:
        register(partial)
        raise RuntimeError("boom")

    host = _host(
        ("broken", _plugin(encoders=broken, losses=ToyLoss)),
        ("fine", _plugin(encoders=_encoder("fine_enc"))),
    )
    info = host.plugins["broken"]
    assert not info.ok
    assert info.errors == ["register_encoders failed: RuntimeError: boom"]
    assert "Traceback" in info.error_details[0] and "boom" in info.error_details[0]
    assert "partial_enc" not in host.components("encoders")
    # its other hook still registered; another plugin is unaffected
    assert host.get("losses", "toy_loss") is ToyLoss
    assert info.components == {"losses": ["toy_loss"]}
    assert host.plugins["fine"].ok
    assert host.components("encoders")["fine_enc"].plugin == "fine"
    assert host.failed_plugins() == [info]


class _NoDoc(KnowledgeEncoder):
    name = "no_doc"


class _Upper(KnowledgeEncoder):
    """Uppercase name."""

    name = "Upper"


class _Hyphen(KnowledgeEncoder):
    """Hyphenated name."""

    name = "toy-enc"


class _Unnamed(KnowledgeEncoder):
    """No name at all."""


class _NotEncoder:
    """Not an encoder."""

    name = "not_encoder"

    class Config(ComponentConfig):
        pass


class _WrongBase(Domain):
    """A domain registered as an encoder."""

    name = "wrong_base"


class _DictConfig(KnowledgeEncoder):
    """Config is not a pydantic model."""

    name = "dict_config"
    Config = dict  # type: ignore[assignment]


class _PlainConfig(KnowledgeEncoder):
    """Config is a plain class."""

    name = "plain_config"

    class Config:
        pass


def _instance() -> object:
    return _encoder("an_instance")()


@pytest.mark.parametrize(
    ("cls", "fragment"),
    [
        (_NoDoc, "_NoDoc has no docstring"),
        (_Upper, "_Upper.name='Upper' is not a lowercase name"),
        (_Hyphen, "'toy-enc' is not a lowercase name"),
        (_Unnamed, "_Unnamed.name='' is not a lowercase name"),
        (_NotEncoder, "is not a subclass of KnowledgeEncoder"),
        (_WrongBase, "is not a subclass of KnowledgeEncoder"),
        (_DictConfig, "_DictConfig.Config is not a pydantic model"),
        (_PlainConfig, "_PlainConfig.Config is not a pydantic model"),
        (_instance, "is not a subclass of KnowledgeEncoder"),
    ],
)
def test_invalid_components_are_refused(cls: Any, fragment: str) -> None:
    target = cls() if cls is _instance else cls
    host = _host(("bad", _plugin(encoders=target)), ("good", _plugin(encoders=_encoder("ok_enc"))))
    info = host.plugins["bad"]
    assert not info.ok
    assert len(info.errors) == 1
    assert info.errors[0].startswith("register_encoders failed: ComponentValidationError:")
    assert fragment in info.errors[0]
    assert info.components == {}
    assert host.plugins["good"].ok
    known = set(host.components("encoders"))
    assert "ok_enc" in known
    assert known == {"pca", "linear", "graph", "knowledge_graph", "ok_enc"}


def test_inherited_docstring_does_not_count() -> None:
    parent = _encoder("parent_enc", doc="Has a docstring.")
    child = type("Child", (parent,), {"name": "child_enc"})
    assert child.__doc__ is None or child.__dict__.get("__doc__") is None
    host = _host(("p", _plugin(encoders=child)))
    assert "Child has no docstring" in host.plugins["p"].errors[0]


def test_wrong_base_message_names_the_kind_loss() -> None:
    host = _host(("bad", _plugin(losses=_encoder("enc_as_loss"))))
    error = host.plugins["bad"].errors[0]
    assert "registered as loss is not a subclass of Loss" in error


def test_unknown_hook_is_reported_but_ignored() -> None:
    module = _plugin(encoders=_encoder("hooked_enc"))

    def register_widgets(register) -> None:
        """Not a cdkd hook."""

    module.register_widgets = hookimpl(register_widgets)
    host = _host(("widgets", module))
    info = host.plugins["widgets"]
    assert any("unknown hook 'register_widgets'" in e for e in info.errors)
    assert host.components("encoders")["hooked_enc"].plugin == "widgets"


def test_a_second_plugin_with_the_same_name_is_skipped() -> None:
    host = _host(
        ("same", _plugin(encoders=_encoder("first_enc"))),
        ("same", _plugin(encoders=_encoder("second_enc"))),
    )
    assert host.plugins["same"].ok
    assert "first_enc" in host.components("encoders")
    assert "second_enc" not in host.components("encoders")
    skipped = host.plugins["same (in-process)"]
    assert "already loaded" in skipped.errors[0]


# --------------------------------------------------------------------------- disabling


def test_disabled_plugins_are_skipped() -> None:
    plugin = _plugin(encoders=_encoder("toy_enc"))
    host = _host(("toyplug", plugin), ("other", _plugin(losses=ToyLoss)), disabled={"toyplug"})
    assert "toyplug" not in host.plugins
    assert "toy_enc" not in host.components("encoders")
    assert "toy_loss" in host.components("losses")


def test_env_var_disables_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDKD_DISABLE_PLUGINS", "unrelated, toyplug other2")
    host = _host(
        ("toyplug", _plugin(encoders=_encoder("toy_enc"))),
        ("other2", _plugin(losses=ToyLoss)),
        ("kept", _plugin(feedback=ToyFeedback)),
    )
    assert "toyplug" not in host.plugins and "other2" not in host.plugins
    assert "toy_enc" not in host.components("encoders")
    assert "toy_loss" not in host.components("losses")
    assert "toy_feedback" in host.components("feedback")
    # an explicit ``disabled`` replaces the environment variable
    host = _host(("toyplug", _plugin(encoders=_encoder("toy_enc"))), disabled=[])
    assert "toy_enc" in host.components("encoders")


def test_a_builtin_plugin_can_be_disabled() -> None:
    full = _host()
    owner = full.components("feedback")["none"].plugin
    host = _host(disabled={owner})
    assert host.components("feedback") == {}
    assert "pca" in host.components("encoders")
    with pytest.raises(ConfigError, match="available: \\(none\\)"):
        _get_lower(host, "feedback", "none")


def _get_lower(host: PluginHost, kind: str, name: str) -> type:
    try:
        return host.get(kind, name)
    except ConfigError as exc:
        raise ConfigError(str(exc).lower()) from exc


# --------------------------------------------------------------------------- built-ins

EXPECTED = {
    "domains": {
        "sklearn.breast_cancer",
        "sklearn.wine",
        "sklearn.iris",
        "sklearn.digits",
        "tabular",
        "arrays",
    },
    "architectures": {"mlp", "cnn", "hist_gbm"},
    "encoders": {"pca", "linear", "graph", "knowledge_graph"},
    "losses": {"ce", "kd", "hint", "relational", "graph", "graph_match"},
    "feedback": {"none", "mutual", "hard_examples", "meta"},
}

_HOST = PluginHost(entry_points=False)
_ALL = [(kind, name) for kind in KINDS for name in sorted(_HOST.components(kind))]


@pytest.mark.parametrize("kind", KINDS)
def test_builtin_kinds_have_their_expected_names(kind: str) -> None:
    assert set(_HOST.components(kind)) == EXPECTED[kind]
    assert all(p.ok for p in _HOST.plugins.values()), _HOST.failed_plugins()


def test_builtins_are_attributed_to_builtin_plugins() -> None:
    for kind in KINDS:
        for info in _HOST.components(kind).values():
            assert _HOST.plugins[info.plugin].source == "builtin"
            assert info.name in _HOST.plugins[info.plugin].components[kind]


@pytest.mark.parametrize(("kind", "name"), _ALL, ids=[f"{k}:{n}" for k, n in _ALL])
def test_component_contract(kind: str, name: str) -> None:
    cls = _HOST.get(kind, name)
    assert cls.name == name
    assert name == name.lower() and NAME_PATTERN.match(name)
    assert issubclass(cls, base_class(kind))
    assert (cls.__dict__.get("__doc__") or "").strip()
    assert cls.summary()
    assert isinstance(cls.Config, type) and issubclass(cls.Config, pydantic.BaseModel)
    required = {
        ("domains", "tabular"): {"path": "data.csv", "label": "y"},
        ("domains", "arrays"): {"path": "data"},
    }.get((kind, name), {})
    config = cls.Config.model_validate(required)
    assert isinstance(cls.from_params(required).config, cls.Config)
    assert cls.from_params(required).config == config
    with pytest.raises(pydantic.ValidationError) as info:
        cls.Config.model_validate({**required, "definitely_not_a_param": 1})
    assert info.value.errors()[0]["type"] == "extra_forbidden"


def test_tabular_needs_path_and_label() -> None:
    cls = _HOST.get("domains", "tabular")
    with pytest.raises(pydantic.ValidationError) as info:
        cls.Config.model_validate({})
    missing = {e["loc"][0] for e in info.value.errors() if e["type"] == "missing"}
    assert missing == {"path", "label"}


def test_components_are_kind_specific() -> None:
    # 'graph' is both an encoder and a loss, in separate namespaces
    assert _HOST.get("encoders", "graph") is not _HOST.get("losses", "graph")
    assert issubclass(_HOST.get("encoders", "graph"), KnowledgeEncoder)
    assert issubclass(_HOST.get("losses", "graph"), Loss)


# --------------------------------------------------------------------------- lookup errors


def test_get_unknown_name_suggests_close_matches() -> None:
    with pytest.raises(ConfigError) as info:
        _HOST.get("encoders", "pcaa", where="encoder.name")
    msg = str(info.value)
    assert info.value.exit_code == 2
    assert msg.startswith("encoder.name: unknown encoder 'pcaa'")
    assert "did you mean 'pca'" in msg
    assert "graph, knowledge_graph, linear, pca" in msg


def test_get_unknown_name_without_close_matches() -> None:
    with pytest.raises(ConfigError) as info:
        _HOST.get("losses", "zzzzzz")
    msg = str(info.value)
    assert "unknown loss 'zzzzzz'" in msg
    assert "did you mean" not in msg
    assert "ce, graph, graph_match, hint, kd, relational" in msg


def test_get_unknown_feedback_strategy() -> None:
    with pytest.raises(ConfigError) as info:
        _HOST.get("feedback", "hard_example")
    assert "unknown feedback strategy 'hard_example'" in str(info.value)
    assert "'hard_examples'" in str(info.value)


def test_unknown_kind() -> None:
    with pytest.raises(ConfigError, match="unknown component kind 'widgets'"):
        _HOST.components("widgets")


def test_catalogued_component_names_the_package() -> None:
    with pytest.raises(ConfigError) as info:
        _HOST.get("domains", "medical.nuclei")
    assert "cdkd-medical" in str(info.value)
    assert "cdkd plugins install medical" in str(info.value)


def test_catalogued_component_of_a_failed_plugin_names_the_failure() -> None:
    def broken(register) -> None:
        raise RuntimeError("scanner offline")

    host = _host(("medical", _plugin(domains=broken)))
    with pytest.raises(ConfigError) as info:
        host.get("domains", "medical.nuclei")
    msg = str(info.value)
    assert "'medical'" in msg and "failed" in msg
    assert "scanner offline" in msg


def test_a_component_failing_at_run_time_is_reported_against_its_plugin(tmp_path):
    from cdkd_core import load_config, run_pipeline
    from cdkd_core.errors import PluginError
    from tests.conftest import TINY
    from tests.faulty_plugin import make_host

    host = make_host()
    cfg = {**TINY, "losses": [{"name": "ce"}, {"name": "testing.exploding"}]}
    with pytest.raises(PluginError) as info:
        run_pipeline(load_config(cfg, host=host), output=tmp_path / "a", host=host)
    message = str(info.value)
    assert message.startswith(
        "plugin 'faulty' 1.2.3, loss 'testing.exploding', failed during distillation "
        "(round 0): RuntimeError: bad batch of"
    )
    assert "RuntimeError: bad batch of" in message and "--debug" in message
    assert isinstance(info.value.__cause__, RuntimeError)  # the traceback --debug shows

    cfg = {**TINY, "domains": [{"name": "testing.broken_wine", "role": "source"}]}
    with pytest.raises(
        PluginError,
        match=r"plugin 'faulty' 1\.2\.3, domain 'testing\.broken_wine', failed during loading",
    ):
        run_pipeline(load_config(cfg, host=host), output=tmp_path / "b", host=host)
    assert not list((tmp_path / "b").iterdir())  # failed before training: nothing left


def test_a_core_error_is_not_blamed_on_a_plugin(tmp_path):
    from tests.faulty_plugin import make_host

    host = make_host()
    try:
        {}["missing"]
    except KeyError as exc:
        assert host.blame(exc) is None


def test_a_run_with_qualified_names_uses_the_chosen_plugins(tmp_path):
    import json

    from cdkd_core import load_config, run_pipeline
    from tests.conftest import TINY

    fake_pca = _encoder("pca")
    host = _host(("clash", _plugin(encoders=fake_pca)))
    cfg = {
        **TINY,
        "domains": [
            {"name": "cdkd.domains:sklearn.wine", "role": "source"},
            {"name": "sklearn.breast_cancer", "role": "source"},
        ],
        "encoder": {"name": "cdkd.encoders:pca", "params": {"dim": 4}},
        "train": {**TINY["train"], "epochs": 1},
    }
    result = run_pipeline(load_config(cfg, host=host), output=tmp_path, host=host)
    assert set(result.summary["domains"]) == {"sklearn.wine", "sklearn.breast_cancer"}
    providers = json.loads((result.run_dir / "providers.json").read_text())
    assert providers["encoders"]["cdkd.encoders:pca"]["plugin"] == "cdkd.encoders"
    assert providers["domains"]["cdkd.domains:sklearn.wine"]["plugin"] == "cdkd.domains"


# --------------------------------------------------------------------------- installed plugins
# Fake distributions (a ``*.dist-info`` with a ``cdkd`` entry point, and its module) on a
# temporary ``sys.path`` entry: found by ``importlib.metadata`` as pip-installed ones are,
# and let through ``CDKD_PLUGINS`` explicitly (tests/conftest.py lets only the project's own).

PACKAGES = Path(__file__).parent / "plugin_packages"


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """``install(dist, plugin, module, source)``: a fake installed distribution ``dist``
    whose entry point ``plugin`` is ``module`` (Python source, or a package directory to
    copy); ``CDKD_PLUGINS`` is set to the plugins installed so far."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    plugins: list[str] = []
    modules: list[str] = []

    def _install(dist: str, plugin: str, module: str, source: str | Path) -> None:
        if isinstance(source, Path):
            shutil.copytree(source, site / module, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (site / f"{module}.py").write_text(source)
        meta = site / f"{dist.replace('-', '_')}-0.1.0.dist-info"
        meta.mkdir()
        (meta / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\n")
        (meta / "entry_points.txt").write_text(f"[cdkd]\n{plugin} = {module}\n")
        importlib.invalidate_caches()
        plugins.append(plugin)
        modules.append(module)
        monkeypatch.setenv("CDKD_PLUGINS", ",".join(plugins))

    yield _install
    for module in modules:
        sys.modules.pop(module, None)


BROKEN = "raise ImportError(\"No module named 'sklearn_ica'\")\n"


def test_an_installed_pca_leaves_the_default_encoder_builtin(install) -> None:
    from cdkd_core import load_config
    from cdkd_core.builtins.encoders import PCAEncoder
    from cdkd_core.testing import invoke_cli
    from tests.conftest import TINY

    package = PACKAGES / "cdkd-clash-plugin" / "cdkd_clash_plugin"  # the real test plugin
    install("cdkd-clash-plugin", "clash", "cdkd_clash_plugin", package)
    host = PluginHost()
    assert host.plugins["clash"].source == "entry point"
    # a config with the default encoder (pca) validates and gets the built-in
    config = load_config({k: v for k, v in TINY.items() if k != "encoder"}, host=host)
    assert config.encoder.name == "pca"
    assert host.get("encoders", config.encoder.name) is PCAEncoder
    plugin_pca = host.get("encoders", "clash:pca")
    assert plugin_pca is not PCAEncoder and plugin_pca.__module__ == "cdkd_clash_plugin"
    load_config({**TINY, "encoder": {"name": "clash:pca", "params": {"dim": 4}}}, host=host)
    # listed OK, with a note saying what the bare name means and how to select its pca
    listed = invoke_cli("plugins", "list")
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("clash "))
    assert lines[start].endswith("[entry point] ok")
    block = lines[start + 1 : start + 4]
    assert "    encoders: pca" in block and "    losses: zero" in block
    (note,) = [line for line in block if line.startswith("    note: ")]
    assert "a bare 'pca' means the built-in one ('cdkd.encoders:pca')" in note
    assert "write 'clash:pca' to select this plugin's" in note
    assert "FAILED" not in listed.stdout and "warning" not in listed.stderr
    plugins = {p["name"]: p for p in json.loads(invoke_cli("plugins", "list", "--json").stdout)}
    assert plugins["clash"]["ok"] and plugins["clash"]["errors"] == []
    assert plugins["clash"]["notes"] == [note.removeprefix("    note: ")]
    components = json.loads(invoke_cli("components", "encoders", "--json").stdout)["encoders"]
    encoders = {c["name"]: c for c in components}
    assert encoders["pca"]["plugin"] == "cdkd.encoders" and encoders["pca"]["note"] is None
    assert (
        encoders["clash:pca"]["plugin"] == "clash" and "built-in" in encoders["clash:pca"]["note"]
    )
    text = invoke_cli("components", "encoders").stdout
    assert "(bare 'pca' is the built-in; this one is 'clash:pca')" in text
    assert plugins["clash"]["distribution"] == "cdkd-clash-plugin"


def test_a_component_of_a_plugin_that_failed_to_load_is_named_as_such(install, tmp_path) -> None:
    from cdkd_core import load_config
    from cdkd_core.testing import invoke_cli
    from tests.conftest import TINY

    install("cdkd-ica", "ica", "cdkd_ica", BROKEN)
    host = PluginHost()
    assert not host.plugins["ica"].ok
    expected = (
        "encoder 'ica' is not available: plugin 'ica' (cdkd-ica 0.1.0) failed to load "
        "(ImportError: No module named 'sklearn_ica')"
    )
    with pytest.raises(ConfigError) as info:
        host.get("encoders", "ica", where="encoder.name")
    assert str(info.value) == f"encoder.name: {expected}"
    # a domain named after the plugin, and the plugin's qualified name, likewise
    with pytest.raises(ConfigError, match=r"^domain 'ica\.signals' is not available: plugin"):
        host.get("domains", "ica.signals")
    with pytest.raises(ConfigError, match=r"^loss 'ica:whiten' is not available: plugin 'ica'"):
        host.get("losses", "ica:whiten")
    # the command line says so in its one error line
    path = tmp_path / "pipeline.yaml"
    path.write_text(json.dumps({**TINY, "encoder": {"name": "ica"}}))
    result = invoke_cli("validate", path)
    assert result.exit_code == 2
    assert f"error: encoder.name: {expected}" in result.stderr
    assert "did you mean" not in result.stderr
    # a name the failed plugin does not plausibly provide stays unknown, with a hint only
    with pytest.raises(ConfigError) as info:
        load_config({**TINY, "encoder": {"name": "whiten"}}, host=host)
    message = str(info.value)
    assert "unknown encoder 'whiten'" in message and "is not available" not in message
    assert "plugin 'ica' (cdkd-ica 0.1.0) failed to load (ImportError:" in message
    assert "if the encoder comes from it, fix that first" in message


def test_a_failed_plugin_is_found_by_its_distribution_name(install) -> None:
    install("cdkd-ica", "independent", "cdkd_ica", BROKEN)
    install("cdkd-other", "other", "cdkd_other", 'raise RuntimeError("bad")\n')
    host = PluginHost()
    with pytest.raises(ConfigError) as info:
        host.get("encoders", "ica")
    assert str(info.value) == (
        "encoder 'ica' is not available: plugin 'independent' (cdkd-ica 0.1.0) failed to load "
        "(ImportError: No module named 'sklearn_ica')"
    )
    with pytest.raises(ConfigError) as info:  # two failed, neither plausible: no claim
        host.get("encoders", "whiten")
    assert "plugins 'independent', 'other' failed (see `cdkd plugins list`)" in str(info.value)


def test_cdkd_plugins_env_loads_only_the_named_entry_points(install, monkeypatch) -> None:
    module = "from cdkd_core import hookimpl\n"
    install("cdkd-alpha", "alpha", "cdkd_alpha", module)
    install("cdkd-beta", "beta", "cdkd_beta", module)
    builtins = set(BUILTIN_PLUGINS)
    assert set(PluginHost().plugins) == builtins | {"alpha", "beta"}
    for allowed, loaded in [
        ("alpha", {"alpha"}),
        ("cdkd-beta", {"beta"}),  # a distribution name does too
        ("alpha beta", {"alpha", "beta"}),
        ("", set()),  # set but empty: no installed plugin
    ]:
        monkeypatch.setenv("CDKD_PLUGINS", allowed)
        host = PluginHost()
        assert set(host.plugins) == builtins | loaded, allowed
        assert host.skipped & {"alpha", "beta"} == {"alpha", "beta"} - loaded
    # an explicit ``only`` replaces the environment variable; disabling still applies
    assert set(PluginHost(only=["beta"]).plugins) == builtins | {"beta"}
    monkeypatch.setenv("CDKD_DISABLE_PLUGINS", "beta")
    assert set(PluginHost(only=["alpha", "beta"]).plugins) == builtins | {"alpha"}


def test_the_core_tests_see_only_the_project_s_plugins() -> None:
    from tests.conftest import PROJECT_PLUGINS

    assert os.environ["CDKD_PLUGINS"] == "medical,finance,nlp"
    assert PluginHost(entry_points=False).only == set(PROJECT_PLUGINS)
    entry = re.compile(r"^\[project\.entry-points\.cdkd\]\n(\w+) = ", re.MULTILINE)
    assert set(PROJECT_PLUGINS) == {
        entry.search(path.read_text()).group(1)  # type: ignore[union-attr]
        for path in (Path(__file__).parents[1] / "plugins").glob("*/pyproject.toml")
    }
