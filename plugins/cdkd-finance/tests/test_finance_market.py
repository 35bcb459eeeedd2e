"""Market direction: windowed features without look-ahead, chronological splits with a gap,
the majority-rate reference, and the user's price CSV with its error messages."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from cdkd_finance.market import (
    WindowConfig,
    chronological_index,
    daily_features,
    direction_task,
    lookback,
)
from cdkd_finance.price_csv import PriceCSV, read_prices
from cdkd_finance.sp500 import SP500, sp500_prices
from pydantic import ValidationError

from cdkd_core.plugin_api import DataError


def _check_chronology(task, dates=None):
    """Train before val before test; no price an example reads is on or before the target
    day of an example of an earlier split; no window overlaps another split's targets."""
    parts = [task.index[k] for k in ("train", "val", "test")]
    for earlier, later in itertools.pairwise(parts):
        assert task.end[earlier].max() < task.end[later].min()
        assert task.target[earlier].max() < task.first[later].min()
        assert later.min() - earlier.max() - 1 == task.gap
    all_targets = {k: set(task.target[v].tolist()) for k, v in task.index.items()}
    for name, idx in task.index.items():
        read = set()
        for first, end in zip(task.first[idx], task.end[idx], strict=True):
            read.update(range(first, end + 2))  # inputs and the target day
        for other, targets in all_targets.items():
            if other != name:
                assert not read & targets, (name, other)
    if dates is not None:
        train_max = max(dates[d] for d in task.target[task.index["train"]])
        val_min = min(dates[d] for d in task.first[task.index["val"]])
        val_max = max(dates[d] for d in task.target[task.index["val"]])
        test_min = min(dates[d] for d in task.first[task.index["test"]])
        assert train_max < val_min and val_max < test_min


def test_chronological_index_sizes_and_gaps():
    index = chronological_index(100, 0.15, 0.15, gap=5)
    assert [len(index[k]) for k in ("train", "val", "test")] == [60, 15, 15]
    assert index["val"][0] - index["train"][-1] == 6
    assert index["test"][0] - index["val"][-1] == 6
    assert index["test"][-1] == 99
    with pytest.raises(ValueError, match="too few"):
        chronological_index(20, 0.15, 0.15, gap=10)


def test_sp500_domain_shapes_labels_and_reference():
    data = SP500().load(0)
    cfg = WindowConfig()
    assert data.modality == "series" and data.channel_dim == -1
    assert data.classes == ["down", "up"] and data.task == "market_direction"
    assert data.metrics[0] == "accuracy"
    x = data.splits["train"].teacher_x
    assert x.shape[1:] == (cfg.window, 4)
    n = sum(len(s) for s in data.splits.values())
    gap = cfg.window + lookback(cfg.features, cfg.vol_window)
    days = 5031
    assert n + 2 * gap == days - 1 - (cfg.window - 1 + lookback(cfg.features, cfg.vol_window))
    test_y = data.splits["test"].y.float()
    rate = float(test_y.mean())
    assert data.reference["majority_rate"] == pytest.approx(max(rate, 1 - rate))
    assert 0.5 <= data.reference["majority_rate"] < 0.6  # next-day direction: near chance
    for split in data.splits.values():
        assert torch.isfinite(split.teacher_x).all()


