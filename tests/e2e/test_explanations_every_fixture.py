"""Historical-mode explanations on the default deployment of every time series fixture.

Each fixture is trained with the defaults (every candidate model, default
windows; the largest panels cut to a few series, the daily ones to their last
year or so, to keep the suite quick), and one
historical-mode request over its last two forecast windows asks for three
explanations per row.  Whatever model the backtest chose (an ensemble of four,
one statistical model, LightGBM), every predicted row must be explained with
readable names, and the strengths must be finite, ordered and of the right sign
labels.  Through the real server too, for one fixture, as the JSON a client
reads.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest

import tsengine
from api import Settings
from api.testing import running
from tsengine.explain import explanation_columns
from tsengine.options import PredictOptions

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
# fixture file -> train keyword arguments (and how many series to keep, None for all)
CASES: dict[str, tuple[dict[str, Any], int | None]] = {
    "flights_daily.csv": (
        {
            "target": "delayed",
            "datetime_column": "date",
            "series_id_column": "series",
            "known_in_advance": ["scheduled", "holiday"],
        },
        3,
    ),
    "us_employment_monthly.csv": (
        {"target": "employed", "datetime_column": "month", "series_id_column": "series_id"},
        20,
    ),
    "tourism_quarterly.csv": (
        {
            "target": "takings",
            "datetime_column": "quarter_start",
            "series_id_column": "state",
            "features": ["occupancy", "cpi"],
        },
        None,
    ),
    "visnights_quarterly.csv": (
        {"target": "nights", "datetime_column": "quarter_start", "series_id_column": "region"},
        None,
    ),
    "elecdaily.csv": (
        {
            "target": "demand",
            "datetime_column": "date",
            "known_in_advance": ["workday"],
            "features": ["temperature"],
        },
        None,
    ),
    "elecdaily_us_dates.csv": ({"target": "demand", "datetime_column": "date", "holidays": "AU-VIC"}, None),
    "monthly_retail_single.csv": ({"target": "turnover", "datetime_column": "month"}, None),
    "chicago_ridership.csv": (
        {
            "target": "rides",
            "datetime_column": "date",
            "series_id_column": "station",
            "known_in_advance": ["bulls_home", "bears_home", "cubs_home", "whitesox_home", "blackhawks_home"],
            "features": ["temp"],
            "holidays": "US-IL",
        },
        2,
    ),
    "births_us.csv": (
        {"target": "births", "datetime_column": "date", "series_id_column": "state", "holidays": "US"},
        2,
    ),
    "sp500_trading_days.csv": ({"target": "close", "datetime_column": "date", "features": ["volume"]}, None),
    "bank_calls_5min.csv": ({"target": "calls", "datetime_column": "time"}, None),
}
# fixture file -> first date kept (the longer daily files, cut to keep the suite quick)
SINCE = {
    "flights_daily.csv": "2013-06-01",
    "chicago_ridership.csv": "2016-01-01",
    "births_us.csv": "1988-01-01",
    "sp500_trading_days.csv": "2015-01-01",
    "bank_calls_5min.csv": "2003-09-24",  # four weeks and a day of weekday business hours
}
NAME = re.compile(r"^[A-Za-z][\w ]*( \([\w ,]+\))?$")


def _data(file: str, kwargs: dict[str, Any], keep: int | None) -> pl.DataFrame:
    frame = pl.read_csv(FIXTURES / file, schema_overrides={kwargs["datetime_column"]: pl.String})
    sid = kwargs.get("series_id_column")
    if keep is not None and sid:
        first = frame.get_column(sid).unique(maintain_order=True).head(keep)
        frame = frame.filter(pl.col(sid).is_in(first))
    if file in SINCE:
        frame = frame.filter(pl.col(kwargs["datetime_column"]) >= SINCE[file])
    return frame


@pytest.fixture(scope="module", params=sorted(CASES))
def trained(request: pytest.FixtureRequest) -> tuple[tsengine.Deployment, pl.DataFrame]:
    kwargs, keep = CASES[request.param]
    frame = _data(request.param, kwargs, keep)
    return tsengine.train(frame, deployment_id=Path(request.param).stem.replace("_", "-"), **kwargs), frame


def _range(deployment: tsengine.Deployment, frame: pl.DataFrame) -> tuple[dt.datetime, dt.datetime]:
    """The last two forecast windows of the data, as a historical-mode range."""
    window = deployment.window(frame, PredictOptions(relax_known_in_advance=True))
    last = int(window.history.get_column("__i").max())  # type: ignore[arg-type]
    step = deployment.spec.time_step
    width = 2 * len(deployment.spec.distances)
    start = step.timestamp_of(last - width + 1)
    return start, step.timestamp_of(last + 1)


def test_historical_explanations_on_the_default_deployment(
    trained: tuple[tsengine.Deployment, pl.DataFrame],
) -> None:
    deployment, frame = trained
    start, end = _range(deployment, frame)
    result = deployment.predict_result(frame, PredictOptions(start=start, end=end, max_explanations=3))
    assert not any("no explanations" in w for w in result.warnings), result.warnings
    out = result.frame.filter(pl.col("prediction").is_not_null())
    assert out.height > 0
    name1, strength1, quality1, _ = explanation_columns(1)
    assert out.get_column(name1).null_count() == 0, deployment.model.kind
    for k in (1, 2, 3):
        name, strength, quality, _ = explanation_columns(k)
        names = out.get_column(name).drop_nulls().unique().to_list()
        assert all(NAME.match(n) for n in names), names
        values = out.get_column(strength).drop_nulls()
        assert values.is_finite().all()
        signs = out.select(pl.col(strength).sign().alias("s"), pl.col(quality).str.slice(0, 1).alias("q"))
        assert signs.filter((pl.col("s") > 0) & (pl.col("q") != "+")).height == 0
        assert signs.filter((pl.col("s") < 0) & (pl.col("q") != "-")).height == 0
    weakest = out.select(pl.col(strength1).abs() >= pl.col(explanation_columns(3)[1]).abs().fill_null(0))
    assert weakest.to_series().all()


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, tsengine.Deployment, pl.DataFrame]]:
    kwargs, keep = CASES["tourism_quarterly.csv"]
    frame = _data("tourism_quarterly.csv", kwargs, keep)
    deployment = tsengine.train(frame, deployment_id="tourism", **kwargs)
    registry = tmp_path_factory.mktemp("explained-registry")
    tsengine.Registry(registry).save(deployment)
    with running(Settings(registry=registry)) as url:
        yield url, deployment, frame


def test_historical_explanations_over_http(served: tuple[str, tsengine.Deployment, pl.DataFrame]) -> None:
    url, deployment, frame = served
    start, end = _range(deployment, frame)
    response = httpx.post(
        f"{url}/predApi/v1.0/deployments/tourism/predictions",
        params={
            "predictionsStartDate": start.isoformat(),
            "predictionsEndDate": end.isoformat(),
            "maxExplanations": 3,
        },
        content=frame.write_csv().encode(),
        headers={"content-type": "text/csv"},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    rows = [r for r in response.json()["data"] if r["prediction"] is not None]
    assert rows
    for row in rows:
        explained = row["predictionExplanations"]
        assert len(explained) == 3, row
        assert all(NAME.match(e["feature"]) for e in explained)
        strengths = [abs(e["strength"]) for e in explained]
        assert strengths == sorted(strengths, reverse=True)
