"""``teacher: auto`` (the default teacher of tables): candidates fitted on the train rows,
one kept per task on its val headline, ties to the cheaper; the choice survives resume,
``teacher.checkpoint`` and export, and no test row is read before the final evaluation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from cdkd_core import run_pipeline
from cdkd_core.artifacts.report import render_report
from cdkd_core.artifacts.run_files import read_run
from cdkd_core.artifacts.run_teacher import load_run_teacher
from cdkd_core.config.models import PipelineConfig
from cdkd_core.files import load_weights
from cdkd_core.nets.linear_teacher import LinearSlot, LinearTeacher
from cdkd_core.nets.selected_teacher import SelectedTeacher
from cdkd_core.stages.teacher_selection import choose
from tests.stopping import stopped_and_resumed, without_timing

torch.set_num_threads(1)


def _write_arrays(path: Path, seed: int = 0, test_seed: int | None = None) -> Path:
    """A linearly separable two-class table (y = [x0 + x1 > 0]) as .npy splits; the test
    rows drawn from ``test_seed`` (default ``seed``)."""
    path.mkdir(parents=True, exist_ok=True)
    for split, n, s in (("train", 240, seed), ("val", 80, seed + 1), ("test", 80, None)):
        rng = np.random.default_rng(
            (test_seed if test_seed is not None else seed + 2) if s is None else s
        )
        x = rng.normal(size=(n, 5)).astype(np.float32)
        y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
        np.save(path / f"{split}_x.npy", x)
        np.save(path / f"{split}_y.npy", y)
    return path


def _config(data: Path, **train) -> dict:
    return {
        "name": "auto",
        "seed": 0,
        "domains": [
            {
                "name": "arrays",
                "alias": "sep",
                "params": {
                    "path": str(data),
                    "metrics": ["roc_auc"],
                    "task": "sep",
                    "input_space": "sep",
                },
            }
        ],
        "encoder": {"name": "pca", "params": {"dim": 4}},
        "train": {"epochs": 2, "batch_size": 64, "device": "cpu", "threads": 1, **train},
    }


def test_auto_is_the_default_teacher_and_written_as_auto():
    config = PipelineConfig(domains=[{"name": "sklearn.wine"}])
    assert config.teacher.auto is not None
    assert config.teacher.auto.candidates == ["linear", "network", "ensemble", "hist_gbm"]
    assert PipelineConfig(domains=[{"name": "sklearn.wine"}], teacher="auto") == config
    given = PipelineConfig(domains=[{"name": "sklearn.wine"}], teacher={"trunk": {"name": "mlp"}})
    assert given.teacher.auto is None
    with pytest.raises(ValueError, match=r"teacher\.ensemble does not apply"):
        PipelineConfig(
            domains=[{"name": "sklearn.wine"}],
            teacher={"auto": {}, "trunk": {"name": "mlp"}, "ensemble": 3},
        )


def test_the_best_val_score_wins_and_ties_go_to_the_cheaper():
    candidates = {"a": ["linear", "network", "ensemble", "hist_gbm"], "b": ["network"]}
    scores = {
        "a": {"linear": 0.90, "network": 0.93, "ensemble": 0.93, "hist_gbm": 0.92},
        "b": {"network": 0.5},
    }
    assert choose(candidates, scores) == {"a": "network", "b": "network"}
    scores["a"]["hist_gbm"] = 0.95
    assert choose(candidates, scores)["a"] == "hist_gbm"
    tie = {"a": dict.fromkeys(candidates["a"], 1.0)}
    assert choose(candidates, tie)["a"] == "linear"
    assert choose(candidates, {"a": dict.fromkeys(candidates["a"])})["a"] == "network"


@pytest.mark.parametrize("classes", [2, 3])
def test_the_linear_teacher_is_the_regression_it_was_fitted_as(classes):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4))
    y = np.digitize(x[:, 0] + 0.5 * x[:, 1], [-0.5, 0.5][: classes - 1])
    model = LogisticRegression(C=0.3, max_iter=1000).fit(x, y)
    slot = LinearSlot("s", "t", 4, classes)
    teacher = LinearTeacher([slot])
    teacher.set_regression(slot, model.coef_, model.intercept_, model.classes_)
    logits = teacher(torch.from_numpy(x[:20]).float(), "s", "t")
    assert np.allclose(logits.softmax(1).detach().numpy(), model.predict_proba(x[:20]), atol=1e-5)
    # by hand for the binary case: logits [0, w.x + b]
    if classes == 2:
        z = x[:3] @ model.coef_[0] + model.intercept_[0]
        assert np.allclose(logits[:3].detach().numpy(), np.stack([0 * z, z], 1), atol=1e-5)
    # the feature layer is the input in its space's block
    assert torch.equal(teacher.features(torch.ones(2, 4), "s"), torch.ones(2, 4))


def test_a_class_missing_from_the_train_rows_gets_no_probability():
    x = np.random.default_rng(1).normal(size=(60, 2))
    y = np.where(x[:, 0] > 0, 2, 0)  # class 1 never seen
    model = LogisticRegression().fit(x, y)
    slot = LinearSlot("s", "t", 2, 3)
    teacher = LinearTeacher([slot])
    teacher.set_regression(slot, model.coef_, model.intercept_, model.classes_)
    probs = teacher(torch.from_numpy(x).float(), "s", "t").softmax(1).detach().numpy()
    assert probs[:, 1].max() < 1e-5
    assert np.allclose(probs[:, [0, 2]], model.predict_proba(x), atol=1e-4)


def test_auto_picks_the_linear_teacher_on_a_linearly_separable_table(tmp_path, cdkd_host):
    result = run_pipeline(_config(_write_arrays(tmp_path / "d")), host=cdkd_host, output=tmp_path)
    selection = result.summary["teacher_selection"]
    assert selection["choice"] == {"sep": "linear"}
    scores = selection["val_scores"]["sep"]
    assert set(scores) == {"linear", "network", "ensemble", "hist_gbm"}
    assert scores["linear"] >= max(v for v in scores.values() if v is not None) - 1e-6
    teacher = load_run_teacher(result.run_dir, host=cdkd_host)
    assert isinstance(teacher, SelectedTeacher) and teacher.chosen == ["linear"]
    assert len(teacher.members) == 0 and teacher.trees is None  # the others are dropped
    state = load_weights(result.run_dir / "teacher.safetensors")
    assert not any(k.startswith(("members.", "trees.")) for k in state)
    assert result.summary["params"]["teacher"] == 5 * 2 + 2  # a 5 -> 2 linear map
    # the report's "Teacher choice" section: the kept candidate in bold beside the others
    html = render_report(read_run(result.run_dir), cdkd_host)
    section = html[html.index('<section id="teacher">') :]
    section = section[: section.index("</section>")]
    assert "<b>linear " in section and "hist_gbm " in section and "<b>hist_gbm" not in section


def test_no_test_row_is_read_before_the_final_evaluation(tmp_path, cdkd_host):
    """Two runs whose test rows differ train the same teacher, student and baseline."""
    runs = []
    for i, test_seed in enumerate((100, 200)):
        data = _write_arrays(tmp_path / f"d{i}", test_seed=test_seed)
        runs.append(run_pipeline(_config(data), host=cdkd_host, output=tmp_path / f"r{i}"))
    a, b = runs
    assert a.summary["teacher_selection"] == b.summary["teacher_selection"]
    for name in ("teacher", "student"):
        sa = load_weights(a.run_dir / f"{name}.safetensors")
        sb = load_weights(b.run_dir / f"{name}.safetensors")
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a.summary["domains"]["sep"]["teacher"] != b.summary["domains"]["sep"]["teacher"] or (
        a.summary["domains"]["sep"]["student"] != b.summary["domains"]["sep"]["student"]
    )


def _noisy(tmp_path: Path) -> Path:
    """A table no candidate separates perfectly, so the choice is not a tie."""
    path = tmp_path / "noisy"
    path.mkdir()
    rng = np.random.default_rng(3)
    for split, n in (("train", 240), ("val", 80), ("test", 80)):
        x = rng.normal(size=(n, 4)).astype(np.float32)
        y = ((x[:, 0] * x[:, 1] + 0.3 * x[:, 2] + rng.normal(0, 0.5, n)) > 0).astype(np.int64)
        np.save(path / f"{split}_x.npy", x)
        np.save(path / f"{split}_y.npy", y)
    return path


#: the default teacher with a two-member ensemble candidate (quicker to train twice)
AUTO2 = {
    "auto": {"ensemble_members": 2},
    "trunk": {"name": "mlp", "params": {"width": 128, "depth": 0}},
    "stems": {"tabular": {"name": "mlp", "params": {"dropout": 0.3}}},
}


@pytest.mark.parametrize("stop_after", [1, 2])  # in member 0, in member 1
def test_a_stop_inside_candidate_fitting_resumes_to_the_same_summary(
    tmp_path, cdkd_host, stop_after
):
    cfg = {**_config(_noisy(tmp_path), epochs=1), "teacher": AUTO2}
    reference = run_pipeline(cfg, host=cdkd_host, output=tmp_path / "ref")
    resumed = stopped_and_resumed(cfg, cdkd_host, tmp_path / "stopped", stop_after)
    assert without_timing(resumed.summary) == without_timing(reference.summary)


def test_teacher_checkpoint_reloads_the_chosen_candidates(tmp_path, cdkd_host):
    cfg = {**_config(_noisy(tmp_path), epochs=1), "teacher": AUTO2}
    first = run_pipeline(cfg, host=cdkd_host, output=tmp_path / "a")
    cfg["teacher"] = {**AUTO2, "checkpoint": str(first.run_dir / "teacher.safetensors")}
    second = run_pipeline(cfg, host=cdkd_host, output=tmp_path / "b")
    assert second.summary["teacher_selection"] == first.summary["teacher_selection"]
    for key in ("teacher",):
        assert second.summary["domains"]["sep"][key] == first.summary["domains"]["sep"][key]


def test_a_table_and_an_image_task_choose_apart(tmp_path, cdkd_host):
    """The image task gets the network; the table task chooses among all four."""
    cfg = {
        "name": "mixed",
        "seed": 0,
        "domains": [
            {
                "name": "arrays",
                "alias": "sep",
                "params": {"path": str(_write_arrays(tmp_path / "d")), "task": "sep"},
            },
            {"name": "sklearn.digits"},
        ],
        "encoder": {"name": "pca", "params": {"dim": 4}},
        "train": {"epochs": 1, "device": "cpu", "threads": 1},
    }
    result = run_pipeline(cfg, host=cdkd_host, output=tmp_path / "r")
    selection = result.summary["teacher_selection"]
    assert selection["choice"]["sklearn.digits"] == "network"
    assert set(selection["val_scores"]["sklearn.digits"]) == {"network"}
    assert len(selection["val_scores"]["sep"]) == 4


def test_tables_only_of_other_modalities_keep_the_plain_network(cdkd_host):
    from cdkd_core.nets.assembly import NetworkSlot, build_teacher
    from cdkd_core.nets.network import MultiDomainNet

    config = PipelineConfig(domains=[{"name": "sklearn.digits"}])
    slot = NetworkSlot("d", "d", "image", "d", 10, (1, 8, 8), "float32")
    assert isinstance(build_teacher(config.teacher, [slot], cdkd_host, 0), MultiDomainNet)
