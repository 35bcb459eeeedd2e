"""A plugin that calls ``sys.exit()`` (or raises another ``BaseException``) at import, in a
hook or in a component during a run is isolated like one raising an ``Exception``: recorded
against the plugin, the other plugins and every command keep working, a run ends with one
``error:`` line naming the plugin (issue 26, class 2). Ctrl-C still stops everything."""

from __future__ import annotations

import copy
import importlib
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
import yaml

from cdkd_core import hookimpl, load_config, run_pipeline
from cdkd_core.errors import PluginError
from cdkd_core.host.plugin_host import BUILTIN_PLUGINS, PluginHost
from cdkd_core.testing import invoke_cli
from tests.conftest import TINY
from tests.rogue_plugin import make_host

torch.set_num_threads(1)


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """``install(plugin, source)``: a fake installed distribution ``cdkd-<plugin>`` whose
    entry point ``plugin`` is the module ``cdkd_<plugin>`` (Python ``source``); only the
    plugins installed so far load (``CDKD_PLUGINS``)."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    plugins: list[str] = []

    def _install(plugin: str, source: str) -> None:
        (site / f"cdkd_{plugin}.py").write_text(source)
        meta = site / f"cdkd_{plugin}-0.1.0.dist-info"
        meta.mkdir()
        (meta / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: cdkd-{plugin}\nVersion: 0.1.0\n"
        )
        (meta / "entry_points.txt").write_text(f"[cdkd]\n{plugin} = cdkd_{plugin}\n")
        importlib.invalidate_caches()
        plugins.append(plugin)
        monkeypatch.setenv("CDKD_PLUGINS", ",".join(plugins))

    yield _install
    for plugin in plugins:
        sys.modules.pop(f"cdkd_{plugin}", None)


GOOD = """
from cdkd_core import hookimpl
from cdkd_core.builtins.losses import CrossEntropyLoss


class Fine(CrossEntropyLoss):
    "Cross-entropy under another name."

    name = "good.fine"


@hookimpl
def register_losses(register):
    register(Fine)
