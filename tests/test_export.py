"""`cdkd export`: a finished run's student as ONNX, TorchScript and torch.export files that
take raw (unstandardised) inputs and reproduce the run's student logits."""

from __future__ import annotations

import copy
import json
import shutil
import sys
import warnings

import pytest
import torch
import yaml
from typer.testing import CliRunner

from cdkd_core import load_config, run_pipeline
from cdkd_core.artifacts.export import FORMATS, export_run
from cdkd_core.cli import app
from cdkd_core.data.preparation import prepare_domains
from cdkd_core.errors import CdkdError, ExportError
from cdkd_core.files import load_weights
from cdkd_core.host.plugin_host import PluginHost
from cdkd_core.nets.assembly import NetworkSlot, build_network
from tests.conftest import TINY

runner = CliRunner()
ALL_FORMATS = ("onnx", "torchscript", "export")
#: the example batch the graphs are captured at is 2: these differ from it
BATCHES = (1, 5)


@pytest.fixture(scope="module")
def builtins() -> PluginHost:
    return PluginHost(entry_points=False)


@pytest.fixture(scope="module")
def run(tmp_path_factory, builtins):
    """A finished run with two tables (MLP stems) and 8x8 digits (a CNN stem), exported in
    every format: (run directory, config, manifest)."""
    cfg = copy.deepcopy(TINY)
    cfg["domains"].append(
        {"name": "sklearn.digits", "role": "source", "params": {"max_examples": 400}}
    )
    cfg["teacher"]["stems"] = {"image": {"name": "cnn", "params": {"channels": 4}}}
    cfg["student"]["stems"] = {"image": {"name": "cnn", "params": {"channels": 4}}}
    config = load_config(cfg, host=builtins)
    result = run_pipeline(config, output=tmp_path_factory.mktemp("runs"), host=builtins)
    manifest = export_run(result.run_dir, ALL_FORMATS, host=builtins)
    return result.run_dir, config, manifest


@pytest.fixture(scope="module")
def expected(run, builtins):
    """Per domain: its raw test inputs and the run's student logits on the standardised
    ones (the student rebuilt independently of cdkd_core.artifacts.export)."""
    run_dir, config, _ = run
    layout = json.loads((run_dir / "layout.json").read_text())
    slots = [NetworkSlot.from_dict(s) for s in layout["student"]]
    student = build_network(config.student, slots, builtins, "student", seed=0)
    student.load_state_dict(load_weights(run_dir / "student.safetensors"))
    student.eval()
    recorded = load_weights(run_dir / "predictions.safetensors")
    out = {}
    for d in prepare_domains(config, builtins):
        component = builtins.get("domains", d.entry.name).from_params(d.entry.params)
        raw = component.load(config.seed).splits["test"].student_x
        assert not torch.allclose(raw, d.test.student_x)  # the view is standardised
        with torch.no_grad():
            logits = student(d.test.student_x, d.space, d.task)
        assert torch.allclose(logits, recorded[f"{d.name}/student"], atol=1e-5)
        out[d.name] = (raw, logits)
    return out


def _predict(fmt: str, path, x: torch.Tensor) -> torch.Tensor:
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return torch.from_numpy(session.run(None, {"x": x.numpy()})[0])
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated
        if fmt == "torchscript":
            return torch.jit.load(str(path))(x)
        return torch.export.load(path).module()(x)


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_exported_graph_reproduces_the_student_on_raw_inputs(fmt, run, expected):
    run_dir, _, manifest = run
    assert set(manifest["domains"]) == set(expected)
    for name, (raw, logits) in expected.items():
        path = run_dir / "export" / manifest["domains"][name]["files"][fmt]
        assert path.name == name + FORMATS[fmt]
        # the whole test split, then batches of other sizes than the captured one
        got = _predict(fmt, path, raw)
        assert got.shape == logits.shape
        assert torch.allclose(got, logits, rtol=1e-5, atol=1e-5), (name, fmt)
        for batch in BATCHES:
            got = _predict(fmt, path, raw[:batch])
            assert torch.allclose(got, logits[:batch], rtol=1e-5, atol=1e-5), (name, batch)


