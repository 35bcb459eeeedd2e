"""The teacher adapted to a target's labelled rows, the target's class prior, and the gate
that weighs the adapted teacher against the baseline."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from cdkd_core import load_config, run_pipeline
from cdkd_core.artifacts.report import write_report
from cdkd_core.artifacts.run_student import load_run_student
from cdkd_core.artifacts.run_teacher import load_run_teacher
from cdkd_core.data.preparation import prepare_domains
from cdkd_core.engine import probe
from cdkd_core.engine.label_shift import bbse_prior, em_prior
from cdkd_core.errors import RunInterrupted
from cdkd_core.files import load_weights
from cdkd_core.run import driver
from cdkd_core.run.rundir import read_metrics
from cdkd_core.run.runner import resume_run
from cdkd_core.stages import distillation
from cdkd_core.stages.gating import paired_interval
from tests.halves import make_host
from tests.stopping import without_timing

torch.set_num_threads(1)


def _config(target: dict, **train) -> dict:
    return {
        "name": "adapt",
        "domains": [
            {"name": "testing.digits_a", "role": "source"},
            {"name": "testing.digits_b", "role": "target", **target},
        ],
        "teacher": {
            "trunk": {"name": "mlp", "params": {"width": 32, "depth": 1}},
            "stems": {"image": {"name": "mlp"}},
        },
        "student": {
            "trunk": {"name": "mlp", "params": {"width": 8, "depth": 1}},
            "stems": {"image": {"name": "mlp"}},
        },
        "encoder": {"name": "pca", "params": {"dim": 4}},
        "losses": [{"name": "ce"}, {"name": "kd"}, {"name": "hint", "weight": 0.5}],
        "train": {"epochs": 3, "batch_size": 64, "lr": 0.01, "device": "cpu", **train},
    }


@pytest.fixture(scope="module")
def host():
    return make_host()


def _run(cfg: dict, out, host):
    return run_pipeline(load_config(copy.deepcopy(cfg), host=host), output=out, host=host)


def _poisoning(monkeypatch, which: set[str]) -> None:
    """Make the run's prepared target carry wrong labels on the rows named in ``which``
    (``unlabelled_train``, ``unlabelled_val``, ``test``, ``labelled_train``)."""
    real = driver.prepare_domains

    def poisoned(*args, **kwargs):
        domains = real(*args, **kwargs)
        for d in domains:
            if d.role != "target":
                continue
            wrong = {
                "unlabelled_train": (d.train, ~d.labelled),
                "labelled_train": (d.train, d.labelled),
                "unlabelled_val": (d.val, ~d.val_labelled),
                "test": (d.test, torch.ones(len(d.test), dtype=torch.bool)),
            }
            for key in which:
                split, mask = wrong[key]
                split.y[mask] = (split.y[mask] + 1) % d.num_classes
        return domains

    monkeypatch.setattr(driver, "prepare_domains", poisoned)


def _weights(run_dir) -> dict[str, dict[str, torch.Tensor]]:
    names = ("teacher", "target_heads", "baseline", "student", "student_offsets")
    return {n: load_weights(run_dir / f"{n}.safetensors") for n in names}


def _same(a: dict, b: dict) -> bool:
    return all(
        set(a[n]) == set(b[n]) and all(torch.equal(a[n][k], b[n][k]) for k in a[n]) for n in a
    )


def test_the_adapted_teacher_sees_exactly_the_targets_labelled_train_rows(
    host, tmp_path, monkeypatch
):
    cfg = _config({"label_fraction": 0.2})
    fitted: list[torch.Tensor] = []
    real_fit = probe.fit_head

    def spying(rows, *args, **kwargs):
        fitted.append(rows[2].clone())
        return real_fit(rows, *args, **kwargs)

    monkeypatch.setattr(probe, "fit_head", spying)
    clean = _run(cfg, tmp_path / "clean", host)
    reference = _weights(clean.run_dir)
    assert reference["target_heads"], "the target got no adapted head"
    target = clean.summary["domains"]["testing.digits_b"]
    assert target["adaptation"]["method"] == "probe"
    assert target["adaptation"]["labelled"] == target["sizes"]["labelled"]
    # every fit (the final one and each cross-validation fold) reads labelled train rows
    config = load_config(copy.deepcopy(cfg), host=host)
    (d,) = [d for d in prepare_domains(config, host) if d.role == "target"]
    labelled_y = d.train.y[d.labelled]
    full = [y for y in fitted if len(y) == len(labelled_y)]
    assert full and all(torch.equal(y, labelled_y) for y in full)
    assert all(len(y) <= len(labelled_y) for y in fitted)

    # wrong labels on unlabelled train rows, unlabelled val rows and every test row reach no
    # loss: the teacher, its adapted head, the baseline and the student are bit-identical
    monkeypatch.setattr(probe, "fit_head", real_fit)
    _poisoning(monkeypatch, {"unlabelled_train", "unlabelled_val", "test"})
    poisoned = _run(cfg, tmp_path / "poisoned", host)
    assert _same(_weights(poisoned.run_dir), reference)
    assert poisoned.summary["domains"]["testing.digits_b"]["adaptation"] == target["adaptation"]
    # and the test can fail: wrong labels on the labelled train rows change the head
    _poisoning(monkeypatch, {"labelled_train"})
    changed = _weights(_run(cfg, tmp_path / "changed", host).run_dir)
    assert not torch.equal(
        changed["target_heads"]["heads.testing~digits_b.weight"],
        reference["target_heads"]["heads.testing~digits_b.weight"],
    )


def test_adapt_none_keeps_the_source_trained_teacher(host, tmp_path):
    cfg = _config({"label_fraction": 0.2})
    cfg["teacher"]["adapt"] = "none"
    result = _run(cfg, tmp_path, host)
    target = result.summary["domains"]["testing.digits_b"]
    assert target["adaptation"] is None
    assert not (result.run_dir / "target_heads.safetensors").exists()
    records = read_metrics(result.run_dir / "metrics.jsonl")
    assert not [r for r in records if r.get("stage") == "adapt"]


@pytest.mark.parametrize("method", ["em", "bbse"])
def test_an_unlabelled_targets_prior_is_the_estimate_from_the_teachers_posteriors(
    host, tmp_path, method
):
    # digits_b keeps a third of its digits 5-9: the same images as the source, another prior
    cfg = _config(
        {"label_fraction": 0.0, "params": {"keep_high": 0.3}},
        epochs=6,
        teacher_epochs=20,
        label_shift=method,
    )
    result = _run(cfg, tmp_path, host)
    shift = result.summary["domains"]["testing.digits_b"]["label_shift"]
    assert shift["method"] == method and shift["soft_labels_corrected"] is False
    # the same estimate by hand, from the run's teacher and its domains
    teacher = load_run_teacher(result.run_dir, host)
    config = load_config(result.run_dir / "config.yaml", host=host)
    source, target = prepare_domains(config, host)
    counts = torch.bincount(source.train.y[source.labelled], minlength=10).double()
    reference = counts / counts.sum()
    with torch.no_grad():
        probs = torch.softmax(teacher(target.train.teacher_x, target.space, "digit").double(), 1)
        if method == "em":
            expected = em_prior(probs, reference)
        else:
            val = torch.softmax(teacher(source.val.teacher_x, source.space, "digit").double(), 1)
            expected = bbse_prior(val, source.val.y, probs, reference)
    assert shift["reference_prior"] == pytest.approx(reference.tolist(), abs=1e-6)
    assert shift["prior"] == pytest.approx(expected.prior.tolist(), abs=1e-5)
    # a pure label shift: the estimate is near the truth, nearer than the source prior
    truth = torch.bincount(target.train.y, minlength=10).double() / len(target.train.y)

    def distance(prior: torch.Tensor) -> float:  # total variation
        return float((prior - truth).abs().sum() / 2)

    assert distance(torch.tensor(shift["prior"]).double()) < distance(reference) / 2
    # the student's decision rule on the target moved onto the estimate: its mean
    # prediction on the target's train rows is the estimated prior
    offsets = load_weights(result.run_dir / "student_offsets.safetensors")
    assert set(offsets) == {"testing.digits_b"}
    assert shift["student_offset"] == pytest.approx(offsets["testing.digits_b"].tolist(), abs=1e-5)
    # the student rebuilt from the run directory (what cdkd export writes) carries the
    # offset: on raw inputs it gives the run's test logits, and its mean prediction on the
    # target's train rows is the estimated prior
    module = load_run_student(result.run_dir, host).domain_module("testing.digits_b")
    stats = load_weights(result.run_dir / "preprocessing.safetensors")
    mean, std = (stats[f"testing.digits_b/student_x/{k}"] for k in ("mean", "std"))
    predictions = load_weights(result.run_dir / "predictions.safetensors")
    with torch.no_grad():
        test_logits = module((target.test.student_x * std + mean).float())
        train_probs = torch.softmax(
            module((target.train.student_x * std + mean).float()).double(), 1
        )
    assert torch.allclose(test_logits, predictions["testing.digits_b/student"], atol=1e-4)
    assert train_probs.mean(0).tolist() == pytest.approx(shift["prior"], abs=1e-4)
    assert float(module.offset.abs().max()) > 0.01


def test_a_stratified_targets_prior_is_its_labelled_share(host, tmp_path):
    cfg = _config({"label_fraction": 0.3, "params": {"keep_high": 0.5}})
    result = _run(cfg, tmp_path, host)
    shift = result.summary["domains"]["testing.digits_b"]["label_shift"]
    config = load_config(result.run_dir / "config.yaml", host=host)
    _, target = prepare_domains(config, host)
    labelled = torch.bincount(target.train.y[target.labelled], minlength=10).double()
    assert shift["method"] == "labelled" and shift["soft_labels_corrected"] is True
    assert shift["prior"] == pytest.approx((labelled / labelled.sum()).tolist(), abs=1e-6)


class _Stop(KeyboardInterrupt):
    pass


def test_resume_after_a_kill_inside_the_adaptation_gives_the_uninterrupted_summary(
    host, tmp_path, monkeypatch
):
    cfg = _config({"label_fraction": 0.2}, threads=1, teacher_gate="val")
    cfg["feedback"] = {"name": "hard_examples", "params": {"rounds": 2, "epochs": 1}}
    reference = _run(cfg, tmp_path / "ref", host)
    real = distillation.adapt_teacher
    calls = {"n": 0}

    def killed(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # inside round 1's adaptation
            raise _Stop
        return real(*args, **kwargs)

    monkeypatch.setattr(distillation, "adapt_teacher", killed)
    with pytest.raises(RunInterrupted, match="cdkd run --resume"):
        _run(cfg, tmp_path / "stopped", host)
    monkeypatch.setattr(distillation, "adapt_teacher", real)
    (run_dir,) = (tmp_path / "stopped").iterdir()
    resumed = resume_run(run_dir, host=host)
    assert without_timing(resumed.summary) == without_timing(reference.summary)
    target = resumed.summary["domains"]["testing.digits_b"]
    assert target["adaptation"] is not None and target["gate"] is not None
    # the report shows what the round adapted, set and decided on the target
    html = write_report(run_dir, host=host).read_text(encoding="utf-8")
    assert '<section id="targets">' in html and "teacher scale" in html
    assert ("kept: teacher" in html) or ("withheld: teacher" in html)


def test_the_gate_interval_on_hand_cases():
    y = torch.tensor([0, 1, 0, 1, 0, 1])
    right = torch.nn.functional.one_hot(y, 2).float() * 4
    wrong = torch.nn.functional.one_hot(1 - y, 2).float() * 4
    # the same model: a difference of 0 in every resample
    assert paired_interval("accuracy", right, right, y, seed=0) == (0.0, 0.0, 0.0)
    # always right against always wrong: accuracy 1 - 0 in every resample
    assert paired_interval("accuracy", right, wrong, y, seed=0) == (1.0, 1.0, 1.0)
    # one disagreement in six rows: the difference 1/6, an interval reaching 0 from above
    mixed = right.clone()
    mixed[0] = wrong[0]
    diff, low, high = paired_interval("accuracy", right, mixed, y, seed=0)
    assert diff == pytest.approx(1 / 6) and low == 0.0 and 1 / 6 <= high <= 0.5
    # a metric undefined in every resample (one class): NaN bounds
    one = torch.zeros(4, dtype=torch.long)
    _, low, high = paired_interval("roc_auc", right[:4], wrong[:4], one, seed=0)
    assert math.isnan(low) and math.isnan(high)
