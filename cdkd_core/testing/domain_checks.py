"""The domains' contract check, :func:`check_domain`, and its named checks
(``check_load_returns_domain_data``, then those of ``_DOMAIN_CHECKS``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from cdkd_core.testing._common import _asserting

#: Largest student view (bytes of the train split's) that :func:`check_domain` looks through
#: for test examples repeated in train.
_SHARED_ROWS_BYTES = 2**28


def _split_problem(data: Any, name: str) -> str | None:
    """What is wrong with split ``name`` of ``data`` (a DomainData), or None."""
    import torch

    from cdkd_core.components.domain import Split

    split = data.splits.get(name)
    if not isinstance(split, Split):
        found = "missing" if split is None else f"a {type(split).__name__}"
        return f"its {name} split is {found}; expected a Split"
    views = {"teacher_x": split.teacher_x, "student_x": split.student_x, "y": split.y}
    for view, x in views.items():
        if not isinstance(x, torch.Tensor):
            return f"its {name} split's {view} is a {type(x).__name__}; expected a tensor"
    if len(split.y) == 0:
        return f"its {name} split is empty"
    lengths = {view: len(x) for view, x in views.items()}
    if len(set(lengths.values())) > 1:
        return f"its {name} split's views and labels differ in length: {lengths}"
    y = split.y
    if y.is_floating_point() or y.dtype == torch.bool or y.dim() != 1:
        return (
            f"its {name} split's labels are {y.dtype} of shape {list(y.shape)}; expected [N] ints"
        )
    low, high = int(y.min()), int(y.max())
    if low < 0 or high >= len(data.classes):
        return (
            f"its {name} split has labels in {low}..{high}, outside 0..{len(data.classes) - 1} "
            f"({len(data.classes)} classes)"
        )
    for view in ("teacher_x", "student_x"):
        x = views[view]
        if x.is_floating_point() and not bool(torch.isfinite(x).all()):
            return f"its {name} split's {view} has NaN or infinite values (a run refuses them)"
    return None


def _difference(first: Any, second: Any) -> str | None:
    """Where two loads' DomainData differ (None: they are equal)."""
    import dataclasses

    import torch

    for f in dataclasses.fields(first):
        a, b = getattr(first, f.name), getattr(second, f.name)
        if f.name == "splits":
            for name in sorted(set(a) | set(b)):
                if name not in a or name not in b:
                    return f"the {name} split is in one load only"
                for view in ("teacher_x", "student_x", "y"):
                    x, z = getattr(a[name], view), getattr(b[name], view)
                    same = x.shape == z.shape and x.dtype == z.dtype
                    if not (same and torch.equal(x, z)):
                        return f"the {name} split's {view} differs"
        else:
            try:
                differs = bool(a != b)
            except Exception:  # values without a plain equality (arrays): not compared
                differs = False
            if differs:
                return f"{f.name} differs ({a!r} vs {b!r})"
    return None


def _shared_rows(data: Any) -> tuple[int, int] | None:
    """How many test examples repeat a train example exactly (student view), of how many;
    None when the train split's student view is too large to look through cheaply."""
    train, test = data.splits["train"].student_x, data.splits["test"].student_x
    if train.numel() * train.element_size() > _SHARED_ROWS_BYTES:
        return None

    def rows(x: Any) -> list[bytes]:
        flat = x.detach().reshape(len(x), -1).contiguous().cpu().numpy()
        return [row.tobytes() for row in flat]

    seen = set(rows(train))
    return sum(row in seen for row in rows(test)), len(test)


def _domain_broke(instance: Any, seed: int, problem: str) -> Exception:
    """The contract error of a domain's ``load(seed)``."""
    from cdkd_core.components.contracts import ContractError

    return ContractError("domains", instance, f"load(seed={seed}): {problem}")


def _splits_are_well_formed(instance: Any, data: Any, seed: int, max_shared: float) -> None:
    """Train, val and test: non-empty splits, views and labels of one length, labels in
    range, floating views finite."""
    from cdkd_core.components.domain import SPLITS

    for name in SPLITS:
        problem = _split_problem(data, name)
        if problem:
            raise _domain_broke(instance, seed, problem)


def _modality_and_task_are_named(instance: Any, data: Any, seed: int, max_shared: float) -> None:
    """``modality`` and ``task`` non-empty strings."""
    for attr in ("modality", "task"):
        value = getattr(data, attr)
        if not isinstance(value, str) or not value:
            raise _domain_broke(
                instance, seed, f"its {attr} is {value!r}; expected a non-empty string"
            )


def _metrics_are_known(instance: Any, data: Any, seed: int, max_shared: float) -> None:
    """Every metric one of :mod:`cdkd_core.metrics`."""
    from cdkd_core.metrics import METRICS

    unknown = [m for m in data.metrics if m not in METRICS]
    if unknown:
        raise _domain_broke(
            instance, seed, f"unknown metric(s) {unknown}; known: {sorted(METRICS)}"
        )


