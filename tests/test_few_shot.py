"""Few-shot targets (``shots: k``): k labelled examples per class, as for the baseline."""

from __future__ import annotations

import pytest
import torch

from cdkd_core import load_config, run_pipeline
from cdkd_core.data.preparation import prepare_domains
from cdkd_core.data.splits import shots_mask
from cdkd_core.errors import ConfigError
from cdkd_core.stages import training as pipeline_module

torch.set_num_threads(1)


def _config(shots: int = 5, seed: int = 0, **train) -> dict:
    return {
        "name": "fewshot",
        "seed": seed,
        "domains": [
            {"name": "sklearn.breast_cancer", "role": "source"},
            {"name": "sklearn.wine", "role": "target", "shots": shots},
        ],
        "teacher": {"trunk": {"name": "mlp", "params": {"width": 16, "depth": 1}}},
        "student": {"trunk": {"name": "mlp", "params": {"width": 8, "depth": 1}}},
        "encoder": {"name": "pca", "params": {"dim": 4}},
        "train": {"epochs": 2, "batch_size": 64, "lr": 0.01, "device": "cpu", **train},
    }


def _per_class(labels: torch.Tensor, mask: torch.Tensor) -> dict[int, int]:
    return {int(c): int((labels[mask] == c).sum()) for c in torch.unique(labels)}


def test_shots_mask_keeps_k_per_class_or_all_of_a_small_class():
    labels = torch.tensor([0] * 10 + [1] * 3 + [2] * 7)
    mask, short = shots_mask(labels, 5, seed=0)
    assert _per_class(labels, mask) == {0: 5, 1: 3, 2: 5}
    assert short == {1: 3}
    again, _ = shots_mask(labels, 5, seed=0)
    assert torch.equal(mask, again)
    other, _ = shots_mask(labels, 5, seed=1)
    assert not torch.equal(mask, other)
    with pytest.raises(ValueError, match="at least 1"):
        shots_mask(labels, 0, seed=0)


@pytest.mark.parametrize("shots", [1, 5, 10])
def test_a_few_shot_target_has_k_labels_per_class_in_train_and_val(host, shots):
    source, wine = prepare_domains(load_config(_config(shots), host=host), host)
    assert bool(source.labelled.all()) and bool(source.val_labelled.all())
    assert set(_per_class(wine.train.y, wine.labelled).values()) == {shots}
    assert set(_per_class(wine.val.y, wine.val_labelled).values()) == {shots}


def test_few_shot_subset_is_deterministic_per_seed(host):
    first = prepare_domains(load_config(_config(5), host=host), host)[1]
    second = prepare_domains(load_config(_config(5), host=host), host)[1]
    assert torch.equal(first.labelled, second.labelled)
    assert torch.equal(first.val_labelled, second.val_labelled)
    reseeded = prepare_domains(load_config(_config(5, seed=3), host=host), host)[1]
    if torch.equal(first.train.y, reseeded.train.y):  # the split itself is seed-independent
        assert not torch.equal(first.labelled, reseeded.labelled)


def test_a_class_with_fewer_than_k_examples_is_all_labelled_with_a_warning(host):
    config = load_config(_config(40), host=host)
    with pytest.warns(UserWarning) as caught:
        _, wine = prepare_domains(config, host)
    messages = [str(w.message) for w in caught]
    assert any("'sklearn.wine': shots=40" in m and "train split" in m for m in messages)
    assert any("val split" in m for m in messages)
    counts = _per_class(wine.train.y, wine.labelled)
    available = _per_class(wine.train.y, torch.ones_like(wine.labelled))
    assert counts == {c: min(40, n) for c, n in available.items()}
    assert min(available.values()) < 40


def test_student_and_baseline_train_on_the_same_few_labels(host, tmp_path, monkeypatch):
    seen: list[torch.Tensor] = []
    real = pipeline_module.fit

    def spying(model, plans, losses, settings, **kw):
        for plan in plans:
            if plan.domain.name == "sklearn.wine":
                seen.append(plan.labels.clone())
        return real(model, plans, losses, settings, **kw)

    monkeypatch.setattr(pipeline_module, "fit", spying)
    config = _config(5)
    config["train"]["teacher_gate"] = "none"  # one student pass (no fallback retraining)
    result = run_pipeline(load_config(config, host=host), output=tmp_path, host=host)
    baseline_labels, student_labels = seen  # the baseline, then the student (a target)
    assert torch.equal(baseline_labels, student_labels)
    assert int((baseline_labels >= 0).sum()) == 5 * 3
    wine = result.summary["domains"]["sklearn.wine"]
    assert wine["role"] == "target" and wine["shots"] == 5
    assert wine["sizes"]["labelled"] == 15
    for who in ("teacher", "student", "baseline"):
        assert wine[who] is None or 0.0 <= wine[who] <= 1.0
    assert result.summary["domains"]["sklearn.breast_cancer"]["shots"] is None


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ({"role": "source", "shots": 5}, "domains.1.shots: shots applies to role 'target' only"),
        ({"role": "unseen", "shots": 5}, "domains.1.shots: shots applies to role 'target' only"),
        (
            {"role": "target", "shots": 5, "label_fraction": 0.1},
            "domains.1.shots: shots and label_fraction are exclusive",
        ),
        ({"role": "target", "shots": 0}, "domains.1.shots: Input should be greater than"),
        ({"role": "target", "shots": "five"}, "domains.1.shots:"),
    ],
)
def test_bad_shots_are_refused_by_key(host, entry, says):
    cfg = _config()
    cfg["domains"][1] = {"name": "sklearn.wine", **entry}
    with pytest.raises(ConfigError) as info:
        load_config(cfg, host=host)
    assert says in str(info.value)
