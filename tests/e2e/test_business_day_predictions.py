"""Business-day data end to end: trading days in, trading days out.

A deployment trained through the CLI on the S&P 500's trading days
(``fixtures/sp500_trading_days.csv``) infers a Monday-to-Friday grid; the real
server, datarobot-predict and a batch job must then forecast trading days only
(the step after a Friday is the Monday), agree with one in-process predict,
and refuse a weekend timestamp with a 4xx naming it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
from datarobot_predict import TimeSeriesType
from datarobot_predict import deployment as dr_deployment
from local_jobs import run_file_job
from typer.testing import CliRunner

import tsengine
from api import Settings
from api.testing import running
from tsengine.cli import app

from http_flights import post_csv

pytestmark = pytest.mark.filterwarnings(
    "ignore:Using an empty collection for 'allowed_methods':FutureWarning"
)

DEPLOYMENT = "sp500-trading-days"
FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "sp500_trading_days.csv"
LAST = "2015-12-18"  # a Friday: the forecast's first step is Monday 21 December
HORIZON = 10


def _weekdays(texts: list[str]) -> set[int]:
    return {dt.date.fromisoformat(t[:10]).isoweekday() for t in texts}


@pytest.fixture(scope="module")
def request_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The last 80 trading days up to LAST: history only, so the window is autoexpanded."""
    frame = pl.read_csv(FIXTURE, schema_overrides={"date": pl.String}).filter(pl.col("date") <= LAST).tail(80)
    path = tmp_path_factory.mktemp("sp500") / "request.csv"
    frame.write_csv(path)
    return path


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sp500-registry")
    args = ["train", str(FIXTURE), "--name", DEPLOYMENT, "--target", "close", "--datetime", "date"]
    args += ["--forecast-window", "1", str(HORIZON), "--models", "lightgbm,ets,seasonal_naive"]
    result = CliRunner().invoke(app, [*args, "--registry", str(path)])
    assert result.exit_code == 0, result.stderr
    assert "1 day (Mon, Tue, Wed, Thu, Fri)" in " ".join(result.stderr.split())  # rich wraps lines
    return path


@pytest.fixture(scope="module")
def expected(registry: Path, request_csv: Path) -> pl.DataFrame:
    deployment = tsengine.Registry(registry).load(DEPLOYMENT)
    frame = pl.read_csv(request_csv, schema_overrides=deployment.input_schema_overrides())
    return deployment.predict(frame)


@pytest.fixture(scope="module")
def base_url(registry: Path) -> Iterator[str]:
    with running(Settings(registry=registry)) as url:
        yield url


def test_forecast_rows_are_the_next_trading_days(expected: pl.DataFrame) -> None:
    stamps = expected.get_column("timestamp").dt.date().to_list()
    assert stamps[:3] == [dt.date(2015, 12, 21), dt.date(2015, 12, 22), dt.date(2015, 12, 23)]
    assert len(stamps) == HORIZON
    assert {d.isoweekday() for d in stamps} <= {1, 2, 3, 4, 5}
    assert stamps[-1] == dt.date(2016, 1, 1)  # 10 trading days on: holidays are grid points, weekends are not
    assert expected.get_column("forecastDistance").to_list() == list(range(1, HORIZON + 1))


def test_http_json_equals_one_in_process_predict(
    base_url: str, request_csv: Path, expected: pl.DataFrame
) -> None:
    response = post_csv(base_url, DEPLOYMENT, request_csv.read_bytes())
    assert response.status_code == 200, response.text
    rows = response.json()["data"]
    assert {r["forecastPoint"] for r in rows} == {f"{LAST}T00:00:00Z"}
    assert [r["originalFormatTimestamp"] for r in rows][:2] == ["2015-12-21", "2015-12-22"]
    assert _weekdays([r["timestamp"] for r in rows]) <= {1, 2, 3, 4, 5}
    np.testing.assert_allclose([r["prediction"] for r in rows], expected["prediction"].to_numpy(), rtol=1e-12)


