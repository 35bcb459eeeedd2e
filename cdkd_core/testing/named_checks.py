"""One test per check: :func:`component_checks` yields the named checks of a component's
kind (each kind's from its own module), :func:`parametrize_with_checks` makes one test of
each, as scikit-learn's ``parametrize_with_checks`` does; :data:`ComponentEntry` and
:data:`ExpectedFailures` are what it takes.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import pytest

from cdkd_core.testing._common import _asserting
from cdkd_core.testing.architecture_checks import (
    _check_head_output,
    _check_stem_output,
    _check_trunk,
    check_architecture,
)
from cdkd_core.testing.domain_checks import _DOMAIN_CHECKS, _domain_check, check_domain
from cdkd_core.testing.encoder_checks import (
    _check_encoder_dim,
    _check_encoder_state,
    _check_state_restores_transform,
    _check_transform_output,
    check_encoder,
)
from cdkd_core.testing.feedback_checks import (
    _FEEDBACK_CHECKS,
    _check_live_round,
    _round_check,
    check_feedback,
)
from cdkd_core.testing.fixtures import PluginSpec, make_host
from cdkd_core.testing.loss_checks import (
    _check_loss_backpropagates,
    _check_loss_is_finite,
    _check_loss_value,
    check_loss,
)

if TYPE_CHECKING:  # pragma: no cover
    from cdkd_core.host.plugin_host import PluginHost


@dataclasses.dataclass(frozen=True)
class _NamedCheck:
    """A named check of one kind: ``run(component, **options)`` raises what the contract
    check raises; ``applies(component)`` says whether the component has the part it checks."""

    name: str
    run: Callable[..., Any]
    applies: Callable[[Any], bool] = lambda component: True


def _named_checks(kind: str) -> tuple[_NamedCheck, ...]:
    """The named checks of ``kind``, in the order its ``check_*`` function runs them."""
    if kind == "domains":
        return (
            _NamedCheck("check_load_returns_domain_data", _domain_check(None, False)),
            *(
                _NamedCheck(name, _domain_check(check, reads))
                for name, check, reads in _DOMAIN_CHECKS
            ),
        )
    if kind == "architectures":
        return (
            _NamedCheck("check_trunk", _check_trunk, lambda arch: bool(arch.provides_trunk)),
            _NamedCheck(
                "check_stem_output", _check_stem_output, lambda arch: bool(arch.modalities)
            ),
            _NamedCheck("check_head_output", _check_head_output),
        )
    if kind == "encoders":
        return (
            _NamedCheck("check_encoder_dim", _check_encoder_dim),
            _NamedCheck("check_encoder_state", _check_encoder_state),
            _NamedCheck("check_transform_output", _check_transform_output),
            _NamedCheck("check_state_restores_transform", _check_state_restores_transform),
        )
    if kind == "losses":
        return (
            _NamedCheck("check_loss_value", _check_loss_value),
            _NamedCheck("check_loss_is_finite", _check_loss_is_finite),
            _NamedCheck("check_loss_backpropagates", _check_loss_backpropagates),
        )
    return (
        _NamedCheck("check_live_round", _check_live_round, lambda s: bool(s.live_teacher)),
        *(_NamedCheck(name, _round_check(check)) for name, check in _FEEDBACK_CHECKS),
    )


class _BoundCheck:
    """One named check with the options of its component: ``check(component)`` runs it,
    raising ``AssertionError`` with the text a run would print; ``__name__`` is its name."""

    def __init__(self, check: _NamedCheck, options: Mapping[str, Any]) -> None:
        self.check, self.options, self.__name__ = check, dict(options), check.name

    def __call__(self, component: Any) -> None:
        _asserting(lambda: self.check.run(component, **self.options))

    def __repr__(self) -> str:
        return self.__name__


def _kind_of(component: Any) -> str:
    """The kind (``"domains"`` ...) of a component instance."""
    from cdkd_core.components.architecture import Architecture
    from cdkd_core.components.domain import Domain
    from cdkd_core.components.encoder import KnowledgeEncoder
    from cdkd_core.components.feedback import FeedbackStrategy
    from cdkd_core.components.loss import Loss

    bases = {
        "domains": Domain,
        "architectures": Architecture,
        "encoders": KnowledgeEncoder,
        "losses": Loss,
        "feedback": FeedbackStrategy,
    }
    for kind, base in bases.items():
        if isinstance(component, base):
            return kind
    raise TypeError(
        f"{component!r} is not a component (a Domain, Architecture, KnowledgeEncoder, Loss "
        "or FeedbackStrategy instance)"
    )


def _check_function(kind: str) -> Callable[..., Any]:
    return {
        "domains": check_domain,
        "architectures": check_architecture,
        "encoders": check_encoder,
        "losses": check_loss,
        "feedback": check_feedback,
    }[kind]


def component_checks(
    component: Any, options: Mapping[str, Any] | None = None
) -> Iterator[tuple[Any, Callable[[Any], None]]]:
    """The named checks of ``component``'s kind, one ``(component, check)`` pair each:
    ``check(component)`` runs one part of the kind's contract check (what :func:`check_domain`
    and the others run in one call) on a copy of the component of its own, and raises
    ``AssertionError`` with the text a run would print; ``check.__name__`` is its name.
    Checks of a part the component lacks (the trunk of a stem-only architecture, the live
    calls of a strategy that only acts between rounds) are left out.

    The checks of each kind:

    - domains: ``check_load_returns_domain_data``, ``check_splits_are_well_formed``,
      ``check_modality_and_task_are_named``, ``check_metrics_are_known``,
      ``check_load_is_reproducible``, ``check_splits_are_disjoint``
    - architectures: ``check_trunk``, ``check_stem_output`` (on a batch of the first
      modality: 13 columns, 20 steps x 4 features, 1 x 24 x 24 images or 16 token ids,
      unless ``inputs`` is given), ``check_head_output``
    - encoders: ``check_encoder_dim``, ``check_encoder_state``, ``check_transform_output``,
      ``check_state_restores_transform`` (fitted on two random domains of 48 features unless
      ``features`` and ``labels`` are given)
    - losses: ``check_loss_value``, ``check_loss_is_finite``, ``check_loss_backpropagates``
    - feedback: ``check_live_round``, ``check_after_round_says_whether``,
      ``check_teacher_keeps_its_shapes``, ``check_teacher_stays_finite``,
      ``check_teacher_change_is_reported``, ``check_updates_teacher_is_kept``

    Args:
        component: A component instance (built with its params).
        options: Keyword arguments of the kind's ``check_*`` function for every check
            (``{"max_shared": 0.01}``, ``{"inputs": images}``, ``{"knowledge_dim": None}``;
            not ``params``).

    Yields:
        ``(component, check)`` pairs, in the order the kind's ``check_*`` function runs them.

    Raises:
        TypeError: ``component`` is not a component, or an option is not one of the
            kind's check function's.

    Examples:
        >>> from cdkd_core.testing import component_checks, make_host
        >>> kd = make_host().get("losses", "kd").from_params({"temperature": 2.0})
        >>> [check.__name__ for _, check in component_checks(kd)]
        ['check_loss_value', 'check_loss_is_finite', 'check_loss_backpropagates']
        >>> for component, check in component_checks(kd):
        ...     check(component)  # passes: returns None
    """
    kind = _kind_of(component)
    options = dict(options or {})
    accepted = list(inspect.signature(_check_function(kind)).parameters)[1:]
    unknown = sorted(set(options) - set(accepted) | set(options) & {"params"})
    if unknown:
        raise TypeError(
            f"unknown option(s) {unknown} for the checks of {component.name!r}; "
            f"choose from {[a for a in accepted if a != 'params']}"
        )
    for check in _named_checks(kind):
        if check.applies(component):
            yield component, _BoundCheck(check, options)


ComponentEntry = (
    str | tuple[str, Mapping[str, Any]] | tuple[str, Mapping[str, Any], Mapping[str, Any]]
)
"""A component for :func:`parametrize_with_checks`: its registered name (built with its
default params), ``(name, params)``, or ``(name, params, options)`` with ``options`` the
keyword arguments of the kind's ``check_*`` function (see :func:`component_checks`); a
component instance works too.

