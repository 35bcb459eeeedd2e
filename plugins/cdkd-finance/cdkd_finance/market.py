"""Next-day direction from daily prices: windowed features of a price series and
chronological splits with a gap (the ``finance.sp500`` domain and the ``finance.price_csv``
loader are built on them).

An example ends on trading day ``d``: its input is the window of the last ``window`` days'
features ``[T, F]`` (T = ``window``), known at day ``d``'s close; its label is whether the
next day's close is higher (``up``) or not (``down``; an unchanged close counts as down).

Features per day (``features`` param, in this order):

- ``return``: log return close-to-close, ``log(c_d / c_{d-1})``;
- ``range``: intraday range, ``log(high_d / low_d)``;
- ``volume_change``: ``log((v_d + 1) / (v_{d-1} + 1))``;
- ``volatility``: standard deviation of the last ``vol_window`` log returns.

Splits are chronological (train earliest, then val, then test) and never shuffled across
time. Between two splits, enough examples are dropped that no price an example of the
later split reads (its window plus the features' look-back) is on or before the target day
of any example of the earlier split: a gap of ``window + look-back`` trading days, at least
one window.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from pydantic import Field, field_validator, model_validator

from cdkd_core import ComponentConfig, DomainData, Split

if TYPE_CHECKING:  # pragma: no cover
    pass

FEATURES = ("return", "range", "volume_change", "volatility")
#: Price columns each feature needs besides ``close``.
NEEDS = {"return": (), "range": ("high", "low"), "volume_change": ("volume",), "volatility": ()}
CLASSES = ["down", "up"]
TASK = "market_direction"
METRICS = ["accuracy", "roc_auc", "balanced_accuracy"]


class WindowConfig(ComponentConfig):
    """Window, features and chronological split sizes."""

    window: int = Field(20, ge=2, le=512, description="Trading days per example (T).")
    vol_window: int = Field(
        20, ge=2, le=512, description="Returns in the rolling volatility feature."
    )
    features: list[str] = Field(
        default_factory=lambda: list(FEATURES),
        min_length=1,
        description=f"Per-day features, from {list(FEATURES)}.",
    )
    val_fraction: float = Field(0.15, gt=0, lt=0.5, description="Share of examples in val.")
    test_fraction: float = Field(0.15, gt=0, lt=0.5, description="Share of examples in test.")
    max_examples: int | None = Field(
        None, ge=30, description="Keep only the most recent examples (before splitting)."
    )
    input_space: str | None = Field(
        None,
        description="Input space id (default: one per feature set, window and volatility "
        "window, so price series with the same features share a stem).",
    )
    task: str = Field(TASK, description="Task id; next-day direction tasks share a head.")

    @field_validator("features")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = [f for f in value if f not in FEATURES]
        if unknown:
            raise ValueError(f"unknown feature(s) {unknown}; choose from {list(FEATURES)}")
        if len(set(value)) != len(value):
            raise ValueError("features are listed twice")
        return value

    @model_validator(mode="after")
    def _room(self) -> WindowConfig:
        if self.val_fraction + self.test_fraction >= 0.9:
            raise ValueError("val_fraction + test_fraction must leave room for train")
        return self


def lookback(features: list[str], vol_window: int) -> int:
    """Days before a window's first day whose prices its features read."""
    days = {"return": 1, "range": 0, "volume_change": 1, "volatility": vol_window}
    return max(days[f] for f in features)


def space_id(features: list[str], window: int, vol_window: int) -> str:
    """The default input space of a feature set: equal sets share a stem."""
    vol = f".v{vol_window}" if "volatility" in features else ""
    return f"finance.price_window.{'-'.join(features)}.w{window}{vol}"


def daily_features(
    prices: dict[str, np.ndarray], features: list[str], vol_window: int
) -> np.ndarray:
    """``[D, F]`` features of ``D`` days (NaN where a day lacks the look-back)."""
    close = prices["close"]
    ret = np.full(len(close), np.nan)
    ret[1:] = np.log(close[1:] / close[:-1])
    columns = []
    for name in features:
        if name == "return":
            columns.append(ret)
        elif name == "range":
            columns.append(np.log(prices["high"] / prices["low"]))
        elif name == "volume_change":
            vol = np.log1p(prices["volume"])
            col = np.full(len(close), np.nan)
            col[1:] = vol[1:] - vol[:-1]
            columns.append(col)
        else:  # volatility of the last vol_window returns (days d-vol_window+1 .. d)
            col = np.full(len(close), np.nan)
            if len(close) > vol_window:
                win = np.lib.stride_tricks.sliding_window_view(ret[1:], vol_window)
                col[vol_window:] = win.std(axis=1)
            columns.append(col)
    return np.stack(columns, axis=1)


