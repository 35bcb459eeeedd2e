"""``finance.price_csv``: your own daily price series, as the next-day direction task of
``finance.sp500`` (windowed features, chronological splits with a gap)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import Field, model_validator

from cdkd_core import Domain, DomainData
from cdkd_core.plugin_api import (
    DataError,
    Delimiter,
    InputBatch,
    InputOptions,
    InputReader,
)
from cdkd_finance.market import (
    NEEDS,
    WindowConfig,
    daily_features,
    direction_data,
    direction_task,
    lookback,
    prediction_ends,
    window_inputs,
)

if TYPE_CHECKING:  # pragma: no cover
    from cdkd_core.plugin_api import Table


class PriceCSVConfig(WindowConfig):
    """Where the CSV is, which columns hold the date and prices, window and splits."""

    path: Path = Field(description="CSV file with a header row, one row per trading day.")
    date_column: str = Field("date", description="Column of dates, strictly increasing.")
    close_column: str = Field("close", description="Column of closing prices (> 0).")
    high_column: str = Field("high", description="Column of daily highs (feature 'range').")
    low_column: str = Field("low", description="Column of daily lows (feature 'range').")
    volume_column: str = Field("volume", description="Volume column ('volume_change').")
    date_format: str | None = Field(
        None, description="strptime format of the dates (default: ISO 8601, e.g. 2020-01-31)."
    )
    delimiter: Delimiter = Field(
        None, description="Field delimiter, one character (default: sniffed)."
    )
    features: list[str] = Field(
        default_factory=lambda: ["return", "volatility"],
        min_length=1,
        description="Per-day features (default needs only the close): return, range, "
        "volume_change, volatility.",
    )

    @model_validator(mode="after")
    def _columns_distinct(self) -> PriceCSVConfig:
        if self.date_column == self.close_column:
            raise ValueError("date_column and close_column are the same column")
        return self


def _parse_date(value: str, fmt: str | None) -> dt.datetime:
    if fmt is not None:
        return dt.datetime.strptime(value, fmt)
    return dt.datetime.fromisoformat(value)


class PriceCSV(Domain):
    """Your own price series (CSV: a date column and a close column) as next-day direction.

    The same task as ``finance.sp500``: windows of daily features (by default log returns
    and rolling volatility, which need only the close; ``range`` and ``volume_change`` read
    high, low and volume columns), chronological splits with a gap of window + look-back
    days, the test split's majority rate as chance reference. Dates must be strictly
    increasing (oldest first); prices positive numbers.
    """

    name = "finance.price_csv"
    Config = PriceCSVConfig

    def load(self, seed: int) -> DomainData:
        """Read and check the series, then window and split it chronologically."""
        cfg: PriceCSVConfig = self.config  # type: ignore[assignment]
        _, prices = read_prices(cfg)
        try:
            task = direction_task(prices, cfg)
        except ValueError as exc:
            raise DataError(f"{cfg.path}: too few rows: {exc}") from None
        return direction_data(task, cfg)

    def input_reader(self, seed: int) -> InputReader:
        """A price CSV like the training one (same columns, date format; oldest first):
        one prediction per day that ends a full window -- the direction of the day after
        it, the last row's included. Nothing is fitted on the training file."""
        return PriceWindowReader(self.config)  # type: ignore[arg-type]


def read_prices(cfg: PriceCSVConfig) -> tuple[list[dt.datetime], dict[str, np.ndarray]]:
    """Dates and price columns of the CSV, checked row by row (errors name file and line)."""
    from cdkd_core.plugin_api import read_csv

    return table_prices(read_csv(cfg.path, cfg.delimiter), cfg)


