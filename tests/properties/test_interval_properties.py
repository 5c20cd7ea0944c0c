"""Interval properties: width never shrinks with distance; bounds contain the prediction."""

from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tsengine.features import FP, D
from tsengine.intervals import fit_intervals
from tsengine.validate import IDX, SID


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 100_000), horizon=st.integers(1, 12), n_series=st.integers(1, 20))
@example(seed=0, horizon=1, n_series=1)
def test_random_walk_intervals_widen_or_stay_equal_with_distance(
    seed: int, horizon: int, n_series: int
) -> None:
    rng = np.random.default_rng(seed)
    # Naive forecasts of a random walk: the error at distance d is a sum of d steps.
    steps = rng.normal(0, 1, (n_series, 3, horizon))
    err = steps.cumsum(axis=2)
    d = np.broadcast_to(np.arange(1, horizon + 1), err.shape).ravel()
    rows = pl.DataFrame(
        {
            SID: np.repeat([f"s{k}" for k in range(n_series)], 3 * horizon),
            FP: np.zeros(err.size, dtype=np.int64),
            D: d,
            IDX: d,
            "y": err.ravel(),
            "yhat": np.zeros(err.size),
            "scale": np.ones(err.size),
        }
    )
    table = fit_intervals(rows, range(1, horizon + 1), 80)
    assert table is not None
    widths = np.asarray(table.high) - np.asarray(table.low)
    assert np.all(np.diff(widths) >= 0)
    pred = rng.normal(0, 10, horizon)
    low, high = table.apply(pred, np.full(horizon, 2.0), np.arange(1, horizon + 1))
    assert np.all(low <= pred)
    assert np.all(pred <= high)
