"""What the contract checks of every kind share: :func:`_asserting` (a broken contract as
an ``AssertionError``) and :func:`_fresh` (a component's copy of its own).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# -- contract checks: named checks of each kind -----------------------------------------------
#
# Each kind's contract is a sequence of named checks (``check_splits_are_disjoint``, ...). The
# function of a kind (``check_domain`` ...) runs them all in order on one call of the
# component; ``component_checks`` yields them one by one and ``parametrize_with_checks`` turns
# them into one test each, as scikit-learn's ``parametrize_with_checks`` does for estimators.


def _asserting(check: Callable[[], Any]) -> Any:
    """Run a contract check; a broken contract becomes an ``AssertionError`` (same text)."""
    from cdkd_core.components.contracts import ContractError

    try:
        return check()
    except ContractError as exc:
        raise AssertionError(str(exc)) from None


def _fresh(component: Any) -> Any:
    """A new instance of ``component``'s class with a copy of its config (a check that
    fits, sets up or runs a component works on one of its own)."""
    return type(component)(component.config.model_copy(deep=True))
