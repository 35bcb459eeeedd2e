"""The `cdkd` command, driven in-process with Typer's CliRunner."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from typer.testing import CliRunner

from cdkd_core.cli import app

runner = CliRunner()

COMMANDS = [
    ["run"],
    ["validate"],
    ["export"],
    ["components"],
    ["init"],
    ["plugins", "list"],
    ["plugins", "available"],
    ["plugins", "install"],
]


@pytest.fixture(autouse=True)
def _builtins_only(monkeypatch):
    """Installed plugins stay out of these tests (the CLI host loads entry points)."""
    from cdkd_core.host import plugin_host as plugins

    monkeypatch.setattr(plugins, "entry_points", lambda group: [])


def write(tmp_path, config, name="pipeline.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help_with_an_example(command):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert re.search(r"Examples?:\s+\$? ?cdkd ", result.output), result.output


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("cdkd ")


def test_run_prints_the_table_and_writes_summary(tiny_config, tmp_path):
    path = write(tmp_path, tiny_config)
    out = tmp_path / "runs"
    result = runner.invoke(
        app,
        [
            "run",
            str(path),
            "--output",
            str(out),
            "--quiet",
            "--set",
            "train.epochs=1",
            "--set",
            "name=cli",
        ],
    )
    assert result.exit_code == 0, result.output
    for word in ("sklearn.wine", "sklearn.breast_cancer", "teacher", "student", "baseline"):
        assert word in result.output
    (run_dir,) = out.iterdir()
    assert run_dir.name.startswith("cli-")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["train"]["epochs"] == 1
    assert summary["domains"]["sklearn.wine"]["student"] is not None


def test_run_without_config_is_the_quickstart(tmp_path):
    result = runner.invoke(
        app, ["run", "--output", str(tmp_path), "--quiet", "--json", "--set", "train.epochs=1"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert {"sklearn.digits", "sklearn.wine", "sklearn.breast_cancer"} <= set(summary["domains"])
    (run_dir,) = tmp_path.iterdir()
    assert run_dir.name.startswith("quickstart-")


def test_validate_without_config_checks_the_quickstart_run_would_run():
    from cdkd_core.config.quickstart import quickstart_config
    from cdkd_core.host.plugin_host import PluginHost

    result = runner.invoke(app, ["validate"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("built-in quickstart (cdkd run without CONFIG): valid")
    names = [d["name"] for d in quickstart_config(PluginHost())["domains"]]
    assert f"domains: {', '.join(f'{n} (source)' for n in names)};" in result.output
    # the overrides apply to it, as to `cdkd run --set ...`
    result = runner.invoke(app, ["validate", "--set", "train.epochs=0"])
    assert result.exit_code == 2
    assert "invalid config (built-in quickstart)" in result.output
    assert "train.epochs" in result.output


def test_size_line_shows_the_student_against_the_teachers_trainable_part():
    from types import SimpleNamespace

    from cdkd_core.artifacts.summary_sections import sizes_section
    from cdkd_core.cli.app import size_line

    params = {
        "teacher": 23_123_386,
        "student": 982_840,
        "teacher_network": 400_000,
        "teacher_target_heads": 10_170,
        "teacher_view_encoders": 22_713_216,
        "teacher_trainable": 410_170,
    }
    assert size_line(params) == (
        "parameters: teacher 23,123,386 (410,170 trainable + 22,713,216 in frozen encoders of "
        "its input views), student 982,840 (4.3% of the whole teacher, 239.6% of its "
        "trainable part)"
    )
    html = sizes_section(SimpleNamespace(summary={"params": params}))
    assert "trainable part" in html and "<td>410,170</td>" in html and "239.6%" in html
    plain = {"teacher": 1000, "student": 20, "teacher_view_encoders": 0}
    assert size_line(plain) == "parameters: teacher 1,000, student 20 (2.0% of the teacher)"


def test_validate_ok(tiny_config, tmp_path):
    result = runner.invoke(app, ["validate", str(write(tmp_path, tiny_config))])
    assert result.exit_code == 0 and "valid" in result.output


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"train": {"epochs": 0}}, "train.epochs"),
        ({"bogus": 1}, "bogus: unknown key"),
        ({"encoder": {"name": "pcaa"}}, "did you mean 'pca'"),
        ({"encoder": {"name": "pca", "params": {"dims": 3}}}, "encoder.params.dims"),
        ({"domains": []}, "domains"),
        ({"domains": [{"name": "medical.nuclei"}]}, "cdkd plugins install medical"),
        ({"losses": [{"name": "graph"}]}, "needs ['graph']"),
        ({"name": "../escape"}, "not a safe run name"),
        ({"train": {"epochs": True}}, "train.epochs: expected a number, got a boolean (true)"),
        ({"encoder": {"name": "pca", "params": {"dim": False}}}, "encoder.params.dim: expected"),
        ({"seed": 2**64}, "seed: Input should be less than or equal to 4294967295"),
        ({"seed": 2**63 - 1}, "seed: Input should be less than or equal to 4294967295"),
        ({"train": {"threads": 100_000}}, "train.threads: 100000 but this machine has"),
    ],
)
def test_bad_config_one_message_exit_2_no_traceback(tiny_config, tmp_path, change, expected):
    tiny_config.update(change)
    path = write(tmp_path, tiny_config)
    for command in (
        ["validate", str(path)],
        ["run", str(path), "--output", str(tmp_path / "runs")],
    ):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, result.output
        assert expected in result.output
        assert "Traceback" not in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not (tmp_path / "runs").exists()


def _refused_once(result, expected):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0], result.output


@pytest.mark.parametrize("device", ["cuda", "cuda:1", "mps"])
def test_a_device_the_machine_lacks_is_refused(tiny_config, tmp_path, monkeypatch, device):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    tiny_config["train"]["device"] = device
    path = write(tmp_path, tiny_config)
    _refused_once(runner.invoke(app, ["validate", str(path)]), f"train.device: {device} but")
    result = runner.invoke(app, ["run", str(path), "--output", str(tmp_path / "runs")])
    _refused_once(result, f"train.device: {device} but")
    assert not (tmp_path / "runs").exists()


def _output_cases(tmp_path):
    (tmp_path / "afile").write_text("keep me")
    return [
        (tmp_path / "afile", "exists and is not a directory"),
        (tmp_path / "afile" / "runs", "cannot be created: "),
        (tmp_path / "afile" / "a" / "b", "is not a directory"),
    ]


def test_run_refuses_an_output_path_that_cannot_hold_a_run(tiny_config, tmp_path):
    path = write(tmp_path, tiny_config)
    for output, why in _output_cases(tmp_path):
        result = runner.invoke(app, ["run", str(path), "--output", str(output), "--quiet"])
        _refused_once(result, f"error: output directory {str(output)!r} ")
        assert why in result.output
    output = tmp_path / "afile"  # with --nproc, refused before torchrun starts
    result = runner.invoke(app, ["run", str(path), "--output", str(output), "--nproc", "2"])
    _refused_once(result, f"error: output directory {str(output)!r} exists and is not a")
    assert (tmp_path / "afile").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "pipeline.yaml"]


def test_run_refuses_an_output_directory_that_is_not_writable(tiny_config, tmp_path, monkeypatch):
    """Checked with os.access (as root, a real read-only directory is writable)."""
    import os

    locked = tmp_path / "locked"
    locked.mkdir()
    real = os.access

    def access(path, mode, **kwargs):
        if mode & os.W_OK and os.fspath(path).startswith(str(locked)):
            return False
        return real(path, mode, **kwargs)

    monkeypatch.setattr(os, "access", access)
    path = write(tmp_path, tiny_config)
    result = runner.invoke(app, ["run", str(path), "--output", str(locked)])
    _refused_once(result, f"output directory {str(locked)!r} is not writable")
    result = runner.invoke(app, ["run", str(path), "--output", str(locked / "new")])
    _refused_once(result, f"cannot be created: {str(locked)!r} is not writable")
    assert list(locked.iterdir()) == []


@pytest.mark.skipif(
    not hasattr(__import__("os"), "geteuid") or __import__("os").geteuid() == 0,
    reason="root writes into read-only directories",
)
def test_run_refuses_a_read_only_output_directory(tiny_config, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        path = write(tmp_path, tiny_config)
        result = runner.invoke(app, ["run", str(path), "--output", str(locked)])
        _refused_once(result, "is not writable")
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


def test_run_pipeline_refuses_an_output_file_before_anything_is_written(tiny_config, tmp_path):
    from cdkd_core.errors import ConfigError
    from cdkd_core.host.plugin_host import PluginHost
    from cdkd_core.run.runner import run_pipeline

    for output, why in _output_cases(tmp_path):
        with pytest.raises(ConfigError, match=why) as info:
            run_pipeline(tiny_config, output=output, host=PluginHost(entry_points=False))
        assert info.value.exit_code == 2 and str(output) in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_missing_config_file(tmp_path):
    result = runner.invoke(app, ["validate", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2 and "config file not found" in result.output


def test_debug_shows_the_exception(tmp_path):
    result = runner.invoke(app, ["--debug", "validate", str(tmp_path / "nope.yaml")])
    assert result.exit_code != 0
    from cdkd_core.errors import ConfigError

    assert isinstance(result.exception, ConfigError)


def test_bad_override(tiny_config, tmp_path):
    result = runner.invoke(
        app, ["validate", str(write(tmp_path, tiny_config)), "--set", "train.epochs"]
    )
    assert result.exit_code == 2 and "KEY.PATH=VALUE" in result.output


def test_bad_data_names_the_file_and_leaves_nothing(tiny_config, tmp_path):
    tiny_config["domains"].append(
        {
            "name": "tabular",
            "role": "source",
            "params": {"path": str(tmp_path / "loans.csv"), "label": "default"},
        }
    )
    result = runner.invoke(
        app,
        ["run", str(write(tmp_path, tiny_config)), "--output", str(tmp_path / "runs"), "--quiet"],
    )
    assert result.exit_code == 2
    assert "loans.csv" in result.output and "Traceback" not in result.output
    assert list((tmp_path / "runs").iterdir()) == []


def test_tabular_csv_domain_through_the_cli(tiny_config, tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    lines = ["income,region,default"]
    for i in range(200):
        income = rng.normal(50, 10)
        region = ["north", "south", ""][i % 3]
        lines.append(f"{income:.2f},{region},{'yes' if income > 52 else 'no'}")
    (tmp_path / "loans.csv").write_text("\n".join(lines) + "\n")
    tiny_config["domains"].append(
        {
            "name": "tabular",
            "alias": "loans",
            "role": "target",
            "label_fraction": 0.2,
            "params": {"path": str(tmp_path / "loans.csv"), "label": "default"},
        }
    )
    result = runner.invoke(
        app,
        [
            "run",
            str(write(tmp_path, tiny_config)),
            "--json",
            "--quiet",
            "--output",
            str(tmp_path / "runs"),
        ],
    )
    assert result.exit_code == 0, result.output
    loans = json.loads(result.output)["domains"]["loans"]
    assert loans["role"] == "target" and loans["teacher"] is None
    assert (
        loans["sizes"]["labelled"] == round(0.2 * loans["sizes"]["train"])
        or abs(loans["sizes"]["labelled"] - 0.2 * loans["sizes"]["train"]) <= 2
    )


def test_components():
    result = runner.invoke(app, ["components"])
    assert result.exit_code == 0
    for name in ("pca", "linear", "graph", "kd", "hint", "mutual", "hard_examples", "mlp"):
        assert name in result.output
    result = runner.invoke(app, ["components", "losses", "--json"])
    losses = json.loads(result.output)["losses"]
    kd = next(c for c in losses if c["name"] == "kd")
    assert "temperature" in kd["params"] and kd["plugin"] == "cdkd.losses"
    for summary in [*result.output.splitlines(), *(c["summary"] for c in losses)]:
        assert "`" not in summary, summary
    result = runner.invoke(app, ["components", "domains"])
    assert "as .npy files" in result.output and "`" not in result.output
    result = runner.invoke(app, ["components", "widgets"])
    assert result.exit_code == 2 and "unknown component kind" in result.output


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        ("arrays as ``.npy`` files", "arrays as .npy files"),
        ("repeats `rounds` times", "repeats rounds times"),
        ("see :class:`~cdkd_core.components.encoder.KnowledgeEncoder`", "see KnowledgeEncoder"),
        ("see :func:`cdkd_core.load_config`", "see cdkd_core.load_config"),
        (":ref:`the guide <guide>` and a lone ` tick", "the guide and a lone ` tick"),
    ],
)
def test_summaries_are_shown_without_markup(text, plain):
    from cdkd_core.cli.common import plain_text

    assert plain_text(text) == plain


def test_plugins_list_and_available():
    result = runner.invoke(app, ["plugins", "list", "--json"])
    assert result.exit_code == 0
    names = {p["name"] for p in json.loads(result.output)}
    assert {"cdkd.domains", "cdkd.encoders", "cdkd.losses"} <= names
    result = runner.invoke(app, ["plugins", "available", "--json"])
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert rows["medical"]["package"] == "cdkd-medical"
    assert {"medical", "finance", "nlp"} <= set(rows)


def test_plugins_install_prints_what_it_installs():
    result = runner.invoke(app, ["plugins", "install", "nlp", "--dry-run"])
    assert result.exit_code == 0
    assert "pip install" in result.output
    assert "cdkd-nlp" in result.output


def test_data_fetch_with_nothing_to_fetch():
    result = runner.invoke(app, ["data", "fetch"])
    assert result.exit_code == 0 and "nothing to fetch" in result.output
    result = runner.invoke(app, ["data", "fetch", "nosuchplugin"])
    assert result.exit_code == 1 and "registers no domains" in result.output


def test_init_writes_a_valid_config(tmp_path):
    path = tmp_path / "starter.yaml"
    assert runner.invoke(app, ["init", str(path)]).exit_code == 0
    assert "#" in path.read_text()
    assert runner.invoke(app, ["validate", str(path)]).exit_code == 0
    again = runner.invoke(app, ["init", str(path)])
    assert again.exit_code == 1 and "--force" in again.output
    assert runner.invoke(app, ["init", str(path), "--force"]).exit_code == 0


def test_init_writes_the_teacher_the_docs_recommend(tmp_path):
    """The starter's teacher is the default teacher (a config without ``teacher:``), which
    docs/configuration.md's "Teachers for tables" recommends, with the settings it was
    chosen with."""
    from pathlib import Path

    from cdkd_core.config.loading import load_config
    from cdkd_core.config.models import DEFAULT_TEACHER_TRAIN, PipelineConfig

    path = tmp_path / "starter.yaml"
    assert runner.invoke(app, ["init", str(path)]).exit_code == 0
    starter = load_config(path)
    default = PipelineConfig.model_fields["teacher"].get_default(call_default_factory=True)
    assert starter.teacher.auto == default.auto is not None
    assert starter.teacher.trunk == default.trunk
    assert starter.teacher.stems["tabular"] == default.stems["tabular"]
    assert {k: getattr(starter.train, k) for k in DEFAULT_TEACHER_TRAIN} == DEFAULT_TEACHER_TRAIN
    docs = (Path(__file__).parents[1] / "docs" / "configuration.md").read_text(encoding="utf-8")
    section = docs.split("### Teachers for tables", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"^```yaml\n(.*?)^```", section, re.S | re.M)
    recommended = yaml.safe_load(block)
    assert recommended["teacher"]["trunk"] == default.trunk.model_dump()
    assert recommended["teacher"]["stems"]["tabular"] == default.stems["tabular"].model_dump()
    assert recommended["train"] == DEFAULT_TEACHER_TRAIN


def test_warnings_during_a_command_print_as_one_warning_line() -> None:
    import warnings

    from cdkd_core.cli.common import user_errors

    before = warnings.formatwarning

    @user_errors
    def command() -> tuple[str, str]:
        return (
            warnings.formatwarning("dim 5000 asked; using dim 90", UserWarning, "enc.py", 7),
            warnings.formatwarning("old API", DeprecationWarning, "lib.py", 3),
        )

    mine, library = command()
    assert mine == "warning: dim 5000 asked; using dim 90\n"
    assert library.startswith("lib.py:3: DeprecationWarning: old API")
    assert warnings.formatwarning is before
