"""The prediction pipeline end to end in Python: modes, inputs, and agreement with backtests."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
from polars.testing import assert_frame_equal

import tsengine
from tsengine.backtest import backtest_origins, run_backtest
from tsengine.deployment import OUTPUT_COLUMNS
from tsengine.errors import (
    InsufficientHistoryError,
    KnownInAdvanceError,
    MissingColumnError,
    OffGridError,
    ParameterError,
    ValidationError,
)
from tsengine.features import FP, D
from tsengine.models import MODELS, ForecastModel
from tsengine.validate import IDX, SID, canonicalize, place_on_grid

LAST = "2013-12-20"
LAST_DT = dt.datetime(2013, 12, 20)


@pytest.fixture(scope="module")
def history(small_flights: pl.DataFrame) -> pl.DataFrame:
    return small_flights.filter(pl.col("date") <= LAST)


def _forecast_rows_like_imputation(history: pl.DataFrame, days: int) -> pl.DataFrame:
    """Forecast rows carrying each series' last known KIA values, as the relaxed check imputes."""
    last = history.group_by("series", maintain_order=True).agg(pl.col("scheduled", "holiday").last())
    dates = pl.DataFrame(
        {"date": [(LAST_DT + dt.timedelta(days=k)).strftime("%Y-%m-%d") for k in range(1, days + 1)]}
    )
    rows = last.join(dates, how="cross").with_columns(pl.lit(None, pl.Int64).alias("delayed"))
    return rows.select(history.columns)


def test_history_only_returns_series_times_horizon_rows_with_correct_timestamps(
    small_deployment: tsengine.Deployment, history: pl.DataFrame
) -> None:
    out = small_deployment.predict(history, relax_known_in_advance=True)
    assert out.columns == [*OUTPUT_COLUMNS, "predictionIntervalLow", "predictionIntervalHigh"]
    assert out.height == 3 * 7
    assert out["seriesId"].to_list() == [s for s in ("EWR-UA", "JFK-B6", "LGA-DL") for _ in range(7)]
    assert out["forecastDistance"].to_list() == list(range(1, 8)) * 3
    assert (out["forecastPoint"] == LAST_DT).all()
    expected = [LAST_DT + dt.timedelta(days=d) for d in range(1, 8)] * 3
    assert out["timestamp"].to_list() == expected
    assert out["originalFormatTimestamp"].to_list() == [t.strftime("%Y-%m-%d") for t in expected]
    assert out["rowId"].to_list() == list(range(history.height, history.height + 21))
    assert out["prediction"].is_finite().all()


def test_explicit_forecast_rows_give_the_same_predictions_as_autoexpansion(
    small_deployment: tsengine.Deployment, history: pl.DataFrame
) -> None:
    auto = small_deployment.predict(history, relax_known_in_advance=True)
    posted = pl.concat([history, _forecast_rows_like_imputation(history, 7)])
    explicit = small_deployment.predict(posted)
    assert_frame_equal(explicit.drop("rowId"), auto.drop("rowId"))


def test_targets_posted_on_forecast_rows_are_ignored(
    small_deployment: tsengine.Deployment, small_flights: pl.DataFrame
) -> None:
    posted = small_flights.filter(pl.col("date") <= "2013-12-27")
    with_targets = small_deployment.predict(posted, forecast_point=LAST_DT)
    blanked = posted.with_columns(
        pl.when(pl.col("date") > LAST).then(None).otherwise(pl.col("delayed")).alias("delayed")
    )
    assert_frame_equal(small_deployment.predict(blanked, forecast_point=LAST), with_targets)
    scrambled = posted.with_columns(
        pl.when(pl.col("date") > LAST).then(pl.lit(10_000)).otherwise(pl.col("delayed")).alias("delayed")
    )
    assert_frame_equal(small_deployment.predict(scrambled, forecast_point=LAST_DT), with_targets)


def test_pandas_and_polars_inputs_give_identical_output(
    small_deployment: tsengine.Deployment, history: pl.DataFrame
) -> None:
    from_polars = small_deployment.predict(history, relax_known_in_advance=True)
    from_pandas = small_deployment.predict(history.to_pandas(), relax_known_in_advance=True)
    assert_frame_equal(from_pandas, from_polars)


