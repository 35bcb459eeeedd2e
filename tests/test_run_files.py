"""Every reader of a run directory's files goes through one loader: a missing, corrupt or
wrong-shaped file ends every command that reads it with one ``error:`` line naming it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cdkd_core.errors import RunFileError
from cdkd_core.files import read_run_file, save_weights

#: how each file is broken: not its format at all, cut short, and (JSON/YAML) the wrong type
CORRUPTIONS = {
    "garbage": lambda data: b"\x00\xff not what it should be \x80" * 3,
    "truncated": lambda data: data[: max(len(data) // 3, 1)],
    "empty": lambda data: b"",
}

#: the commands reading each run file (besides the run that wrote it; the report reads the
#: saved knowledge sample, not the models, and shows a note where that is unreadable)
READERS = {
    "encoder.safetensors": [["graph"]],
    "encoder.json": [["graph"]],
    "layout.json": [["graph"], ["export", "--format", "torchscript"], ["predict"]],
    "student.safetensors": [["export", "--format", "torchscript"], ["predict"]],
    "preprocessing.safetensors": [["export", "--format", "torchscript"], ["predict"]],
    "teacher.safetensors": [["predict", "--model", "teacher"]],
    "summary.json": [["report"], ["predict", "--model", "teacher"]],
    "config.yaml": [["report"], ["export", "--format", "torchscript"]],
}


@pytest.fixture(scope="module")
def graph_run(tmp_path_factory) -> Path:
    """A finished tiny run with the knowledge_graph encoder (so `cdkd graph` reads it)."""
    import torch

    from cdkd_core import run_pipeline
    from cdkd_core.host.plugin_host import PluginHost
    from cdkd_core.testing import tiny_pipeline_config

    torch.set_num_threads(1)
    config = tiny_pipeline_config()
    config["encoder"] = {"name": "knowledge_graph", "params": {"dim": 4}}
    out = tmp_path_factory.mktemp("runs")
    return run_pipeline(config, output=out, host=PluginHost(entry_points=False)).run_dir


def _command(args: list[str], run_dir: Path, rows: Path) -> list[str]:
    head, rest = args[0], args[1:]
    if head == "predict":
        return ["predict", str(run_dir), str(rows), "-d", "sklearn.wine", *rest]
    return [head, str(run_dir), *rest]


def _wine_rows(path: Path) -> Path:
    import csv

    import sklearn.datasets

    bunch = sklearn.datasets.load_wine()
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(bunch.feature_names)
        writer.writerows(bunch.data[:3].tolist())
    return path


@pytest.mark.parametrize("name", sorted(READERS))
def test_a_broken_run_file_is_one_error_line_naming_it(graph_run, tmp_path, cdkd_cli, name):
    rows = _wine_rows(tmp_path / "rows.csv")
    for how, corrupt in CORRUPTIONS.items():
        if how == "truncated" and name.endswith(".yaml"):
            continue  # YAML cut short is often still YAML (a mapping with fewer keys)
        run_dir = tmp_path / f"run-{how}"
        shutil.copytree(graph_run, run_dir)
        path = run_dir / name
        path.write_bytes(corrupt(path.read_bytes()))
        for args in READERS[name]:
            result = cdkd_cli(*_command(args, run_dir, rows))
            lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
            what = f"{name} {how}: cdkd {' '.join(args)}"
            assert result.exit_code != 0, what
            assert "Traceback" not in result.output, (what, result.output[-2000:])
            assert len(lines) == 1 and name in lines[0], (what, result.stderr[-2000:])
            assert not (run_dir / "report.html").exists(), what  # nothing half-written
        shutil.rmtree(run_dir)


def test_read_run_file_names_the_file_and_what_it_found(tmp_path):
    weights = tmp_path / "w.safetensors"
    save_weights(weights, {"a": __import__("torch").zeros(2)})
    assert list(read_run_file(weights)) == ["a"]
    weights.write_bytes(b"nonsense")
    with pytest.raises(RunFileError, match=r"w\.safetensors: not a readable safetensors file"):
        read_run_file(weights)
    doc = tmp_path / "summary.json"
    doc.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(RunFileError, match=r"summary\.json: expected a JSON dict, found list"):
        read_run_file(doc)
    assert read_run_file(doc, expect=None) == [1, 2]
    doc.write_text("[" * 100_000, encoding="utf-8")  # nested beyond the parser's recursion
    with pytest.raises(RunFileError, match="not a readable JSON file"):
        read_run_file(doc)
    with pytest.raises(RunFileError, match=r"missing\.yaml: missing"):
        read_run_file(tmp_path / "missing.yaml")
