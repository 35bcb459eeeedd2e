"""The ``meta`` feedback strategy (MetaDistil): its meta-gradient against finite
differences and a closed form, the first-order approximation against a hand computation,
what it reads and leaves alone, and whole runs (two rounds, resume)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from cdkd_core import load_config, run_pipeline
from cdkd_core.builtins.architectures import MLP
from cdkd_core.builtins.meta_feedback import MetaDistil, distil_loss, meta_gradient
from cdkd_core.components.domain import Split
from cdkd_core.components.feedback import FeedbackDomain, StudentStep
from cdkd_core.errors import ConfigError
from cdkd_core.nets.network import MultiDomainNet
from cdkd_core.run.rundir import read_metrics
from cdkd_core.run.runner import resume_run
from tests.stopping import without_timing
from tests.test_resume import _config, _interrupt_at

torch.set_num_threads(1)

SPACE, TASK = "sp.a", "task.a"
LABELLED = torch.tensor([True, False, True, True, False, True])


def _mlp_net(width: int, seed: int) -> MultiDomainNet:
    torch.manual_seed(seed)
    trunk = MLP.from_params({"width": width, "depth": 1}).build_trunk()
    return MultiDomainNet({SPACE: nn.Linear(4, width)}, trunk, {TASK: nn.Linear(width, 3)})


def _linear_net(seed: int) -> MultiDomainNet:
    """Logits ``x Wᵀ``: a bias-free linear stem, identity trunk and head."""
    torch.manual_seed(seed)
    stem = nn.Linear(4, 3, bias=False)
    return MultiDomainNet({SPACE: stem}, nn.Identity(), {TASK: nn.Identity()})


def _batch(seed: int = 3) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.where(LABELLED, torch.arange(6) % 3, torch.full((6,), -1))
    return {
        "teacher_x": torch.randn(6, 4, generator=g, dtype=torch.float64),
        "student_x": torch.randn(6, 4, generator=g, dtype=torch.float64),
        "labels": labels,
        "labelled": LABELLED,
        "quiz_x": torch.randn(5, 4, generator=g, dtype=torch.float64),
        "quiz_y": torch.tensor([0, 1, 2, 2, 1]),
    }


def _meta(teacher, student, batch, **kw):
    params = list(teacher.parameters())
    logits = teacher(batch["teacher_x"], SPACE, TASK)
    rest = {k: v for k, v in batch.items() if k != "teacher_x"}
    return meta_gradient(student, logits, params, space=SPACE, task=TASK, **rest, **kw).grads


def _pilot_quiz_loss(teacher, student, batch, pilot_lr: float, temperature: float) -> float:
    """``L_quiz(θ'(φ))`` computed directly: a copy of the student takes the SGD step."""
    pilot = copy.deepcopy(student)
    with torch.no_grad():
        t = teacher(batch["teacher_x"], SPACE, TASK)
    s = pilot(batch["student_x"], SPACE, TASK)
    log_pt, log_ps = F.log_softmax(t / temperature, 1), F.log_softmax(s / temperature, 1)
    kd = temperature**2 * (log_pt.exp() * (log_pt - log_ps)).sum(1).mean()
    lab = batch["labelled"]
    loss = kd + F.cross_entropy(s[lab], batch["labels"][lab])
    grads = torch.autograd.grad(loss, list(pilot.parameters()))
    with torch.no_grad():
        for p, g in zip(pilot.parameters(), grads, strict=True):
            p -= pilot_lr * g
        return float(F.cross_entropy(pilot(batch["quiz_x"], SPACE, TASK), batch["quiz_y"]))


@pytest.mark.parametrize("temperature", [1.0, 3.0])
def test_meta_gradient_equals_finite_differences(temperature: float) -> None:
    teacher, student = _mlp_net(6, 0).double(), _mlp_net(5, 1).double()
    batch, lr = _batch(), 0.5
    grads = _meta(teacher, student, batch, pilot_lr=lr, temperature=temperature)
    h, checked = 1e-6, 0
    for (name, param), grad in zip(teacher.named_parameters(), grads, strict=True):
        assert grad.shape == param.shape
        for flat in (0, param.numel() // 2, param.numel() - 1):
            with torch.no_grad():
                param.view(-1)[flat] += h
            up = _pilot_quiz_loss(teacher, student, batch, lr, temperature)
            with torch.no_grad():
                param.view(-1)[flat] -= 2 * h
            down = _pilot_quiz_loss(teacher, student, batch, lr, temperature)
            with torch.no_grad():
                param.view(-1)[flat] += h
            fd = (up - down) / (2 * h)
            assert float(grad.view(-1)[flat]) == pytest.approx(fd, rel=1e-4, abs=1e-9), name
            checked += 1
    assert checked >= 12
    assert max(float(g.abs().max()) for g in grads) > 1e-4  # not trivially zero


def _hand(teacher, student, batch, lr: float, temp: float):
    """Closed forms on linear nets (``s = X Wᵀ``, ``t = X Vᵀ``): the exact meta-gradient
    w.r.t. ``V`` and the documented first-order (finite-difference) approximation."""
    w, v_ = student.stems["sp~a"].weight.detach(), teacher.stems["sp~a"].weight.detach()
    xs, xt, lab = batch["student_x"], batch["teacher_x"], batch["labelled"]
    n, n_lab = len(xs), int(lab.sum())
    y = F.one_hot(batch["labels"].clamp(min=0), 3).double()
    pt = torch.softmax(xt @ v_.T / temp, 1)

    def grad_w(weight):  # ∇_W L_distil
        s = xs @ weight.T
        d = temp * (torch.softmax(s / temp, 1) - pt) / n
        d[lab] += (torch.softmax(s[lab], 1) - y[lab]) / n_lab
        return d.T @ xs

    def grad_v(weight):  # ∇_V L_distil (the KD term alone depends on V)
        log_ps = torch.log_softmax(xs @ weight.T / temp, 1)
        kl = (pt * (pt.log() - log_ps)).sum(1, keepdim=True)
        return (temp / n * pt * (pt.log() - log_ps - kl)).T @ xt

    pilot = w - lr * grad_w(w)
    q = torch.softmax(batch["quiz_x"] @ pilot.T, 1)
    v = ((q - F.one_hot(batch["quiz_y"], 3).double()) / len(q)).T @ batch["quiz_x"]
    eps = 0.01 / v.norm()
    first_order = -lr * (grad_v(w + eps * v) - grad_v(w - eps * v)) / (2 * eps)
    u = xs @ v.T  # [N, C]: v applied to each example
    dt = -(pt * (u - (pt * u).sum(1, keepdim=True))) / n  # ∂(∇_W L · v)/∂t
    exact = -lr * dt.T @ xt
    return exact, first_order


def test_first_order_is_the_finite_difference_hessian_vector_product() -> None:
    teacher, student = _linear_net(0).double(), _linear_net(1).double()
    batch, lr, temp = _batch(7), 0.8, 2.0
    exact, first_order = _hand(teacher, student, batch, lr, temp)
    (second,) = _meta(teacher, student, batch, pilot_lr=lr, temperature=temp)
    (approx,) = _meta(teacher, student, batch, pilot_lr=lr, temperature=temp, first_order=True)
    assert torch.allclose(second, exact, rtol=1e-10, atol=1e-12)
    assert torch.allclose(approx, first_order, rtol=1e-8, atol=1e-12)
    # the approximation error is O(ε²): small, and not zero
    assert torch.allclose(approx, exact, rtol=1e-3, atol=1e-6)
    assert not torch.equal(approx, exact)


def test_first_order_approximates_the_exact_gradient_on_an_mlp() -> None:
    teacher, student = _mlp_net(6, 0).double(), _mlp_net(5, 1).double()
    batch = _batch(11)
    exact = _meta(teacher, student, batch, pilot_lr=0.5, temperature=2.0)
    approx = _meta(teacher, student, batch, pilot_lr=0.5, temperature=2.0, first_order=True)
    for e, a in zip(exact, approx, strict=True):  # O(ε²) with ε = 0.01 / ‖v‖
        assert float((a - e).norm()) <= 1e-3 * float(e.norm()) + 1e-9


# --------------------------------------------------------------------------- the strategy


def _view(quiz: Split | None) -> FeedbackDomain:
    g = torch.Generator().manual_seed(1)
    train = Split(torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g), LABELLED.long())
    return FeedbackDomain(
        name="a",
        role="source",
        task=TASK,
        space=SPACE,
        num_classes=3,
        train=train,
        val=Split.single_view(torch.full((3, 4), 99.0), torch.zeros(3)),
        quiz=quiz,
        labelled=torch.ones(6, dtype=torch.bool),
    )


def _quiz(n: int = 10) -> Split:
    g = torch.Generator().manual_seed(2)
    return Split(torch.randn(n, 4, generator=g) + 50, torch.randn(n, 4, generator=g) - 50,
                 torch.arange(n) % 3)  # fmt: skip


def _step(view: FeedbackDomain, student: nn.Module, seed: int = 4) -> StudentStep:
    batch = {k: v.float() if v.is_floating_point() else v for k, v in _batch(seed).items()}
    return StudentStep(
        domain=view,
        teacher_x=batch["teacher_x"],
        labels=batch["labels"],
        labelled=batch["labelled"],
        student_logits=torch.randn(6, 3),
        student=student,
        student_x=batch["student_x"],
    )


def test_a_meta_step_changes_the_teacher_and_leaves_the_student() -> None:
    strategy = MetaDistil.from_params({"lr": 0.01, "quiz_batch_size": 4})
    assert strategy.live_teacher and strategy.needs_quiz
    assert strategy.quiz_fraction == pytest.approx(0.1)
    teacher, student = _mlp_net(6, 0), _mlp_net(5, 1)
    student.train()
    before_t = copy.deepcopy(teacher.state_dict())
    before_s = copy.deepcopy(student.state_dict())
    view = _view(_quiz())
    strategy.begin_round(teacher, {"a": view})
    strategy.student_step(teacher, _step(view, student))
    assert all(torch.equal(before_s[k], v) for k, v in student.state_dict().items())
    assert all(p.grad is None for p in student.parameters())
    assert student.training  # its mode restored
    changed = [k for k, v in teacher.state_dict().items() if not torch.equal(before_t[k], v)]
    assert set(changed) == set(before_t)  # every teacher parameter reached
    assert strategy.last["domain"] == "a" and strategy.last["pilot_quiz_loss"] > 0


def test_only_the_batch_and_the_quiz_split_reach_the_student() -> None:
    strategy = MetaDistil.from_params({"quiz_batch_size": 4})
    teacher, student = _mlp_net(6, 0), _mlp_net(5, 1)
    seen: list[torch.Tensor] = []
    student.stems["sp~a"].register_forward_pre_hook(lambda m, a: seen.append(a[0].detach()))
    quiz = _quiz()
    view = _view(quiz)
    step = _step(view, student)
    strategy.begin_round(teacher, {"a": view})
    strategy.student_step(teacher, step)
    allowed = torch.cat([step.student_x, quiz.student_x])
    quiz_rows = 0
    for x in seen:
        for row in x:
            match = (allowed == row).all(1)
            assert bool(match.any()), "a row that is neither the batch nor the quiz"
            quiz_rows += int(bool(match[len(step.student_x) :].any()))
    assert quiz_rows == 4  # one quiz batch of quiz_batch_size, student view
    assert not hasattr(view, "test")


def test_no_update_without_quiz_head_or_stem() -> None:
    teacher, student = _mlp_net(6, 0), _mlp_net(5, 1)
    before = copy.deepcopy(teacher.state_dict())
    strategy = MetaDistil.from_params({"lr": 0.1})
    for view in (
        _view(None),  # a target: no quiz split
        FeedbackDomain(**{**vars(_view(_quiz())), "task": "task.z"}),  # no teacher head
        FeedbackDomain(**{**vars(_view(_quiz())), "space": "sp.z"}),  # no stem
    ):
        strategy.begin_round(teacher, {"a": view})
        strategy.student_step(teacher, _step(view, student))
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())