@dataclass
class DirectionTask:
    """Windowed examples and their chronological splits.

    ``end[i]`` is the day index an example's window ends on (its input is known at that
    close), ``target = end + 1`` the day whose direction is its label, ``first = end -
    window + 1 - lookback`` the earliest day whose price it reads; ``index`` maps each split
    to example positions (in time order).
    """

    x: np.ndarray  # [N, T, F] float32
    y: np.ndarray  # [N] 0 down, 1 up
    end: np.ndarray  # [N] day index
    first: np.ndarray
    target: np.ndarray
    index: dict[str, np.ndarray]
    gap: int


def chronological_index(
    n: int, val_fraction: float, test_fraction: float, gap: int
) -> dict[str, np.ndarray]:
    """Train, val and test positions of ``n`` time-ordered examples, ``gap`` dropped between
    train and val and between val and test."""
    n_test = max(1, round(n * test_fraction))
    n_val = max(1, round(n * val_fraction))
    n_train = n - n_test - n_val - 2 * gap
    if n_train < 1:
        raise ValueError(
            f"{n} examples are too few for val {n_val} + test {n_test} + 2 gaps of {gap}"
        )
    val_start = n_train + gap
    test_start = val_start + n_val + gap
    return {
        "train": np.arange(0, n_train),
        "val": np.arange(val_start, val_start + n_val),
        "test": np.arange(test_start, n),
    }


def direction_task(prices: dict[str, np.ndarray], config: WindowConfig) -> DirectionTask:
    """The windowed next-day direction task over time-ordered daily ``prices`` (``close``,
    and ``high``, ``low``, ``volume`` where the features need them)."""
    feats = daily_features(prices, list(config.features), config.vol_window)
    days, window = len(feats), config.window
    back = lookback(list(config.features), config.vol_window)
    close = prices["close"]
    # windows end on days d with all window days valid (d - window + 1 >= back) and a
    # next day to predict (d + 1 <= days - 1)
    end = prediction_ends(days, config)[:-1]
    if len(end) > 0 and config.max_examples is not None:
        end = end[-config.max_examples :]
    gap = window + back
    minimum = 3 + 2 * gap
    if len(end) < minimum:
        raise ValueError(
            f"{days} days give {max(len(end), 0)} examples; window {window} with look-back "
            f"{back} needs at least {minimum} examples ({minimum + window + back} days)"
        )
    index = chronological_index(len(end), config.val_fraction, config.test_fraction, gap)
    x = window_inputs(feats, end, window)
    y = (close[end + 1] > close[end]).astype(np.int64)
    first = end - window + 1 - back
    return DirectionTask(x, y, end, first, end + 1, index, gap)


def window_inputs(feats: np.ndarray, end: np.ndarray, window: int) -> np.ndarray:
    """The ``[len(end), window, F]`` float32 inputs of the windows of daily features
    ``feats`` ``[D, F]`` that end on the days ``end``: what the training examples are, and
    what a price file given to ``cdkd predict`` becomes."""
    windows = np.lib.stride_tricks.sliding_window_view(feats, window, axis=0)  # [D-T+1, F, T]
    return windows[np.asarray(end) - window + 1].transpose(0, 2, 1).astype(np.float32)


def prediction_ends(days: int, config: WindowConfig) -> np.ndarray:
    """The days of a ``days``-long series that end a full window (all its features have
    their look-back): the training examples' end days, plus the last day, which has no
    next day to label but is the one whose next day a prediction is for."""
    back = lookback(list(config.features), config.vol_window)
    return np.arange(back + config.window - 1, days)


def direction_data(task: DirectionTask, config: WindowConfig) -> DomainData:
    """The task as :class:`DomainData`: a ``series`` modality ``[N, T, F]`` standardised
    per feature (``channel_dim=-1``), the test split's majority rate as chance reference."""
    x = torch.as_tensor(task.x)
    y = torch.as_tensor(task.y)
    splits = {k: Split.single_view(x[idx], y[idx]) for k, idx in task.index.items()}
    test_y = task.y[task.index["test"]]
    return DomainData(
        modality="series",
        task=config.task,
        classes=list(CLASSES),
        splits=splits,
        metrics=list(METRICS),
        input_space=config.input_space
        or space_id(list(config.features), config.window, config.vol_window),
        channel_dim=-1,
        reference={"majority_rate": float(max(test_y.mean(), 1 - test_y.mean()))},
    )
