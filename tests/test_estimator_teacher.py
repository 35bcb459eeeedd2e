"""A classical teacher (``teacher: {model: {name: hist_gbm}}``): soft labels from a fitted
gradient-boosted ensemble, saved without pickle, distilled into a network student."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from cdkd_core import load_config, run_pipeline
from cdkd_core.artifacts.run_teacher import load_run_teacher
from cdkd_core.builtins.estimators import HistGradientBoosting
from cdkd_core.errors import DataError, RunInterrupted
from cdkd_core.files import load_weights, save_weights
from cdkd_core.nets.estimator_teacher import EstimatorSlot, EstimatorTeacher, load_estimator
from cdkd_core.nets.reading import read_layer
from cdkd_core.run.runner import resume_run
from tests.stopping import StopAt, without_timing

torch.set_num_threads(1)

GBM = {"model": {"name": "hist_gbm", "params": {"max_iter": 40, "min_samples_leaf": 5}}}


def _table(seed: int = 0, n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] ** 2 > 0.4).astype(np.int64) + (x[:, 2] > 1.2)
    return x, y


class Payload:
    """A type no one declared trusted."""


def _fitted_teacher(**params) -> tuple[EstimatorTeacher, object]:
    arch = HistGradientBoosting.from_params({"max_iter": 30, **params})
    teacher = EstimatorTeacher(arch, [EstimatorSlot("s", "t", 3)])
    x, y = _table()
    estimator = arch.build_estimator(0).fit(x, y)
    teacher.set_estimator(EstimatorSlot("s", "t", 3), estimator)
    return teacher, estimator


def test_soft_labels_are_the_estimators_class_probabilities():
    teacher, estimator = _fitted_teacher()
    x, _ = _table(seed=1, n=50)
    logits = teacher(torch.from_numpy(x), "s", "t")
    assert logits.dtype == torch.float32 and logits.shape == (50, 3)
    expected = estimator.predict_proba(x)
    assert np.allclose(logits.softmax(dim=1).numpy(), expected, atol=1e-5)
    assert teacher.has_stem("s") and teacher.has_head("t") and not teacher.has_stem("t")


def test_the_representation_is_each_trees_leaf_value():
    teacher, estimator = _fitted_teacher()
    x, _ = _table(seed=2, n=20)
    features, _ = read_layer(teacher, "trunk", torch.from_numpy(x), "s", "t")
    # three classes: three trees per iteration, 30 iterations
    assert features.shape == (20, 30 * 3) == (20, teacher.trunk.out_features)
    # the tree contributions add up to the raw score (the first step holds the baseline)
    raw = features.numpy().reshape(20, 30, 3).sum(axis=1)
    assert np.allclose(raw, estimator.decision_function(x), atol=1e-4)
    assert torch.equal(teacher.features(torch.from_numpy(x), "s"), features)


def test_two_estimators_get_columns_of_their_own():
    arch = HistGradientBoosting.from_params({"max_iter": 5})
    a, b = EstimatorSlot("a", "ta", 2), EstimatorSlot("b", "tb", 2)
    teacher = EstimatorTeacher(arch, [a, b])
    x, y = _table()
    teacher.set_estimator(a, arch.build_estimator(0).fit(x, y > 0))
    teacher.set_estimator(b, arch.build_estimator(0).fit(x[:, :3], y > 0))
    fa = teacher.features(torch.from_numpy(x[:4]), "a")
    fb = teacher.features(torch.from_numpy(x[:4, :3]), "b")
    assert fa.shape == fb.shape == (4, 10)
    assert (fa[:, 5:] == 0).all() and (fb[:, :5] == 0).all()


def test_selection_on_val_keeps_the_best_prefix_of_trees():
    arch = HistGradientBoosting.from_params({"max_iter": 60, "learning_rate": 0.3})
    x, y = _table(n=400)
    xv, yv = _table(seed=5, n=200)
    scores = []

    def accuracy(probs: list[np.ndarray]) -> float:
        scores.append(float((probs[0].argmax(1) == yv).mean()))
        return scores[-1]

    estimator, chosen = arch.fit_selected(arch.build_estimator(0), x, y, [xv], [yv], accuracy)
    assert chosen["fitted"] == 60 and len(scores) == 60
    best = int(np.argmax(scores)) + 1
    assert chosen["trees"] == best == estimator.n_iter_
    full = arch.build_estimator(0).fit(x, y)
    staged = list(full.staged_predict_proba(xv))[best - 1]
    assert np.allclose(estimator.predict_proba(xv), staged)  # the refit is the prefix


def test_state_round_trips_through_safetensors_and_refuses_untrusted_types(tmp_path):
    teacher, estimator = _fitted_teacher()
    save_weights(tmp_path / "t.safetensors", teacher.state_dict())
    fresh = EstimatorTeacher(teacher.arch, [EstimatorSlot("s", "t", 3)])
    fresh.load_state_dict(load_weights(tmp_path / "t.safetensors"))
    x, _ = _table(seed=3, n=40)
    assert np.array_equal(
        fresh(torch.from_numpy(x), "s", "t").numpy(), teacher(torch.from_numpy(x), "s", "t").numpy()
    )
    import skops.io as sio

    untrusted = sio.dumps({"model": estimator, "extra": Payload()})
    with pytest.raises(DataError, match=r"does not trust.*Payload"):
        load_estimator(untrusted, teacher.arch, "here")
    with pytest.raises(DataError, match="not a skops file"):
        load_estimator(b"\x80\x04not a zip", teacher.arch, "here")
    state = {"estimator~s|t": torch.frombuffer(bytearray(untrusted), dtype=torch.uint8)}
    with pytest.raises(DataError, match=r"teacher state estimator~s\|t: .*does not trust"):
        fresh.load_state_dict(state)


def _gbm_config(tiny_config: dict) -> dict:
    cfg = copy.deepcopy(tiny_config)
    cfg["teacher"] = copy.deepcopy(GBM)
    cfg["train"].update({"epochs": 3, "threads": 1})
    return cfg


def _rebuilt(run_dir: Path, host, weights: dict | None = None) -> EstimatorTeacher:
    """The run's teacher rebuilt from its directory (``weights``: another state of it)."""
    teacher = load_run_teacher(run_dir, host)
    assert isinstance(teacher, EstimatorTeacher)
    if weights is not None:
        teacher.load_state_dict(weights)
    return teacher


