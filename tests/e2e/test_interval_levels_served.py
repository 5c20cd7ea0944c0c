"""Intervals at several percentiles end to end: ``tsengine train --interval-percentile 80,50 --interval-percentile 95``.

The CLI trains and stores the deployment, ``tsengine predict`` writes every
level's columns, and the real server answers JSON keyed by each percentile
and the CSV that ``datarobot-predict`` reads into a DataFrame.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pandas as pd
import polars as pl
import pytest
from datarobot_predict import deployment as dr_deployment
from typer.testing import CliRunner

from api import Settings
from api.testing import running
from tsengine.cli import app

pytestmark = pytest.mark.filterwarnings(
    "ignore:Using an empty collection for 'allowed_methods':FutureWarning"  # the datarobot client's urllib3 use
)

DEPLOYMENT = "flights-levels"
BOUNDS = [f"PREDICTION_{p}_PERCENTILE_{side}" for p in (50, 80, 95) for side in ("LOW", "HIGH")]


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory, small_flights: pl.DataFrame) -> Path:
    path = tmp_path_factory.mktemp("levels-data") / "history.csv"
    small_flights.select("series", "date", "delayed").write_csv(path)
    return path


@pytest.fixture(scope="module")
def registry(cli_registry: Callable[..., Path], history: Path) -> Path:
    args = [str(history), "--name", DEPLOYMENT, "--target", "delayed", "--datetime", "date"]
    args += ["--series-id", "series", "--forecast-window", "1", "7", "--models", "ets,seasonal_naive"]
    return cli_registry("levels", [*args, "--interval-percentile", "80,50", "--interval-percentile", "95"])


@pytest.fixture(scope="module")
def base_url(registry: Path) -> Iterator[str]:
    with running(Settings(registry=registry)) as url:
        yield url


def test_cli_predict_writes_every_level(registry: Path, history: Path) -> None:
    result = CliRunner().invoke(app, ["predict", DEPLOYMENT, str(history), "--registry", str(registry)])
    assert result.exit_code == 0, result.stderr
    table = pd.read_csv(io.StringIO(result.stdout))
    assert [c for c in table.columns if c.startswith("PREDICTION_")] == BOUNDS
    assert (table["PREDICTION_95_PERCENTILE_LOW"] <= table["PREDICTION_50_PERCENTILE_LOW"]).all()


def test_cli_refuses_a_percentile_that_is_not_a_number(history: Path, tmp_path: Path) -> None:
    args = ["train", str(history), "--name", "x", "--target", "delayed", "--datetime", "date"]
    args += ["--series-id", "series", "--interval-percentile", "80,high", "--registry", str(tmp_path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "'high'" in result.stderr
    assert not list(tmp_path.iterdir())


def test_json_is_keyed_by_every_percentile(base_url: str, history: Path) -> None:
    response = httpx.post(
        f"{base_url}/predApi/v1.0/deployments/{DEPLOYMENT}/predictions",
        content=history.read_bytes(),
        headers={"content-type": "text/csv"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    rows = response.json()["data"]
    assert len(rows) == 3 * 7
    for row in rows:
        levels = row["predictionIntervals"]
        assert list(levels) == ["50", "80", "95"]
        assert levels["95"]["low"] <= levels["80"]["low"] <= levels["50"]["low"] <= row["prediction"]
        assert row["prediction"] <= levels["50"]["high"] <= levels["80"]["high"] <= levels["95"]["high"]


@pytest.mark.usefixtures("dr_client")
def test_datarobot_predict_reads_every_level(base_url: str, history: Path) -> None:
    result = dr_deployment.predict(
        DEPLOYMENT, pd.read_csv(history), prediction_endpoint=f"{base_url}/predApi/v1.0"
    )
    frame = result.dataframe
    assert [c for c in frame.columns if c.startswith("PREDICTION_")] == BOUNDS
    assert len(frame) == 3 * 7


def test_batch_job_writes_every_level(registry: Path, history: Path, tmp_path: Path) -> None:
    out = tmp_path / "forecasts.csv"
    args = [
        "batch",
        "run",
        DEPLOYMENT,
        "--intake",
        str(history),
        "--output",
        str(out),
        "--registry",
        str(registry),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    table = pd.read_csv(out)
    assert [c for c in table.columns if c.startswith("PREDICTION_")] == BOUNDS
    assert len(table) == 3 * 7
