"""The losses' contract check, :func:`check_loss`, and its named checks
(``check_loss_value``, ``check_loss_is_finite``, ``check_loss_backpropagates``).
"""

from __future__ import annotations

from typing import Any

from cdkd_core.testing._common import _asserting, _fresh


def _loss_value(
    loss: Any,
    ctx: Any = None,
    *,
    student_features: int = 8,
    knowledge_dim: int | None = 4,
    num_classes: int = 3,
    batch: int = 16,
) -> Any:
    """Set ``loss`` up and call it on ``ctx`` (default: a random batch); its value."""
    import torch

    from cdkd_core.components.loss import BatchContext

    loss.setup(student_features, knowledge_dim)
    context = ctx
    if context is None:
        gen = torch.Generator().manual_seed(0)
        labels = torch.arange(batch) % num_classes
        labelled = torch.arange(batch) % 2 == 0
        context = BatchContext(
            domain="test",
            task="test",
            student_logits=torch.randn(batch, num_classes, generator=gen).requires_grad_(),
            student_features=torch.randn(batch, student_features, generator=gen).requires_grad_(),
            labels=torch.where(labelled, labels, torch.full_like(labels, -1)),
            labelled=labelled,
            teacher_logits=torch.randn(batch, num_classes, generator=gen),
            teacher_features=torch.randn(batch, 2 * student_features, generator=gen),
            knowledge=(
                None if knowledge_dim is None else torch.randn(batch, knowledge_dim, generator=gen)
            ),
        )
    return loss(context)


def check_loss(
    loss: Any,
    ctx: Any = None,
    *,
    student_features: int = 8,
    knowledge_dim: int | None = 4,
    num_classes: int = 3,
    batch: int = 16,
) -> Any:
    """Set ``loss`` up (``setup(student_features, knowledge_dim)``), call it on ``ctx`` (by
    default a random :class:`~cdkd_core.components.loss.BatchContext` with teacher logits, features
    and knowledge vectors, half the labels known) and check what a run checks: None or a
    floating scalar tensor, finite, with a gradient for the student's outputs when it
    depends on them. Returns the value. Raises ``AssertionError`` naming what broke.

    Args:
        loss: A new loss (``setup`` is called here).
        ctx: The batch to call it on (default: a random one, as described).
        student_features: Width of the student's features (``setup``'s first argument).
        knowledge_dim: The encoder's ``dim`` (``None``: no knowledge vectors).
        num_classes: Classes of the random batch.
        batch: Rows of the random batch.

    Returns:
        The loss's value (``None`` or a scalar tensor), after ``backward()``.

    Raises:
        AssertionError: A contract is broken (the message a run would print).

    Examples:
        >>> from cdkd_core.plugin_api import check_loss
        >>> from cdkd_core.testing import make_host
        >>> kd = make_host().get("losses", "kd").from_params({"temperature": 2.0})
        >>> value = check_loss(kd)
        >>> value.shape, value.requires_grad
        (torch.Size([]), True)
    """
    from cdkd_core.components import contracts

    def run() -> Any:
        value = _loss_value(
            loss,
            ctx,
            student_features=student_features,
            knowledge_dim=knowledge_dim,
            num_classes=num_classes,
            batch=batch,
        )
        contracts.check_loss_value(loss, value)
        contracts.check_loss_finite(loss, value)
        if value is not None and value.requires_grad:
            value.backward()
        return value

    return _asserting(run)


def _check_loss_value(loss: Any, **options: Any) -> None:
    from cdkd_core.components import contracts

    fresh = _fresh(loss)
    contracts.check_loss_value(fresh, _loss_value(fresh, **options))


def _check_loss_is_finite(loss: Any, **options: Any) -> None:
    from cdkd_core.components import contracts

    fresh = _fresh(loss)
    value = _loss_value(fresh, **options)
    contracts.check_loss_value(fresh, value)
    contracts.check_loss_finite(fresh, value)


def _check_loss_backpropagates(loss: Any, **options: Any) -> None:
    from cdkd_core.components import contracts

    fresh = _fresh(loss)
    value = _loss_value(fresh, **options)
    contracts.check_loss_value(fresh, value)
    if value is not None and value.requires_grad:
        value.backward()
