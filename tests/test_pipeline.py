"""End to end: short pipelines through all four stages, checked through the run directory."""

from __future__ import annotations

import json

import pytest
import torch

from cdkd_core import load_config, run_pipeline
from cdkd_core.errors import ConfigError
from cdkd_core.files import load_weights
from cdkd_core.run.rundir import read_metrics
from tests.halves import make_host

TIMING_KEYS = {"wall_s", "latency_ms_per_sample", "latency_ms_per_sample_batch1"}


def _run(cfg, tmp_path, host):
    return run_pipeline(load_config(cfg, host=host), output=tmp_path, host=host)


def test_run_writes_the_run_directory(tiny_config, tmp_path, host):
    result = _run(tiny_config, tmp_path, host)
    run_dir = result.run_dir
    assert run_dir.parent == tmp_path and run_dir.name.startswith("tiny-")
    for name in (
        "config.yaml",
        "summary.json",
        "metrics.jsonl",
        "teacher.safetensors",
        "student.safetensors",
        "baseline.safetensors",
        "encoder.safetensors",
        "encoder.json",
    ):
        assert (run_dir / name).is_file(), name
    assert not list(run_dir.glob(".*.tmp"))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary == json.loads(json.dumps(result.summary))
    assert set(summary["domains"]) == {"sklearn.wine", "sklearn.breast_cancer"}
    wine = summary["domains"]["sklearn.wine"]
    assert wine["metric"] == "accuracy" and wine["role"] == "source"
    for who in ("teacher", "student", "baseline"):
        assert 0.0 <= wine[who] <= 1.0
        assert wine["metrics"][who]["accuracy"] == wine[who]
    assert summary["domains"]["sklearn.breast_cancer"]["metric"] == "roc_auc"
    assert summary["params"]["teacher"] > summary["params"]["student"] > 0
    assert summary["rounds"] == 1 and len(summary["round_results"]) == 1
    assert summary["seed"] == 0 and summary["wall_s"] > 0
    # the student checkpoint holds the student alone (the hint projector is dropped)
    student = load_weights(run_dir / "student.safetensors")
    assert all(k.split(".")[0] in {"stems", "trunk", "heads"} for k in student)
    records = read_metrics(run_dir / "metrics.jsonl")
    stages = {r.get("stage") for r in records}
    assert {"teacher", "baseline", "student", "encoding", "evaluation"} <= stages
    assert (
        sum(1 for r in records if r.get("stage") == "teacher" and "epoch" in r and "event" not in r)
        == 2
    )


def test_same_seed_same_numbers(tiny_config, tmp_path, host):
    a = _run(tiny_config, tmp_path / "a", host).summary
    b = _run(tiny_config, tmp_path / "b", host).summary
    strip = lambda s: {k: v for k, v in s.items() if k not in TIMING_KEYS}  # noqa: E731
    assert strip(a) == strip(b)
    tiny_config["seed"] = 1
    c = _run(tiny_config, tmp_path / "c", host).summary
    assert strip(c)["domains"] != strip(a)["domains"]


def test_teacher_learns_and_test_split_is_untouched_by_training(tiny_config, tmp_path, host):
    tiny_config["train"]["epochs"] = 15
    summary = _run(tiny_config, tmp_path, host).summary
    assert summary["domains"]["sklearn.wine"]["teacher"] > 0.85
    assert summary["domains"]["sklearn.breast_cancer"]["teacher"] > 0.95
    records = read_metrics(next(tmp_path.iterdir()) / "metrics.jsonl")
    assert not any("test" in json.dumps(r.get("val", {})) for r in records)


