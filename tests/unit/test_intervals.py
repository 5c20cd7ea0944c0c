"""Conformal intervals from backtest residuals."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from tsengine.features import D
from tsengine.intervals import IntervalTable, _conformal_levels, fit_intervals


def residual_rows(resid: np.ndarray, distances: np.ndarray, scale: float = 1.0) -> pl.DataFrame:
    return pl.DataFrame(
        {D: distances, "y": resid * scale, "yhat": np.zeros(resid.size), "scale": [scale] * resid.size}
    )


def test_quantiles_per_distance_never_shrink_with_distance() -> None:
    rng = np.random.default_rng(0)
    d = np.repeat(np.arange(1, 6), 200)
    resid = rng.normal(0, 1, d.size) * np.where(d == 3, 0.1, 1.0)  # a lucky middle distance
    table = fit_intervals(residual_rows(resid, d), range(1, 6), 80)
    assert table is not None
    assert list(table.high) == sorted(table.high)
    assert list(table.low) == sorted(table.low, reverse=True)


def test_empirical_coverage_is_close_to_nominal_on_fresh_residuals() -> None:
    rng = np.random.default_rng(1)
    d = np.repeat(np.arange(1, 4), 400)
    table = fit_intervals(residual_rows(rng.standard_t(5, d.size), d), range(1, 4), 80)
    assert table is not None
    fresh = rng.standard_t(5, 30_000)
    dist = rng.integers(1, 4, fresh.size)
    low, high = table.apply(np.zeros(fresh.size), np.ones(fresh.size), dist)
    coverage = np.mean((fresh >= low) & (fresh <= high))
    assert 0.77 <= coverage <= 0.85


def test_intervals_scale_with_the_series_scale_and_contain_the_prediction() -> None:
    table = IntervalTable(80, (1, 2), (-1.0, -2.0), (1.5, 2.5))
    low, high = table.apply(np.array([10.0, 10.0]), np.array([2.0, 2.0]), np.array([1, 5]))
    assert low.tolist() == [8.0, 6.0]
    assert high.tolist() == [13.0, 15.0]
    assert IntervalTable.from_dict(table.to_dict()) == table


def test_no_usable_residual_gives_no_table() -> None:
    rows = pl.DataFrame(
        {D: [1], "y": [None], "yhat": [1.0], "scale": [1.0]}, schema_overrides={"y": pl.Float64}
    )
    assert fit_intervals(rows, range(1, 2)) is None


@pytest.mark.parametrize("n", [5, 30, 1000])
def test_conformal_levels_are_at_least_nominal(n: int) -> None:
    lo, hi = _conformal_levels(n, 0.1, 0.9)
    assert hi >= 0.9
    assert lo <= 0.1
