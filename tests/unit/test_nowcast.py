"""Nowcasting: forecast windows starting at distance 0 (see tsengine.nowcast and docs/timeseries.md).

Deployments are trained on real fixtures (three flight series over 150 days,
KIA ``scheduled``/``holiday``; the last ten years of monthly café spending)
with few candidates and backtests so that the module trains in seconds.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

import tsengine
from tsengine.errors import (
    InsufficientHistoryError,
    KnownInAdvanceError,
    MissingForecastRowsError,
    ParameterError,
    ValidationError,
)
from tsengine.explain import forecast_contributions
from tsengine.models.base import predict_on
from tsengine.nowcast import model_spec
from tsengine.options import PredictOptions

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
LAST_HISTORY = "2013-12-20"
FP = dt.datetime(2013, 12, 21)
STATISTICAL = ("ets", "theta", "arima", "linear", "seasonal_naive")


def _flights_dep(small_flights: pl.DataFrame, fw: list[int], models: list[str]) -> tsengine.Deployment:
    return tsengine.train(
        small_flights,
        target="delayed",
        datetime_column="date",
        series_id_column="series",
        known_in_advance=["scheduled", "holiday"],
        models=models,
        forecast_window=fw,
        feature_derivation_window=[-28, 0],
        backtests=2,
        deployment_id="nowcast",
    )


@pytest.fixture(scope="module")
def now00(small_flights: pl.DataFrame) -> tsengine.Deployment:
    """LightGBM only, FW [0, 0]."""
    return _flights_dep(small_flights, [0, 0], ["lightgbm"])


@pytest.fixture(scope="module")
def now03(small_flights: pl.DataFrame) -> tsengine.Deployment:
    """LightGBM vs seasonal naive, FW [0, 3]."""
    return _flights_dep(small_flights, [0, 3], ["lightgbm", "seasonal_naive"])


@pytest.fixture(scope="module")
def cafe() -> pl.DataFrame:
    """The last ten years of monthly café spending (one series)."""
    frame = pl.read_csv(FIXTURES / "monthly_retail_single.csv", schema_overrides={"month": pl.String})
    return frame.tail(120)


def _request(small_flights: pl.DataFrame, days: int, *, fp_target: float | None = None) -> pl.DataFrame:
    """History up to LAST_HISTORY, then ``days`` posted rows (empty targets; ``fp_target`` on the FP row)."""
    history = small_flights.filter(pl.col("date") <= LAST_HISTORY)
    last = (FP + dt.timedelta(days=days - 1)).date().isoformat()
    rows = small_flights.filter((pl.col("date") > LAST_HISTORY) & (pl.col("date") <= last))
    rows = rows.with_columns(
        pl.when(pl.col("date") == FP.date().isoformat())
        .then(pl.lit(fp_target, dtype=pl.Float64))
        .otherwise(None)
        .cast(history.schema["delayed"])
        .alias("delayed")
    )
    return pl.concat([history, rows])


# --- training -----------------------------------------------------------------------------


def test_training_accepts_windows_starting_at_zero(
    now00: tsengine.Deployment, now03: tsengine.Deployment
) -> None:
    assert now00.spec.forecast_window == (0, 0)
    assert now03.spec.forecast_window == (0, 3)
    assert now03.intervals is not None
    assert now03.intervals.distances == (0, 1, 2, 3)  # per-distance interval scales include 0
    board = {row["model"]: row for row in now03.metadata["leaderboard"]}
    assert [r["distance"] for r in board["lightgbm"]["by_distance"]] == [0, 1, 2, 3]
    assert now03.backtest_trace is not None
    trace = now03.backtest_trace.filter(pl.col("forecastDistance") == 0)
    assert trace.height > 0
    assert (trace["forecastPoint"] == trace["timestamp"]).all()  # distance 0 is the FP's own row


def test_negative_forecast_window_start_is_refused(small_flights: pl.DataFrame) -> None:
    with pytest.raises(ParameterError, match=r"0 <= b <= c"):
        _flights_dep(small_flights, [-1, 2], ["seasonal_naive"])


def test_nowcast_backtest_scores_the_same_rows_as_a_forecast_one_step_earlier(
    small_flights: pl.DataFrame, now03: tsengine.Deployment
) -> None:
    """FW [0, 3] scores what FW [1, 4] scores from the step before: the same model, shifted rows."""
    later = _flights_dep(small_flights, [1, 4], ["lightgbm", "seasonal_naive"])
    now = {r["model"]: r for r in now03.metadata["leaderboard"]}
    ahead = {r["model"]: r for r in later.metadata["leaderboard"]}
    assert now03.intervals is not None
    assert later.intervals is not None
    assert now03.intervals.low == pytest.approx(later.intervals.low)  # distance d + 1 -> d
    assert now03.intervals.high == pytest.approx(later.intervals.high)
    for model in ("lightgbm", "seasonal_naive"):
        assert now[model]["mase"] == pytest.approx(ahead[model]["mase"])
        assert [r["mase"] for r in now[model]["by_distance"]] == pytest.approx(
            [r["mase"] for r in ahead[model]["by_distance"]]
        )


# --- forecast mode ------------------------------------------------------------------------


def test_forecast_point_is_inferred_as_the_step_after_the_last_target(
    small_flights: pl.DataFrame, now03: tsengine.Deployment
) -> None:
    frame = _request(small_flights, 4)
    out = now03.predict(frame)
    assert out.height == 3 * 4
    assert (out["forecastPoint"] == FP).all()
    assert out["forecastDistance"].to_list() == [0, 1, 2, 3] * 3
    assert out["timestamp"].to_list() == [FP + dt.timedelta(days=d) for d in range(4)] * 3
    assert out["prediction"].is_finite().all()
    # every predicted row is a posted row
    posted = set(range(small_flights.filter(pl.col("date") <= LAST_HISTORY).height, frame.height))
    assert set(out["rowId"].to_list()) == posted


@pytest.mark.parametrize("fp_target", [0.0, 1e6, -50.0])
def test_a_target_posted_on_the_forecast_point_row_is_not_used(
    small_flights: pl.DataFrame, now00: tsengine.Deployment, now03: tsengine.Deployment, fp_target: float
) -> None:
    for dep, days in ((now00, 1), (now03, 4)):
        clean = dep.predict(_request(small_flights, days), forecast_point=FP)
        leaked = dep.predict(_request(small_flights, days, fp_target=fp_target), forecast_point=FP)
        assert_frame_equal(clean, leaked)


def test_a_known_in_advance_value_on_the_forecast_point_row_changes_the_nowcast(
    small_flights: pl.DataFrame, now00: tsengine.Deployment
) -> None:
    frame = _request(small_flights, 1)
    base = now00.predict(frame)
    on_fp = pl.col("date") == FP.date().isoformat()
    busier = frame.with_columns(pl.when(on_fp).then(pl.col("scheduled") * 2).otherwise(pl.col("scheduled")))
    moved = now00.predict(busier)
    assert (moved["forecastDistance"] == 0).all()
    assert not np.allclose(base["prediction"].to_numpy(), moved["prediction"].to_numpy())


def test_a_series_without_its_forecast_point_row_is_a_422_naming_it(
    small_flights: pl.DataFrame, now03: tsengine.Deployment
) -> None:
    frame = _request(small_flights, 4).filter(
        ~((pl.col("series") == "JFK-B6") & (pl.col("date") == "2013-12-21"))
    )
    with pytest.raises(MissingForecastRowsError) as caught:
        now03.predict(frame, forecast_point=FP)
    assert isinstance(caught.value, ValidationError)
    assert caught.value.status == 422
    assert "JFK-B6" in caught.value.message
    assert "2013-12-21" in caught.value.message
    assert "EWR-UA" not in caught.value.message


def test_nowcast_rows_are_never_autoexpanded(small_flights: pl.DataFrame, now03: tsengine.Deployment) -> None:
    history_only = small_flights.filter(pl.col("date") <= LAST_HISTORY)
    with pytest.raises(MissingForecastRowsError, match=r"series 'EWR-UA' at '2013-12-21"):
        now03.predict(history_only)


def test_known_in_advance_values_are_required_on_nowcast_rows(
    small_flights: pl.DataFrame, now00: tsengine.Deployment
) -> None:
    frame = _request(small_flights, 1).with_columns(
        pl.when(pl.col("date") == FP.date().isoformat())
        .then(None)
        .otherwise(pl.col("holiday"))
        .alias("holiday")
    )
    with pytest.raises(KnownInAdvanceError, match="holiday"):
        now00.predict(frame)
    relaxed = now00.predict(frame, relax_known_in_advance=True)
    assert relaxed.height == 3


def test_too_little_history_names_the_request_forecast_point(
    small_flights: pl.DataFrame, now00: tsengine.Deployment
) -> None:
    frame = _request(small_flights, 1).filter(pl.col("date") >= "2013-12-15")
    with pytest.raises(InsufficientHistoryError, match=r"strictly before forecast point 2013-12-21"):
        now00.predict(frame)


# --- historical mode ----------------------------------------------------------------------


def test_historical_mode_predicts_each_row_as_of_itself(
    small_flights: pl.DataFrame, now03: tsengine.Deployment
) -> None:
    frame = small_flights.filter(pl.col("date") <= "2013-12-24")
    out = now03.predict(frame, start="2013-12-20", end="2013-12-25")
    assert set(out["forecastDistance"].to_list()) == {0, 1, 2, 3}
    shifted = pl.col("forecastPoint") + pl.duration(days=pl.col("forecastDistance"))
    assert out.select((shifted == pl.col("timestamp")).all()).item()
    zero = out.filter(pl.col("forecastDistance") == 0)
    assert (zero["forecastPoint"] == zero["timestamp"]).all()
    # the historical nowcast of 2013-12-21 equals the forecast-mode nowcast as of 2013-12-21
    # (the actual posted on that row, known in historical data, is not read)
    hist = zero.filter(pl.col("timestamp") == FP).sort("seriesId")
    live = now03.predict(_request(small_flights, 4), forecast_point=FP).filter(
        pl.col("forecastDistance") == 0
    )
    assert hist["prediction"].to_list() == pytest.approx(live.sort("seriesId")["prediction"].to_list())


# --- statistical models: one step ahead ---------------------------------------------------


@pytest.mark.parametrize("kind", STATISTICAL)
def test_statistical_nowcast_is_the_one_step_ahead_forecast(cafe: pl.DataFrame, kind: str) -> None:
    """The FP row's nowcast is the model's forecast one step ahead of the history ending before FP."""
    options = {"target": "turnover", "datetime_column": "month", "models": [kind], "backtests": 1}
    now = tsengine.train(cafe, forecast_window=[0, 0], **options)  # type: ignore[arg-type]
    ahead = tsengine.train(cafe, forecast_window=[1, 1], **options)  # type: ignore[arg-type]
    history = cafe.head(110)
    fp_row = cafe.slice(110, 1).with_columns(pl.lit(None, dtype=pl.Float64).alias("turnover"))
    nowcast = now.predict(pl.concat([history, fp_row]))
    forecast = ahead.predict(history)
    assert nowcast["forecastDistance"].to_list() == [0]
    assert (
        nowcast["forecastPoint"].to_list()
        == forecast["timestamp"].to_list()
        == nowcast["timestamp"].to_list()
    )
    assert nowcast["prediction"].to_list() == pytest.approx(forecast["prediction"].to_list(), rel=1e-9)
    # a posted actual on the FP row changes nothing
    leaked = now.predict(pl.concat([history, cafe.slice(110, 1)]), forecast_point=nowcast["timestamp"][0])
    assert leaked["prediction"].to_list() == pytest.approx(nowcast["prediction"].to_list(), rel=1e-12)


# --- explanations and storage -------------------------------------------------------------


@pytest.mark.parametrize("kind", ["lightgbm", "ets", "linear", "seasonal_naive"])
def test_explanations_at_distance_zero_add_up_to_the_prediction(
    small_flights: pl.DataFrame, kind: str
) -> None:
    dep = _flights_dep(small_flights, [0, 2], [kind])
    frame = _request(small_flights, 3)
    result = dep.predict_result(frame, PredictOptions(max_explanations=3))
    assert not result.warnings
    assert result.frame["EXPLANATION_1_FEATURE_NAME"].null_count() == 0
    assert result.window is not None
    query, history = result.window.query, result.window.history
    strengths, base, _ = forecast_contributions(dep.model, history, query, model_spec(dep.spec))
    raw = predict_on(dep.model, history, query, model_spec(dep.spec), None)
    np.testing.assert_allclose(base + strengths.sum(axis=1), raw, rtol=1e-6, atol=1e-6)
    assert result.frame["forecastDistance"].to_list() == [0, 1, 2] * 3


def test_a_nowcasting_deployment_survives_the_registry(
    tmp_registry: tsengine.Registry, small_flights: pl.DataFrame, now03: tsengine.Deployment
) -> None:
    tmp_registry.save(now03)
    loaded = tmp_registry.load(now03.id)
    frame = _request(small_flights, 4)
    assert loaded.spec.forecast_window == (0, 3)
    assert_frame_equal(loaded.predict(frame), now03.predict(frame))
