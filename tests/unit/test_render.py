"""Wire shapes: DataRobot's time series JSON rows and CSV columns, passthrough, options."""

from __future__ import annotations

import datetime as dt
import io
import re
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import polars as pl
import pytest

import tsengine
from tsengine.errors import BadRequestError, ParameterError
from tsengine.options import PredictOptions
from tsengine.render import APPROVAL_STATUS, passthrough_frame, to_csv, to_json

FP_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
TS_KEYS = {
    "rowId",
    "seriesId",
    "forecastPoint",
    "timestamp",
    "forecastDistance",
    "originalFormatTimestamp",
    "prediction",
    "predictionValues",
}


@pytest.fixture(scope="module")
def history(small_flights: pl.DataFrame) -> pl.DataFrame:
    return small_flights.filter(pl.col("date") <= "2013-12-20")


@pytest.fixture(scope="module")
def int_id_deployment(small_flights: pl.DataFrame) -> tsengine.Deployment:
    codes = {"EWR-UA": 11, "JFK-B6": 22, "LGA-DL": 33}
    frame = small_flights.with_columns(pl.col("series").replace_strict(codes, return_dtype=pl.Int64))
    return tsengine.train(
        frame,
        target="delayed",
        datetime_column="date",
        series_id_column="series",
        models=["seasonal_naive"],
        forecast_window=[1, 3],
        feature_derivation_window=[-14, 0],
        backtests=1,
        interval_percentile=None,
    )


@pytest.fixture(scope="module")
def single_deployment(fixtures_dir: Path) -> tsengine.Deployment:
    frame = pl.read_csv(fixtures_dir / "elecdaily.csv", schema_overrides={"date": pl.String})
    return tsengine.train(
        frame.select("date", "demand"),
        target="demand",
        datetime_column="date",
        models=["seasonal_naive"],
        forecast_window=[1, 3],
        feature_derivation_window=[-14, 0],
        backtests=1,
    )


def _json(deployment: tsengine.Deployment, frame: pl.DataFrame, **options: Any) -> list[dict[str, Any]]:
    opts = PredictOptions(relax_known_in_advance=True, **options)
    result = deployment.predict_result(frame, opts)
    body = orjson.loads(to_json(deployment, result, frame, opts))
    assert list(body) == ["data"]
    rows: list[dict[str, Any]] = body["data"]
    return rows


def _csv(deployment: tsengine.Deployment, frame: pl.DataFrame, **options: Any) -> pd.DataFrame:
    opts = PredictOptions(relax_known_in_advance=True, **options)
    result = deployment.predict_result(frame, opts)
    return pd.read_csv(io.BytesIO(to_csv(deployment, result, frame, opts)))


def test_json_rows_have_datarobot_field_names_and_types(
    small_deployment: tsengine.Deployment, history: pl.DataFrame
) -> None:
    rows = _json(small_deployment, history)
    assert len(rows) == 3 * 7
    for row in rows:
        assert set(row) == TS_KEYS | {"predictionIntervals"}
        assert isinstance(row["rowId"], int)
        assert isinstance(row["seriesId"], str)
        assert FP_RE.match(row["forecastPoint"])
        assert TS_RE.match(row["timestamp"])
        assert isinstance(row["forecastDistance"], int)
        assert isinstance(row["prediction"], float)
    first = rows[0]
    assert first["forecastPoint"] == "2013-12-20T00:00:00Z"
    assert first["timestamp"] == "2013-12-21T00:00:00.000000Z"
    assert first["originalFormatTimestamp"] == "2013-12-21"
    assert first["seriesId"] == "EWR-UA"


def test_prediction_values_label_the_target_as_actual(
    small_deployment: tsengine.Deployment, history: pl.DataFrame
) -> None:
    for row in _json(small_deployment, history):
        assert row["predictionValues"] == [{"label": "delayed (actual)", "value": row["prediction"]}]


def test_prediction_intervals_are_keyed_by_percentile_and_bracket_the_prediction(
    small_deployment: tsengine.Deployment, history: pl.DataFrame
) -> None:
    for row in _json(small_deployment, history):
        interval = row["predictionIntervals"]
        assert list(interval) == ["80"]
        assert set(interval["80"]) == {"low", "high"}
        assert interval["80"]["low"] <= row["prediction"] <= interval["80"]["high"]


