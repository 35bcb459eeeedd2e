"""The training loop (model selection, early stopping, divergence, determinism) and the
teacher-output cache."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cdkd_core.builtins.architectures import MLP
from cdkd_core.builtins.losses import CrossEntropyLoss
from cdkd_core.components.domain import DomainData, Split
from cdkd_core.components.loss import BatchContext, Loss
from cdkd_core.config.models import DomainEntry
from cdkd_core.data.preparation import PreparedDomain
from cdkd_core.engine.batching import BatchSource
from cdkd_core.engine.fit import fit
from cdkd_core.engine.inference import predict, read_features, val_score
from cdkd_core.engine.plans import DomainPlan
from cdkd_core.engine.settings import FitSettings
from cdkd_core.engine.step import TrainStep
from cdkd_core.errors import TrainingError
from cdkd_core.nets.network import MultiDomainNet, module_key
from cdkd_core.nets.reading import FeatureHook
from cdkd_core.stages.teacher_cache import TeacherCache, state_hash

torch.set_num_threads(1)

CPU = torch.device("cpu")


# --------------------------------------------------------------------------- helpers


def _blobs(n: int, seed: int, flip: bool = False) -> Split:
    """Two Gaussian blobs in 4-D, means ±1.5 on every axis (``flip`` swaps the labels)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randn(n, 4, generator=g) + (y[:, None].float() * 3 - 1.5)
    return Split.single_view(x, 1 - y if flip else y)


def _domain(
    name: str = "toy",
    *,
    flip_val: bool = False,
    metrics: list[str] | None = None,
    val: Split | None = None,
    weight: float = 1.0,
) -> PreparedDomain:
    splits = {
        "train": _blobs(64, 1),
        "val": val if val is not None else _blobs(40, 2, flip=flip_val),
        "test": _blobs(20, 3),
    }
    data = DomainData(
        "tabular", f"{name}.task", ["a", "b"], splits, metrics=metrics or ["accuracy"]
    )
    entry = DomainEntry(name=name, weight=weight)
    return PreparedDomain(
        entry,
        data,
        splits["train"],
        splits["val"],
        splits["test"],
        None,
        torch.ones(64).bool(),
        torch.ones(len(splits["val"])).bool(),
    )


def _plan(d: PreparedDomain, weight: float = 1.0) -> DomainPlan:
    return DomainPlan(
        domain=d,
        x=d.train.student_x,
        labels=d.train.y.clone(),
        labelled=d.labelled,
        index=torch.arange(len(d.train)),
        val_x=d.val.student_x,
        weight=weight,
    )


def _model(d: PreparedDomain, seed: int = 0, width: int = 8) -> MultiDomainNet:
    torch.manual_seed(seed)
    mlp = MLP.from_params({"width": width, "depth": 1})
    return MultiDomainNet(
        {d.space: mlp.build_stem((4,), width)},
        mlp.build_trunk(),
        {d.task: nn.Linear(width, d.num_classes)},
    )


def _settings(**changes) -> FitSettings:
    base = {
        "epochs": 8,
        "batch_size": 16,
        "lr": 0.02,
        "weight_decay": 0.0,
        "scheduler": "constant",
        "patience": None,
        "grad_clip": 5.0,
        "eval_batch_size": 64,
        "device": CPU,
        "seed": 0,
    }
    base.update(changes)
    return FitSettings(**base)


def _ce() -> list[tuple[Loss, float]]:
    return [(CrossEntropyLoss(), 1.0)]


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------- fit


def test_fit_learns_a_separable_problem() -> None:
    d = _domain()
    model = _model(d)
    before, _ = val_score(model, [_plan(d)], _settings())
    records = []
    result = fit(model, [_plan(d)], _ce(), _settings(), on_epoch=records.append)
    assert result.best_score >= 0.95
    assert result.best_score > before
    assert len(result.history) == 8 and records == result.history
    first = result.history[0]
    assert first["epoch"] == 1
    assert set(first["loss"]) == {"0:ce"}
    assert first["val"]["toy"]["accuracy"] == first["val_score"]
    losses = [r["loss"]["0:ce"] for r in result.history]
    assert losses[-1] < losses[0]
    assert model.training is True


