"""Interval properties: width never shrinks with distance (per series); bounds contain the prediction."""

from __future__ import annotations

from unittest.mock import patch

import numpy as np
import polars as pl
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tsengine.features import FP, D
from tsengine.intervals import (
    MAX_SERIES_FACTOR,
    MIN_SERIES_WINDOWS,
    IntervalTable,
    _common_shocks,
    _few_shocks_factor,
    fit_intervals,
)
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


def backtest_rows(
    rng: np.random.Generator, sigma: np.ndarray, origins: int, horizon: int, keep: float = 1.0
) -> pl.DataFrame:
    """Scaled residuals ``sigma[s] · (window shock + noise)``; each (series, origin) kept with ``keep``."""
    n = sigma.size
    resid = sigma[:, None, None] * (
        rng.normal(0, 0.5, (n, origins, 1)) + rng.normal(0, 1, (n, origins, horizon))
    )
    kept = np.repeat(rng.random((n, origins)) < keep, horizon, axis=1).ravel()
    frame = pl.DataFrame(
        {
            SID: np.repeat([f"s{k}" for k in range(n)], origins * horizon),
            FP: np.tile(np.repeat(np.arange(origins) * horizon, horizon), n),
            D: np.tile(np.arange(1, horizon + 1), n * origins),
            "y": resid.ravel(),
            "yhat": np.zeros(resid.size),
            "scale": np.ones(resid.size),
        }
    )
    return frame.filter(pl.Series(kept))


@given(
    seed=st.integers(0, 100_000),
    horizon=st.integers(1, 12),
    n_series=st.integers(1, 15),
    origins=st.integers(1, 8),
    keep=st.sampled_from([0.5, 1.0]),
)
@example(seed=0, horizon=1, n_series=1, origins=1, keep=1.0)
@example(seed=0, horizon=6, n_series=2, origins=3, keep=1.0)
@settings(deadline=None)
def test_series_factors_are_positive_and_keep_each_series_widths_monotone(
    seed: int, horizon: int, n_series: int, origins: int, keep: float
) -> None:
    rng = np.random.default_rng(seed)
    sigma = np.exp(rng.normal(0, 1, n_series))
    rows = backtest_rows(rng, sigma, origins, horizon, keep)
    if rows.height == 0:
        return
    table = fit_intervals(rows, range(1, horizon + 1), 80)
    assert table is not None
    factors = np.asarray(table.factors)
    assert np.all(np.isfinite(factors))
    assert np.all((factors >= 1 / MAX_SERIES_FACTOR) & (factors <= MAX_SERIES_FACTOR))
    windows = dict(rows.group_by(SID).agg(pl.col(FP).n_unique()).iter_rows())
    assert all(windows[sid] >= MIN_SERIES_WINDOWS for sid in table.series)
    # Every series (and one never seen), at every distance, with the factors in use.
    used = IntervalTable(
        80, table.distances, table.low, table.high, series=table.series, factors=table.factors
    )
    ids = [f"s{k}" for k in range(n_series)] + ["unseen"]
    sid = np.repeat(ids, horizon)
    dist = np.tile(np.arange(1, horizon + 1), len(ids))
    pred = rng.normal(0, 10, sid.size)
    low, high = used.apply(pred, np.full(sid.size, 2.0), dist, series=sid)
    assert np.all(low <= pred)
    assert np.all(pred <= high)
    widths = (high - low).reshape(len(ids), horizon)
    assert np.all(np.diff(widths, axis=1) >= -1e-9 * widths[:, 1:])


@given(
    seed=st.integers(0, 100_000),
    horizon=st.integers(6, 12),
    n_series=st.integers(2, 15),
    origins=st.integers(6, 8),
)
@settings(deadline=None)
def test_series_with_identical_residuals_get_factors_near_one(
    seed: int, horizon: int, n_series: int, origins: int
) -> None:
    rng = np.random.default_rng(seed)
    rows = backtest_rows(rng, np.ones(n_series), origins, horizon)
    table = fit_intervals(rows, range(1, horizon + 1), 80)
    assert table is not None
    assert len(table.factors) == n_series
    assert all(0.5 <= f <= 2.0 for f in table.factors)
    assert 0.8 <= float(np.median(table.factors)) <= 1.25


# With fewer series the noisy one is much of the pool its factor is relative to.
@given(seed=st.integers(0, 100_000), n_series=st.integers(6, 12))
@settings(deadline=None)
def test_a_series_four_times_noisier_gets_the_largest_factor_and_a_calmer_one_the_smallest(
    seed: int, n_series: int
) -> None:
    rng = np.random.default_rng(seed)
    sigma = np.r_[4.0, np.ones(n_series - 2), 0.25]
    table = fit_intervals(backtest_rows(rng, sigma, 6, 8), range(1, 9), 80)
    assert table is not None
    factor = dict(zip(table.series, table.factors, strict=True))
    assert factor["s0"] == max(table.factors)
    assert factor["s0"] > 1.3
    assert factor[f"s{n_series - 1}"] == min(table.factors)
    assert factor[f"s{n_series - 1}"] < 0.6


@given(
    seed=st.integers(0, 100_000),
    horizon=st.integers(1, 12),
    n_series=st.integers(1, 15),
    origins=st.integers(1, 8),
    shock=st.sampled_from([0.0, 0.5, 3.0]),
)
@example(seed=0, horizon=1, n_series=1, origins=2, shock=3.0)
@settings(deadline=None, max_examples=60)
def test_the_common_shock_widening_never_narrows_an_interval(
    seed: int, horizon: int, n_series: int, origins: int, shock: float
) -> None:
    rng = np.random.default_rng(seed)
    rows = backtest_rows(rng, np.ones(n_series), origins, horizon)
    rows = rows.with_columns(pl.col("y") + shock * pl.col(FP).hash(seed).cast(pl.Float64) / 2.0**64)
    widened = fit_intervals(rows, range(1, horizon + 1), 80)
    assert widened is not None
    with patch("tsengine.intervals._few_shocks_factor", lambda *_: 1.0):
        plain = fit_intervals(rows, range(1, horizon + 1), 80)
    assert plain is not None
    assert np.all(np.asarray(widened.high) >= np.asarray(plain.high) - 1e-12)
    assert np.all(np.asarray(widened.low) <= np.asarray(plain.low) + 1e-12)
    origin = np.unique(rows.get_column(FP).to_numpy(), return_inverse=True)[1]
    r = rows.get_column("y").to_numpy()
    shocks = _common_shocks(origin, rows.get_column(D).to_numpy(), r)
    assert 1 <= shocks <= origins * horizon
    assert _few_shocks_factor(origin, r, shocks, 0.9) >= 1.0
