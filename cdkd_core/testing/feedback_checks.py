"""The feedback strategies' contract check, :func:`check_feedback`, and its named checks
(``check_live_round``, then those of ``_FEEDBACK_CHECKS``).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cdkd_core.testing._common import _asserting, _fresh


def _tiny_net(features: int, width: int, num_classes: int) -> Any:
    """A stems + trunk + heads network over one input space and task, both ``"test"``."""
    from torch import nn

    from cdkd_core.nets.network import MultiDomainNet

    trunk = nn.Sequential(nn.Linear(width, width), nn.ReLU())
    return MultiDomainNet(
        {"test": nn.Linear(features, width)}, trunk, {"test": nn.Linear(width, num_classes)}
    )


def _feedback_context(
    strategy: Any, features: int, num_classes: int, examples: int, refuse: Callable[..., Any]
) -> Any:
    """A round's end on one random source domain (train, val and, where the strategy asks
    for one, quiz splits; no test split), with a tiny teacher and student."""
    import torch
    import torch.nn.functional as F

    from cdkd_core.components.domain import Split
    from cdkd_core.components.feedback import FeedbackContext, FeedbackDomain

    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)

    def split(n: int) -> Split:
        return Split.single_view(
            torch.randn(n, features, generator=gen), torch.arange(n) % num_classes
        )

    domain = FeedbackDomain(
        name="test",
        role="source",
        task="test",
        space="test",
        num_classes=num_classes,
        train=split(examples),
        val=split(examples // 2),
        quiz=split(examples // 2) if strategy.needs_quiz else None,
        labelled=torch.ones(examples, dtype=torch.bool),
    )
    teacher, student = _tiny_net(features, 8, num_classes), _tiny_net(features, 4, num_classes)

    @torch.no_grad()
    def predict(model: Any, name: str, split_name: str) -> torch.Tensor:
        if split_name not in ("train", "val", "quiz"):
            refuse(f"asked ctx.predict for the {split_name!r} split of {name!r}")
        chosen = getattr(domain, split_name)
        if chosen is None:
            raise ValueError(f"domain {name!r} has no {split_name} split")
        model.eval()
        return model(chosen.student_x, "test", "test")

    def finetune(batches: Any, epochs: int, lr: float) -> None:
        optimizer = torch.optim.Adam(teacher.parameters(), lr=lr)
        teacher.train()
        for _ in range(epochs):
            for name, (data, weights) in batches.items():
                if len(weights) != len(data):
                    refuse(
                        f"passed finetune_teacher {len(weights)} weights for the {len(data)} "
                        f"examples of {name!r}; expected one weight per example"
                    )
                losses = F.cross_entropy(
                    teacher(data.teacher_x, "test", "test"), data.y, reduction="none"
                )
                optimizer.zero_grad()
                (losses * weights).mean().backward()
                optimizer.step()

    val = {"test": {"teacher": {"accuracy": 0.5}, "student": {"accuracy": 0.5}}}
    return FeedbackContext(
        round=0,
        teacher=teacher,
        student=student,
        domains={"test": domain},
        val_results=val,
        predict=predict,
        finetune_teacher=finetune,
    )


def _weights(model: Any) -> dict[str, Any]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _changed(before: dict[str, Any], model: Any) -> bool:
    import torch

    after = model.state_dict()
    return any(not torch.equal(before[k], after[k]) for k in before if k in after)


def _live_round(strategy: Any, context: Any, broke: Callable[[str], Exception]) -> None:
    """A live strategy's ``begin_round`` and two ``student_step`` calls per domain (the
    student left as it was), then its ``state_dict()`` through a checkpoint into a new
    instance."""
    import tempfile

    import torch

    from cdkd_core.components.feedback import StudentStep
    from cdkd_core.run.checkpoint import load_checkpoint, save_checkpoint

    teacher, student = context.teacher, context.student
    strategy.begin_round(teacher, context.domains)
    for domain in context.domains.values():
        rows = min(8, len(domain.train))
        for start in (0, rows):
            part = domain.train.subset(torch.arange(start, start + rows) % len(domain.train))
            before = _weights(student)
            with torch.no_grad():
                logits = student(part.student_x, domain.space, domain.task)
            step = StudentStep(
                domain=domain,
                teacher_x=part.teacher_x,
                labels=part.y,
                labelled=torch.ones(len(part), dtype=torch.bool),
                student_logits=logits,
                student=student,
                student_x=part.student_x,
            )
            strategy.student_step(teacher, step)
            if _changed(before, student):
                raise broke("student_step changed the student; it must leave it as it is")
    state = strategy.state_dict()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            save_checkpoint(Path(tmp), {"feedback": state})
            saved = load_checkpoint(Path(tmp))
        assert saved is not None
        restored = type(strategy)(strategy.config)
        restored.begin_round(copy.deepcopy(teacher), context.domains)
        restored.load_state_dict(saved["feedback"])
    except Exception as exc:
        raise broke(
            "state_dict() does not survive a checkpoint (saved, read back and loaded into "
            f"a new instance after begin_round): {type(exc).__name__}: {exc}; keep "
            "tensors, numbers, strings, lists and dicts only"
        ) from exc


@dataclasses.dataclass
class _Round:
    """What a feedback strategy's round left, for the checks to look at."""

    strategy: Any
    teacher: Any
    original: dict[str, Any]  # the teacher's weights before the round
    shapes: dict[str, Any]  # its parameter names, shapes and dtypes before after_round
    before_round: dict[str, Any]  # its weights right before after_round
    value: Any  # what after_round returned