def test_fit_restores_the_best_val_epoch() -> None:
    # val labels are the inverse of train labels: the better the fit, the worse val gets
    d = _domain(flip_val=True)
    model = _model(d)
    snapshots: list[dict] = []

    def snapshot(record: dict) -> None:
        snapshots.append(copy.deepcopy(model.state_dict()))

    settings = _settings(lr=0.003, epochs=6)
    result = fit(model, [_plan(d)], _ce(), settings, on_epoch=snapshot)
    scores = [r["val_score"] for r in result.history]
    assert result.best_score == max(scores)
    assert result.best_epoch == scores.index(max(scores)) + 1
    assert result.best_epoch < len(scores), scores
    assert scores[-1] < result.best_score
    assert _same(model.state_dict(), snapshots[result.best_epoch - 1])
    assert val_score(model, [_plan(d)], settings)[0] == result.best_score


def test_fit_stops_early_after_patience_epochs_without_improvement() -> None:
    d = _domain(flip_val=True)
    result = fit(_model(d), [_plan(d)], _ce(), _settings(lr=0.003, epochs=30, patience=2))
    scores = [r["val_score"] for r in result.history]
    assert len(scores) == result.best_epoch + 2 < 30
    assert all(s <= result.best_score for s in scores[result.best_epoch :])


def test_fit_is_deterministic_for_a_seed() -> None:
    d = _domain()
    states = []
    for _ in range(2):
        model = _model(d, seed=4)
        fit(model, [_plan(d)], _ce(), _settings(epochs=3, scheduler="cosine", seed=7))
        states.append(model.state_dict())
    assert _same(*states)
    other = _model(d, seed=4)
    fit(other, [_plan(d)], _ce(), _settings(epochs=3, scheduler="cosine", seed=8))
    assert not _same(states[0], other.state_dict())


class _NaNLoss(Loss):
    """A loss that diverges."""

    name = "nan_loss"

    def forward(self, ctx: BatchContext) -> torch.Tensor:
        return ctx.student_logits.sum() * float("nan")


def test_a_nan_loss_raises_training_error_mentioning_the_learning_rate() -> None:
    d = _domain("unstable")
    model = _model(d)
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(TrainingError) as info:
        fit(model, [_plan(d)], [*_ce(), (_NaNLoss(), 1.0)], _settings())
    msg = str(info.value)
    assert "learning rate" in msg and "train.lr" in msg
    assert "nan" in msg.lower()
    assert "epoch 1" in msg and "'unstable'" in msg
    assert "1:nan_loss" in msg
    assert _same(model.state_dict(), before)


def test_an_exploding_learning_rate_is_caught() -> None:
    d = _domain()
    model = _model(d)
    settings = _settings(lr=1e25, grad_clip=None, epochs=20)
    with pytest.raises(TrainingError, match="learning rate"):
        fit(model, [_plan(d)], _ce(), settings)


def test_zero_weight_losses_are_skipped() -> None:
    d = _domain()
    result = fit(_model(d), [_plan(d)], [*_ce(), (_NaNLoss(), 0.0)], _settings(epochs=1))
    assert set(result.history[0]["loss"]) == {"0:ce"}


def test_step_scales_terms_by_loss_and_domain_weight() -> None:
    d = _domain()
    model = _model(d)
    plan = _plan(d, weight=3.0)
    idx = torch.tensor([0, 5, 9, 12])
    plan.labelled = plan.labelled.clone()
    plan.labelled[9] = False
    plan.labels[9] = -1
    with FeatureHook(model, "trunk") as hook:
        step = TrainStep(model, [(CrossEntropyLoss(), 0.5)], hook)
        x, batch = BatchSource([plan], CPU).batch(0, idx, None)
        terms, logits = step(x, batch, d.name, d.space, d.task, plan.weight)
    keep = [0, 1, 3]
    expected = F.cross_entropy(model(plan.x[idx], d.space, d.task)[keep], d.train.y[idx][keep])
    assert terms["0:ce"].item() == pytest.approx(3.0 * 0.5 * expected.item(), rel=1e-5)
    assert logits.shape == (4, 2)


def test_fit_keeps_trained_weights_when_val_metric_is_undefined() -> None:
    one_class_val = Split.single_view(torch.randn(10, 4), torch.zeros(10, dtype=torch.long))
    d = _domain(metrics=["roc_auc"], val=one_class_val)
    model = _model(d)
    initial = copy.deepcopy(model.state_dict())
    result = fit(model, [_plan(d)], _ce(), _settings(epochs=3))
    assert all(math.isinf(r["val_score"]) for r in result.history)
    assert result.best_epoch >= 1
    assert not _same(model.state_dict(), initial)


