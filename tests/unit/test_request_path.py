"""The fast request path gives the answers of the general one, byte for byte.

A one-series request takes numpy shortcuts polars' queries would otherwise
plan (ISO dates, series codes, calendar parts, the small CSV/JSON writers),
and the window grid is laid out once per request (:class:`Layout`) and shared
by the model, the interval scale and the explanations; a large request is
scored and rendered in pieces.  Each shortcut is checked here against the
general code it stands in for.
"""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import numpy as np
import orjson
import polars as pl
import pytest

import tsengine
from tsengine.backtest import origin_scale
from tsengine.deployment import Prediction
from tsengine.features import FP, Layout, calendar_parts, grid_timestamps
from tsengine.grid import OriginGrid
from tsengine.models import lgbm
from tsengine.options import PredictOptions
from tsengine.render import timeseries as render
from tsengine.render import to_csv, to_json
from tsengine.timestep import TimeStep, parse_datetimes
from tsengine.validate import IDX, SID, _civil_days, _iso_dates, format_iso, sid_codes
from tsengine.window import _fmt_index, _index_labels

US_PER_DAY = 86_400_000_000


@pytest.fixture(scope="module")
def history(small_flights: pl.DataFrame) -> pl.DataFrame:
    return small_flights.filter(pl.col("date") <= "2013-12-20")


@pytest.fixture(scope="module")
def lightgbm_deployment(small_flights: pl.DataFrame) -> tsengine.Deployment:
    return tsengine.train(
        small_flights,
        target="delayed",
        datetime_column="date",
        series_id_column="series",
        known_in_advance=["scheduled", "holiday"],
        models=["lightgbm"],
        forecast_window=[1, 7],
        feature_derivation_window=[-28, 0],
        backtests=1,
    )


# --------------------------------------------------------------- shortcuts


@pytest.mark.parametrize(
    "values",
    [
        ["2013-01-01", "2013-12-31", "2000-02-29"],
        [" 2013-01-01", "2013-01-02"],  # stripped by the full parser
        ["2013-1-01", "2013-01-02"],
        ["2013-02-30"],
        ["0999-01-01"],
        ["2013-01-01T00:00", "2013-01-02"],
        ["", "2013-01-02"],
    ],
)
def test_iso_dates_equal_the_full_parser_or_step_aside(values: list[str]) -> None:
    series = pl.Series("d", values)
    fast = _iso_dates(series)
    if fast is None:
        return
    parsed, _exact = fast
    expected, fmt = parse_datetimes(series, column="d", preferred_format="%Y-%m-%d")
    assert fmt == "%Y-%m-%d"
    assert parsed.equals(expected)
    assert parsed.dtype == pl.Datetime("us")


def _digits(text: np.ndarray) -> np.ndarray:
    return text.astype("U10").view(np.uint32).reshape(-1, 10).astype(np.int64) - ord("0")


def test_civil_days_equal_numpy_on_every_four_digit_year_date() -> None:
    days = np.arange(np.datetime64("1000-01-01").astype(int), np.datetime64("10000-01-01").astype(int))
    text = np.datetime_as_string(days.astype("datetime64[D]"), unit="D")
    np.testing.assert_array_equal(_civil_days(_digits(text)), days)
    for impossible in ("2013-02-29", "1900-02-29", "2012-02-30", "2013-13-01", "2013-00-10", "2013-04-31"):
        assert _civil_days(_digits(np.array([impossible]))) is None, impossible


def test_iso_dates_of_a_large_column_equal_the_full_parser() -> None:
    days = np.arange(6000) % 700 + 15_000
    text = pl.Series("d", np.datetime_as_string(days.astype("datetime64[D]")).tolist())
    fast = _iso_dates(text)
    assert fast is not None
    assert fast[0].equals(parse_datetimes(text, column="d", preferred_format="%Y-%m-%d")[0])