def test_integer_series_ids_stay_integers(
    int_id_deployment: tsengine.Deployment, small_flights: pl.DataFrame
) -> None:
    codes = {"EWR-UA": 11, "JFK-B6": 22, "LGA-DL": 33}
    frame = small_flights.with_columns(pl.col("series").replace_strict(codes, return_dtype=pl.Int64))
    rows = _json(int_id_deployment, frame)
    assert [r["seriesId"] for r in rows[::3]] == [11, 22, 33]
    assert all(type(r["seriesId"]) is int for r in rows)
    assert "predictionIntervals" not in rows[0]


def test_integer_series_ids_posted_as_text_come_back_as_integers(
    int_id_deployment: tsengine.Deployment, small_flights: pl.DataFrame
) -> None:
    codes = {"EWR-UA": "11", "JFK-B6": "22", "LGA-DL": "33"}
    frame = small_flights.with_columns(pl.col("series").replace_strict(codes))
    assert {r["seriesId"] for r in _json(int_id_deployment, frame)} == {11, 22, 33}


def test_single_series_has_null_series_id(single_deployment: tsengine.Deployment, fixtures_dir: Path) -> None:
    frame = pl.read_csv(fixtures_dir / "elecdaily.csv", schema_overrides={"date": pl.String})
    rows = _json(single_deployment, frame.select("date", "demand"))
    assert len(rows) == 3
    assert all(r["seriesId"] is None for r in rows)
    assert rows[0]["predictionValues"][0]["label"] == "demand (actual)"
    assert [r["originalFormatTimestamp"] for r in rows] == ["2015-01-01", "2015-01-02", "2015-01-03"]


def test_csv_has_datarobot_time_series_columns(
    small_deployment: tsengine.Deployment, history: pl.DataFrame
) -> None:
    table = _csv(small_deployment, history)
    assert list(table.columns) == [
        "series",
        "FORECAST_POINT",
        "date",
        "FORECAST_DISTANCE",
        "delayed (actual)_PREDICTION",
        "PREDICTION_80_PERCENTILE_LOW",
        "PREDICTION_80_PERCENTILE_HIGH",
        "DEPLOYMENT_APPROVAL_STATUS",
    ]
    assert len(table) == 21
    assert (table["DEPLOYMENT_APPROVAL_STATUS"] == APPROVAL_STATUS).all()
    assert table["FORECAST_POINT"].iloc[0] == "2013-12-20T00:00:00Z"
    assert table["date"].iloc[0] == "2013-12-21"
    assert table["FORECAST_DISTANCE"].tolist() == list(range(1, 8)) * 3


def test_csv_and_json_carry_the_same_predictions(
    small_deployment: tsengine.Deployment, history: pl.DataFrame
) -> None:
    rows = _json(small_deployment, history)
    table = _csv(small_deployment, history)
    assert table["delayed (actual)_PREDICTION"].tolist() == pytest.approx([r["prediction"] for r in rows])
    assert table["series"].tolist() == [r["seriesId"] for r in rows]


def test_csv_of_single_series_has_no_series_column(
    single_deployment: tsengine.Deployment, fixtures_dir: Path
) -> None:
    frame = pl.read_csv(fixtures_dir / "elecdaily.csv", schema_overrides={"date": pl.String})
    table = _csv(single_deployment, frame.select("date", "demand"))
    assert list(table.columns)[:2] == ["FORECAST_POINT", "date"]


def test_passthrough_columns_are_copied_by_input_row(
    small_deployment: tsengine.Deployment, small_flights: pl.DataFrame
) -> None:
    frame = small_flights.with_columns(pl.format("note-{}", pl.col("date")).alias("note"))
    posted = frame.filter(pl.col("date") <= "2013-12-27")
    rows = _json(
        small_deployment, posted, forecast_point=dt.datetime(2013, 12, 20), passthrough_columns=("note",)
    )
    assert all(r["passthroughValues"] == {"note": f"note-{r['originalFormatTimestamp']}"} for r in rows)


def test_passthrough_values_of_autoexpanded_rows_are_null(
    small_deployment: tsengine.Deployment, history: pl.DataFrame
) -> None:
    rows = _json(small_deployment, history, passthrough_columns=("scheduled",))
    assert all(r["passthroughValues"] == {"scheduled": None} for r in rows)


def test_passthrough_columns_follow_in_csv_and_clashing_names_are_suffixed(
    small_deployment: tsengine.Deployment, small_flights: pl.DataFrame
) -> None:
    posted = small_flights.filter(pl.col("date") <= "2013-12-27")
    table = _csv(
        small_deployment,
        posted,
        forecast_point=dt.datetime(2013, 12, 20),
        passthrough_columns=("scheduled", "series"),
    )
    assert list(table.columns)[-2:] == ["scheduled", "series_passthrough"]
    assert (table["series_passthrough"] == table["series"]).all()


