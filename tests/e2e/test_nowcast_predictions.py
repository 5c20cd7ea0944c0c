"""Nowcasting predictions end to end: ``tsengine train --forecast-window 0 N``, HTTP and batch jobs.

One nowcasting deployment (FW ``[0, 2]``, LightGBM vs seasonal naive, KIA
``scheduled``/``holiday``) is trained through the CLI on three flight series
into a temporary registry; the real server answers CSV posted to it, and a
batch job scores a local file.  Every path must give the predictions of one
in-process ``Deployment.predict``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from local_jobs import run_file_job
from typer.testing import CliRunner

import tsengine
from api import Settings
from api.testing import running
from tsengine.cli import app

from http_flights import post_csv

DEPLOYMENT = "flights-nowcast"
SERIES = ("EWR-UA", "JFK-B6", "LGA-DL")
LAST = "2013-12-20"  # the last history row; the nowcast's forecast point is the next day
FP = "2013-12-21"
PRED = "delayed (actual)_PREDICTION"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, flights_csv: Path) -> dict[str, Path]:
    """Training data, and a request: history up to LAST plus three rows per series with empty targets."""
    frame = pl.read_csv(flights_csv, schema_overrides={"date": pl.String})
    frame = frame.filter(pl.col("series").is_in(SERIES) & (pl.col("date") >= "2013-08-04"))
    folder = tmp_path_factory.mktemp("nowcast-data")
    paths = {"train": folder / "train.csv", "request": folder / "request.csv"}
    frame.write_csv(paths["train"])
    request = frame.filter(pl.col("date") <= "2013-12-23").with_columns(
        pl.when(pl.col("date") > LAST).then(None).otherwise(pl.col("delayed")).alias("delayed")
    )
    request.sample(fraction=1.0, shuffle=True, seed=3).write_csv(paths["request"])
    return paths


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, data: dict[str, Path]) -> Path:
    """A registry holding the nowcasting deployment, trained with ``tsengine train --forecast-window 0 2``."""
    path = tmp_path_factory.mktemp("nowcast-registry")
    args = ["train", str(data["train"]), "--name", DEPLOYMENT, "--target", "delayed", "--datetime", "date"]
    args += ["--series-id", "series", "--known-in-advance", "scheduled", "--known-in-advance", "holiday"]
    args += ["--forecast-window", "0", "2", "--feature-derivation-window", "28"]
    args += ["--models", "lightgbm,seasonal_naive", "--registry", str(path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    assert "FW [0, 2]" in result.stderr
    return path


@pytest.fixture(scope="module")
def deployment(registry: Path) -> tsengine.Deployment:
    loaded: tsengine.Deployment = tsengine.Registry(registry).load(DEPLOYMENT)
    return loaded


@pytest.fixture(scope="module")
def expected(deployment: tsengine.Deployment, data: dict[str, Path]) -> pl.DataFrame:
    """One in-process prediction of the request, in (series, timestamp) order."""
    frame = pl.read_csv(data["request"], schema_overrides=deployment.input_schema_overrides())
    return deployment.predict(frame).sort("seriesId", "timestamp")


@pytest.fixture(scope="module")
def base_url(registry: Path) -> Iterator[str]:
    with running(Settings(registry=registry)) as url:
        yield url


def test_cli_trains_a_nowcasting_deployment_and_predicts_the_forecast_point_row(
    registry: Path, data: dict[str, Path], expected: pl.DataFrame
) -> None:
    info = CliRunner().invoke(app, ["info", DEPLOYMENT, "--json", "--registry", str(registry)])
    assert info.exit_code == 0, info.stderr
    assert json.loads(info.stdout)["forecast_window"] == [0, 2]
    result = CliRunner().invoke(
        app, ["predict", DEPLOYMENT, str(data["request"]), "--format", "json", "--registry", str(registry)]
    )
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)["data"]
    assert {r["forecastPoint"] for r in rows} == {f"{FP}T00:00:00Z"}
    assert sorted({r["forecastDistance"] for r in rows}) == [0, 1, 2]
    zero = [r for r in rows if r["forecastDistance"] == 0]
    assert {r["timestamp"] for r in zero} == {f"{FP}T00:00:00.000000Z"}
    got = sorted((r["seriesId"], r["timestamp"], r["prediction"]) for r in rows)
    np.testing.assert_allclose([g[2] for g in got], expected["prediction"].to_numpy(), rtol=1e-12)


def test_cli_refuses_a_window_ending_before_it_starts(data: dict[str, Path], tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "train",
            str(data["train"]),
            "--name",
            "x",
            "--target",
            "delayed",
            "--datetime",
            "date",
            "--series-id",
        ]
        + [
            "series",
            "--forecast-window",
            "3",
            "2",
            "--models",
            "seasonal_naive",
            "--registry",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 2
    assert "0 <= b <= c" in result.stderr


def test_http_csv_to_a_nowcasting_deployment(
    base_url: str, data: dict[str, Path], expected: pl.DataFrame
) -> None:
    response = post_csv(base_url, DEPLOYMENT, data["request"].read_bytes())
    assert response.status_code == 200, response.text
    rows = response.json()["data"]
    assert len(rows) == len(SERIES) * 3
    assert {r["forecastPoint"] for r in rows} == {f"{FP}T00:00:00Z"}
    assert [r["forecastDistance"] for r in rows] == [0, 1, 2] * len(SERIES)
    got = sorted((r["seriesId"], r["timestamp"], r["prediction"]) for r in rows)
    np.testing.assert_allclose([g[2] for g in got], expected["prediction"].to_numpy(), rtol=1e-12)
    # an actual posted on the forecast point's row is ignored, the forecast point given
    leaked = pl.read_csv(data["request"], schema_overrides={"date": pl.String}).with_columns(
        pl.when(pl.col("date") == FP).then(pl.lit(10_000)).otherwise(pl.col("delayed")).alias("delayed")
    )
    again = post_csv(base_url, DEPLOYMENT, leaked.write_csv().encode(), forecastPoint=f"{FP}T00:00:00Z")
    assert again.status_code == 200, again.text
    assert [r["prediction"] for r in again.json()["data"]] == [r["prediction"] for r in rows]


def test_http_nowcast_without_the_forecast_point_rows_is_a_422_naming_the_series(
    base_url: str, data: dict[str, Path]
) -> None:
    frame = pl.read_csv(data["request"], schema_overrides={"date": pl.String})
    missing = frame.filter(~((pl.col("series") == "LGA-DL") & (pl.col("date") == FP)))
    response = post_csv(base_url, DEPLOYMENT, missing.write_csv().encode(), forecastPoint=FP)
    assert response.status_code == 422
    message = response.json()["message"]
    assert "LGA-DL" in message
    assert FP in message


def test_batch_job_on_a_local_file_equals_one_predict(
    registry: Path, data: dict[str, Path], expected: pl.DataFrame, tmp_path: Path
) -> None:
    out = tmp_path / "nowcasts.csv"
    done = run_file_job(registry, DEPLOYMENT, data["request"], out, chunkSize=4096)
    assert done["status"] == "COMPLETED", done
    got = pl.read_csv(out).sort("series", "date")
    assert got["FORECAST_POINT"].unique().to_list() == [f"{FP}T00:00:00Z"]
    assert sorted(got["FORECAST_DISTANCE"].unique().to_list()) == [0, 1, 2]
    np.testing.assert_allclose(got[PRED].to_numpy(), expected["prediction"].to_numpy(), rtol=1e-12)