def test_manifest_describes_each_file(run):
    run_dir, _, manifest = run
    on_disk = json.loads((run_dir / "export" / "manifest.json").read_text())
    assert on_disk == manifest
    assert manifest["formats"] == list(ALL_FORMATS) and manifest["skipped"] == {}
    assert manifest["run"] == run_dir.name and manifest["torch_version"] == torch.__version__
    wine = manifest["domains"]["sklearn.wine"]
    assert wine["input"] == {"name": "x", "shape": ["batch", 13], "dtype": "float32"}
    assert wine["output"] == {"name": "logits", "shape": ["batch", 3]}
    assert wine["classes"] == ["class_0", "class_1", "class_2"]
    assert wine["task"] == "sklearn.wine" and wine["standardization_included"] is True
    assert "before standardisation" in wine["note"] and "logits" in wine["note"]
    digits = manifest["domains"]["sklearn.digits"]
    assert digits["input"]["shape"] == ["batch", 1, 8, 8]
    assert digits["classes"] == [str(i) for i in range(10)]
    assert digits["modality"] == "image" and digits["plugin"] == "cdkd.domains"
    # no stem here reads raw text: nothing shipped beside the graphs, no text_input; no
    # graph holds weights large enough to share
    assert not [d for d in manifest["domains"].values() if "text_input" in d]
    assert manifest["shared_files"] == {}
    files = {f for d in manifest["domains"].values() for f in d["files"].values()}
    assert {p.name for p in (run_dir / "export").iterdir()} == files | {"manifest.json"}
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".")]  # no staging left


def test_text_files_are_shipped_once_and_never_clash(tmp_path):
    """A stem's inference files go to the top of export/ under their own names; a name
    already taken (by a graph, the manifest, or another space's different file) moves to a
    folder named after the space; the same file of two spaces is shipped once."""
    from cdkd_core.artifacts.text_export import TextInput, place_files

    shared, other, odd = (tmp_path / n for n in ("shared", "other", "odd"))
    for path in (shared, other, odd):
        path.mkdir()
        (path / "tokenizer.json").write_text(path.name)
    text = {
        "a": TextInput("nlp.text", "v", {"tokenizer.json": shared / "tokenizer.json"}, 8, 9),
        "b": TextInput("nlp.text", "v", {"tokenizer.json": shared / "tokenizer.json"}, 8, 9),
        "c": TextInput("nlp.same", "v", {"tokenizer.json": shared / "tokenizer.json"}, 8, 9),
        "d": TextInput("nlp.other", "w", {"tokenizer.json": other / "tokenizer.json"}, 8, 9),
        "e": TextInput("nlp.odd", "x", {"manifest.json": odd / "tokenizer.json"}, 8, 9),
    }
    placed = place_files(text, {"manifest.json", "a.onnx"})
    assert placed == {
        "nlp.text": {"tokenizer.json": "tokenizer.json"},
        "nlp.same": {"tokenizer.json": "tokenizer.json"},
        "nlp.other": {"tokenizer.json": "nlp.other/tokenizer.json"},
        "nlp.odd": {"manifest.json": "nlp.odd/manifest.json"},
    }