def test_passthrough_all_copies_every_input_column(
    small_deployment: tsengine.Deployment, history: pl.DataFrame
) -> None:
    out = passthrough_frame(history, PredictOptions(passthrough_all=True))
    assert out is not None
    assert out.columns == history.columns


def test_unknown_passthrough_column_is_a_bad_request_naming_it(
    small_deployment: tsengine.Deployment, history: pl.DataFrame
) -> None:
    with pytest.raises(
        BadRequestError, match=r"passthroughColumns 'nope' not found.*'series', 'date'"
    ) as info:
        _json(small_deployment, history, passthrough_columns=("scheduled", "nope"))
    assert info.value.status == 400


def test_passthrough_of_a_column_named_rowid(
    small_deployment: tsengine.Deployment, history: pl.DataFrame
) -> None:
    frame = history.with_columns(pl.lit(7).alias("rowId"), pl.lit("x").alias("prediction"))
    rows = _json(small_deployment, frame, passthrough_columns=("rowId", "prediction"))
    posted = [r for r in rows if r["rowId"] < frame.height]
    assert all(r["passthroughValues"] == {"rowId": 7, "prediction": "x"} for r in posted)
    assert all(isinstance(r["prediction"], float) for r in rows)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {
                "forecast_point": dt.datetime(2018, 1, 1),
                "start": dt.datetime(2018, 1, 1),
                "end": dt.datetime(2018, 2, 1),
            },
            "forecastPoint cannot be combined with predictionsStartDate/predictionsEndDate",
        ),
        (
            {"forecast_point": dt.datetime(2018, 1, 1), "end": dt.datetime(2018, 2, 1)},
            "forecastPoint cannot be combined",
        ),
        ({"start": dt.datetime(2018, 1, 1)}, "predictionsStartDate was given without predictionsEndDate"),
        ({"end": dt.datetime(2018, 1, 1)}, "predictionsEndDate was given without predictionsStartDate"),
        (
            {"start": dt.datetime(2018, 2, 1), "end": dt.datetime(2018, 1, 1)},
            r"predictionsStartDate \(2018-02-01T00:00:00\) must be before predictionsEndDate \(2018-01-01T00:00:00\)",
        ),
        (
            {"start": dt.datetime(2018, 1, 1), "end": dt.datetime(2018, 1, 1)},
            "must be before predictionsEndDate",
        ),
        (
            {"passthrough_all": True, "passthrough_columns": ("a",)},
            "passthroughColumns and passthroughColumnsSet cannot both be passed",
        ),
        ({"passthrough_columns": (" ",)}, "passthroughColumns must not be blank"),
        ({"max_explanations": -1}, "maxExplanations must be 0 or more, got -1"),
        (
            {"threshold_low": 5.0, "threshold_high": 1.0},
            r"thresholdLow \(5.0\) must not exceed thresholdHigh \(1.0\)",
        ),
    ],
)
def test_invalid_option_combinations_are_parameter_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ParameterError, match=message) as info:
        PredictOptions(**options).validated()
    assert info.value.status == 422


def test_valid_options_pass_and_select_the_mode() -> None:
    forecast = PredictOptions(forecast_point=dt.datetime(2018, 1, 1)).validated()
    assert not forecast.is_historical
    historical = PredictOptions(start=dt.datetime(2018, 1, 1), end=dt.datetime(2018, 1, 2)).validated()
    assert historical.is_historical
    assert historical.with_(relax_known_in_advance=True).relax_known_in_advance


def test_times_given_as_text_dates_or_aware_datetimes_become_naive_utc() -> None:
    aware = dt.datetime(2018, 1, 2, 1, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    options = PredictOptions(start="2018-01-01", end=aware).validated()  # type: ignore[arg-type]
    assert (options.start, options.end) == (dt.datetime(2018, 1, 1), dt.datetime(2018, 1, 2))
    day = PredictOptions(forecast_point=dt.date(2018, 1, 3)).validated()  # type: ignore[arg-type]
    assert day.forecast_point == dt.datetime(2018, 1, 3)
    with pytest.raises(ParameterError, match="forecastPoint"):
        PredictOptions(forecast_point="yesterday").validated()  # type: ignore[arg-type]


def test_deployment_rejects_invalid_options_before_reading_data(
    small_deployment: tsengine.Deployment,
) -> None:
    with pytest.raises(ParameterError, match="forecastPoint cannot be combined"):
        small_deployment.predict(
            pl.DataFrame(), forecast_point="2013-12-20", start="2013-12-01", end="2013-12-10"
        )