def _feedback_broke(strategy: Any) -> Callable[[str], Exception]:
    from cdkd_core.components.contracts import ContractError

    def broke(problem: str) -> Exception:
        return ContractError("feedback", strategy, problem)

    return broke


def _feedback_context_for(
    strategy: Any, ctx: Any, features: int, num_classes: int, examples: int
) -> Any:
    """``ctx``, else the tiny round's end whose ``ctx.predict`` refuses test data."""
    if ctx is not None:
        return ctx
    broke = _feedback_broke(strategy)

    def refuse(problem: str) -> None:
        test = "'test'" in problem
        raise broke(f"{problem}; test data never reach a feedback strategy" if test else problem)

    return _feedback_context(strategy, features, num_classes, examples, refuse)


def _feedback_round(
    strategy: Any,
    ctx: Any = None,
    *,
    features: int = 6,
    num_classes: int = 3,
    examples: int = 24,
) -> _Round:
    """Run ``strategy`` through a round as a run does (a live strategy's calls, then
    ``after_round``) and keep what the checks look at."""
    context = _feedback_context_for(strategy, ctx, features, num_classes, examples)
    teacher = context.teacher
    original = _weights(teacher)
    if strategy.live_teacher:
        _live_round(strategy, context, _feedback_broke(strategy))
    shapes = {k: (v.shape, v.dtype) for k, v in teacher.state_dict().items()}
    before_round = _weights(teacher)
    value = strategy.after_round(context)
    return _Round(strategy, teacher, original, shapes, before_round, value)


def _after_round_says_whether(done: _Round) -> None:
    """``after_round`` returns True/False (or None), not, say, a new teacher."""
    value = done.value
    if value is not None and not isinstance(value, bool) and type(value).__name__ != "bool_":
        raise _feedback_broke(done.strategy)(
            f"after_round returned a {type(value).__name__}; expected True or False "
            "(whether it changed ctx.teacher, which it changes in place: the run keeps "
            "ctx.teacher and ignores a returned model)"
        )


def _teacher_keeps_its_shapes(done: _Round) -> None:
    """The teacher keeps its parameter names and shapes."""
    state = done.teacher.state_dict()
    if {k: (v.shape, v.dtype) for k, v in state.items()} != done.shapes:
        raise _feedback_broke(done.strategy)(
            "after_round changed the teacher's parameter names or shapes; the run "
            "reloads and saves the teacher as it was built (change its weights only)"
        )


def _teacher_stays_finite(done: _Round) -> None:
    """The teacher's weights stay finite."""
    import torch

    state = done.teacher.state_dict()
    if not all(bool(torch.isfinite(v).all()) for v in state.values() if v.is_floating_point()):
        raise _feedback_broke(done.strategy)(
            "the teacher's weights are not finite after the strategy ran"
        )