def test_roles_target_and_unseen_share_a_head(tmp_path):
    host = make_host()
    cfg = {
        "name": "roles",
        "domains": [
            {"name": "testing.digits_a", "role": "source"},
            {
                "name": "testing.digits_b",
                "alias": "b_target",
                "role": "target",
                "label_fraction": 0.05,
            },
            {
                "name": "testing.digits_b",
                "alias": "b_unseen",
                "role": "unseen",
                "params": {"max_examples": 200},
            },
        ],
        "teacher": {
            "trunk": {"name": "mlp", "params": {"width": 64, "depth": 1}},
            "stems": {"image": {"name": "mlp"}},
        },
        "student": {
            "trunk": {"name": "mlp", "params": {"width": 16, "depth": 1}},
            "stems": {"image": {"name": "cnn", "params": {"channels": 4}}},
        },
        "encoder": {"name": "pca", "params": {"dim": 8}},
        "losses": [{"name": "ce"}, {"name": "kd", "params": {"temperature": 2.0}}],
        "train": {"epochs": 8, "batch_size": 32, "lr": 0.01, "device": "cpu"},
    }
    summary = _run(cfg, tmp_path, host).summary
    target = summary["domains"]["b_target"]
    # the teacher has a stem and a head for the target: it is evaluated there
    assert target["teacher"] is not None and target["teacher"] > 0.5
    # stratified label subset: 5% of each class, at least one each
    assert 10 <= target["sizes"]["labelled"] < 0.1 * target["sizes"]["train"]
    unseen = summary["domains"]["b_unseen"]
    assert unseen["role"] == "unseen"
    assert unseen["student"] is not None and unseen["teacher"] is not None


def test_unlabelled_target_learns_from_soft_labels(tmp_path):
    host = make_host()
    cfg = {
        "name": "uda",
        "domains": [
            {"name": "testing.digits_a", "role": "source"},
            {"name": "testing.digits_b", "role": "target", "label_fraction": 0.0},
        ],
        "teacher": {
            "trunk": {"name": "mlp", "params": {"width": 64, "depth": 1}},
            "stems": {"image": {"name": "mlp"}},
        },
        "student": {
            "trunk": {"name": "mlp", "params": {"width": 16, "depth": 1}},
            "stems": {"image": {"name": "mlp"}},
        },
        "losses": [{"name": "ce"}, {"name": "kd"}],
        "train": {"epochs": 8, "batch_size": 32, "lr": 0.01, "device": "cpu"},
    }
    summary = _run(cfg, tmp_path, host).summary
    target = summary["domains"]["testing.digits_b"]
    assert target["sizes"]["labelled"] == 0
    assert target["student"] > 0.5


def test_unlabelled_target_without_teacher_head_is_refused(tiny_config, tmp_path, host):
    tiny_config["domains"].append({"name": "sklearn.iris", "role": "target", "label_fraction": 0.0})
    with pytest.raises(ConfigError, match="label_fraction 0"):
        _run(tiny_config, tmp_path, host)
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_unseen_domain_without_shared_space_is_refused(tiny_config, tmp_path, host):
    tiny_config["domains"].append({"name": "sklearn.iris", "role": "unseen"})
    with pytest.raises(ConfigError, match="zero-shot"):
        _run(tiny_config, tmp_path, host)


def test_target_without_teacher_stem_trains_on_its_labels(tiny_config, tmp_path, host):
    tiny_config["domains"].append({"name": "sklearn.iris", "role": "target", "label_fraction": 0.5})
    summary = _run(tiny_config, tmp_path, host).summary
    iris = summary["domains"]["sklearn.iris"]
    assert iris["teacher"] is None and iris["student"] is not None
    assert iris["baseline"] is not None


@pytest.mark.parametrize(
    ("encoder", "losses", "feedback"),
    [
        (
            {"name": "graph", "params": {"dim": 4, "neighbors": 5}},
            [{"name": "ce"}, {"name": "graph"}, {"name": "relational"}],
            {"name": "none"},
        ),
        (
            {"name": "linear", "params": {"dim": 3}},
            [{"name": "ce"}, {"name": "kd"}, {"name": "relational", "params": {"method": "sp"}}],
            {"name": "mutual", "params": {"rounds": 2}},
        ),
        (
            {"name": "pca", "params": {"dim": 4}},
            [{"name": "ce"}, {"name": "kd"}],
            {"name": "hard_examples", "params": {"rounds": 2, "epochs": 1}},
        ),
    ],
)
def test_components_run_end_to_end(tiny_config, tmp_path, host, encoder, losses, feedback):
    tiny_config.update(encoder=encoder, losses=losses, feedback=feedback)
    result = _run(tiny_config, tmp_path, host)
    summary = result.summary
    assert summary["rounds"] == len(summary["round_results"])
    for d in summary["domains"].values():
        assert d["student"] is not None and d["baseline"] is not None
    records = read_metrics(result.run_dir / "metrics.jsonl")
    if feedback["name"] == "hard_examples":
        events = [r for r in records if r.get("event") == "hard_examples"]
        assert len(events) == 2  # one per source domain after round 0, none after the last
        assert all(e["quiz_size"] > 0 for e in events)
        first, _ = summary["round_results"]
        assert first["domains"]["sklearn.wine"]["teacher"] is not None
    if feedback["name"] in ("mutual", "hard_examples"):
        # the teacher changed, so round 1 re-extracted its outputs
        assert summary["teacher_cache"]["misses"] == 4