def test_pandas_datetime_column_gives_the_same_predictions(
    small_deployment: tsengine.Deployment, history: pl.DataFrame
) -> None:
    frame = history.to_pandas()
    frame["date"] = pd.to_datetime(frame["date"])
    out = small_deployment.predict(frame, relax_known_in_advance=True)
    assert_frame_equal(out, small_deployment.predict(history, relax_known_in_advance=True))


def test_forecast_point_accepts_strings_dates_and_datetimes(
    small_deployment: tsengine.Deployment, small_flights: pl.DataFrame
) -> None:
    posted = small_flights.filter(pl.col("date") <= "2013-12-27")
    expected = small_deployment.predict(posted, forecast_point=LAST_DT)
    for value in ("2013-12-20", "2013-12-20T00:00:00Z", "2013-12-20T01:00:00+01:00", dt.date(2013, 12, 20)):
        assert_frame_equal(small_deployment.predict(posted, forecast_point=value), expected)


def test_earlier_forecast_point_predicts_from_there(
    small_deployment: tsengine.Deployment, small_flights: pl.DataFrame
) -> None:
    out = small_deployment.predict(small_flights, forecast_point="2013-11-01")
    assert (out["forecastPoint"] == dt.datetime(2013, 11, 1)).all()
    assert out["timestamp"].min() == dt.datetime(2013, 11, 2)
    rows = small_flights.with_row_index("rowId").filter(pl.col("date") == "2013-11-02")
    assert (
        out.filter(pl.col("forecastDistance") == 1)["rowId"].to_list()
        == rows["rowId"].cast(pl.Int64).to_list()
    )


def test_historical_mode_predicts_posted_rows_in_the_range(
    small_deployment: tsengine.Deployment, small_flights: pl.DataFrame
) -> None:
    out = small_deployment.predict(small_flights, start="2013-12-01", end="2013-12-08")
    assert out["timestamp"].min() == dt.datetime(2013, 12, 1)
    assert out["timestamp"].max() == dt.datetime(2013, 12, 7)
    assert out.height == 3 * 7 * 7
    shifted = out.select(
        pl.col("forecastPoint") + pl.duration(days=pl.col("forecastDistance")) == pl.col("timestamp")
    )
    assert shifted.to_series().all()
    assert out.group_by("seriesId", "timestamp").len()["len"].to_list() == [7] * 21


def test_historical_mode_with_client_defaults_covers_the_whole_dataset(
    small_deployment: tsengine.Deployment, small_flights: pl.DataFrame
) -> None:
    out = small_deployment.predict(
        small_flights, start="1900-01-01T00:00:00.000000Z", end="2262-04-11T23:47:16.854775+00:00"
    )
    assert out["timestamp"].max() == dt.datetime(2013, 12, 31)
    assert out["forecastPoint"].min() >= dt.datetime(2013, 8, 4)


def test_unseen_series_are_served(small_deployment: tsengine.Deployment, history: pl.DataFrame) -> None:
    new = history.filter(pl.col("series") == "JFK-B6").with_columns(pl.lit("NEW-XX").alias("series"))
    out = small_deployment.predict(pl.concat([history, new]), relax_known_in_advance=True)
    assert out.filter(pl.col("seriesId") == "NEW-XX").height == 7
    assert out["prediction"].is_finite().all()


def test_missing_kia_without_relax_names_feature_and_series(
    small_deployment: tsengine.Deployment, history: pl.DataFrame
) -> None:
    with pytest.raises(
        KnownInAdvanceError, match=r"'scheduled', 'holiday' missing on forecast rows: series 'EWR-UA'"
    ):
        small_deployment.predict(history)


def test_missing_column_is_named(small_deployment: tsengine.Deployment, history: pl.DataFrame) -> None:
    with pytest.raises(MissingColumnError, match="missing required column\\(s\\) 'scheduled'"):
        small_deployment.predict(history.drop("scheduled"), relax_known_in_advance=True)


def test_short_history_names_series_and_counts(
    small_deployment: tsengine.Deployment, history: pl.DataFrame
) -> None:
    short = history.filter((pl.col("series") != "LGA-DL") | (pl.col("date") > "2013-12-15"))
    with pytest.raises(InsufficientHistoryError) as info:
        small_deployment.predict(short, relax_known_in_advance=True)
    assert "series 'LGA-DL' has 5" in info.value.message
    assert "the model needs 14" in info.value.message
    assert "EWR-UA" not in info.value.message