def test_a_gbm_teacher_round_trips_through_checkpoint_and_resume(tiny_config, cdkd_host, tmp_path):
    cfg = _gbm_config(tiny_config)
    reference = run_pipeline(cfg, host=cdkd_host, output=tmp_path / "ref")
    summary = reference.summary
    assert summary["teacher_training"]["method"] == "hist_gbm"
    assert summary["params"]["teacher_bytes"] > 0 and summary["params"]["teacher"] > 0
    for name in ("sklearn.wine", "sklearn.breast_cancer"):
        assert summary["domains"][name]["teacher"] > 0.85
    stopper = StopAt(2)  # inside the baseline, after the teacher stage
    with pytest.raises(RunInterrupted):
        run_pipeline(
            load_config(cfg, host=cdkd_host),
            host=cdkd_host,
            output=tmp_path / "stopped",
            checkpointer=stopper,
        )
    (run_dir,) = (tmp_path / "stopped").iterdir()
    resumed = resume_run(run_dir, host=cdkd_host)

    assert without_timing(resumed.summary) == without_timing(summary)
    # the teacher in the checkpoint, in teacher.safetensors of both runs: same predictions
    x = torch.randn(64, 13)
    teachers = [
        _rebuilt(run_dir, cdkd_host, stopper.teachers[-1]),
        _rebuilt(run_dir, cdkd_host),
        _rebuilt(reference.run_dir, cdkd_host),
    ]
    outputs = [t(x, "sklearn.wine", "sklearn.wine") for t in teachers]
    assert all(torch.equal(outputs[0], o) for o in outputs[1:])