def test_teacher_cache_serves_every_student_epoch(tiny_config, tmp_path, host):
    tiny_config["train"]["epochs"] = 3
    summary = _run(tiny_config, tmp_path, host).summary
    assert summary["teacher_cache"] == {"hits": 0, "misses": 2}


def test_checkpoints_are_safetensors_and_reload(tiny_config, tmp_path, host):
    from cdkd_core.data.preparation import prepare_domains
    from cdkd_core.nets.assembly import build_network

    result = _run(tiny_config, tmp_path, host)
    config = load_config(tiny_config, host=host)
    domains = prepare_domains(config, host)
    student = build_network(config.student, domains, host, "student", seed=123)
    student.load_state_dict(load_weights(result.run_dir / "student.safetensors"))
    wine = domains[0]
    logits = student(wine.test.student_x, wine.space, wine.task)
    acc = float((logits.argmax(1) == wine.test.y).float().mean())
    assert acc == pytest.approx(result.summary["domains"]["sklearn.wine"]["student"])
    assert torch.isfinite(logits).all()


def test_bad_feature_layer_is_refused_before_training(tiny_config, tmp_path, host):
    tiny_config["student"]["feature_layer"] = "trunk.99"
    with pytest.raises(ConfigError, match=r"feature_layer 'trunk\.99'"):
        _run(tiny_config, tmp_path, host)
    assert not list(tmp_path.iterdir())


def test_target_val_labels_are_cut_to_label_fraction(host):
    from cdkd_core.data.preparation import prepare_domains

    config = load_config(
        {
            "domains": [
                {"name": "sklearn.wine", "role": "source"},
                {"name": "sklearn.digits", "role": "target", "label_fraction": 0.1},
            ]
        },
        host=host,
    )
    wine, digits = prepare_domains(config, host)
    assert bool(wine.val_labelled.all())
    n_val = len(digits.val)
    assert 10 <= int(digits.val_labelled.sum()) <= 0.1 * n_val + 10
    assert int(digits.labelled.sum()) == pytest.approx(0.1 * len(digits.train), abs=10)


def test_run_files_are_strict_json_and_world_readable(tmp_path):
    import math
    import os

    from cdkd_core.files import atomic_write_json
    from cdkd_core.run.rundir import MetricsLog

    atomic_write_json(tmp_path / "s.json", {"auc": math.nan, "x": [math.inf, 1.0]})
    assert json.loads((tmp_path / "s.json").read_text()) == {"auc": None, "x": [None, 1.0]}
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "s.json").stat().st_mode & 0o777 == 0o666 & ~umask
    log = MetricsLog(tmp_path / "m.jsonl")
    log.log(score=-math.inf)
    log.close()
    with (tmp_path / "m.jsonl").open("a") as handle:
        handle.write('{"torn": ')
    assert read_metrics(tmp_path / "m.jsonl")[0]["score"] is None
    (tmp_path / "bad.jsonl").write_text('{"a": 1}\nnot json\n{"b": 2}\n')
    with pytest.raises(ValueError, match="line 2"):
        read_metrics(tmp_path / "bad.jsonl")


