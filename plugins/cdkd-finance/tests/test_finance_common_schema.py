"""The harmonised credit schema: hand-checked rows of each source, missing indicators,
imputation fitted on the train rows only."""

from __future__ import annotations

import math

import numpy as np
import pytest
from cdkd_finance import common_schema as cs
from cdkd_finance.credit import CreditData, Default, GermanCredit

NAMES = cs.feature_names()


def col(name: str) -> int:
    return NAMES.index(name)


def row_of(matrix: np.ndarray, i: int) -> dict[str, float]:
    return dict(zip(NAMES, matrix[i].tolist(), strict=True))


def test_feature_names_pair_every_feature_with_its_indicator():
    assert len(NAMES) == 2 * len(cs.COMMON_FEATURES) == 18
    for j, feature in enumerate(cs.COMMON_FEATURES):
        assert NAMES[2 * j] == feature
        assert NAMES[2 * j + 1] == f"{feature}_missing"


def test_absent_feature_is_zero_with_indicator_and_partial_missing_uses_train_median():
    raw = dict.fromkeys(cs.RAW_INPUTS)
    raw["income"] = np.array([100.0, np.nan, 300.0, 1e6, np.nan])
    raw["credit_amount"] = np.array([50.0, 60.0, np.nan, 80.0, 90.0])
    train = np.array([0, 1, 2])  # income seen in train: 100, 300 (rows 3, 4 are not train)
    m = cs.common_matrix(raw, 5, train)
    assert m.shape == (5, 18) and m.dtype == np.float32
    fill = np.median(np.log1p([100.0, 300.0]))
    assert m[1, col("log_income")] == pytest.approx(fill, rel=1e-6)
    assert m[4, col("log_income")] == pytest.approx(fill, rel=1e-6)  # the test row too
    assert m[:, col("log_income_missing")].tolist() == [0, 1, 0, 0, 1]
    assert m[3, col("log_income")] == pytest.approx(math.log1p(1e6), rel=1e-6)
    # amount missing only in row 2 (train): median of train rows 0, 1
    assert m[2, col("log_credit_amount")] == pytest.approx(
        np.median(np.log1p([50.0, 60.0])), rel=1e-6
    )
    # the ratio is missing wherever either part is
    assert m[:, col("log_credit_to_income_missing")].tolist() == [0, 1, 1, 0, 1]
    assert m[0, col("log_credit_to_income")] == pytest.approx(
        math.log1p(50) - math.log1p(100), rel=1e-6
    )
    for feature in cs.COMMON_FEATURES[3:]:  # absent: 0, indicator 1, every row
        assert (m[:, col(feature)] == 0).all()
        assert (m[:, col(f"{feature}_missing")] == 1).all()


def test_unknown_raw_input_is_refused():
    with pytest.raises(ValueError, match="unknown raw credit input"):
        cs.common_matrix({"salary": np.ones(2)}, 2, np.arange(2))


def test_credit_data_rows_by_hand():
    frame, y = CreditData().frame()
    m = cs.common_matrix(cs.credit_data_raw(frame), len(frame), np.arange(len(frame)))
    # row 0: Seniority 9, Home rent, Time 60, Age 30, Records no, Income 129, Amount 800
    r = row_of(m, 0)
    assert r["log_income"] == pytest.approx(math.log1p(129), rel=1e-6)
    assert r["log_credit_amount"] == pytest.approx(math.log1p(800), rel=1e-6)
    assert r["log_credit_to_income"] == pytest.approx(math.log1p(800) - math.log1p(129), 1e-5)
    assert (r["duration_months"], r["age_years"], r["employment_years"]) == (60, 30, 9)
    assert (r["home_own"], r["home_rent"], r["past_delinquency"]) == (0, 1, 0)
    assert all(r[f"{f}_missing"] == 0 for f in cs.COMMON_FEATURES)
    assert y[0] == 0  # Status good
    # row 29: Home and Income missing, Status bad, Time 48, Age 37, Seniority 0
    r = row_of(m, 29)
    assert y[29] == 1
    assert r["log_income_missing"] == r["log_credit_to_income_missing"] == 1
    assert r["home_own_missing"] == r["home_rent_missing"] == 1
    assert r["duration_months_missing"] == r["past_delinquency_missing"] == 0
    assert (r["duration_months"], r["age_years"], r["employment_years"]) == (48, 37, 0)


def test_default_rows_by_hand():
    frame, y = Default().frame()
    m = cs.common_matrix(cs.default_raw(frame), len(frame), np.arange(len(frame)))
    r = row_of(m, 1)  # student Yes, balance 817.18, income 12106.13, default No
    assert y[1] == 0
    assert r["log_income"] == pytest.approx(math.log1p(12106.134700), rel=1e-6)
    assert r["log_credit_amount"] == pytest.approx(math.log1p(817.180407), rel=1e-6)
    assert r["log_income_missing"] == r["log_credit_amount_missing"] == 0
    for feature in cs.COMMON_FEATURES[3:]:
        assert r[feature] == 0 and r[f"{feature}_missing"] == 1


def test_german_rows_by_hand():
    frame, y = GermanCredit().frame()
    m = cs.common_matrix(cs.german_raw(frame), len(frame), np.arange(len(frame)))
    # row 0: 6 months, 1169 DM, age 67, employed >= 7 years, own housing, critical account
    r = row_of(m, 0)
    assert y[0] == 0
    assert r["log_income_missing"] == 1 and r["log_credit_to_income_missing"] == 1
    assert r["log_income"] == 0
    assert r["log_credit_amount"] == pytest.approx(math.log1p(1169), rel=1e-6)
    assert (r["duration_months"], r["age_years"], r["employment_years"]) == (6, 67, 10)
    assert (r["home_own"], r["home_rent"], r["past_delinquency"]) == (1, 0, 0)
    # row 1: 48 months, 5951 DM, age 22, 1-4 years employed, bad
    r = row_of(m, 1)
    assert y[1] == 1
    assert (r["duration_months"], r["age_years"], r["employment_years"]) == (48, 22, 2.5)
    # delinquency: exactly the "delay in paying off in the past" rows
    delay = (frame["credit_history"] == cs.GERMAN_DELINQUENCY).to_numpy()
    assert delay.sum() == 88
    assert (m[:, col("past_delinquency")] == delay).all()
    assert set(frame["present_employment_since"]) == set(cs.GERMAN_EMPLOYMENT_YEARS)


def test_domain_common_rows_match_the_mapping_and_imputation_uses_train_only():
    """In the loaded domain, missing incomes of every split hold the train-split median of the
    observed log incomes (the val/test rows never enter it)."""
    data = CreditData.from_params({"schema": "common"}).load(0)
    assert data.input_space == cs.INPUT_SPACE and data.task == cs.TASK
    train = data.splits["train"].teacher_x.numpy()
    seen = train[train[:, col("log_income_missing")] == 0, col("log_income")]
    fill = np.median(seen)
    filled_rows = 0
    for split in data.splits.values():
        x = split.teacher_x.numpy()
        missing = x[:, col("log_income_missing")] == 1
        filled_rows += int(missing.sum())
        assert np.allclose(x[missing, col("log_income")], fill)
    assert filled_rows == 381