def test_onnx_graphs_share_the_weights_they_hold_alike(tmp_path):
    """A large initializer two graphs hold byte for byte is written once into the shared
    file, which both then read (from any folder they are copied to with it); a small one,
    or one with other bytes, stays inside its graph."""
    import numpy as np
    import onnx
    import onnxruntime
    from onnx import TensorProto, helper, numpy_helper

    from cdkd_core.artifacts.onnx_sharing import SHARED_WEIGHTS, share_initializers

    rng = np.random.default_rng(0)
    table = rng.standard_normal((200, 100)).astype(np.float32)  # 80,000 bytes
    bias = rng.standard_normal(100).astype(np.float32)  # small: stays inside

    def write(name: str, weight: np.ndarray):
        graph = helper.make_graph(
            [
                helper.make_node("MatMul", ["x", "w"], ["h"]),
                helper.make_node("Add", ["h", "b"], ["y"]),
            ],
            name,
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 200])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 100])],
            [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        onnx.save(model, str(tmp_path / name))
        return tmp_path / name

    paths = [write("a.onnx", table), write("b.onnx", table), write("c.onnx", table + 1)]
    x = rng.standard_normal((3, 200)).astype(np.float32)

    def outputs(folder) -> dict[str, np.ndarray]:
        return {
            p.name: onnxruntime.InferenceSession(
                str(folder / p.name), providers=["CPUExecutionProvider"]
            ).run(None, {"x": x})[0]
            for p in paths
        }

    before = outputs(tmp_path)
    sizes = {p.name: p.stat().st_size for p in paths}
    shared = share_initializers(paths, tmp_path / SHARED_WEIGHTS)
    assert shared == {"bytes": table.nbytes, "tensors": 1, "graphs": ["a.onnx", "b.onnx"]}
    assert (tmp_path / SHARED_WEIGHTS).read_bytes() == table.tobytes()
    for name in ("a.onnx", "b.onnx"):
        assert (tmp_path / name).stat().st_size < sizes[name] - table.nbytes + 1000
    assert (tmp_path / "c.onnx").stat().st_size == sizes["c.onnx"]
    elsewhere = shutil.copytree(tmp_path, tmp_path.parent / f"{tmp_path.name}-moved")
    for name, got in outputs(elsewhere).items():
        np.testing.assert_array_equal(got, before[name])
    assert share_initializers(paths[2:], tmp_path / "none.onnx_data") is None
    assert not (tmp_path / "none.onnx_data").exists()


def test_a_domain_the_student_cannot_predict_is_skipped(run, builtins, tmp_path):
    run_dir = shutil.copytree(run[0], tmp_path / "run")
    layout = json.loads((run_dir / "layout.json").read_text())
    layout["domains"]["elsewhere"] = {**layout["domains"]["sklearn.wine"], "space": "other"}
    (run_dir / "layout.json").write_text(json.dumps(layout))
    manifest = export_run(run_dir, ["export"], host=builtins)
    assert "elsewhere" not in manifest["domains"] and len(manifest["domains"]) == 3
    assert manifest["skipped"] == {
        "elsewhere": "the student has no stem for its input space 'other'"
    }


def test_a_run_trained_on_a_bigger_machine_still_exports(run, builtins, tmp_path):
    """The device and CPU threads a run trained with are not this machine's business."""
    run_dir = shutil.copytree(run[0], tmp_path / "run")
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config["train"].update(device="cuda:7", threads=100_000)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    manifest = export_run(run_dir, ["torchscript"], host=builtins)
    assert len(manifest["domains"]) == 3


def test_unknown_format_and_missing_onnx_packages(run, builtins, monkeypatch):
    run_dir = run[0]
    with pytest.raises(ExportError, match="unknown export format 'tflite'"):
        export_run(run_dir, ["tflite"], host=builtins)
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as if not installed
    with pytest.raises(ExportError, match="pip install onnxscript"):
        export_run(run_dir, ["onnx"], host=builtins)


def test_a_failed_export_leaves_the_previous_one(run, builtins, monkeypatch, tmp_path):
    run_dir = shutil.copytree(run[0], tmp_path / "run")
    before = {p.name: p.read_bytes() for p in (run_dir / "export").iterdir()}
    from cdkd_core.artifacts import export

    def broken(fmt, module, x, path, domain):
        raise CdkdError(f"domain {domain!r}: broken")

    monkeypatch.setattr(export, "verify_graph", broken)
    with pytest.raises(CdkdError, match="broken"):
        export_run(run_dir, ["torchscript"], host=builtins)
    assert {p.name: p.read_bytes() for p in (run_dir / "export").iterdir()} == before
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".")]


# the CLI