def test_frozen_view_encoders_count_once_per_input_space(tmp_path):
    host = make_host()
    frozen = {"view_params": 1000, "max_examples": 60}
    cfg = {
        "name": "views",
        "domains": [
            {"name": "testing.digits_a", "role": "source", "params": frozen},
            {"name": "testing.digits_b", "role": "source", "params": frozen},
        ],
        "teacher": {
            "trunk": {"name": "mlp", "params": {"width": 8, "depth": 1}},
            "stems": {"image": {"name": "mlp"}},
        },
        "student": {
            "trunk": {"name": "mlp", "params": {"width": 4, "depth": 1}},
            "stems": {"image": {"name": "mlp"}},
        },
        "train": {"epochs": 1, "device": "cpu"},
    }
    params = _run(cfg, tmp_path, host).summary["params"]
    assert params["teacher_view_encoders"] == 1000
    assert params["teacher"] == params["teacher_network"] + 1000
    assert params["teacher_trainable"] == params["teacher"] - 1000


def test_deterministic_algorithms_hold_for_the_run_only(tiny_config, tmp_path, host):
    """``train.deterministic`` switches torch's deterministic algorithms on while the run
    trains (the quickstart sets it) and leaves the flag as it found it."""
    seen = []
    import cdkd_core.run.driver as driver

    original = driver.Runner.run

    def spy(self, *args, **kwargs):
        seen.append(torch.are_deterministic_algorithms_enabled())
        return original(self, *args, **kwargs)

    tiny_config["train"]["deterministic"] = True
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(driver.Runner, "run", spy)
        _run(tiny_config, tmp_path, host)
    assert seen == [True] and not torch.are_deterministic_algorithms_enabled()
    from cdkd_core.config.quickstart import CORE_QUICKSTART

    assert CORE_QUICKSTART["train"]["deterministic"] is True


def test_predictions_hold_the_test_logits_behind_the_summary(tiny_config, tmp_path, host):
    from cdkd_core.metrics import evaluate

    result = _run(tiny_config, tmp_path, host)
    predictions = load_weights(result.run_dir / "predictions.safetensors")
    for name, domain in result.summary["domains"].items():
        labels = predictions[f"{name}/labels"]
        assert len(labels) == domain["sizes"]["test"]
        for who in ("teacher", "student", "baseline"):
            metrics = evaluate([domain["metric"]], predictions[f"{name}/{who}"], labels)
            assert metrics[domain["metric"]] == pytest.approx(domain[who])


def test_layout_rebuilds_the_student_without_data(tiny_config, tmp_path, host):
    from cdkd_core.nets.assembly import NetworkSlot, build_network

    result = _run(tiny_config, tmp_path, host)
    layout = json.loads((result.run_dir / "layout.json").read_text())
    config = load_config(tiny_config, host=host)
    slots = [NetworkSlot.from_dict(s) for s in layout["student"]]
    student = build_network(config.student, slots, host, "student", seed=5)
    student.load_state_dict(load_weights(result.run_dir / "student.safetensors"))
    wine = layout["domains"]["sklearn.wine"]
    assert wine["classes"] == ["class_0", "class_1", "class_2"]
    assert wine["student_input_shape"] == [13] and wine["standardized"]["student_x"]
    stats = load_weights(result.run_dir / "preprocessing.safetensors")
    from sklearn.datasets import load_wine

    # the stored standardisation is that of the train split: its mean lies near the data's
    raw = torch.tensor(load_wine().data)
    mean = stats["sklearn.wine/student_x/mean"].flatten()
    assert torch.allclose(mean, raw.mean(0), rtol=0.15)