def test_meta_every_skips_steps_and_state_round_trips() -> None:
    strategy = MetaDistil.from_params({"meta_every": 3, "quiz_batch_size": 2})
    teacher, student = _mlp_net(6, 0), _mlp_net(5, 1)
    view = _view(_quiz())
    strategy.begin_round(teacher, {"a": view})
    for i in range(5):
        strategy.student_step(teacher, _step(view, student, seed=i))
    state = strategy.state_dict()
    assert state["steps"] == 5
    assert int(strategy._optimizer.state[next(teacher.parameters())]["step"]) == 1

    # a restored strategy goes on as the original (same quiz batches, same updates)
    other, twin = MetaDistil.from_params(strategy.config.model_dump()), copy.deepcopy(teacher)
    other.begin_round(twin, {"a": view})
    other.load_state_dict(copy.deepcopy(state))
    for i in range(5, 9):
        strategy.student_step(teacher, _step(view, student, seed=i))
        other.student_step(twin, _step(view, student, seed=i))
    pairs = zip(teacher.parameters(), twin.parameters(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)


def test_a_step_without_the_student_is_refused() -> None:
    strategy = MetaDistil()
    teacher = _mlp_net(6, 0)
    view = _view(_quiz())
    strategy.begin_round(teacher, {"a": view})
    step = _step(view, _mlp_net(5, 1))
    step.student = None
    with pytest.raises(TypeError, match=r"StudentStep\.student"):
        strategy.student_step(teacher, step)


def test_distil_loss_is_kd_plus_labelled_ce() -> None:
    s, t = torch.randn(6, 3), torch.randn(6, 3)
    labels = torch.where(LABELLED, torch.arange(6) % 3, torch.full((6,), -1))
    pt, log_ps = torch.softmax(t / 2, 1), torch.log_softmax(s / 2, 1)
    kd = 4 * (pt * (pt.log() - log_ps)).sum(1).mean()
    ce = F.cross_entropy(s[LABELLED], labels[LABELLED])
    assert float(distil_loss(s, t, labels, LABELLED, 2.0)) == pytest.approx(float(kd + ce))


@pytest.mark.parametrize(
    ("params", "field"),
    [({"meta_every": 0}, "meta_every"), ({"quiz_fraction": 0.7}, "quiz_fraction"),
     ({"pilot_lr": -1}, "pilot_lr"), ({"bogus": 1}, "bogus")],
)  # fmt: skip
def test_bad_params_are_refused_naming_the_field(tiny_config, host, params, field) -> None:
    tiny_config["feedback"] = {"name": "meta", "params": params}
    with pytest.raises(ConfigError, match=field):
        load_config(tiny_config, host=host)


# --------------------------------------------------------------------------- whole runs


def test_two_rounds_end_to_end_change_the_teacher(tiny_config, host, tmp_path) -> None:
    tiny_config["feedback"] = {"name": "meta", "params": {"rounds": 2}}
    result = run_pipeline(load_config(tiny_config, host=host), output=tmp_path / "m", host=host)
    assert [r["round"] for r in result.summary["round_results"]] == [0, 1]
    assert result.summary["rounds"] == 2
    # the teacher changed during round 0, so round 1 re-extracted its outputs
    assert result.summary["teacher_cache"]["misses"] == 4
    domains = [
        r for r in read_metrics(result.run_dir / "metrics.jsonl") if r.get("event") == "domain"
    ]
    assert domains and all(r["quiz"] > 0 for r in domains)  # carved from train, not test
    tiny_config["feedback"] = {"name": "none"}
    plain = run_pipeline(load_config(tiny_config, host=host), output=tmp_path / "n", host=host)
    meta_t = load_file(result.run_dir / "teacher.safetensors")
    plain_t = load_file(plain.run_dir / "teacher.safetensors")
    assert meta_t.keys() == plain_t.keys()
    assert any(not torch.equal(meta_t[k], plain_t[k]) for k in meta_t)
    for d in result.summary["domains"].values():
        assert d["student"] is not None and d["teacher"] is not None


def test_resume_mid_round_gives_the_uninterrupted_numbers(tiny_config, host, tmp_path) -> None:
    # quiz batches smaller than the quiz split, so the sampler's state matters
    params = {"rounds": 2, "first_order": True, "lr": 0.02, "quiz_batch_size": 4}
    cfg = _config(tiny_config, {"name": "meta", "params": params})
    reference = run_pipeline(load_config(cfg, host=host), output=tmp_path / "ref", host=host)
    # 3 teacher + 3 baseline checkpoints, then per round 3 student epochs and the feedback
    for stop_after in (8, 12):  # inside round 0's and round 1's student stages
        run_dir = _interrupt_at(cfg, host, tmp_path / f"stop{stop_after}", stop_after)
        resumed = resume_run(run_dir, host=host)
        assert without_timing(resumed.summary) == without_timing(reference.summary), stop_after


def test_a_student_without_second_derivatives_falls_back_to_first_order() -> None:
    """nn.EmbeddingBag (the nlp student's text stem) has no double backward in PyTorch."""
    g = torch.Generator().manual_seed(6)

    def student() -> MultiDomainNet:
        torch.manual_seed(1)
        stem = nn.EmbeddingBag(20, 5, mode="mean")
        return MultiDomainNet({SPACE: stem}, nn.Identity(), {TASK: nn.Linear(5, 3)})

    quiz = Split(torch.randn(8, 4, generator=g), torch.randint(20, (8, 3), generator=g),
                 torch.arange(8) % 3)  # fmt: skip
    view = _view(quiz)
    step = _step(view, student())
    step.student_x = torch.randint(20, (6, 3), generator=g)
    teachers = {}
    for first_order in (False, True):
        strategy = MetaDistil.from_params({"lr": 0.01, "first_order": first_order})
        teacher = _mlp_net(6, 0)
        strategy.begin_round(teacher, {"a": view})
        if first_order:
            strategy.student_step(teacher, step)
        else:
            with pytest.warns(RuntimeWarning, match="first-order"):
                strategy.student_step(teacher, step)
            assert strategy.state_dict()["no_second_order"] is True
        assert strategy.last["first_order"] is True
        teachers[first_order] = teacher
    for a, b in zip(teachers[False].parameters(), teachers[True].parameters(), strict=True):
        assert torch.equal(a, b)
