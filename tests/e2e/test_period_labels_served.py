"""Quarterly data dated by labels (``1998 Q1``), forecast points named the same way.

fpp3's tsibbles and pandas' ``Period`` write quarters as labels; a client that
posts them names its forecast point or range by a label too.  The CLI and the
real server read ``2015 Q4`` as the quarter's first day and answer with rows
labelled like the posted ones.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pandas as pd
import polars as pl
import pytest
from typer.testing import CliRunner

from api import Settings
from api.testing import running
from tsengine.cli import app

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
DEPLOYMENT = "visnights-labels"


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    frame = pl.read_csv(FIXTURES / "visnights_quarterly.csv", try_parse_dates=True)
    regions = frame.get_column("region").unique(maintain_order=True).head(3)
    labelled = frame.filter(pl.col("region").is_in(regions.implode())).with_columns(
        pl.format("{} Q{}", pl.col("quarter_start").dt.year(), pl.col("quarter_start").dt.quarter()).alias(
            "quarter"
        )
    )
    path = tmp_path_factory.mktemp("labels-data") / "history.csv"
    labelled.select("region", "quarter", "nights").write_csv(path)
    return path


@pytest.fixture(scope="module")
def registry(cli_registry: Callable[..., Path], history: Path) -> Path:
    args = [str(history), "--name", DEPLOYMENT, "--target", "nights", "--datetime", "quarter"]
    return cli_registry(
        "labels",
        [*args, "--series-id", "region", "--forecast-window", "1", "4", "--models", "ets,seasonal_naive"],
    )


@pytest.fixture(scope="module")
def base_url(registry: Path) -> Iterator[str]:
    with running(Settings(registry=registry)) as url:
        yield url


def test_cli_forecast_point_given_as_a_quarter_label(registry: Path, history: Path) -> None:
    args = ["predict", DEPLOYMENT, str(history), "--forecast-point", "2015 Q4", "--registry", str(registry)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    table = pd.read_csv(io.StringIO(result.stdout))
    assert set(table["FORECAST_POINT"].str[:10]) == {"2015-10-01"}
    assert table["quarter"].head(4).tolist() == ["2016 Q1", "2016 Q2", "2016 Q3", "2016 Q4"]


def test_http_range_given_as_quarter_labels(base_url: str, history: Path) -> None:
    response = httpx.post(
        f"{base_url}/predApi/v1.0/deployments/{DEPLOYMENT}/predictions",
        params={"predictionsStartDate": "2014 Q1", "predictionsEndDate": "2015 Q1"},
        content=history.read_bytes(),
        headers={"Content-Type": "text/csv"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    rows = response.json()["data"]
    labels = {row["originalFormatTimestamp"] for row in rows}
    assert labels == {"2014 Q1", "2014 Q2", "2014 Q3", "2014 Q4"}
    assert {row["timestamp"][:10] for row in rows} == {"2014-01-01", "2014-04-01", "2014-07-01", "2014-10-01"}


def test_http_quarter_that_does_not_exist_is_a_422_naming_it(base_url: str, history: Path) -> None:
    response = httpx.post(
        f"{base_url}/predApi/v1.0/deployments/{DEPLOYMENT}/predictions",
        params={"forecastPoint": "2015 Q5"},
        content=history.read_bytes(),
        headers={"Content-Type": "text/csv"},
        timeout=60,
    )
    assert response.status_code == 422
    assert "forecastPoint: '2015 Q5' names no quarter: quarters are Q1 to Q4" in response.json()["message"]
