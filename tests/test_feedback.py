"""Built-in feedback strategies: ``none``, ``mutual`` (one teacher step checked against a
manual AdamW step) and ``hard_examples`` (quiz weights, what it reads and passes on)."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cdkd_core.builtins.architectures import MLP
from cdkd_core.builtins.feedback import HardExamples, MutualLearning, NoFeedback
from cdkd_core.components.domain import Split
from cdkd_core.components.feedback import FeedbackContext, FeedbackDomain, StudentStep
from cdkd_core.nets.network import MultiDomainNet

torch.set_num_threads(1)


def _teacher(seed: int = 0) -> MultiDomainNet:
    torch.manual_seed(seed)
    trunk = MLP.from_params({"width": 6, "depth": 1}).build_trunk()
    return MultiDomainNet({"sp.a": nn.Linear(4, 6)}, trunk, {"task.a": nn.Linear(6, 3)})


def _split(n: int, seed: int, features: int = 4, classes: int = 3) -> Split:
    g = torch.Generator().manual_seed(seed)
    return Split.single_view(torch.randn(n, features, generator=g), torch.arange(n) % classes)


def _view(
    name: str = "a",
    task: str = "task.a",
    space: str = "sp.a",
    quiz: Split | None = None,
    train: Split | None = None,
) -> FeedbackDomain:
    train = train if train is not None else _split(9, 1)
    return FeedbackDomain(
        name=name,
        role="source",
        task=task,
        space=space,
        num_classes=3,
        train=train,
        val=_split(6, 2),
        quiz=quiz,
        labelled=torch.ones(len(train), dtype=torch.bool),
    )


def _step(view: FeedbackDomain, seed: int = 5) -> StudentStep:
    g = torch.Generator().manual_seed(seed)
    labelled = torch.tensor([True, False, True, True, False, True, False, True])
    labels = torch.where(labelled, torch.arange(8) % 3, torch.full((8,), -1))
    return StudentStep(
        domain=view,
        teacher_x=torch.randn(8, 4, generator=g),
        labels=labels,
        labelled=labelled,
        student_logits=(torch.randn(8, 3, generator=g) * 2).requires_grad_(),
    )


# --------------------------------------------------------------------------- none


def test_no_feedback_leaves_the_teacher() -> None:
    strategy = NoFeedback()
    assert strategy.rounds == 1
    assert strategy.quiz_fraction == 0.0
    assert not strategy.live_teacher and not strategy.needs_quiz
    teacher = _teacher()
    before = copy.deepcopy(teacher.state_dict())
    ctx = FeedbackContext(
        round=0,
        teacher=teacher,
        student=_teacher(1),
        domains={"a": _view()},
        val_results={},
        predict=lambda *a: pytest.fail("none must not predict"),
        finetune_teacher=lambda *a: pytest.fail("none must not fine-tune"),
    )
    assert strategy.after_round(ctx) is False
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    assert NoFeedback.from_params({"rounds": 3}).rounds == 3
    assert strategy.describe() == {"name": "none", "rounds": 1}


# --------------------------------------------------------------------------- mutual


@pytest.mark.parametrize(("temperature", "kl_weight"), [(1.0, 1.0), (2.5, 0.7)])
def test_mutual_step_equals_a_manual_adamw_step(temperature: float, kl_weight: float) -> None:
    lr = 0.05
    strategy = MutualLearning.from_params(
        {"lr": lr, "temperature": temperature, "kl_weight": kl_weight}
    )
    assert strategy.live_teacher and strategy.quiz_fraction == 0.0
    teacher = _teacher()
    reference = copy.deepcopy(teacher)
    view = _view()
    step = _step(view)

    # the expected gradient, by hand on a copy
    t = reference(step.teacher_x, "sp.a", "task.a")
    log_q = F.log_softmax(t / temperature, dim=1)
    p = F.softmax(step.student_logits.detach() / temperature, dim=1)
    kl = (p * (p.log() - log_q)).sum(1).mean()
    ce = -F.log_softmax(t, dim=1)[step.labelled, step.labels[step.labelled]].mean()
    loss = kl_weight * temperature**2 * kl + ce
    loss.backward()

    teacher.eval()
    strategy.begin_round(teacher, {"a": view})
    strategy.student_step(teacher, step)
    assert teacher.training

    # first AdamW step: m̂ = g, v̂ = g², decoupled weight decay 0.01
    new = dict(teacher.named_parameters())
    for name, param in reference.named_parameters():
        g = param.grad
        expected = param.detach() - lr * g / (g.abs() + 1e-8)  # weight_decay 0 by default
        assert torch.allclose(new[name].detach(), expected, atol=1e-6), name
        assert not torch.equal(new[name].detach(), param.detach()), name
    # no gradient reaches the student
    assert step.student_logits.grad is None


def test_mutual_step_without_labels_is_kl_only() -> None:
    strategy = MutualLearning.from_params({"lr": 0.01})
    teacher, reference = _teacher(), _teacher()
    view = _view()
    step = _step(view)
    step.labelled = torch.zeros(8, dtype=torch.bool)
    step.labels = torch.full((8,), -1)
    t = reference(step.teacher_x, "sp.a", "task.a")
    F.kl_div(
        F.log_softmax(t, 1), F.softmax(step.student_logits.detach(), 1), reduction="batchmean"
    ).backward()
    strategy.begin_round(teacher, {"a": view})
    strategy.student_step(teacher, step)
    new = dict(teacher.named_parameters())
    for name, param in reference.named_parameters():
        g = param.grad
        expected = param.detach() - 0.01 * g / (g.abs() + 1e-8)
        assert torch.allclose(new[name].detach(), expected, atol=1e-6), name


def test_mutual_steps_accumulate_in_one_optimiser() -> None:
    strategy = MutualLearning.from_params({"lr": 0.01})
    teacher = _teacher()
    view = _view()
    strategy.begin_round(teacher, {"a": view})
    optimizer = strategy._optimizer
    strategy.student_step(teacher, _step(view, 1))
    strategy.student_step(teacher, _step(view, 2))
    state = optimizer.state[next(iter(teacher.parameters()))]
    assert int(state["step"]) == 2


@pytest.mark.parametrize(("task", "space"), [("task.b", "sp.a"), ("task.a", "sp.b")])
def test_mutual_skips_domains_the_teacher_cannot_predict(task: str, space: str) -> None:
    strategy = MutualLearning.from_params({"lr": 0.1})
    teacher = _teacher()
    before = copy.deepcopy(teacher.state_dict())
    view = _view(task=task, space=space)
    strategy.begin_round(teacher, {"a": view})
    strategy.student_step(teacher, _step(view))
    after = teacher.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


# --------------------------------------------------------------------------- hard examples


class _Student:
    """A stand-in student with a head only for ``task.a``."""

    def has_head(self, task: str) -> bool:
        return task == "task.a"


class _Recorder:
    def __init__(self, logits: dict[str, torch.Tensor]) -> None:
        self.logits = logits
        self.predicted: list[tuple[Any, str, str]] = []
        self.finetuned: list[tuple[dict, int, float]] = []
        self.logged: list[dict] = []

    def predict(self, model: Any, name: str, split: str) -> torch.Tensor:
        self.predicted.append((model, name, split))
        return self.logits[name]

    def finetune(self, batches: dict, epochs: int, lr: float) -> None:
        self.finetuned.append((batches, epochs, lr))

    def log(self, **record: Any) -> None:
        self.logged.append(record)


def _context(domains: dict[str, FeedbackDomain], recorder: _Recorder, student: Any) -> Any:
    return FeedbackContext(
        round=0,
        teacher=_teacher(),
        student=student,
        domains=domains,
        val_results={},
        predict=recorder.predict,
        finetune_teacher=recorder.finetune,
        log=recorder.log,
    )


def test_hard_examples_weights_quiz_by_student_failure() -> None:
    strategy = HardExamples.from_params({"boost": 3.0, "epochs": 2, "lr": 0.001})
    assert strategy.needs_quiz and strategy.rounds == 2
    assert strategy.quiz_fraction == pytest.approx(0.15)
    quiz = Split(
        torch.randn(4, 4), torch.randn(4, 2), torch.tensor([0, 1, 2, 1])
    )  # two views differ
    train = Split(torch.randn(5, 4), torch.randn(5, 2), torch.tensor([0, 1, 2, 0, 1]))
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 3.0, -1.0], [0.0, 5.0, 0.0]])
    domains = {
        "a": _view("a", quiz=quiz, train=train),
        "no_quiz": _view("no_quiz", quiz=None),
        "no_head": _view("no_head", task="task.z", quiz=_split(3, 9)),
    }
    recorder = _Recorder({"a": logits})
    student = _Student()
    assert strategy.after_round(_context(domains, recorder, student)) is True

    # only the student's quiz predictions are read
    assert recorder.predicted == [(student, "a", "quiz")]
    (batches, epochs, lr), *rest = recorder.finetuned
    assert not rest
    assert (epochs, lr) == (2, 0.001)
    assert set(batches) == {"a"}
    combined, weights = batches["a"]
    assert torch.equal(combined.teacher_x, torch.cat([train.teacher_x, quiz.teacher_x]))
    assert torch.equal(combined.student_x, torch.cat([train.student_x, quiz.student_x]))
    assert torch.equal(combined.y, torch.cat([train.y, quiz.y]))

    # weights by hand: p_true of each quiz example
    def softmax_row(row: list[float], k: int) -> float:
        return math.exp(row[k]) / sum(math.exp(v) for v in row)

    p_true = [softmax_row(r, int(y)) for r, y in zip(logits.tolist(), quiz.y, strict=True)]
    expected = [1.0] * 5 + [1.0 + 3.0 * (1.0 - p) for p in p_true]
    assert weights.tolist() == pytest.approx(expected, abs=1e-6)
    assert weights[:5].eq(1).all()
    assert weights[5:].min() >= 1.0 and weights[5:].max() <= 4.0

    (record,) = recorder.logged
    assert record["domain"] == "a" and record["quiz_size"] == 4
    assert record["student_quiz_accuracy"] == pytest.approx(2 / 4)  # rows 0 and 3
    assert record["mean_quiz_weight"] == pytest.approx(sum(expected[5:]) / 4, abs=1e-6)


def test_hard_examples_with_boost_zero_weights_everything_one() -> None:
    strategy = HardExamples.from_params({"boost": 0.0})
    quiz = _split(3, 4)
    recorder = _Recorder({"a": torch.randn(3, 3)})
    strategy.after_round(_context({"a": _view(quiz=quiz)}, recorder, _Student()))
    _, weights = recorder.finetuned[0][0]["a"]
    assert torch.equal(weights, torch.ones(9 + 3))


def test_hard_examples_without_quiz_does_nothing() -> None:
    strategy = HardExamples()
    recorder = _Recorder({})
    domains = {"a": _view(quiz=None), "b": _view("b", task="task.z", quiz=_split(3, 0))}
    assert strategy.after_round(_context(domains, recorder, _Student())) is False
    assert recorder.predicted == [] and recorder.finetuned == []


def test_feedback_domains_expose_no_test_split() -> None:
    view = _view(quiz=_split(2, 0))
    assert not hasattr(view, "test")
    assert {"train", "val", "quiz"} <= set(vars(view))