@pytest.mark.parametrize(
    "fmt",
    ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S%.6fZ"],
)
def test_format_iso_writes_what_strftime_writes(fmt: str) -> None:
    rng = np.random.default_rng(0)
    days = rng.integers(-354_000, 2_900_000, 500)
    micros = days * US_PER_DAY + (rng.integers(0, 86_400, 500) * 1_000_000 if "%H" in fmt else 0)
    text = format_iso(micros, fmt)
    assert text is not None
    expected = pl.Series(micros).cast(pl.Datetime("us")).dt.strftime(fmt).to_list()
    assert text.tolist() == expected
    assert format_iso(np.array([-40_000_000 * US_PER_DAY]), fmt) is None  # before year 1000


def test_index_labels_match_format_datetimes() -> None:
    class Spec:
        time_step = TimeStep("hour")

    idx = np.arange(370_000, 370_050)
    for fmt in ("%Y-%m-%d %H:%M:%S", "%d/%m/%Y %H:%M"):
        fast = _index_labels(Spec(), idx, fmt, None)  # type: ignore[arg-type]
        slow = pl.DataFrame({IDX: idx}).select(_fmt_index(Spec(), fmt, None)).to_series()  # type: ignore[arg-type]
        assert fast.to_list() == slow.to_list()


@pytest.mark.parametrize(
    "step", [TimeStep("day"), TimeStep("hour"), TimeStep("minute", 15), TimeStep("second")]
)
def test_calendar_parts_and_timestamps_equal_polars(step: TimeStep) -> None:
    parts = ("second", "minute", "hour", "weekday", "monthday", "month", "yearday", "quarter")
    rng = np.random.default_rng(1)
    idx = rng.integers(
        -2_000_000_000 // (step.micros // 1_000_000), 8_000_000_000 // (step.micros // 1_000_000), 300
    )
    t = step.from_index(pl.col(IDX))
    expected = pl.DataFrame({IDX: idx}).select(
        t.dt.second(),
        t.dt.minute().alias("m"),
        t.dt.hour().alias("h"),
        t.dt.weekday().alias("w"),
        t.dt.day().alias("d"),
        t.dt.month().alias("mo"),
        t.dt.ordinal_day().alias("y"),
        t.dt.quarter().alias("q"),
    )
    for got, column in zip(calendar_parts(step, parts, idx), expected.get_columns(), strict=True):
        np.testing.assert_array_equal(got, column.to_numpy().astype(np.float64))
    stamps = pl.DataFrame({IDX: idx}).select(t).to_series()
    assert grid_timestamps(step, idx).to_list() == stamps.to_list()


@pytest.mark.parametrize(
    "ids",
    [
        ["b", "b", "a", "a", "c"],
        ["b", "a", "b"],  # a series in two runs
        [f"s{i % 7}" for i in range(5000)],  # interleaved, large
        [f"s{i // 700}" for i in range(5000)],  # runs, large
    ],
)
def test_series_codes_are_dense_and_consistent(ids: list[str]) -> None:
    codes = sid_codes(pl.Series(ids))
    assert sorted(set(codes.tolist())) == list(range(len(set(ids))))
    pairs = set(zip(ids, codes.tolist(), strict=True))
    assert len(pairs) == len(set(ids))


# ------------------------------------------------------------ the layout


def test_one_layout_serves_the_model_scale_and_explanations(
    lightgbm_deployment: tsengine.Deployment, history: pl.DataFrame
) -> None:
    deployment = lightgbm_deployment
    window = deployment.window(history, PredictOptions(relax_known_in_advance=True))
    query, past = window.query, window.history
    layout = Layout.build(past, query, deployment.spec.fdw, codes=window.codes, keep_designs=True)
    model = deployment.model
    assert isinstance(model, lgbm.LightGBMModel)
    shared = model.design(past, query, deployment.spec, layout=layout)
    alone = model.design(past, query, deployment.spec)
    np.testing.assert_array_equal(shared.x, alone.x)
    assert model.design(past, query, deployment.spec, layout=layout) is shared  # kept for explanations
    fp = query.get_column(FP).to_numpy()
    np.testing.assert_array_equal(
        origin_scale(past, query.get_column(SID), fp, deployment.spec.fdw, grid=layout.grid()),
        origin_scale(past, query.get_column(SID), fp, deployment.spec.fdw),
    )
    grid = OriginGrid.build(past, query.get_column(SID), fp, deployment.spec.fdw)
    np.testing.assert_array_equal(layout.grid().mean(width=7), grid.mean(width=7))