def table_prices(
    table: Table, cfg: PriceCSVConfig
) -> tuple[list[dt.datetime], dict[str, np.ndarray]]:
    """Dates and price columns of a price table (``cfg`` names its columns), checked row by
    row (errors name the table's file and line)."""
    from cdkd_core.plugin_api import MISSING

    path = table.path
    columns = {"close": cfg.close_column}
    for feature in cfg.features:
        for need in NEEDS[feature]:
            columns[need] = getattr(cfg, f"{need}_column")
    for key in ("date", *columns):
        column = cfg.date_column if key == "date" else columns[key]
        if column not in table.header:
            why = "" if key in ("date", "close") else f" (needed by the features {cfg.features})"
            raise DataError(f"{path}: no {key} column {column!r}{why}; columns are {table.header}")
    dates: list[dt.datetime] = []
    for value, line in zip(table.column(cfg.date_column), table.lines, strict=True):
        try:
            date = _parse_date(value, cfg.date_format)
        except ValueError:
            expected = cfg.date_format or "ISO 8601 (YYYY-MM-DD)"
            raise DataError(
                f"{path}, line {line}: cannot parse date {value!r} in column "
                f"{cfg.date_column!r} (expected {expected}; set date_format)"
            ) from None
        if dates:
            prev = dates[-1]
            if date == prev:
                raise DataError(f"{path}, line {line}: duplicate date {value!r}")
            if (date.tzinfo is None) != (prev.tzinfo is None):
                raise DataError(f"{path}, line {line}: mixes dates with and without zone")
            if date < prev:
                raise DataError(
                    f"{path}, line {line}: date {value!r} is before the previous row's; "
                    "dates must be strictly increasing (sort the file oldest first)"
                )
        dates.append(date)
    prices: dict[str, np.ndarray] = {}
    for key, column in columns.items():
        values = np.empty(len(table.rows))
        for i, (raw, line) in enumerate(zip(table.column(column), table.lines, strict=True)):
            if raw.lower() in MISSING:
                raise DataError(f"{path}, line {line}: {key} column {column!r} is missing")
            try:
                number = float(raw)
            except ValueError:
                number = math.nan
            valid = math.isfinite(number) and (number >= 0 if key == "volume" else number > 0)
            if not valid:
                kind = "a number >= 0" if key == "volume" else "a positive number"
                raise DataError(
                    f"{path}, line {line}: {key} column {column!r} holds {raw!r}, expected {kind}"
                )
            values[i] = number
        prices[key] = values
    if "high" in prices:
        bad = np.flatnonzero(prices["high"] < prices["low"])
        if len(bad):
            raise DataError(f"{path}, line {table.lines[bad[0]]}: high is below low")
    return dates, prices


class PriceWindowReader(InputReader):
    """A daily price CSV as the windows a direction domain predicts on: the file's days
    become the features :func:`~cdkd_finance.market.daily_features` computes and one window
    ends on every day with a full window and look-back (:func:`prediction_ends`), each
    predicting the direction of the day after it -- exactly the inputs of the training
    examples, which end on the same days of the training file. The whole file is read at
    once (a window reads the days before it); ids are the window's last date (or its
    ``--id-column`` value).

    Args:
        config: the domain's window config, with the columns and date format of a
            :class:`PriceCSVConfig`.
    """

    accepts = "a CSV of daily prices, oldest first (a date and a close column)"

    def __init__(self, config: PriceCSVConfig) -> None:
        self.config = config

    def batches(self, source: Path, options: InputOptions, chunk_size: int) -> Iterator[InputBatch]:
        """The windows of ``source``, ``chunk_size`` at a time, in date order."""
        import torch

        from cdkd_core.plugin_api import read_csv

        cfg = self.config
        table = read_csv(Path(source), options.delimiter or cfg.delimiter)
        _, prices = table_prices(table, cfg)
        ends = prediction_ends(len(table.rows), cfg)
        if not len(ends):
            back = lookback(list(cfg.features), cfg.vol_window)
            raise DataError(
                f"{source}: {len(table.rows)} days of prices; a window of {cfg.window} days "
                f"with {back} days of look-back needs at least {cfg.window + back}"
            )
        id_column = options.id_column or cfg.date_column
        table.require([id_column], "id column")
        ids = table.column(id_column)
        feats = daily_features(prices, list(cfg.features), cfg.vol_window)
        for start in range(0, len(ends), chunk_size):
            chunk = ends[start : start + chunk_size]
            x = torch.as_tensor(window_inputs(feats, chunk, cfg.window))
            yield InputBatch([ids[d] for d in chunk], x, x if options.teacher else None)