class _Live:
    """Records the live-teacher calls the loop makes."""

    def __init__(self) -> None:
        self.steps: list[torch.Tensor] = []
        self.asked = 0
        self.students: set[int] = set()

    def logits(self, plan: DomainPlan, batch: torch.Tensor) -> torch.Tensor | None:
        self.asked += 1
        return None

    def step(
        self,
        plan: DomainPlan,
        batch: torch.Tensor,
        student_logits: torch.Tensor,
        student: torch.nn.Module | None = None,
    ) -> None:
        assert not student_logits.requires_grad
        assert student_logits.shape == (len(batch), 2)
        self.steps.append(batch)
        self.students.add(id(student))


def test_a_live_teacher_sees_every_student_step() -> None:
    d = _domain()
    live = _Live()
    model = _model(d)
    fit(model, [_plan(d)], _ce(), _settings(epochs=2, batch_size=20), live=live)
    assert live.students == {id(model)}  # the network being trained, for look-ahead
    assert live.asked == len(live.steps) == 2 * 4  # 64 examples in batches of 20
    per_epoch = [torch.cat(live.steps[:4]), torch.cat(live.steps[4:])]
    for seen in per_epoch:
        assert sorted(seen.tolist()) == list(range(64))


def test_predict_and_read_features_keep_the_training_mode() -> None:
    d = _domain()
    model = _model(d)
    model.train()
    logits = predict(model, d.val.student_x, d.space, d.task, 7, CPU)
    assert model.training
    model.eval()
    assert torch.allclose(logits, model(d.val.student_x, d.space, d.task))
    model.train()
    feats, logits2 = read_features(model, "trunk", d.val.student_x, d.space, d.task, 7, CPU)
    assert model.training
    assert torch.allclose(logits2, logits)
    model.eval()
    assert torch.allclose(feats, model.features(d.val.student_x, d.space))
    feats_only, none = read_features(model, "trunk", d.val.student_x, d.space, None, 64, CPU)
    assert none is None and torch.allclose(feats_only, feats)


# --------------------------------------------------------------------------- teacher cache


def test_teacher_cache_computes_once_per_teacher_state() -> None:
    d = _domain()
    teacher = _model(d, width=6)
    teacher.train()
    cache = TeacherCache()
    first = cache.outputs(teacher, d, "train", "trunk", 16, CPU)
    assert (cache.hits, cache.misses) == (0, 1)
    assert teacher.training, "the cache restores the training mode"
    teacher.eval()
    assert torch.allclose(first.features, teacher.features(d.train.teacher_x, d.space))
    assert torch.allclose(first.logits, teacher(d.train.teacher_x, d.space, d.task))
    assert first.knowledge is None

    second = cache.outputs(teacher, d, "train", "trunk", 16, CPU)
    assert (cache.hits, cache.misses) == (1, 1)
    assert torch.equal(second.logits, first.logits)
    second.knowledge = torch.zeros(1)  # callers may annotate their copy
    assert cache.outputs(teacher, d, "train", "trunk", 16, CPU).knowledge is None
    assert (cache.hits, cache.misses) == (2, 1)

    cache.outputs(teacher, d, "val", "trunk", 16, CPU)
    assert (cache.hits, cache.misses) == (2, 2)

    with torch.no_grad():
        teacher.heads[module_key(d.task)].weight[0, 0] += 1.0
    third = cache.outputs(teacher, d, "train", "trunk", 16, CPU)
    assert (cache.hits, cache.misses) == (2, 3)
    assert not torch.allclose(third.logits, first.logits)
    assert torch.allclose(third.features, first.features)

    with torch.no_grad():
        teacher.heads[module_key(d.task)].weight[0, 0] -= 1.0
    cache.outputs(teacher, d, "val", "trunk", 16, CPU)
    assert (cache.hits, cache.misses) == (2, 4), "entries of an older state are dropped"


def test_teacher_cache_without_a_head_gives_features_only() -> None:
    d = _domain()
    teacher = _model(d)
    teacher.heads = nn.ModuleDict({"other": nn.Linear(8, 2)})
    out = TeacherCache().outputs(teacher, d, "test", "trunk", 8, CPU)
    assert out.logits is None
    assert out.features.shape == (20, 8)


def test_state_hash_changes_when_one_weight_changes() -> None:
    d = _domain()
    model = _model(d)
    h = state_hash(model)
    assert len(h) == 64
    assert state_hash(copy.deepcopy(model)) == h
    assert state_hash(_model(d)) == h  # same seed, same weights
    with torch.no_grad():
        model.trunk[0].weight[3, 2] += 1e-6
    assert state_hash(model) != h
    with torch.no_grad():
        model.trunk[0].weight[3, 2] -= 1e-6
    changed = _model(d)
    with torch.no_grad():
        changed.heads[module_key(d.task)].bias[1] = 0.123
    assert state_hash(changed) != h
    assert state_hash(_model(d, seed=1)) != h
