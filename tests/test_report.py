"""`cdkd report`: one self-contained HTML page per finished run, checked on a tiny real run
with two feedback rounds."""

from __future__ import annotations

import base64
import copy
import io
import re
import shutil

import pytest
import torch
from typer.testing import CliRunner

from cdkd_core import load_config, run_pipeline
from cdkd_core.artifacts.curves import training_curves
from cdkd_core.artifacts.knowledge_sample import (
    KNOWLEDGE_SAMPLE,
    read_knowledge_sample,
    recompute_knowledge_sample,
    save_knowledge_sample,
)
from cdkd_core.artifacts.knowledge_space import cross_fitted, least_squares_map, pca_2d
from cdkd_core.artifacts.report import REPORT, render_report, write_report
from cdkd_core.artifacts.run_files import read_run
from cdkd_core.cli import app
from cdkd_core.errors import CdkdError, ReportError
from cdkd_core.host.plugin_host import PluginHost
from tests.conftest import TINY

runner = CliRunner()
SECTIONS = ("results", "curves", "knowledge", "rounds", "sizes", "config")


@pytest.fixture(autouse=True)
def _builtins_only(monkeypatch):
    """Installed plugins stay out of these tests (the CLI host loads entry points)."""
    from cdkd_core.host import plugin_host as plugins

    monkeypatch.setattr(plugins, "entry_points", lambda group: [])


@pytest.fixture(scope="module")
def builtins() -> PluginHost:
    return PluginHost(entry_points=False)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, builtins):
    """A finished two-domain run with two rounds of hard_examples feedback."""
    cfg = copy.deepcopy(TINY)
    cfg["feedback"] = {"name": "hard_examples", "params": {"rounds": 2}}
    cfg["train"]["teacher_gate"] = "none"  # every loss term trains (no domain falls back)
    config = load_config(cfg, host=builtins)
    return run_pipeline(config, output=tmp_path_factory.mktemp("runs"), host=builtins).run_dir


def _copy(run_dir, tmp_path):
    target = tmp_path / run_dir.name
    shutil.copytree(run_dir, target)
    return target


def _images(page: str) -> list[bytes]:
    uris = re.findall(r'<img alt="[^"]*" src="([^"]+)"', page)
    assert len(uris) == page.count("<img")
    out = []
    for uri in uris:
        assert uri.startswith("data:image/png;base64,")
        out.append(base64.b64decode(uri.removeprefix("data:image/png;base64,"), validate=True))
    return out


def test_report_has_every_part_and_is_self_contained(run_dir, tmp_path, builtins):
    from PIL import Image

    run = _copy(run_dir, tmp_path)
    # the knowledge space as for a run that saved no sample: recomputed from the directory
    (run / KNOWLEDGE_SAMPLE).unlink(missing_ok=True)
    path = write_report(run, host=builtins)
    assert path == run / REPORT
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    for key in SECTIONS:
        assert f'<section id="{key}">' in page and f'href="#{key}"' in page
    # self-contained: no external reference of any kind
    refs = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert refs and all(r.startswith(("data:image/png;base64,", "#")) for r in refs)
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page).lower()
    for word in ("http", "www.", "<script", "<link", "<iframe", "url(", "@import"):
        assert word not in text
    # four plots (test Δ, learning curves, knowledge space, rounds), each a real PNG
    images = _images(page)
    assert len(images) == 4
    for data in images:
        image = Image.open(io.BytesIO(data))
        image.load()
        assert image.format == "PNG" and image.width > 300 and image.height > 100
    run_files = read_run(run)
    summary = run_files.summary
    # the test table: every domain with its three models and the Δ
    for name, d in summary["domains"].items():
        row = re.search(rf"<tr><td class=\"l\">{re.escape(name)}</td>.*?</tr>", page)
        assert row, name
        for model in ("teacher", "student", "baseline"):
            assert f"<td>{d[model]:.4f}</td>" in row.group(0)
        assert f"{d['student'] - d['baseline']:+.4f}" in row.group(0)
    # the rounds: both rounds' columns and what the feedback logged
    assert "r0 student" in page and "r1 student" in page
    assert "hard_examples" in page and "student_quiz_accuracy" in page
    # the knowledge space, recomputed, lists both domains
    assert "recomputed from the run directory" in page
    section = page.split('<section id="knowledge">')[1].split("</section>")[0]
    for name in summary["domains"]:
        assert f'<td class="l">{name}</td>' in section
    # sizes and latency
    params = summary["params"]
    assert f"{params['teacher']:,}" in page and f"{params['student']:,}" in page
    assert "ms per example, batch 256" in page and "ms per example, batch 1" in page
    # the config, escaped
    assert "hard_examples" in page.split('<section id="config">')[1]


