"""Backtests never use data after their origin, whatever the series look like; short data still get one; the scorer is the textbook one."""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tsengine.backtest import backtest_origins, naive_scales, run_backtest, score, window_that_fits
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


@settings(max_examples=150, deadline=None)
@given(
    data=st.lists(
        st.tuples(
            st.integers(0, 3),  # series
            st.integers(1, 4),  # distance
            st.floats(-1e3, 1e3),  # actual
            st.floats(-1e3, 1e3),  # forecast
            st.floats(0.0, 50.0),  # half-width
        ),
        min_size=1,
        max_size=40,
    ),
    scales=st.lists(st.floats(0.1, 100.0), min_size=4, max_size=4),
)
def test_the_scorer_agrees_with_the_textbook_formulas(
    data: list[tuple[int, int, float, float, float]], scales: list[float]
) -> None:
    """MASE is the mean over series of each series' mean scaled absolute error; coverage a hit rate."""
    sid, dist, y, yhat, half = (np.asarray(c) for c in zip(*data, strict=True))
    rows = pl.DataFrame(
        {
            "s": [f"s{k}" for k in sid],
            "d": dist,
            "y": y,
            "yhat": yhat,
            "mase_scale": np.asarray(scales)[sid],
            "low": yhat - half,
            "high": yhat + half,
        }
    )
    got = score(rows, series="s", distance="d")
    err = np.abs(y - yhat)
    per_series = [np.mean(err[sid == k] / scales[k]) for k in np.unique(sid)]
    assert got["mase"] == pytest.approx(np.mean(per_series), rel=1e-9, abs=1e-12)
    assert got["rmse"] == pytest.approx(np.sqrt(np.mean(err**2)), rel=1e-9, abs=1e-12)
    inside = (y >= yhat - half) & (y <= yhat + half)  # the bounds exactly as posted in the frame
    assert got["coverage"] == pytest.approx(100 * np.mean(inside), abs=1e-9)
    assert got["n"] == len(data)
    assert [r["distance"] for r in got["by_distance"]] == sorted(set(dist.tolist()))
    assert sum(r["n"] for r in got["by_series"]) == len(data)


@settings(max_examples=100, deadline=None)
@given(
    values=st.lists(st.floats(-1e4, 1e4), min_size=1, max_size=30),
    season=st.integers(1, 6),
)
def test_naive_scales_are_the_seasonal_naive_mae_or_its_fallbacks(values: list[float], season: int) -> None:
    y = np.asarray(values)
    got = naive_scales(pl.DataFrame({"s": ["a"] * y.size, "v": y}), season, series="s", target="v")
    scale = got.get_column("mase_scale").item()
    seasonal = np.mean(np.abs(y[season:] - y[:-season])) if y.size > season else np.nan
    lag1 = np.mean(np.abs(np.diff(y))) if y.size > 1 else np.nan
    expected = seasonal if seasonal > 0 else lag1 if lag1 > 0 else 1.0
    assert scale == pytest.approx(expected, rel=1e-9)
    assert scale > 0