def test_off_grid_forecast_point_is_rejected(
    small_deployment: tsengine.Deployment, history: pl.DataFrame
) -> None:
    with pytest.raises(
        OffGridError, match="forecastPoint 2013-12-20T12:00:00 is not on the deployment's 1 day grid"
    ):
        small_deployment.predict(history, forecast_point="2013-12-20T12:00:00", relax_known_in_advance=True)


def test_unparseable_forecast_point_is_a_parameter_error(small_deployment: tsengine.Deployment) -> None:
    with pytest.raises(ParameterError, match="forecastPoint: 'soon' is not a datetime"):
        small_deployment.predict(pl.DataFrame(), forecast_point="soon")


def test_unsupported_input_type_is_a_parameter_error(small_deployment: tsengine.Deployment) -> None:
    with pytest.raises(ParameterError, match="expected a polars or pandas DataFrame, got dict"):
        small_deployment.predict({"date": ["2013-12-01"]})


def test_records_are_accepted(small_deployment: tsengine.Deployment, history: pl.DataFrame) -> None:
    out = small_deployment.predict(history.to_dicts(), relax_known_in_advance=True)
    assert_frame_equal(out, small_deployment.predict(history, relax_known_in_advance=True))


def test_empty_range_is_a_validation_error(
    small_deployment: tsengine.Deployment, history: pl.DataFrame
) -> None:
    with pytest.raises(ValidationError, match=r"no rows in \[2014-01-01T00:00:00, 2014-02-01T00:00:00\)"):
        small_deployment.predict(history, start="2014-01-01", end="2014-02-01")


def test_info_summarises_spec_and_training(small_deployment: tsengine.Deployment) -> None:
    info = small_deployment.info()
    assert info["id"] == "small-flights"
    assert info["time_step"] == "1 day"
    assert info["forecast_window"] == [1, 7]
    assert info["feature_derivation_window"] == [-28, 0]
    assert info["known_in_advance"] == ["scheduled", "holiday"]
    assert info["interval_percentile"] == 80
    assert info["training"]["series"] == 3
    assert {row["model"] for row in info["leaderboard"]} == {"lightgbm", "seasonal_naive"}


def test_input_schema_overrides_keep_datetimes_and_string_ids_as_text(
    small_deployment: tsengine.Deployment,
) -> None:
    assert small_deployment.input_schema_overrides() == {"date": pl.String(), "series": pl.String()}


# --- agreement with the training-time backtest ------------------------------------------


def _canonical_training(deployment: tsengine.Deployment, frame: pl.DataFrame) -> pl.DataFrame:
    spec = deployment.spec
    canonical = canonicalize(
        frame,
        datetime_column=spec.datetime_column,
        target=spec.target,
        series_id_column=spec.series_id_column,
        numeric_features=spec.known_in_advance,
    )
    return place_on_grid(canonical.frame, spec.time_step, datetime_column="date", series_label="series")


@pytest.mark.parametrize("kind", ["lightgbm", "seasonal_naive"])
def test_predicting_a_window_of_training_data_reproduces_the_backtest(
    small_deployment: tsengine.Deployment, small_flights: pl.DataFrame, kind: str
) -> None:
    spec = small_deployment.spec
    canon = _canonical_training(small_deployment, small_flights)
    origins = backtest_origins(canon, spec, 2)
    assert len(origins) == 2
    fitted: dict[int, ForecastModel] = {}

    def fit(past: pl.DataFrame) -> ForecastModel:
        model = MODELS[kind].fit(
            past, spec, seed=0, **small_deployment.model.refit_kwargs() if kind == "lightgbm" else {}
        )
        fitted[int(past[IDX].max())] = model  # type: ignore[arg-type]
        return model

    backtest = run_backtest(fit, canon, spec, origins, name=kind)
    for origin in origins:
        fp = spec.time_step.timestamp_of(origin)
        end = fp + dt.timedelta(days=spec.forecast_window[1])
        posted = small_flights.filter(pl.col("date") <= end.strftime("%Y-%m-%d"))
        deployment = dataclasses.replace(small_deployment, model=fitted[origin])
        served = deployment.predict(posted, forecast_point=fp)
        expected = backtest.rows.filter(pl.col(FP) == origin).sort(SID, D)
        got = served.sort("seriesId", "forecastDistance")
        assert got.height == expected.height == 3 * 7
        assert got["seriesId"].to_list() == expected[SID].to_list()
        assert got["forecastDistance"].to_list() == expected[D].to_list()
        np.testing.assert_allclose(
            got["prediction"].to_numpy(), expected["yhat"].to_numpy(), rtol=1e-9, atol=1e-9
        )