def test_a_large_query_scored_in_pieces_predicts_the_same(
    lightgbm_deployment: tsengine.Deployment, history: pl.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = PredictOptions(start=dt.datetime(2013, 10, 1), end=dt.datetime(2013, 12, 20))
    whole = lightgbm_deployment.predict_result(history, options).frame
    monkeypatch.setattr(lgbm, "PREDICT_CHUNK_ROWS", 37)
    pieces = lightgbm_deployment.predict_result(history, options).frame
    assert whole.height > 100
    assert pieces.equals(whole)


# -------------------------------------------------------------- rendering


def _result(rows: int, values: np.ndarray, ids: list[str]) -> Any:
    class Spec:
        series_id_column = "store"
        datetime_column = "date"
        target = "sales"

    class Deployment:
        kind = "timeseries"
        spec = Spec()

    fp = pl.Series([15_000 * US_PER_DAY] * rows).cast(pl.Datetime("us"))
    stamps = pl.Series((15_000 + np.arange(rows) % 40 + 1) * US_PER_DAY).cast(pl.Datetime("us"))
    frame = pl.DataFrame(
        [
            pl.Series("rowId", np.arange(rows)),
            pl.Series("seriesId", ids),
            fp.alias("forecastPoint"),
            stamps.alias("timestamp"),
            pl.Series("forecastDistance", np.arange(rows) % 40 + 1),
            stamps.dt.strftime("%Y-%m-%d").alias("originalFormatTimestamp"),
            pl.Series("prediction", values),
            pl.Series("predictionIntervalLow", values - 1.5),
            pl.Series("predictionIntervalHigh", values + 1.5),
        ]
    )
    return Deployment(), Prediction(frame, interval_percentile=80)


@pytest.mark.parametrize(
    "values",
    [
        np.array([0.0, -0.0, 1.0, 123.456, 1e-4, 99999.5, 1.5e15, -2.25]),
        np.array([1e-5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]),  # exponent form: polars writes it
        np.array([1e16, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]),
        np.array([np.nan, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]),
    ],
)
@pytest.mark.parametrize(
    "ids", [["a", "b", "c", "d", "e", "f", "g", "h"], ["a,b", "q", "", "x", 'y"', "z", "1", "2"]]
)
def test_small_csv_and_json_are_polars_bytes(values: np.ndarray, ids: list[str]) -> None:
    deployment, result = _result(len(values), values, ids)
    options = PredictOptions()
    frame = pl.DataFrame({"x": [1]})
    table = render.csv_table(deployment, result, frame, options)
    assert to_csv(deployment, result, frame, options) == table.write_csv().encode()
    out = result.frame
    rows = out.select(render._ts_json_columns(deployment, result, []))
    assert to_json(deployment, result, frame, options) == b'{"data":' + rows.write_json().encode() + b"}"


def test_large_answers_render_in_pieces_that_join_to_the_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = 10_000
    rng = np.random.default_rng(3)
    deployment, result = _result(rows, rng.normal(100, 30, rows), [f"s{i // 40}" for i in range(rows)])
    options = PredictOptions()
    frame = pl.DataFrame({"x": [1]})
    monkeypatch.setattr(render, "RENDER_CHUNK_ROWS", 777)
    csv_parts = render.csv_parts(deployment, result, frame, options)
    json_parts = render.json_parts(deployment, result, frame, options)
    assert len(csv_parts) > 1
    assert len(json_parts) > 1
    whole = render.csv_table(deployment, result, frame, options).write_csv().encode()
    assert b"".join(csv_parts) == whole
    table = result.frame.select(render._ts_json_columns(deployment, result, []))
    assert b"".join(json_parts) == b'{"data":' + table.write_json().encode() + b"}"
    assert len(orjson.loads(b"".join(json_parts))["data"]) == rows
    assert pl.read_csv(io.BytesIO(whole)).height == rows
