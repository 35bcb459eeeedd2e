"""Shared fixtures of the cdkd-finance tests: one thread, a host with this plugin loaded
in-process (installed plugins stay out), and writers of small CSVs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture
def finance_host():
    """Built-ins plus cdkd_finance, without entry points."""
    import cdkd_finance

    from cdkd_core import PluginHost

    host = PluginHost(entry_points=False, plugins=[("finance", cdkd_finance)])
    assert host.plugins["finance"].ok, host.plugins["finance"].errors
    return host


def _write_prices(path: Path, days: int = 160, seed: int = 0, *, extra: bool = True) -> Path:
    """A random-walk daily price CSV (business days from 2020-01-01, oldest first)."""
    import datetime as dt

    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, days)))
    high = close * (1 + rng.uniform(0, 0.01, days))
    low = close * (1 - rng.uniform(0, 0.01, days))
    volume = rng.integers(1000, 5000, days)
    dates, day = [], dt.date(2020, 1, 1)
    while len(dates) < days:
        if day.weekday() < 5:
            dates.append(day)
        day += dt.timedelta(days=1)
    header = "date,close,high,low,volume" if extra else "date,close"
    lines = [header]
    for i in range(days):
        row = [dates[i].isoformat(), repr(float(close[i]))]
        if extra:
            row += [repr(float(high[i])), repr(float(low[i])), str(int(volume[i]))]
        lines.append(",".join(row))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def write_prices():
    """The CSV writer: ``write_prices(path, days=160, seed=0, extra=True)``."""
    return _write_prices


@pytest.fixture
def price_csv(tmp_path: Path) -> Path:
    """160 trading days with close, high, low and volume."""
    return _write_prices(tmp_path / "prices.csv")
