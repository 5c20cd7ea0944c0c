"""Backtests never use data after their origin, whatever the series look like."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tsengine.backtest import backtest_origins, run_backtest
from tsengine.features import FP
from tsengine.models import ETSModel, LinearModel
from tsengine.models.base import ForecastModel
from tsengine.spec import TimeSeriesSpec
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