"""


def test_a_plugin_calling_sys_exit_at_import_is_recorded_and_the_rest_load(install) -> None:
    install("exiting", "import sys\n\nsys.exit(3)\n")
    install("good", GOOD)
    host = PluginHost()  # no SystemExit escapes
    info = host.plugins["exiting"]
    assert info.errors == ["failed to load: SystemExit: sys.exit(3) at import"]
    assert host.plugins["good"].ok and "good.fine" in host.components("losses")
    assert all(host.plugins[name].ok for name in BUILTIN_PLUGINS)
    with pytest.raises(Exception, match=r"plugin 'exiting' \(cdkd-exiting 0\.1\.0\) failed"):
        host.get("losses", "exiting:anything")


def test_every_command_keeps_working_and_plugins_list_shows_the_failure(install) -> None:
    install("exiting", "import sys\n\nsys.exit('no config found')\n")
    listed = invoke_cli("plugins", "list")
    assert listed.exit_code == 0, listed.output
    line = next(line for line in listed.stdout.splitlines() if line.startswith("exiting "))
    assert "FAILED" in line, listed.stdout
    assert "SystemExit: sys.exit('no config found') at import" in listed.stdout
    plugins = {p["name"]: p for p in json.loads(invoke_cli("plugins", "list", "--json").stdout)}
    assert plugins["exiting"]["ok"] is False
    assert plugins["exiting"]["errors"] == [
        "failed to load: SystemExit: sys.exit('no config found') at import"
    ]
    components = invoke_cli("components", "losses", "--json")
    assert components.exit_code == 0, components.output
    assert "kd" in [c["name"] for c in json.loads(components.stdout)["losses"]]
    assert "warning: plugin 'exiting' 0.1.0 failed: failed to load: SystemExit" in (
        components.stderr
    )


def test_other_base_exceptions_at_import_are_recorded(install) -> None:
    install("custom", "class Stop(BaseException):\n    pass\n\nraise Stop('halt')\n")
    install("closing", "raise GeneratorExit\n")
    host = PluginHost()
    assert host.plugins["custom"].errors == ["failed to load: Stop: halt"]
    assert host.plugins["closing"].errors == ["failed to load: GeneratorExit"]


def test_ctrl_c_at_import_still_stops_the_command(install) -> None:
    install("interrupted", "raise KeyboardInterrupt\n")
    with pytest.raises(KeyboardInterrupt):
        PluginHost()


class _Halt(BaseException):
    """Not an Exception: what a careless plugin might raise to stop."""


class _ExitingHooks:
    """A plugin whose losses hook calls sys.exit and whose encoders hook raises a
    BaseException; its domains hook works."""

    @hookimpl
    def register_losses(self, register) -> None:
        sys.exit(5)

    @hookimpl
    def register_encoders(self, register) -> None:
        raise _Halt("enough")

    @hookimpl
    def register_domains(self, register) -> None:
        from tests.rogue_plugin import NoneWine

        register(NoneWine)

    @hookimpl
    def register_feedback(self, register) -> None:
        raise KeyboardInterrupt


def test_a_hook_calling_sys_exit_is_recorded_against_its_plugin() -> None:
    class Hooks(_ExitingHooks):
        register_feedback = None  # no Ctrl-C here

    host = PluginHost(entry_points=False, plugins=[("exits", Hooks())])
    assert host.plugins["exits"].errors == [
        "register_encoders failed: _Halt: enough",
        "register_losses failed: SystemExit: sys.exit(5) in register_losses",
    ]
    assert host.plugins["exits"].components == {"domains": ["rogue.none"]}
    assert "kd" in host.components("losses")


def test_ctrl_c_in_a_hook_still_stops() -> None:
    with pytest.raises(KeyboardInterrupt):
        PluginHost(entry_points=False, plugins=[("exits", _ExitingHooks())])


def _config(**changes) -> dict:
    config = copy.deepcopy(TINY)
    config["train"]["epochs"] = 1
    config.update(changes)
    return config


def test_sys_exit_in_a_component_during_a_run_is_a_plugin_error(tmp_path) -> None:
    host = make_host()
    config = _config(domains=[{"name": "rogue.exiting", "role": "source"}])
    with pytest.raises(PluginError) as info:
        run_pipeline(load_config(config, host=host), output=tmp_path, host=host)
    assert str(info.value) == (
        "plugin 'rogue' 0.1, domain 'rogue.exiting', failed during loading domains: "
        "SystemExit: sys.exit(4) (run with --debug for the traceback)"
    )
    assert isinstance(info.value.__cause__, SystemExit)
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_sys_exit_in_a_component_is_one_error_line_through_the_cli(monkeypatch, tmp_path):
    monkeypatch.setattr(importlib.import_module("cdkd_core.cli.app"), "make_host", make_host)
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(_config(domains=[{"name": "rogue.exiting", "role": "source"}])))
    runs = tmp_path / "runs"
    result = invoke_cli("run", str(path), "--output", str(runs), "--quiet")
    assert result.exit_code == 1, result.output
    assert result.stderr.strip().splitlines() == [
        "error: plugin 'rogue' 0.1, domain 'rogue.exiting', failed during loading domains: "
        "SystemExit: sys.exit(4) (run with --debug for the traceback)"
    ]
    assert "Traceback" not in result.output
    assert not runs.exists() or list(runs.iterdir()) == []


def test_a_sys_exit_outside_plugin_code_is_not_blamed_on_a_plugin(tmp_path, monkeypatch):
    from cdkd_core.run import driver

    def exits(*args, **kwargs):
        raise SystemExit(9)

    monkeypatch.setattr(driver, "prepare_domains", exits)
    host = make_host()
    with pytest.raises(SystemExit):
        run_pipeline(load_config(_config(), host=host), output=tmp_path, host=host)


FETCH_EXITS = """
import sys

from cdkd_core import Domain, hookimpl


class Fetching(Domain):
    "A domain whose fetch calls sys.exit()."

    name = "fetching.data"

    @classmethod
    def fetch(cls):
        sys.exit(7)


@hookimpl
def register_domains(register):
    register(Fetching)
"""


def test_a_plugin_exiting_in_any_command_is_one_error_line_naming_it(install) -> None:
    """Outside a run too (here `cdkd data fetch`): the plugin's sys.exit() is named."""
    install("fetching", FETCH_EXITS)
    result = invoke_cli("data", "fetch", "fetching")
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.exit_code == 1 and len(errors) == 1, result.output
    assert "plugin 'fetching' 0.1.0" in errors[0] and "SystemExit" in errors[0], errors
    assert "Traceback" not in result.output