Examples:
    >>> from cdkd_core.testing import ComponentEntry
    >>> entries: list[ComponentEntry] = [
    ...     "sklearn.iris",
    ...     ("mlp", {"width": 8}),
    ...     ("sklearn.wine", {"max_examples": 90}, {"seed": 3}),
    ... ]
"""

ExpectedFailures = Mapping[str, Mapping[str, str]] | Callable[[Any], Mapping[str, str]]
"""Checks :func:`parametrize_with_checks` expects to fail, each with the reason: a mapping
``{component name: {check name: reason}}``, or a function of the component instance
returning ``{check name: reason}`` (as scikit-learn's ``expected_failed_checks``).

Examples:
    >>> from cdkd_core.testing import ExpectedFailures
    >>> by_name: ExpectedFailures = {
    ...     "acme.scans": {"check_splits_are_disjoint": "the archive repeats some scans"},
    ... }
    >>> by_function: ExpectedFailures = lambda component: (
    ...     {"check_splits_are_disjoint": "raw rows repeat"} if component.config.raw else {}
    ... )
"""


def _entry_label(name: str, params: Mapping[str, Any]) -> str:
    """The component's part of a test id: its name, with its params if any."""
    if not params:
        return name
    return f"{name}({','.join(f'{k}={v!r}' for k, v in params.items())})"


def _resolve(entry: Any, host: Callable[[], PluginHost]) -> tuple[Any, str, str, dict[str, Any]]:
    """A :data:`ComponentEntry` (or instance) as ``(instance, name, label, options)``."""
    from cdkd_core.components.kinds import KINDS

    if not isinstance(entry, str | tuple):
        name = getattr(entry, "name", type(entry).__name__)
        return entry, name, name, {}
    name, params, options = (entry, {}, {}) if isinstance(entry, str) else (*entry, {})[:3]
    kinds = [kind for kind in KINDS if name in host().components(kind)]
    if len(kinds) != 1:
        found = "no component" if not kinds else f"a component of each of {kinds}"
        raise ValueError(
            f"{name!r} names {found} in the plugin host; load its plugin "
            "(parametrize_with_checks(..., plugins=[...])) or pass the instance"
        )
    instance = host().get(kinds[0], name).from_params(dict(params))
    return instance, name, _entry_label(name, params), dict(options)


def parametrize_with_checks(
    components: Iterable[ComponentEntry | Any],
    *,
    plugins: Iterable[PluginSpec] = (),
    expected_failed_checks: ExpectedFailures | None = None,
) -> pytest.MarkDecorator:
    """A ``pytest.mark.parametrize`` over every named check of every component (see
    :func:`component_checks`): one test per component and check, with an id such as
    ``medical.nuclei-check_splits_are_disjoint`` (so ``pytest -k splits_are_disjoint`` picks
    one check). The test takes ``component`` and ``check`` and calls ``check(component)``.

    Components are named as a config names them and built through a plugin host with the
    built-ins and ``plugins`` loaded in-process (installed plugins stay out, so the tests
    see exactly these). A check expected to fail is marked
    ``pytest.mark.xfail(strict=True, reason=...)``: the test fails if the check passes.

    Args:
        components: The components to check, each a :data:`ComponentEntry`: a registered
            name, ``(name, params)`` or ``(name, params, options)``; or an instance.
        plugins: The plugins whose components are named (:data:`PluginSpec`).
        expected_failed_checks: The checks expected to fail, with their reasons
            (:data:`ExpectedFailures`).

    Returns:
        The decorator for a test ``(component, check)``.

    Raises:
        ValueError: A name is not registered, or an expected failure names a check the
            component does not have.

    Examples:
        In the plugin's tests:

        ```python
        import cdkd_acme
        from cdkd_core.testing import parametrize_with_checks


        @parametrize_with_checks(
            ["acme.scans", ("acme.scans", {"max_examples": 200}), "acme_stem"],
            plugins=[("acme", cdkd_acme)],
            expected_failed_checks={
                "acme.scans": {"check_splits_are_disjoint": "the archive repeats scans"},
            },
        )
        def test_components_keep_their_contracts(component, check):
            check(component)
        ```

        >>> from cdkd_core.testing import parametrize_with_checks
        >>> mark = parametrize_with_checks(["sklearn.iris", ("kd", {"temperature": 2.0})])
        >>> [param.id for param in mark.args[1]][:2]
        ['sklearn.iris-check_load_returns_domain_data', 'sklearn.iris-check_splits_are_well_formed']
        >>> len(mark.args[1])
        9
    """
    plugins = list(plugins)
    made: list[PluginHost] = []

    def host() -> PluginHost:
        if not made:
            made.append(make_host(*plugins))
        return made[0]

    params = []
    for entry in components:
        component, name, label, options = _resolve(entry, host)
        if expected_failed_checks is None:
            expected: Mapping[str, str] = {}
        elif callable(expected_failed_checks):
            expected = expected_failed_checks(component)
        else:
            expected = expected_failed_checks.get(name, {})
        pairs = list(component_checks(component, options))
        unknown = sorted(set(expected) - {check.__name__ for _, check in pairs})
        if unknown:
            raise ValueError(
                f"expected_failed_checks names {unknown} for {label!r}, which has no such "
                f"check; its checks: {[check.__name__ for _, check in pairs]}"
            )
        for _, check in pairs:
            reason = expected.get(check.__name__)
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            params.append(
                pytest.param(component, check, id=f"{label}-{check.__name__}", marks=marks)
            )
    return pytest.mark.parametrize(("component", "check"), params)