def test_a_weekend_row_or_forecast_point_is_a_422_naming_it(base_url: str, request_csv: Path) -> None:
    saturday = request_csv.read_bytes() + b"2015-12-19,2050.0,1\n"
    response = post_csv(base_url, DEPLOYMENT, saturday)
    assert response.status_code == 422
    assert "2015-12-19" in response.json()["message"]
    assert "Mon, Tue, Wed, Thu, Fri" in response.json()["message"]
    response = post_csv(base_url, DEPLOYMENT, request_csv.read_bytes(), forecastPoint="2015-12-19T00:00:00Z")
    assert response.status_code == 422
    message = response.json()["message"]
    assert "forecastPoint" in message
    assert "2015-12-18" in message  # the grid point before it, suggested


def test_an_empty_weekend_row_is_left_out_and_named(base_url: str, request_csv: Path) -> None:
    """Exports per calendar day keep weekends as empty rows: they carry nothing to read, so no 422."""
    response = post_csv(base_url, DEPLOYMENT, request_csv.read_bytes() + b"2015-12-19,,\n")
    assert response.status_code == 200, response.text
    assert "row 80: '2015-12-19'" in response.headers["X-DataRobot-Warnings"]
    assert {r["forecastPoint"] for r in response.json()["data"]} == {f"{LAST}T00:00:00Z"}


