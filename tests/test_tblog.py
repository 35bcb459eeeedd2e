"""TensorBoard logging (``train.log_to: [jsonl, tensorboard]``): a real run's metrics
records, replayed through the run log, come out of the event files as scalars (the
``tensorboard`` package comes with the test extra)."""

from __future__ import annotations

import copy
import importlib.util
import json

import pytest

from cdkd_core import load_config, run_pipeline
from cdkd_core.errors import ConfigError
from cdkd_core.host.plugin_host import PluginHost
from cdkd_core.run.rundir import MetricsLog, read_metrics
from cdkd_core.run.runlog import FanOutLog, open_run_log
from cdkd_core.run.tblog import TB_DIR, TensorBoardLog, tensorboard_missing
from tests.conftest import TINY


def _scalars(log_dir) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    events.Reload()
    return {
        tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]
    }


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny real run with two feedback rounds and the teacher gate, logging to both."""
    cfg = copy.deepcopy(TINY)
    cfg["feedback"] = {"name": "hard_examples", "params": {"rounds": 2}}
    cfg["train"]["teacher_gate"] = "val"
    cfg["train"]["log_to"] = ["tensorboard"]
    host = PluginHost(entry_points=False)
    result = run_pipeline(
        load_config(cfg, host=host), output=tmp_path_factory.mktemp("runs"), host=host
    )
    return result.run_dir


@pytest.fixture(scope="module")
def records(run_dir) -> list[dict]:
    """The run's metrics records, without their timestamps."""
    return [
        {k: v for k, v in r.items() if k != "t"} for r in read_metrics(run_dir / "metrics.jsonl")
    ]


def test_log_to_always_keeps_jsonl():
    host = PluginHost(entry_points=False)
    for log_to, expected in (
        (["tensorboard"], ["jsonl", "tensorboard"]),
        (["tensorboard", "jsonl", "tensorboard"], ["jsonl", "tensorboard"]),
        ([], ["jsonl"]),
    ):
        cfg = copy.deepcopy(TINY)
        cfg["train"]["log_to"] = log_to
        assert load_config(cfg, host=host).train.log_to == expected


def test_the_run_wrote_its_metrics_to_tensorboard_as_it_went(run_dir, records, tmp_path):
    """The run's own event files hold what replaying its metrics.jsonl gives."""
    log = TensorBoardLog(tmp_path)
    for record in records:
        log.log(**record)
    log.close()
    ran, replayed = _scalars(run_dir / TB_DIR), _scalars(tmp_path)
    assert "teacher/val_score" in ran and "test/sklearn.wine/student" in ran
    assert ran.keys() == replayed.keys()
    for tag, points in replayed.items():
        assert ran[tag] == [(step, pytest.approx(value, rel=1e-6)) for step, value in points]


def test_a_run_replayed_into_tensorboard(records, tmp_path):
    log = open_run_log(tmp_path, ["jsonl", "tensorboard"])
    assert isinstance(log, FanOutLog)
    for record in records:
        log.log(**record)
    log.close()
    log.close()  # closing twice is harmless (the pipeline may)
    # metrics.jsonl is written as ever
    again = [
        {k: v for k, v in r.items() if k != "t"} for r in read_metrics(tmp_path / "metrics.jsonl")
    ]
    assert again == json.loads(json.dumps(records))
    scalars = _scalars(tmp_path / TB_DIR)

    def approx(tag: str) -> list[tuple[int, float]]:
        return [(step, pytest.approx(value, rel=1e-6)) for step, value in scalars[tag]]

    epochs = [r for r in records if r.get("stage") == "teacher" and "event" not in r]
    assert approx("teacher/loss/0:ce") == [(r["epoch"], r["loss"]["0:ce"]) for r in epochs]
    assert approx("teacher/val_score") == [(r["epoch"], r["val_score"]) for r in epochs]
    assert [s for s, _ in scalars["teacher/val/sklearn.wine/accuracy"]] == [1, 2]
    assert [s for s, _ in scalars["baseline/loss/0:ce"]] == [1, 2]
    for round_ in (0, 1):
        for term in ("0:ce", "1:kd", "2:hint"):
            assert [s for s, _ in scalars[f"student/round_{round_}/loss/{term}"]] == [1, 2]
        assert f"student/round_{round_}/val_score" in scalars
    evaluations = [r for r in records if r.get("stage") == "evaluation"]
    for name in ("sklearn.wine", "sklearn.breast_cancer"):
        for model in ("teacher", "student", "baseline"):
            expected = [(r["round"], r["domains"][name][model]) for r in evaluations]
            assert approx(f"test/{name}/{model}") == expected
        assert [s for s, _ in scalars[f"feedback/hard_examples/{name}/quiz_size"]] == [0]
        assert [s for s, _ in scalars[f"gate/{name}/soft_labels"]] == [0, 1]
    finetune = [r for r in records if r.get("stage") == "feedback_finetune"]
    assert approx("feedback/round_0/finetune_loss") == [(r["epoch"], r["loss"]) for r in finetune]


def test_each_record_is_flushed_as_it_is_logged(tmp_path):
    log = TensorBoardLog(tmp_path)
    log.log(stage="teacher", round=None, epoch=1, loss={"0:ce": 0.5}, val_score=0.75, val={})
    log.log(event="domain", domain="d", role="source")  # nothing to plot: no scalar
    try:
        assert _scalars(tmp_path) == {
            "teacher/loss/0:ce": [(1, 0.5)],
            "teacher/val_score": [(1, 0.75)],
        }
    finally:
        log.close()
    log.log(stage="teacher", round=None, epoch=2, loss={"0:ce": 0.4})  # after close: dropped


def test_jsonl_alone_needs_no_tensorboard(tmp_path):
    log = open_run_log(tmp_path)
    assert isinstance(log, MetricsLog)
    log.close()
    assert not (tmp_path / TB_DIR).exists()


def test_tensorboard_without_the_package_is_a_config_error(tmp_path, monkeypatch):
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name == "tensorboard" else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert "pip install 'cdkd[tensorboard]'" in tensorboard_missing()
    with pytest.raises(ConfigError, match=r"^train\.log_to: .*pip install 'cdkd\[tensorboard\]'"):
        open_run_log(tmp_path, ["jsonl", "tensorboard"])
    assert not (tmp_path / TB_DIR).exists()
    cfg = copy.deepcopy(TINY)
    cfg["train"]["log_to"] = ["jsonl", "tensorboard"]
    with pytest.raises(ConfigError, match=r"train\.log_to.*pip install 'cdkd\[tensorboard\]'"):
        load_config(cfg, host=PluginHost(entry_points=False))


def test_unknown_log_target(tmp_path):
    with pytest.raises(ConfigError, match="unknown 'wandb'; choose from jsonl, tensorboard"):
        open_run_log(tmp_path, ["jsonl", "wandb"])
