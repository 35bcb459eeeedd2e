"""``train.teacher_gate``'s modes: ``auto`` resolved per domain, ``above`` keeping the
teacher only where it is above the baseline with 90% confidence (elsewhere the domain falls
back to its labels), its after-training check and second pass, and resuming inside it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from cdkd_core import load_config, run_pipeline
from cdkd_core.errors import RunInterrupted
from cdkd_core.run.rundir import read_metrics
from cdkd_core.run.runner import resume_run
from cdkd_core.stages import distillation
from cdkd_core.stages.gating import (
    above_interval,
    apply_after,
    fallen_back,
    gate_mode,
    keeps_teacher,
    paired_interval,
    withheld,
)
from tests.stopping import StopAt, without_timing


def _rows(n: int = 40) -> torch.Tensor:
    return torch.arange(n) % 2


def test_a_perfect_teacher_against_a_coin_is_kept():
    y = _rows()
    perfect = torch.nn.functional.one_hot(y, 2).float() * 4
    coin = torch.nn.functional.one_hot(
        torch.randint(0, 2, (40,), generator=torch.Generator().manual_seed(0)), 2
    ).float()
    diff, low, high = above_interval("accuracy", perfect, coin, y, seed=0)
    accuracy = float((coin.argmax(1) == y).float().mean())
    assert diff == pytest.approx(1 - accuracy) and 0.3 < diff < 0.7
    # every resample: the perfect teacher's 1 minus the coin's accuracy there, far above 0
    assert 0 < low <= diff <= high
    assert keeps_teacher("above", low, high) and keeps_teacher("val", low, high)


def test_a_teacher_no_better_than_the_baseline_falls_back_under_above_only():
    y = _rows()
    same = torch.nn.functional.one_hot(y, 2).float()
    # the same predictions: a difference of 0 in every resample, its 10th percentile 0
    assert above_interval("accuracy", same, same, y, seed=0) == (0.0, 0.0, 0.0)
    assert not keeps_teacher("above", 0.0, 0.0)
    assert keeps_teacher("val", 0.0, 0.0)  # val withholds only where significantly below
    # one better row in forty: above on the point estimate, not with 90% confidence
    worse = same.clone()
    worse[0] = torch.tensor([0.0, 1.0])
    diff, low, high = above_interval("accuracy", same, worse, y, seed=0)
    assert diff == pytest.approx(1 / 40) and low == 0.0 and high > 0
    assert not keeps_teacher("above", low, high)
    # the 10th and 90th percentiles are inside the 95% interval of the same resamples
    _, low95, high95 = paired_interval("accuracy", same, worse, y, seed=0)
    assert low95 <= low and high <= high95
    # no defined resample (one class): not shown above
    one = torch.zeros(4, dtype=torch.long)
    _, low, high = above_interval("roc_auc", same[:4], worse[:4], one, seed=0)
    assert not keeps_teacher("above", low, high) and keeps_teacher("val", low, high)


def test_auto_is_above_on_tables_and_none_elsewhere(host):
    def config(gate: str):
        data = {"domains": [{"name": "sklearn.wine", "role": "source"}]}
        return load_config({**data, "train": {"teacher_gate": gate}}, host=host)

    table, image = SimpleNamespace(modality="tabular"), SimpleNamespace(modality="image")
    assert config("auto").train.teacher_gate == "auto"
    assert load_config({"domains": [{"name": "sklearn.wine", "role": "source"}]}, host=host)
    assert (gate_mode(config("auto"), table), gate_mode(config("auto"), image)) == (
        "above",
        "none",
    )
    for mode in ("above", "val", "none"):
        assert gate_mode(config(mode), table) == gate_mode(config(mode), image) == mode


def test_the_after_training_check_adds_to_the_fallback():
    decisions = {
        "a": {"mode": "above", "soft_labels": True, "decision": "kept", "fell_back": None},
        "b": {"mode": "above", "soft_labels": False, "decision": "fallback", "fell_back": "before"},
        "c": {"mode": "val", "soft_labels": False, "decision": "withheld"},
        "d": {"mode": "above", "soft_labels": True, "decision": "kept", "fell_back": None},
    }
    assert fallen_back(decisions) == {"b"} and withheld(decisions) == {"b", "c"}
    after = {
        "a": {"difference": -0.1, "falls_back": True},
        "d": {"difference": 0.0, "falls_back": False},
    }
    assert apply_after(decisions, after) == {"a"}
    assert decisions["a"]["fell_back"] == "after" and decisions["a"]["decision"] == "fallback"
    assert decisions["a"]["after_training"] is after["a"]
    assert decisions["d"]["fell_back"] is None and decisions["d"]["soft_labels"]
    assert fallen_back(decisions) == {"a", "b"}


def _student_terms(records: list[dict]) -> set[str]:
    return {
        k.split(":")[1]
        for r in records
        if r.get("stage") == "student" and "loss" in r
        for k in r["loss"]
    }


def test_a_weak_teacher_on_tables_leaves_the_student_to_its_labels(tiny_config, tmp_path, host):
    """The default gate on tables is ``above``: an untrained teacher is not above the
    baseline, so every domain falls back: no soft labels, no knowledge vectors."""
    from cdkd_core.artifacts.report import write_report

    torch.set_num_threads(1)
    tiny_config["train"].update({"epochs": 10, "teacher_epochs": 1, "teacher_lr": 1e-7})
    result = run_pipeline(load_config(tiny_config, host=host), output=tmp_path, host=host)
    records = read_metrics(result.run_dir / "metrics.jsonl")
    gates = {r["domain"]: r for r in records if r.get("stage") == "gate" and "mode" in r}
    assert set(gates) == {"sklearn.wine", "sklearn.breast_cancer"}
    for name, gate in gates.items():
        low, _ = gate["interval"]
        assert gate["mode"] == "above" and not low > 0
        assert gate["fell_back"] == "before" and gate["decision"] == "fallback"
        summary_gate = result.summary["domains"][name]["gate"]
        assert summary_gate["mode"] == "above" and summary_gate["fell_back"] == "before"
        assert summary_gate["soft_labels"] is False
    # labels alone: the cross-entropy, none of the teacher's terms (kd, hint)
    assert _student_terms(records) == {"ce"}
    # none kept the teacher: nothing to check after training, no second pass
    assert not any(r.get("event") in ("after", "second_pass") for r in records)
    html = write_report(result.run_dir, host=host).read_text(encoding="utf-8")
    assert "Fell back to their labels" in html and "fell back to its labels" in html


def _strong(tiny_config: dict) -> dict:
    """A teacher well above a baseline that barely trains."""
    tiny_config["train"].update(
        {"epochs": 2, "lr": 0.001, "teacher_epochs": 8, "teacher_lr": 0.01, "threads": 1}
    )
    return tiny_config


@pytest.fixture
def late_fallback(monkeypatch):
    """The after-training check as it is, but every domain it checks falls back."""
    real = distillation.after_training_check

    def falls_back(*args, **kwargs):
        return {k: {**v, "falls_back": True} for k, v in real(*args, **kwargs).items()}

    monkeypatch.setattr(distillation, "after_training_check", falls_back)


def test_a_student_below_the_baseline_is_trained_again_and_resumes(
    tiny_config, tmp_path, host, late_fallback
):
    torch.set_num_threads(1)
    cfg = _strong(tiny_config)
    reference = run_pipeline(load_config(cfg, host=host), output=tmp_path / "ref", host=host)
    records = read_metrics(reference.run_dir / "metrics.jsonl")
    kept = [
        r["domain"] for r in records if r.get("stage") == "gate" and r.get("decision") == "kept"
    ]
    assert kept, "the strong teacher should be above the weak baseline somewhere"
    (second,) = [r for r in records if r.get("event") == "second_pass"]
    assert second["fell_back"] == sorted(kept)
    for name in kept:
        gate = reference.summary["domains"][name]["gate"]
        assert gate["fell_back"] == "after" and gate["decision"] == "fallback"
        after = gate["after_training"]
        assert after["difference"] == pytest.approx(after["student_val"] - after["baseline_val"])
    # two student passes, each its epochs; the second without the kept domains' teacher
    epochs = [r for r in records if r.get("stage") == "student" and "loss" in r]
    assert len(epochs) == 2 * cfg["train"]["epochs"]
    if len(kept) == len(reference.summary["domains"]):
        assert all(set(k.split(":")[1] for k in r["loss"]) == {"ce"} for r in epochs[2:])

    def inside_second_pass(state) -> bool:
        return state.stage.name == "student" and "gate_after" in (state.fit or {})

    def after_the_student(state) -> bool:
        return state.stage.name == "feedback"

    for i, when in enumerate((inside_second_pass, after_the_student)):
        out = tmp_path / f"stop{i}"
        with pytest.raises(RunInterrupted, match="cdkd run --resume"):
            run_pipeline(
                load_config(cfg, host=host), output=out, host=host, checkpointer=StopAt(when)
            )
        (run_dir,) = out.iterdir()
        resumed = resume_run(run_dir, host=host)
        assert without_timing(resumed.summary) == without_timing(reference.summary), when.__name__