def test_teacher_checkpoint_is_loaded_not_trained(tiny_config, tmp_path, host):
    first = _run(tiny_config, tmp_path / "a", host)
    tiny_config["teacher"]["checkpoint"] = str(first.run_dir / "teacher.safetensors")
    tiny_config["losses"] = [{"name": "ce"}, {"name": "kd"}]
    second = _run(tiny_config, tmp_path / "b", host)
    records = read_metrics(second.run_dir / "metrics.jsonl")
    assert not [r for r in records if r.get("stage") == "teacher" and "epoch" in r]
    assert any(r.get("event") == "loaded" for r in records)
    a = load_weights(first.run_dir / "teacher.safetensors")
    b = load_weights(second.run_dir / "teacher.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    for name, domain in first.summary["domains"].items():
        assert second.summary["domains"][name]["teacher"] == domain["teacher"]
        assert second.summary["domains"][name]["baseline"] == domain["baseline"]


def test_teacher_checkpoint_that_does_not_fit_is_refused(tiny_config, tmp_path, host):
    first = _run(tiny_config, tmp_path / "a", host)
    tiny_config["teacher"]["checkpoint"] = str(first.run_dir / "teacher.safetensors")
    tiny_config["teacher"]["trunk"]["params"]["width"] = 16
    with pytest.raises(ConfigError, match=r"teacher\.checkpoint: .* does not fit .*shape"):
        _run(tiny_config, tmp_path / "b", host)
    assert not (tmp_path / "b").exists() or not list((tmp_path / "b").iterdir())
    tiny_config["teacher"]["checkpoint"] = str(tmp_path / "nope.safetensors")
    with pytest.raises(ConfigError, match="no such file"):
        _run(tiny_config, tmp_path / "c", host)


def test_student_checkpoint_is_refused(tiny_config, host):
    tiny_config["student"]["checkpoint"] = "x.safetensors"
    with pytest.raises(ConfigError, match="only the teacher"):
        load_config(tiny_config, host=host)


def test_teacher_gate_withholds_soft_labels_where_the_teacher_is_worse(tiny_config, tmp_path, host):
    tiny_config["train"].update(
        {"teacher_gate": "val", "epochs": 12, "teacher_epochs": 1, "teacher_lr": 1e-7}
    )
    result = _run(tiny_config, tmp_path / "weak", host)
    records = read_metrics(result.run_dir / "metrics.jsonl")
    gates = {r["domain"]: r for r in records if r.get("stage") == "gate"}
    assert set(gates) == {"sklearn.wine", "sklearn.breast_cancer"}
    # an untrained teacher is significantly below the baseline on val: no soft labels
    for name, gate in gates.items():
        low, high = gate["interval"]
        assert low <= gate["difference"] <= high < 0
        assert gate["teacher_val"] < gate["baseline_val"] and gate["soft_labels"] is False
        assert result.summary["domains"][name]["gate"]["soft_labels"] is False
        assert result.summary["domains"][name]["teacher"] < 0.8
    student = [r for r in records if r.get("stage") == "student" and "loss" in r]
    assert student and all(not any(k.endswith(":kd") for k in r["loss"]) for r in student)
    assert all(any(k.endswith(":hint") for k in r["loss"]) for r in student)

    tiny_config["train"].update({"teacher_epochs": 30, "teacher_lr": 0.01})
    result = _run(tiny_config, tmp_path / "strong", host)
    records = read_metrics(result.run_dir / "metrics.jsonl")
    gates = [r for r in records if r.get("stage") == "gate"]
    kept = [g for g in gates if g["soft_labels"]]
    assert kept and all(g["teacher_val"] >= g["baseline_val"] for g in kept)
    student = [r for r in records if r.get("stage") == "student" and "loss" in r]
    assert all(any(k.endswith(":kd") for k in r["loss"]) for r in student)


def test_bf16_mixed_precision_trains_on_the_cpu(tiny_config, tmp_path, host):
    tiny_config["train"].update({"epochs": 4, "lr": 0.01})
    runs = {}
    for precision in ("fp32", "bf16"):
        tiny_config["train"]["precision"] = precision
        result = _run(tiny_config, tmp_path / precision, host)
        losses = [
            r["loss"]["0:ce"]
            for r in read_metrics(result.run_dir / "metrics.jsonl")
            if r.get("stage") == "teacher" and "loss" in r
        ]
        runs[precision] = (result.summary, losses)
    (fp32, fp32_losses), (bf16, bf16_losses) = runs["fp32"], runs["bf16"]
    assert bf16_losses != fp32_losses  # the steps did run in bfloat16 ...
    assert bf16_losses == pytest.approx(fp32_losses, rel=0.05)  # ... to much the same end
    for name, d in bf16["domains"].items():
        for who in ("teacher", "student", "baseline"):
            assert d[who] == pytest.approx(fp32["domains"][name][who], abs=0.05)


def test_fp16_without_cuda_is_refused_before_training(tiny_config, tmp_path, host):
    tiny_config["train"]["precision"] = "fp16"
    with pytest.raises(ConfigError, match=r"train\.precision: fp16 needs a CUDA device"):
        _run(tiny_config, tmp_path, host)
    assert not list(tmp_path.iterdir())