@pytest.mark.slow
def test_demo_data_history_only_and_explicit_forecast_rows_agree(flights_csv: Path) -> None:
    frame = pl.read_csv(flights_csv, schema_overrides={"date": pl.String})
    deployment = tsengine.train(
        frame,
        target="delayed",
        datetime_column="date",
        series_id_column="series",
        known_in_advance=["scheduled", "holiday"],
    )
    c = deployment.spec.forecast_window[1]
    history = frame.filter(pl.col("date") <= LAST)
    auto = deployment.predict(history, relax_known_in_advance=True)
    assert auto.height == 12 * c
    assert auto["timestamp"].max() == LAST_DT + dt.timedelta(days=c)
    explicit = deployment.predict(pl.concat([history, _forecast_rows_like_imputation(history, c)]))
    assert_frame_equal(explicit.drop("rowId"), auto.drop("rowId"))


def test_quarter_labels_round_trip_through_training_and_autoexpansion() -> None:
    """R's yearquarter / pandas' Period labels (``1998 Q1``) in, the same labels out."""
    frame = pl.read_csv(Path(__file__).resolve().parents[2] / "fixtures" / "tourism_quarterly.csv")
    frame = frame.with_columns(
        pl.format(
            "{} Q{}",
            pl.col("quarter_start").str.slice(0, 4),
            (pl.col("quarter_start").str.slice(5, 2).cast(pl.Int32) + 2) // 3,
        ).alias("quarter")
    ).drop("quarter_start", "occupancy", "cpi")
    dep = tsengine.train(
        frame, target="takings", datetime_column="quarter", series_id_column="state", models=["ets"]
    )
    assert dep.spec.datetime_format == "%Y Q%q"
    assert dep.spec.time_step.describe() == "1 quarter"
    out = dep.predict(frame.filter(pl.col("state") == frame["state"][0]))
    assert (
        out["originalFormatTimestamp"].to_list()
        == ["2016 Q3", "2016 Q4", *(f"{y} Q{q}" for y in (2017, 2018) for q in range(1, 5))][:8]
    )
    assert out["timestamp"][0] == dt.datetime(2016, 7, 1)


def test_iso_week_labels_round_trip_through_training_and_autoexpansion() -> None:
    """Planning calendars' week labels (``2013-W27``) in, the same labels out, across the new year."""
    daily = pl.read_csv(
        Path(__file__).resolve().parents[2] / "fixtures" / "flights_daily.csv", try_parse_dates=True
    )
    weekly = (
        daily.filter(pl.col("series").is_in(["EWR-UA", "JFK-B6"]))
        .group_by("series", pl.col("date").dt.truncate("1w").alias("monday"))
        .agg(pl.col("delayed").sum(), pl.len().alias("days"))
        .filter(pl.col("days") == 7)  # whole weeks only
        .with_columns(pl.col("monday").dt.strftime("%G-W%V").alias("week"))
        .select("series", "week", "delayed")
        .sort("series", "week")
    )
    dep = tsengine.train(
        weekly,
        target="delayed",
        datetime_column="week",
        series_id_column="series",
        models=["ets"],
        forecast_window=[1, 4],
        backtests=2,
    )
    assert dep.spec.datetime_format == "%G-W%V"
    assert dep.spec.time_step.describe() == "1 week"
    history = weekly.filter(pl.col("week") <= "2013-W50")
    out = dep.predict(history)
    assert out["originalFormatTimestamp"].unique(maintain_order=True).to_list() == [
        "2013-W51",
        "2013-W52",
        "2014-W01",
        "2014-W02",
    ]
    assert out["timestamp"][0] == dt.datetime(2013, 12, 16)
    assert out["forecastPoint"][0] == dt.datetime(2013, 12, 9)