def test_learning_curves_come_from_every_stage_and_round(run_dir):
    curves = training_curves(read_run(run_dir).records)
    titles = [c.title for c in curves]
    assert titles == [
        "teacher (source domains)",
        "baseline (student without the teacher)",
        "student, round 0",
        "teacher fine-tuning, feedback after round 0",
        "student, round 1",
    ]
    student = curves[2]
    assert student.epochs == [1, 2]
    assert set(student.losses) == {"0:ce", "1:kd", "2:hint"}
    assert all(v is not None for v in student.val_scores)
    assert student.selected in student.epochs


def test_a_repeated_epoch_keeps_its_last_record():
    records = [
        {"stage": "teacher", "round": None, "epoch": 1, "loss": {"0:ce": 1.0}, "val_score": 0.5},
        {"event": "resumed", "stage": "teacher", "round": None},
        {"stage": "teacher", "round": None, "epoch": 1, "loss": {"0:ce": 0.9}, "val_score": 0.6},
        {"stage": "teacher", "round": None, "epoch": 2, "loss": {"0:ce": 0.7}, "val_score": None},
        {"stage": "teacher", "round": None, "event": "selected", "epoch": 1, "val_score": 0.6},
    ]
    (curve,) = training_curves(records)
    assert curve.epochs == [1, 2]
    assert curve.losses == {"0:ce": [0.9, 0.7]}
    assert curve.val_scores == [0.6, None] and curve.selected == 1


def test_saved_knowledge_sample_is_used(run_dir, tmp_path, builtins):
    """``save_knowledge_sample`` as the pipeline calls it after a round: the report then shows
    the saved vectors and the hint loss's projector, and the vectors agree with those the
    report recomputes from the run directory."""
    from cdkd_core.data.preparation import prepare_domains
    from cdkd_core.files import load_weights
    from cdkd_core.nets.assembly import build_network
    from cdkd_core.stages.knowledge import extract_knowledge
    from cdkd_core.stages.teacher_cache import TeacherCache

    run = _copy(run_dir, tmp_path)
    config = load_config(run / "config.yaml", host=builtins)
    feedback = builtins.get("feedback", config.feedback.name).from_params(config.feedback.params)
    domains = prepare_domains(config, builtins, feedback.quiz_fraction)
    sources = [d for d in domains if d.role == "source"]
    teacher = build_network(config.teacher, sources, builtins, "teacher", config.seed)
    teacher.load_state_dict(load_weights(run / "teacher.safetensors"))
    trained = [d for d in domains if d.trained]
    student = build_network(config.student, trained, builtins, "student", config.seed + 1)
    student.load_state_dict(load_weights(run / "student.safetensors"))
    encoder = builtins.get("encoders", config.encoder.name).from_params(config.encoder.params)
    device = torch.device("cpu")
    outputs = extract_knowledge(teacher, domains, encoder, "trunk", TeacherCache(), 256, device)
    hint = builtins.get("losses", "hint")()
    hint.setup(8, encoder.dim)  # the tiny student's trunk width, the encoder's dim
    losses = [(builtins.get("losses", "ce")(), 1.0), (hint, 0.5)]
    save_knowledge_sample(
        run, domains, outputs, student, losses, "trunk", device, round_=1, seed=config.seed
    )
    sample = read_knowledge_sample(run)
    assert sample is not None and sample.meta["projector"] == "hint"
    assert sample.meta["round"] == 1 and sample.meta["source"] == "run"
    recomputed = recompute_knowledge_sample(run, builtins)
    assert list(sample.domains) == list(recomputed.domains) == [d.name for d in domains]
    for d in domains:
        saved, again = sample.domains[d.name], recomputed.domains[d.name]
        n = min(len(d.train), 200)
        assert saved.knowledge.shape == (n, encoder.dim)
        assert saved.projected.shape == (n, encoder.dim) and again.projected is None
        assert saved.student_features.shape == (n, 8)
        assert torch.equal(saved.labels, again.labels)
        assert torch.allclose(saved.student_features, again.student_features, atol=1e-5)
        assert torch.allclose(saved.knowledge, again.knowledge, atol=1e-4)
    page = write_report(run, host=builtins).read_text(encoding="utf-8")
    assert "saved by the run at the end of round 1" in page
    assert "the projector of the <code>hint</code> loss" in page
    assert len(_images(page)) == 4


