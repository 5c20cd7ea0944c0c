"""Backtests never use data after their origin, whatever the series look like; short data still get one."""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tsengine.backtest import backtest_origins, run_backtest, window_that_fits
from tsengine.features import FP
from tsengine.models import ETSModel, LinearModel
from tsengine.models.base import ForecastModel
from tsengine.spec import TimeSeriesSpec, min_history_for
from tsengine.timestep import TimeStep
from tsengine.validate import IDX, ROW, SID, Y

SPEC = TimeSeriesSpec(
    datetime_column="d",
    target="y",
    time_step=TimeStep("day"),
    feature_derivation_window=(-14, 0),
    forecast_window=(1, 5),
    series_id_column="s",
    min_history=7,
)


@pytest.mark.parametrize("cls", [ETSModel, LinearModel])
@settings(max_examples=15, deadline=None)
@given(
    lengths=st.lists(st.integers(30, 70), min_size=1, max_size=3),
    seed=st.integers(0, 10_000),
    n_origins=st.integers(1, 4),
)
def test_backtest_never_uses_data_after_its_origin(
    cls: type[ForecastModel], lengths: list[int], seed: int, n_origins: int
) -> None:
    rng = np.random.default_rng(seed)
    frames = [
        pl.DataFrame({SID: [f"s{k}"] * n, IDX: np.arange(n), Y: rng.normal(0, 1, n).cumsum()})
        for k, n in enumerate(lengths)
    ]
    hist = pl.concat(frames).with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias(ROW))
    origins = backtest_origins(hist, SPEC, n_origins)
    seen: list[int] = []

    def fit(past: pl.DataFrame) -> ForecastModel:
        seen.append(int(past.get_column(IDX).max()))  # type: ignore[arg-type]
        return cls.fit(past, SPEC)

    result = run_backtest(fit, hist, SPEC, origins, name=cls.kind)
    assert all(s <= o for s, o in zip(seen, origins, strict=False))
    # Changing every target after the last origin's forecast window changes nothing.
    if origins:
        horizon_end = origins[-1] + SPEC.forecast_window[1]
        noisy = hist.with_columns(
            pl.when(pl.col(IDX) > horizon_end).then(pl.col(Y) + 1e6).otherwise(pl.col(Y)).alias(Y)
        )
        again = run_backtest(lambda p: cls.fit(p, SPEC), noisy, SPEC, origins, name=cls.kind)
        np.testing.assert_allclose(again.rows.get_column("yhat"), result.rows.get_column("yhat"))
        assert (result.rows.get_column(FP) <= origins[-1]).all()


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(2, 150),
    start=st.lists(st.integers(0, 40), min_size=1, max_size=3),
    a=st.integers(1, 60),
    c=st.integers(1, 24),
    floor=st.integers(1, 20),
)
def test_a_shortened_window_is_the_longest_that_leaves_a_backtest_origin(
    n: int, start: list[int], a: int, c: int, floor: int
) -> None:
    frames = [
        pl.DataFrame({SID: [f"s{k}"] * n, IDX: np.arange(s0, s0 + n), Y: np.ones(n)})
        for k, s0 in enumerate(start)
    ]
    hist = pl.concat(frames).with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias(ROW))

    def has_origin(w: int) -> bool:
        spec = dataclasses.replace(
            SPEC, feature_derivation_window=(-w, 0), forecast_window=(1, c), min_history=min_history_for(w)
        )
        return bool(backtest_origins(hist, spec, 1))

    fitted = window_that_fits(hist, a, (1, c), floor)
    assert min(floor, a) <= fitted <= a
    if has_origin(a):
        assert fitted == a  # a window that fits is never shortened
    elif fitted > min(floor, a):
        assert has_origin(fitted)
        assert not has_origin(fitted + 1)
    else:
        assert fitted == min(floor, a)  # no longer window above the floor fits either
        assert not any(has_origin(w) for w in range(fitted + 1, a + 1))