def _historical(url: str, deployment: str, last: str, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
    """datarobot-predict's historical-mode answer for the 120 trading days up to ``last``."""
    frame = pd.read_csv(FIXTURE).query("date <= @last").tail(120)
    result = dr_deployment.predict(
        deployment,
        frame,
        prediction_endpoint=f"{url}/predApi/v1.0",
        time_series_type=TimeSeriesType.HISTORICAL,
        predictions_start_date=start,
        predictions_end_date=end,
    )
    return result.dataframe


@pytest.mark.usefixtures("dr_client")
def test_datarobot_predict_historical_mode_skips_weekends(base_url: str) -> None:
    out = _historical(base_url, DEPLOYMENT, LAST, dt.datetime(2015, 12, 4), dt.datetime(2015, 12, 15))
    assert len(out) > 0
    assert set(out["date"]) <= {f"2015-12-{d:02d}" for d in (4, 7, 8, 9, 10, 11, 14)}
    assert _weekdays(list(out["date"])) <= {1, 2, 3, 4, 5}
    assert _weekdays(list(out["FORECAST_POINT"])) <= {1, 2, 3, 4, 5}


def test_batch_job_on_a_local_file_equals_one_predict(
    registry: Path, request_csv: Path, expected: pl.DataFrame, tmp_path: Path
) -> None:
    out = tmp_path / "forecasts.csv"
    done = run_file_job(registry, DEPLOYMENT, request_csv, out)
    assert done["status"] == "COMPLETED", done
    got = pl.read_csv(out, schema_overrides={"date": pl.String})
    assert got.get_column("date").to_list()[:2] == ["2015-12-21", "2015-12-22"]
    assert _weekdays(got.get_column("date").to_list()) <= {1, 2, 3, 4, 5}
    np.testing.assert_allclose(
        got.get_column("close (actual)_PREDICTION").to_numpy(), expected["prediction"].to_numpy(), rtol=1e-12
    )


# --- business hours: five-minute calls, 07:00 to 21:00 on weekdays ------------------------

BANK = "bank-calls"
BANK_FIXTURE = FIXTURE.parent / "bank_calls_5min.csv"


@pytest.fixture(scope="module")
def bank_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = tmp_path_factory.mktemp("bank-registry")
    args = ["train", str(BANK_FIXTURE), "--name", BANK, "--target", "calls", "--datetime", "time"]
    args += ["--models", "linear,seasonal_naive", "--registry", str(path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    assert "5 minute (07:00-21:00, Mon, Tue, Wed, Thu, Fri)" in " ".join(result.stderr.split())
    with running(Settings(registry=path)) as url:
        yield url


def test_business_hours_forecast_the_next_opening_hours(bank_url: str) -> None:
    lines = BANK_FIXTURE.read_text().splitlines()
    body = "\n".join([lines[0], *lines[-400:]]) + "\n"  # ends on Friday 2003-10-24 at 21:00
    response = post_csv(bank_url, BANK, body.encode())
    assert response.status_code == 200, response.text
    rows = response.json()["data"]
    assert {r["forecastPoint"] for r in rows} == {"2003-10-24T21:00:00Z"}
    assert [r["originalFormatTimestamp"] for r in rows][:3] == [
        "2003-10-27 07:00",
        "2003-10-27 07:05",
        "2003-10-27 07:10",
    ]
    assert all(np.isfinite(r["prediction"]) for r in rows)
    night = body + "2003-10-27 03:00,4\n"  # a value at night: off the grid (an empty one is left out)
    refused = post_csv(bank_url, BANK, night.encode())
    assert refused.status_code == 422
    assert "2003-10-27 03:00" in refused.json()["message"]
    assert "07:00-21:00" in refused.json()["message"]


# --- exchange holidays: --holidays NYSE closes the grid on them -----------------------

NYSE = "sp500-nyse"


@pytest.fixture(scope="module")
def nyse_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("nyse-registry")
    args = ["train", str(FIXTURE), "--name", NYSE, "--target", "close", "--datetime", "date"]
    args += ["--forecast-window", "1", str(HORIZON), "--models", "ets,seasonal_naive", "--holidays", "NYSE"]
    result = CliRunner().invoke(app, [*args, "--registry", str(path)])
    assert result.exit_code == 0, result.stderr
    assert "closed on holidays" in " ".join(result.stderr.split())
    return path


def test_exchange_holidays_come_off_the_grid_over_http(nyse_registry: Path, request_csv: Path) -> None:
    info = CliRunner().invoke(app, ["info", NYSE, "--registry", str(nyse_registry)])
    assert info.exit_code == 0, info.stderr
    assert "Christmas Day" in info.stdout
    assert "Good Friday" in info.stdout
    with running(Settings(registry=nyse_registry)) as url:
        response = post_csv(url, NYSE, request_csv.read_bytes())
        assert response.status_code == 200, response.text
        dates = [r["originalFormatTimestamp"] for r in response.json()["data"]]
        # Christmas and New Year's Day are skipped like weekends: ten trading days end on 5 January
        assert dates == [
            "2015-12-21",
            "2015-12-22",
            "2015-12-23",
            "2015-12-24",
            "2015-12-28",
            "2015-12-29",
            "2015-12-30",
            "2015-12-31",
            "2016-01-04",
            "2016-01-05",
        ]
        blank = post_csv(url, NYSE, request_csv.read_bytes() + b"2015-12-25,,\n")  # FRED-style empty holiday
        assert blank.status_code == 200, blank.text
        assert "row 80: '2015-12-25'" in blank.headers["X-DataRobot-Warnings"]
        refused = post_csv(url, NYSE, request_csv.read_bytes() + b"2015-12-25,2060.0,1\n")
        assert refused.status_code == 422
        assert "row 80: '2015-12-25' falls on a holiday the grid is closed on" in refused.json()["message"]
        point = post_csv(url, NYSE, request_csv.read_bytes(), forecastPoint="2015-12-25T00:00:00Z")
        assert point.status_code == 422
        assert "2015-12-24" in point.json()["message"]  # the trading day before, suggested


@pytest.mark.parametrize(("mode", "shown"), [("none", "(Mon, Tue, Wed, Thu, Fri)"), ("bogus", None)])
def test_the_closures_flag_keeps_events_on_the_grid_or_names_its_choices(
    tmp_path: Path, mode: str, shown: str | None
) -> None:
    args = ["train", str(FIXTURE), "--name", "sp500-open", "--target", "close", "--datetime", "date"]
    args += ["--models", "seasonal_naive,ets", "--holidays", "NYSE", "--closures", mode]
    result = CliRunner().invoke(app, [*args, "--registry", str(tmp_path)])
    text = " ".join(result.stderr.split())
    if shown is None:
        assert result.exit_code != 0
        assert "closures must be one of auto, all, none, got 'bogus'" in text
    else:
        assert result.exit_code == 0, result.stderr
        assert f"1 day {shown}," in text


@pytest.mark.usefixtures("dr_client")
def test_datarobot_predict_historical_mode_skips_a_closed_holiday(nyse_registry: Path) -> None:
    with running(Settings(registry=nyse_registry)) as url:
        out = _historical(url, NYSE, "2015-12-04", dt.datetime(2015, 11, 23), dt.datetime(2015, 12, 1))
    dates = set(out["date"])
    assert dates == {"2015-11-23", "2015-11-24", "2015-11-25", "2015-11-27", "2015-11-30"}