@pytest.fixture
def cli_run(run, tmp_path, monkeypatch):
    """A copy of the run (the CLI rewrites export/); installed plugins stay out."""
    from cdkd_core.host import plugin_host as plugins

    monkeypatch.setattr(plugins, "entry_points", lambda group: [])
    return shutil.copytree(run[0], tmp_path / "run")


def test_cli_export_replaces_the_export_directory(cli_run):
    result = runner.invoke(app, ["export", str(cli_run), "--format", "torchscript"])
    assert result.exit_code == 0, result.output
    assert f"wrote {cli_run / 'export' / 'sklearn.digits.pt'}" in result.output
    assert f"wrote {cli_run / 'export' / 'manifest.json'}" in result.output
    # the earlier export (every format) is replaced as a whole
    assert sorted(p.name for p in (cli_run / "export").iterdir()) == [
        "manifest.json",
        "sklearn.breast_cancer.pt",
        "sklearn.digits.pt",
        "sklearn.wine.pt",
    ]
    result = runner.invoke(app, ["export", str(cli_run), "-f", "export", "-f", "export", "--json"])
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.output)
    assert manifest["formats"] == ["export"]
    assert manifest["domains"]["sklearn.wine"]["files"] == {"export": "sklearn.wine.pt2"}


def test_cli_formats_match_the_exporter():
    from cdkd_core.cli.app import ExportFormat

    assert [f.value for f in ExportFormat] == list(FORMATS)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("missing", "no such run directory"),
        ("file", "not a directory"),
        ("empty", "not a run directory (it has no config.yaml)"),
        ("unfinished", "the run has not finished (no summary.json)"),
        ("old", "missing layout.json"),
    ],
)
def test_cli_bad_run_dir_is_one_message(damage, message, cli_run, tmp_path):
    target = cli_run
    if damage == "missing":
        target = tmp_path / "nowhere"
    elif damage == "file":
        target = cli_run / "summary.json"
    elif damage == "empty":
        target = tmp_path / "empty"
        target.mkdir()
    elif damage == "unfinished":
        (cli_run / "summary.json").unlink()
    else:
        (cli_run / "layout.json").unlink()
    result = runner.invoke(app, ["export", str(target), "--format", "export"])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert result.output.count("error:") == 1


def test_cli_unknown_format_and_missing_onnx_packages(cli_run, monkeypatch):
    result = runner.invoke(app, ["export", str(cli_run), "--format", "tflite"])
    assert result.exit_code == 2 and "'tflite' is not one of" in result.output
    monkeypatch.setitem(sys.modules, "onnx", None)
    result = runner.invoke(app, ["export", str(cli_run)])  # onnx is the default
    assert result.exit_code == 2
    assert "pip install onnx" in result.output and "Traceback" not in result.output


def test_cli_run_needing_a_plugin_that_is_not_installed(cli_run):
    config = yaml.safe_load((cli_run / "config.yaml").read_text())
    config["domains"][0]["name"] = "medical.nuclei"
    config["domains"][0]["params"] = {}
    (cli_run / "config.yaml").write_text(yaml.safe_dump(config))
    result = runner.invoke(app, ["export", str(cli_run), "--format", "export"])
    assert result.exit_code == 2, result.output
    assert "config.yaml" in result.output and "medical.nuclei" in result.output
    assert "cdkd plugins install medical" in result.output
    assert "Traceback" not in result.output


def test_the_onnx_exporter_writes_no_log_lines(tmp_path, capfd):
    """The ONNX exporter's own warnings (one per torchvision operator it cannot register
    when torchvision is absent) stay out of ``cdkd export``'s output; its logger's level is
    restored afterwards."""
    import logging

    from cdkd_core.artifacts.export_formats import write_graph

    logger = logging.getLogger("torch.onnx")
    before = logger.level
    linear = torch.nn.Linear(3, 2).eval()
    write_graph("onnx", linear, torch.randn(4, 3), tmp_path / "m.onnx", "d")
    assert (tmp_path / "m.onnx").is_file()
    out, err = capfd.readouterr()
    assert out == "" and "torchvision" not in err and "W1" not in err, err[-500:]
    assert logger.level == before