def test_sp500_chronology_and_no_lookahead():
    dates, prices = sp500_prices("arch")
    cfg = WindowConfig(window=10, vol_window=5)
    task = direction_task(prices, cfg)
    _check_chronology(task, list(dates))
    close = prices["close"]
    # labels: the next close is higher
    assert np.array_equal(task.y, (close[task.end + 1] > close[task.end]).astype(int))
    # each example is what prices up to its last day alone give (no look-ahead)
    for i in (0, len(task.end) // 2, len(task.end) - 1):
        d = task.end[i]
        cut = {k: v[: d + 1] for k, v in prices.items()}  # prices up to day d only
        feats = daily_features(cut, cfg.features, cfg.vol_window)
        np.testing.assert_allclose(feats[d - 9 : d + 1], task.x[i], rtol=1e-6)
    # feature values by hand at the last step of one example
    i = 100
    d = task.end[i]
    ret = np.log(close[1:] / close[:-1])  # ret[k] is the return of day k + 1
    assert task.x[i, -1, 0] == pytest.approx(np.log(close[d] / close[d - 1]), rel=1e-5)
    assert task.x[i, -1, 1] == pytest.approx(np.log(prices["high"][d] / prices["low"][d]), 1e-5)
    vol = np.log1p(prices["volume"])
    assert task.x[i, -1, 2] == pytest.approx(vol[d] - vol[d - 1], rel=1e-5)
    assert task.x[i, -1, 3] == pytest.approx(np.std(ret[d - 5 : d]), rel=1e-5)


def test_sp500_gt_source_and_cap_keep_the_latest_days():
    data = SP500.from_params({"source": "gt", "max_examples": 300, "window": 5}).load(0)
    assert sum(len(s) for s in data.splits.values()) + 2 * (5 + 20) == 300
    dates, prices = sp500_prices("gt")
    assert len(dates) == 16607 and dates.is_monotonic_increasing
    task = direction_task(prices, WindowConfig(window=5, max_examples=300))
    assert task.target[-1] == len(dates) - 1  # the most recent day is the last target


def test_price_csv_loads_like_sp500(price_csv):
    data = PriceCSV.from_params(
        {
            "path": price_csv,
            "window": 5,
            "vol_window": 5,
            "features": ["return", "range", "volume_change", "volatility"],
        }
    ).load(0)
    assert data.modality == "series" and data.channel_dim == -1
    assert data.splits["train"].teacher_x.shape[1:] == (5, 4)
    assert data.task == "market_direction"
    assert data.input_space == "finance.price_window.return-range-volume_change-volatility.w5.v5"
    cfg = PriceCSV.Config(path=price_csv, window=5, vol_window=5)
    dates, prices = read_prices(cfg)
    task = direction_task(prices, cfg)
    _check_chronology(task, dates)
    # the domain's splits are the task's examples, in time order
    x = torch.as_tensor(task.x[:, :, :2])  # default features: return, volatility
    default = PriceCSV.from_params({"path": price_csv, "window": 5, "vol_window": 5}).load(0)
    assert default.input_space == "finance.price_window.return-volatility.w5.v5"
    for name, idx in task.index.items():
        ret = default.splits[name].teacher_x[..., 0]
        assert torch.allclose(ret, x[idx][..., 0])
    rate = float(default.splits["test"].y.float().mean())
    assert default.reference["majority_rate"] == pytest.approx(max(rate, 1 - rate))


def test_price_csv_close_only(tmp_path, write_prices):
    path = write_prices(tmp_path / "close.csv", days=120, extra=False)
    data = PriceCSV.from_params({"path": path, "window": 8}).load(0)
    assert data.splits["train"].teacher_x.shape[1:] == (8, 2)
    with pytest.raises(DataError, match=r"no high column 'high' \(needed by the features"):
        PriceCSV.from_params({"path": path, "features": ["range"]}).load(0)


def _rewrite(path, edit):
    lines = path.read_text().splitlines()
    edit(lines)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_price_csv_errors_name_file_and_line(tmp_path, write_prices):
    def fresh(name):
        return write_prices(tmp_path / name, days=120)

    def load(path, **params):
        return PriceCSV.from_params({"path": path, **params}).load(0)

    def set_cell(lines, line_no, col, value):
        cells = lines[line_no - 1].split(",")
        cells[col] = value
        lines[line_no - 1] = ",".join(cells)

    path = _rewrite(fresh("a.csv"), lambda ls: set_cell(ls, 7, 0, "2020-13-45"))
    with pytest.raises(DataError, match=r"a\.csv, line 7: cannot parse date '2020-13-45'"):
        load(path)
    path = _rewrite(fresh("b.csv"), lambda ls: set_cell(ls, 10, 0, ls[8].split(",")[0]))
    with pytest.raises(DataError, match=r"b\.csv, line 10: duplicate date"):
        load(path)
    path = _rewrite(fresh("c.csv"), lambda ls: set_cell(ls, 20, 0, "2019-06-03"))
    with pytest.raises(DataError, match=r"c\.csv, line 20: date '2019-06-03' is before"):
        load(path)
    path = _rewrite(fresh("d.csv"), lambda ls: set_cell(ls, 5, 1, "-3"))
    with pytest.raises(DataError, match=r"d\.csv, line 5: close column 'close' holds '-3'"):
        load(path)
    path = _rewrite(fresh("e.csv"), lambda ls: set_cell(ls, 6, 1, ""))
    with pytest.raises(DataError, match=r"e\.csv, line 6: close column 'close' is missing"):
        load(path)
    with pytest.raises(DataError, match=r"no date column 'day'"):
        load(fresh("f.csv"), date_column="day")
    with pytest.raises(DataError, match=r"no close column 'Close'"):
        load(fresh("g.csv"), close_column="Close")
    with pytest.raises(DataError, match=r"g\.csv: too few rows: 120 days give"):
        load(tmp_path / "g.csv", window=40)
    path = write_prices(tmp_path / "h.csv", days=30)
    with pytest.raises(DataError, match=r"h\.csv: too few rows"):
        load(path)
    path = _rewrite(fresh("i.csv"), lambda ls: ls.__setitem__(slice(1, None), ls[:0:-1]))
    with pytest.raises(DataError, match=r"i\.csv, line 3: .* strictly increasing"):
        load(path)
    european = _rewrite(
        fresh("j.csv"),
        lambda ls: [
            set_cell(ls, k, 0, "/".join(reversed(ls[k - 1].split(",")[0].split("-"))))
            for k in range(2, len(ls) + 1)
        ],
    )
    with pytest.raises(DataError, match=r"j\.csv, line 2: cannot parse date"):
        load(european)
    assert len(load(european, date_format="%d/%m/%Y", window=8).splits["test"]) > 0
    with pytest.raises(ValidationError, match="unknown feature"):
        PriceCSV.from_params({"path": european, "features": ["momentum"]})