def test_a_saved_gbm_teacher_serves_as_teacher_checkpoint(tiny_config, cdkd_host, tmp_path):
    cfg = _gbm_config(tiny_config)
    first = run_pipeline(cfg, host=cdkd_host, output=tmp_path / "a")
    cfg["teacher"]["checkpoint"] = str(first.run_dir / "teacher.safetensors")
    again = run_pipeline(cfg, host=cdkd_host, output=tmp_path / "b")
    assert again.summary["teacher_training"]["method"] == "checkpoint"
    for name, d in first.summary["domains"].items():
        assert again.summary["domains"][name]["teacher"] == d["teacher"]


def test_validate_refuses_what_a_classical_teacher_cannot_do(cdkd_cli, tiny_config, tmp_path):
    def validate(change: dict) -> list[str]:
        cfg = _gbm_config(tiny_config)
        cfg.update(change)
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
        result = cdkd_cli("validate", path)
        assert result.exit_code == 2, result.output
        return [line for line in result.stderr.splitlines() if line.strip()]

    lines = validate({"encoder": {"name": "graph"}, "losses": [{"name": "ce"}, {"name": "graph"}]})
    assert len(lines) == 1
    assert "losses.1: loss 'graph' needs ['graph'], which the hist_gbm teacher cannot" in lines[0]
    (line,) = validate({"encoder": {"name": "graph"}})
    assert line.startswith("error: encoder: 'graph' does not work with the hist_gbm teacher")
    (line,) = validate({"feedback": {"name": "mutual"}})
    assert "'mutual' updates the teacher by gradient" in line
    (line,) = validate({"teacher": {"model": {"name": "mlp"}}})
    assert "architecture 'mlp' is no whole teacher" in line
    lines = validate({"teacher": {**GBM, "trunk": {"name": "mlp"}}})
    assert "teacher.trunk does not apply" in " ".join(lines)
    lines = validate({"teacher": {"stems": {}}})
    assert "teacher.trunk: Field required for a network teacher" in " ".join(lines)


def test_a_classical_teacher_is_timed_through_predict_proba():
    from cdkd_core.artifacts.latency import latency_table

    teacher, _ = _fitted_teacher()
    x = torch.from_numpy(_table(seed=4, n=40)[0])
    student = nn.Linear(4, 3)

    class Student(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = student

        def forward(self, x, space, task):
            return self.lin(x)

    table = latency_table(teacher, Student(), x, x, "s", "t", batches=(1, 8))
    assert all(v > 0 for v in table["teacher"]["eager"].values())
    assert table["teacher"]["onnx"] == {"1": None, "8": None}
    assert "timed through its own predict_proba" in table["unavailable"]["teacher"]["onnx"]
    assert all(v is not None for v in table["student"]["onnx"].values())


def test_without_val_rows_every_tree_is_kept():
    arch = HistGradientBoosting.from_params({"max_iter": 12})
    x, y = _table()
    estimator, chosen = arch.fit_selected(arch.build_estimator(0), x, y, [], [], lambda p: 0.0)
    assert chosen == {"trees": 12, "fitted": 12} and estimator.n_iter_ == 12


def test_selection_by_val_log_loss():
    arch = HistGradientBoosting.from_params(
        {"max_iter": 80, "learning_rate": 0.3, "select_by": "log_loss"}
    )
    x, y = _table(n=400)
    xv, yv = _table(seed=6, n=200)
    estimator, chosen = arch.fit_selected(arch.build_estimator(0), x, y, [xv], [yv], None)
    full = arch.build_estimator(0).fit(x, y)
    # by hand: the mean negative log-probability of the true class after each iteration
    losses = [
        -np.mean(np.log(np.clip(p[np.arange(len(yv)), yv], 1e-7, 1)))
        for p in full.staged_predict_proba(xv)
    ]
    assert chosen["trees"] == int(np.argmin(losses)) + 1 == estimator.n_iter_
    assert chosen["val_score"] == pytest.approx(-min(losses))
