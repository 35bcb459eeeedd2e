"""Every component of the plugin keeps the contract of its kind: one test per component and
named check (``cdkd_core.testing.parametrize_with_checks``), e.g.
``finance.sp500-check_splits_are_disjoint``. The domains that read the user's files
(``finance.credit_csv``, ``finance.price_csv``) have no default data; their own test files
load them from files they write."""

from __future__ import annotations

import cdkd_finance

from cdkd_core.testing import parametrize_with_checks


@parametrize_with_checks(
    [
        "finance.credit_data",
        "finance.default",
        "finance.german_credit",
        "finance.sp500",
        "gru",
        "tcn",
    ],
    plugins=[("finance", cdkd_finance)],
)
def test_components_keep_their_contracts(component, check):
    check(component)