def _teacher_change_is_reported(done: _Round) -> None:
    """A teacher changed by ``after_round`` is reported as changed (a live strategy's
    teacher aside)."""
    strategy = done.strategy
    if _changed(done.before_round, done.teacher) and not done.value and not strategy.live_teacher:
        raise _feedback_broke(strategy)(
            "after_round changed the teacher but returned False: its knowledge would "
            "not be extracted again (return True)"
        )


def _updates_teacher_is_kept(done: _Round) -> None:
    """A strategy with ``updates_teacher = False`` leaves the teacher's weights alone."""
    if not done.strategy.updates_teacher and _changed(done.original, done.teacher):
        raise _feedback_broke(done.strategy)(
            "changed the teacher's weights, but its updates_teacher is False (a run "
            "pairs it with teachers that cannot change)"
        )


#: The named checks of a round's end, in the order :func:`check_feedback` runs them.
_FEEDBACK_CHECKS: tuple[tuple[str, Callable[[_Round], None]], ...] = (
    ("check_after_round_says_whether", _after_round_says_whether),
    ("check_teacher_keeps_its_shapes", _teacher_keeps_its_shapes),
    ("check_teacher_stays_finite", _teacher_stays_finite),
    ("check_teacher_change_is_reported", _teacher_change_is_reported),
    ("check_updates_teacher_is_kept", _updates_teacher_is_kept),
)


def check_feedback(
    strategy: Any,
    ctx: Any = None,
    *,
    features: int = 6,
    num_classes: int = 3,
    examples: int = 24,
) -> bool:
    """Run ``strategy`` through a round as a run does, on ``ctx`` (by default a tiny one:
    one source domain of ``examples`` random rows with val and, where the strategy asks for
    one, quiz splits, no test split; a small stems + trunk + heads teacher and student),
    and check what a run relies on: a live strategy's ``begin_round`` and two
    ``student_step`` calls leave the student as it was, and its ``state_dict()`` survives a
    checkpoint (saved, read back and loaded into a new instance); ``after_round`` reads no
    test data (``ctx.predict`` refuses it), returns ``True``/``False`` (or ``None``) and
    not, say, a new teacher (the run keeps ``ctx.teacher``: change it in place); the
    teacher keeps its parameter names and shapes and finite weights; a teacher changed by
    ``after_round`` is reported as changed (``True``), and one with
    ``updates_teacher = False`` is not changed at all. Returns what ``after_round`` said.
    Raises ``AssertionError`` naming what broke.

    Args:
        strategy: A new feedback strategy.
        ctx: The round's :class:`~cdkd_core.components.feedback.FeedbackContext` (default:
            the tiny one described; its domains also serve the live calls).
        features: Input width of the default context's domain.
        num_classes: Classes of the default context's domain.
        examples: Rows of the default context's train split (val and quiz: half).

    Returns:
        Whether ``after_round`` changed the teacher, as it said.

    Raises:
        AssertionError: A contract is broken (the message a run would print).

    Examples:
        >>> from cdkd_core.plugin_api import check_feedback
        >>> from cdkd_core.testing import make_host
        >>> host = make_host()
        >>> check_feedback(host.get("feedback", "hard_examples").from_params({"epochs": 1}))
        True
        >>> check_feedback(host.get("feedback", "mutual")())  # changes it beside the student
        False
    """

    def run() -> bool:
        done = _feedback_round(
            strategy, ctx, features=features, num_classes=num_classes, examples=examples
        )
        for _, check in _FEEDBACK_CHECKS:
            check(done)
        return bool(done.value)

    return _asserting(run)


def _check_live_round(
    strategy: Any, ctx: Any = None, *, features: int = 6, num_classes: int = 3, examples: int = 24
) -> None:
    fresh = _fresh(strategy)
    context = _feedback_context_for(fresh, ctx, features, num_classes, examples)
    _live_round(fresh, context, _feedback_broke(fresh))


def _round_check(check: Callable[[_Round], None]) -> Callable[..., None]:
    """One named check of a round's end, as a function of the strategy and
    :func:`check_feedback`'s options; it runs the round on a fresh copy."""

    def run(strategy: Any, ctx: Any = None, **options: Any) -> None:
        check(_feedback_round(_fresh(strategy), ctx, **options))

    return run