def test_knowledge_space_failure_leaves_the_rest(run_dir, tmp_path, builtins, monkeypatch):
    from cdkd_core.artifacts import knowledge_sample

    def fail(*args, **kwargs):
        raise CdkdError("plugin 'cdkd.domains' is not installed")

    monkeypatch.setattr(knowledge_sample, "recompute_knowledge_sample", fail)
    run = _copy(run_dir, tmp_path)
    (run / KNOWLEDGE_SAMPLE).unlink(missing_ok=True)
    page = render_report(read_run(run), builtins)
    assert "The knowledge space could not be shown" in page
    assert "plugin &#x27;cdkd.domains&#x27; is not installed" in page
    assert len(_images(page)) == 3


def test_cli_writes_the_report_where_asked(run_dir, tmp_path):
    out = tmp_path / "elsewhere" / "run.html"
    result = runner.invoke(app, ["report", str(run_dir), "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"wrote {out}"
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert not (run_dir / REPORT).exists()


def test_unfinished_or_missing_runs_are_refused(run_dir, tmp_path):
    unfinished = _copy(run_dir, tmp_path)
    (unfinished / "summary.json").unlink()
    (tmp_path / "plain").mkdir()
    cases = [
        (unfinished, "the run has not finished (no summary.json)"),
        (tmp_path / "missing", "no such run directory"),
        (tmp_path / "plain", "not a run directory (it has no config.yaml)"),
    ]
    for path, message in cases:
        result = runner.invoke(app, ["report", str(path)])
        assert result.exit_code == ReportError.exit_code == 2
        assert message in result.output and "Traceback" not in result.output
        assert result.output.count("error:") == 1
    assert "cdkd run --resume" in runner.invoke(app, ["report", str(unfinished)]).output
    assert not (unfinished / REPORT).exists()
    with pytest.raises(ReportError, match="is a directory"):
        write_report(run_dir, tmp_path, host=PluginHost(entry_points=False))


def test_pca_and_least_squares():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(300, 5, generator=generator) * torch.tensor([5.0, 2.0, 0.1, 0.1, 0.1])
    mean, components, shares = pca_2d(x)
    assert torch.allclose(mean.float(), x.mean(0), atol=1e-5)
    assert components.shape == (5, 2)
    assert torch.allclose(components.abs().argmax(0), torch.tensor([0, 1]))
    assert shares[0] > shares[1] > 0.1 and sum(shares) <= 1.0
    weights = torch.randn(5, 3, generator=generator, dtype=torch.float64)
    y = x.double() @ weights + 2.0
    fit = least_squares_map(x, y)
    assert torch.allclose(fit[:-1], weights, atol=1e-2) and torch.allclose(
        fit[-1], torch.full((3,), 2.0, dtype=torch.float64), atol=1e-2
    )
    # cross-fitting: exact on a linear relation, no better than chance on noise
    assert torch.allclose(cross_fitted(x, y), y, atol=1e-6)
    noise = torch.randn(300, 3, generator=generator, dtype=torch.float64)
    wide = torch.randn(300, 120, generator=generator)
    in_sample = wide.double() @ least_squares_map(wide, noise)[:-1]
    assert float((in_sample - noise).pow(2).mean()) < 0.8  # the fit memorises noise
    assert float((cross_fitted(wide, noise) - noise).pow(2).mean()) > 1.0


def test_report_draws_the_knowledge_graph(run_dir, tmp_path, builtins):
    from PIL import Image

    cfg = copy.deepcopy(TINY)
    cfg["encoder"] = {"name": "knowledge_graph", "params": {"dim": 4}}
    cfg["losses"].append({"name": "graph_match"})
    config = load_config(cfg, host=builtins)
    kg_run = run_pipeline(config, output=tmp_path / "kg", host=builtins).run_dir
    page = write_report(kg_run, host=builtins).read_text(encoding="utf-8")
    assert '<section id="graph"><h2>Knowledge graph</h2>' in page and 'href="#graph"' in page
    section = page.split('<section id="graph">')[1].split("</section>")[0]
    assert "5 class nodes in 2 domain(s)" in section
    assert "sklearn.wine:" in section and "sklearn.breast_cancer:" in section
    (image,) = _images(section)
    assert Image.open(io.BytesIO(image)).width > 300
    # a run with another encoder has no such section
    other = write_report(_copy(run_dir, tmp_path), host=builtins).read_text(encoding="utf-8")
    assert '<section id="graph">' not in other
    # a torn encoder state: the section says so, the rest of the report stands
    (kg_run / "encoder.safetensors").write_bytes(b"torn")
    page = write_report(kg_run, host=builtins).read_text(encoding="utf-8")
    assert "The knowledge graph could not be read" in page
