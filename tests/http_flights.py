"""The small real deployment every HTTP test serves, in one place.

Three series of ``fixtures/flights_daily.csv`` (January-April 2013, daily; KIA
``scheduled`` and ``holiday``) and a seasonal-naive deployment trained on them
in milliseconds, so HTTP tests run the real core behind the app.  Imported by
``tests/api`` and ``tests/e2e`` (pytest puts ``tests/`` on the path for the
root conftest).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import polars as pl

import tsengine

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
DEPLOYMENT_ID = "flights"
SERIES = ["EWR-UA", "JFK-B6", "LGA-DL"]
LAST_HISTORY = "2013-04-23"
HORIZON = 7


def flights() -> pl.DataFrame:
    """The three series, dates kept as written."""
    frame = pl.read_csv(FIXTURES / "flights_daily.csv", schema_overrides={"date": pl.String})
    return frame.filter(pl.col("series").is_in(SERIES) & (pl.col("date") < "2013-05-01"))


def train_flights(
    deployment_id: str = DEPLOYMENT_ID, *, horizon: int = HORIZON, **options: Any
) -> tsengine.Deployment:
    """Seasonal naive on :func:`flights`: FDW [-14, 0], FW [1, horizon]; ``options`` go to train."""
    settings: dict[str, Any] = {
        "known_in_advance": ["scheduled", "holiday"],
        "models": ["seasonal_naive"],
        "backtests": 1,
        "forecast_window": [1, horizon],
        "feature_derivation_window": [-14, 0],
        "deployment_id": deployment_id,
    }
    return tsengine.train(
        flights(), target="delayed", datetime_column="date", series_id_column="series", **(settings | options)
    )


def post_csv(base_url: str, deployment: str, body: bytes, **params: Any) -> httpx.Response:
    """POST ``body`` as CSV to a deployment's prediction route on a running server."""
    return httpx.post(
        f"{base_url}/predApi/v1.0/deployments/{deployment}/predictions",
        params=params,
        content=body,
        headers={"content-type": "text/csv"},
        timeout=60,
    )