def test_integer_series_ids_posted_as_floats_name_the_same_series() -> None:
    """pandas writes an int id column with gaps as ``3.0``: CSV (read as text) and JSON (floats) alike."""
    from api.parsing import Payload, to_frame

    frame = pl.read_csv(Path(__file__).resolve().parents[2] / "fixtures" / "tourism_quarterly.csv")
    codes = {s: k for k, s in enumerate(frame["state"].unique(maintain_order=True).to_list())}
    frame = frame.with_columns(pl.col("state").replace_strict(codes, return_dtype=pl.Int64)).drop(
        "occupancy", "cpi"
    )
    dep = tsengine.train(
        frame, target="takings", datetime_column="quarter_start", series_id_column="state", models=["ets"]
    )
    expected = dep.predict(frame)
    as_text = frame.with_columns(pl.format("{}.0", pl.col("state")).alias("state"))
    body = to_frame(
        Payload(as_text.write_csv().encode(), "text/csv"), schema_overrides=dep.input_schema_overrides()
    )
    for posted in (body, frame.with_columns(pl.col("state").cast(pl.Float64))):
        got = dep.predict(posted)
        assert got["seriesId"].to_list() == expected["seriesId"].to_list()
        np.testing.assert_allclose(got["prediction"].to_numpy(), expected["prediction"].to_numpy())


def test_default_id_is_a_valid_registry_id(tmp_path: Path, small_flights: pl.DataFrame) -> None:
    frame = small_flights.rename({"delayed": "Delayed flights (>15 min)"})
    dep = tsengine.train(
        frame,
        target="Delayed flights (>15 min)",
        datetime_column="date",
        series_id_column="series",
        models=["seasonal_naive"],
    )
    assert dep.id == "Delayed-flights-15-min-forecast"
    tsengine.Registry(tmp_path).save(dep)


def test_a_nonnegative_target_is_never_forecast_below_zero() -> None:
    t = np.arange(120)
    frame = pl.DataFrame(
        {
            "month": [f"{2000 + k // 12}-{k % 12 + 1:02d}-01" for k in t],
            "y": np.maximum(0.0, 30.0 - 0.4 * t),  # a declining count that reaches zero
        }
    )
    dep = tsengine.train(frame, target="y", datetime_column="month", models=["lightgbm_diff", "ets"])
    assert dep.metadata["training"]["nonnegative"]
    out = dep.predict(frame)
    assert (out["prediction"] >= 0).all()
    assert (out["predictionIntervalLow"] >= 0).all()
    signed = tsengine.train(
        frame.with_columns(pl.col("y") - 1), target="y", datetime_column="month", models=["ets"]
    )
    assert not signed.metadata["training"]["nonnegative"]


@pytest.mark.parametrize("months", [36, 16])
def test_short_history_still_gets_a_servable_deployment_with_intervals(
    months: int, fixtures_dir: Path
) -> None:
    """Three years (or 16 months) of monthly data and a 12-month horizon: too short for the default 36-month window.

    The default window is shortened until one backtest origin fits (36 months:
    22 steps), or to the floor of one season plus one (16 months: no origin at
    all, ETS by default with random-walk intervals); either way the deployment
    serves the very history it was trained on, with interval columns.
    """
    data = pl.read_csv(fixtures_dir / "monthly_retail_single.csv").head(months)
    dep = tsengine.train(data, target="turnover", datetime_column="month")
    a = -dep.spec.feature_derivation_window[0]
    info = dep.info()
    assert a < 36
    assert "shortened" in dep.metadata["training"]["window_note"]
    if months == 36:
        assert a == 22
        assert len(dep.metadata["training"]["backtest_origins"]) == 1
        assert "intervals_note" not in dep.metadata["training"]
    else:
        assert a == 13
        assert dep.metadata["training"]["backtest_origins"] == []
        assert dep.model.kind == "ets"
        assert "no candidate could be backtested" in info["selection"]["reason"]
        assert "random-walk" in dep.metadata["training"]["intervals_note"]
    out = dep.predict(data)
    assert out.height == 12
    low, high = out.get_column("predictionIntervalLow"), out.get_column("predictionIntervalHigh")
    pred = out.get_column("prediction")
    assert ((low <= pred) & (pred <= high) & (high > low)).all()