def _load_is_reproducible(instance: Any, data: Any, seed: int, max_shared: float) -> None:
    """A new instance's load with the same seed gives equal data."""
    from cdkd_core.components import contracts

    again = type(instance)(instance.config).load(seed)
    contracts.check_domain_data(instance, again, seed)
    difference = _difference(data, again)
    if difference:
        raise _domain_broke(
            instance,
            seed,
            f"two loads with one seed differ: {difference}; expected the same data for "
            "a seed (fix the split with a seed of its own, e.g. SplitConfig.split_seed)",
        )


def _splits_are_disjoint(instance: Any, data: Any, seed: int, max_shared: float) -> None:
    """No test example (student view) repeated exactly in train, beyond ``max_shared``."""
    shared = _shared_rows(data)
    if shared is not None and shared[0] > max_shared * shared[1]:
        raise _domain_broke(
            instance,
            seed,
            f"{shared[0]} of {shared[1]} test examples repeat a train example exactly "
            "(student view); an example (or a copy of it) must sit in one split only",
        )


#: The named domain checks after ``load`` (checked to return a DomainData), in the order
#: :func:`check_domain` runs them; ``True``: the check reads the splits, so its own test
#: checks them first.
_DOMAIN_CHECKS: tuple[tuple[str, Callable[[Any, Any, int, float], None], bool], ...] = (
    ("check_splits_are_well_formed", _splits_are_well_formed, False),
    ("check_modality_and_task_are_named", _modality_and_task_are_named, False),
    ("check_metrics_are_known", _metrics_are_known, False),
    ("check_load_is_reproducible", _load_is_reproducible, True),
    ("check_splits_are_disjoint", _splits_are_disjoint, True),
)


def check_domain(
    domain: Any,
    seed: int = 0,
    *,
    params: Mapping[str, Any] | None = None,
    max_shared: float = 0.0,
) -> Any:
    """Load ``domain`` and check what a run relies on: ``load(seed)`` returns a
    :class:`~cdkd_core.components.domain.DomainData` whose train, val and test splits are
    non-empty :class:`~cdkd_core.components.domain.Split` s, teacher view, student view and
    labels of one length, labels in ``0..len(classes)-1``, floating views finite, metrics
    known (:mod:`cdkd_core.metrics`); a second load with the same seed (a new instance)
    gives equal data; and no test example is repeated exactly (student view) in train —
    at most ``max_shared`` of the test split may be (a look skipped where the train split's
    student view is over 256 MiB). Returns the data. Raises ``AssertionError`` naming what
    broke.

    Args:
        domain: A domain class (built with ``params``) or instance.
        seed: The run's seed given to ``load``.
        params: The domain's params when ``domain`` is a class (default: none).
        max_shared: The share of test examples that may repeat a train example exactly
            (for raw data with duplicate rows that the domain keeps).

    Returns:
        What ``load(seed)`` returned.

    Raises:
        AssertionError: A contract is broken (the message a run would print).

    Examples:
        >>> from cdkd_core.plugin_api import check_domain
        >>> from cdkd_core.testing import make_host
        >>> data = check_domain(make_host().get("domains", "sklearn.iris"))
        >>> {name: len(split) for name, split in data.splits.items()}
        {'train': 90, 'val': 30, 'test': 30}
    """
    from cdkd_core.components import contracts

    instance = domain.from_params(dict(params or {})) if isinstance(domain, type) else domain

    def run() -> Any:
        data = instance.load(seed)
        contracts.check_domain_data(instance, data, seed)
        for _, check, _ in _DOMAIN_CHECKS:
            check(instance, data, seed, max_shared)
        return data

    return _asserting(run)


#: The last domain loaded by a named domain check: ``(domain, seed, data)``. The checks of
#: one domain run one after another, so they load it once between them.
_last_load: list[tuple[Any, int, Any]] = []


def _loaded(instance: Any, seed: int) -> Any:
    """``instance.load(seed)``, checked to be a DomainData; loaded once for the checks of
    one domain that run in a row."""
    from cdkd_core.components import contracts

    if _last_load and _last_load[0][0] is instance and _last_load[0][1] == seed:
        return _last_load[0][2]
    _last_load.clear()
    data = instance.load(seed)
    contracts.check_domain_data(instance, data, seed)
    _last_load.append((instance, seed, data))
    return data


def _domain_check(
    check: Callable[[Any, Any, int, float], None] | None, reads_splits: bool
) -> Callable[..., None]:
    """One named domain check as a function of the domain and :func:`check_domain`'s
    options (``params`` aside: the domain is built already)."""

    def run(domain: Any, seed: int = 0, *, max_shared: float = 0.0) -> None:
        data = _loaded(domain, seed)
        if reads_splits:
            _splits_are_well_formed(domain, data, seed, max_shared)
        if check is not None:
            check(domain, data, seed, max_shared)

    return run
