"""Event calendars end to end: ``tsengine train --calendar FILE --holidays US``, then CLI, HTTP and batch.

Three flight series are trained through the CLI with US federal holidays and a
calendar file holding one event for every series and one for a single series.
Clients post the usual columns only; every path must give the predictions of
one in-process ``Deployment.predict`` (that the features change forecasts is
checked in tests/unit/test_events.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import polars as pl
import pytest
from local_jobs import run_file_job
from typer.testing import CliRunner

import tsengine
from api import Settings
from api.testing import running
from tsengine.cli import app

DEPLOYMENT = "flights-calendar"
SERIES = ("EWR-UA", "JFK-B6", "LGA-DL")
LAST = "2013-12-14"
PRED = "delayed (actual)_PREDICTION"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, flights_csv: Path) -> dict[str, Path]:
    """Training rows (no KIA columns), a calendar file, and a request ending at LAST."""
    frame = pl.read_csv(flights_csv, schema_overrides={"date": pl.String})
    frame = frame.filter(pl.col("series").is_in(SERIES) & (pl.col("date") >= "2013-07-01"))
    frame = frame.select("series", "date", "delayed")
    folder = tmp_path_factory.mktemp("calendar-data")
    paths = {
        "train": folder / "train.csv",
        "request": folder / "request.csv",
        "calendar": folder / "events.csv",
    }
    frame.write_csv(paths["train"])
    frame.filter(pl.col("date") <= LAST).write_csv(paths["request"])
    paths["calendar"].write_text(
        "date,event,series\n"
        "2013-11-29,Black Friday,\n2013-12-24,Christmas Eve,\n2013-12-31,New Year's Eve,\n"
        "2013-08-15,Terminal works,JFK-B6\n2013-12-20,Terminal works,JFK-B6\n"
    )
    return paths


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, data: dict[str, Path]) -> Path:
    path = tmp_path_factory.mktemp("calendar-registry")
    args = ["train", str(data["train"]), "--name", DEPLOYMENT, "--target", "delayed", "--datetime", "date"]
    args += ["--series-id", "series", "--forecast-window", "1", "14", "--feature-derivation-window", "28"]
    args += ["--calendar", str(data["calendar"]), "--holidays", "US-NY"]
    args += ["--models", "lightgbm,arima,seasonal_naive", "--registry", str(path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    return path


@pytest.fixture(scope="module")
def deployment(registry: Path) -> tsengine.Deployment:
    loaded: tsengine.Deployment = tsengine.Registry(registry).load(DEPLOYMENT)
    return loaded


@pytest.fixture(scope="module")
def expected(deployment: tsengine.Deployment, data: dict[str, Path]) -> pl.DataFrame:
    frame = pl.read_csv(data["request"], schema_overrides=deployment.input_schema_overrides())
    return deployment.predict(frame).sort("seriesId", "timestamp")


@pytest.fixture(scope="module")
def base_url(registry: Path) -> Iterator[str]:
    with running(Settings(registry=registry)) as url:
        yield url


def test_the_calendar_is_stored_and_shown(registry: Path, deployment: tsengine.Deployment) -> None:
    calendar = deployment.spec.calendar
    assert calendar is not None
    assert calendar.holidays == "US-NY"
    assert ("Terminal works", "JFK-B6") in set(zip(calendar.names, calendar.series, strict=True))
    info = CliRunner().invoke(app, ["info", DEPLOYMENT, "--json", "--registry", str(registry)])
    assert info.exit_code == 0, info.stderr
    shown = json.loads(info.stdout)
    # flights fly on holidays: none closes the grid
    assert shown["calendar"] == {"events": 5, "series_events": 2, "holidays": "US-NY", "closures": []}
    assert all("mase_events" in row for row in shown["leaderboard"])
    text = CliRunner().invoke(app, ["info", DEPLOYMENT, "--registry", str(registry)])
    assert text.exit_code == 0, text.stderr
    assert "on events" in text.stdout
    assert "US-NY" in text.stdout


def test_http_csv_and_json_equal_one_predict(
    base_url: str, data: dict[str, Path], expected: pl.DataFrame
) -> None:
    url = f"{base_url}/predApi/v1.0/deployments/{DEPLOYMENT}/predictions"
    body = data["request"].read_bytes()
    response = httpx.post(url, content=body, headers={"content-type": "text/csv"}, timeout=60)
    assert response.status_code == 200, response.text
    rows = response.json()["data"]
    assert len(rows) == len(SERIES) * 14
    got = sorted((r["seriesId"], r["timestamp"], r["prediction"]) for r in rows)
    np.testing.assert_allclose([g[2] for g in got], expected["prediction"].to_numpy(), rtol=1e-12)
    records = pl.read_csv(data["request"], schema_overrides={"date": pl.String}).to_dicts()
    as_json = httpx.post(url, json=records, timeout=60)
    assert as_json.status_code == 200, as_json.text
    assert [r["prediction"] for r in as_json.json()["data"]] == [r["prediction"] for r in rows]


def test_cli_predict_equals_one_predict(
    registry: Path, data: dict[str, Path], expected: pl.DataFrame
) -> None:
    result = CliRunner().invoke(
        app, ["predict", DEPLOYMENT, str(data["request"]), "--format", "json", "--registry", str(registry)]
    )
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)["data"]
    got = sorted((r["seriesId"], r["timestamp"], r["prediction"]) for r in rows)
    np.testing.assert_allclose([g[2] for g in got], expected["prediction"].to_numpy(), rtol=1e-12)


def test_batch_job_equals_one_predict(
    registry: Path, data: dict[str, Path], expected: pl.DataFrame, tmp_path: Path
) -> None:
    out = tmp_path / "forecasts.csv"
    done = run_file_job(registry, DEPLOYMENT, data["request"], out)
    assert done["status"] == "COMPLETED", done
    got = pl.read_csv(out).sort("series", "date")
    np.testing.assert_allclose(got[PRED].to_numpy(), expected["prediction"].to_numpy(), rtol=1e-12)


@pytest.mark.parametrize(
    ("flag", "value", "needle"),
    [("--holidays", "XX", "XX"), ("--calendar", "/no/such/events.csv", "events.csv")],
)
def test_cli_names_a_bad_calendar(
    data: dict[str, Path], tmp_path: Path, flag: str, value: str, needle: str
) -> None:
    args = ["train", str(data["train"]), "--name", "x", "--target", "delayed", "--datetime", "date"]
    args += ["--series-id", "series", flag, value, "--models", "seasonal_naive", "--registry", str(tmp_path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.stderr
    assert needle in result.stderr
    assert not list(tmp_path.iterdir())  # nothing stored


def test_cli_notes_calendar_series_the_data_lacks(data: dict[str, Path], tmp_path: Path) -> None:
    """A calendar id no training series has (a typo, or a series yet to come) is trained on and named."""
    calendar = tmp_path / "typo.csv"
    calendar.write_text("date,event,series\n2013-08-15,Terminal works,JFK-b6\n2013-12-24,Christmas Eve,\n")
    args = ["train", str(data["train"]), "--name", "x", "--target", "delayed", "--datetime", "date"]
    args += ["--series-id", "series", "--calendar", str(calendar), "--models", "seasonal_naive"]
    result = CliRunner().invoke(app, [*args, "--registry", str(tmp_path / "registry")])
    assert result.exit_code == 0, result.stderr
    assert "note:" in result.stderr
    assert "'JFK-b6' (1)" in " ".join(result.stderr.split())
