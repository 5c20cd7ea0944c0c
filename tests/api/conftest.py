"""Shared fixtures of the HTTP layer's tests: a small real deployment and clients.

The deployment is trained with the seasonal naive model only (milliseconds to
train) on three series of ``fixtures/flights_daily.csv``, so every test runs
the real core behind the app.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest

import tsengine
from api import Settings, create_app

from http_flights import LAST_HISTORY
from http_flights import flights as _flights
from http_flights import train_flights as _train


@pytest.fixture(scope="session")
def flights() -> pl.DataFrame:
    """Three series, January to April 2013, daily; KIA: scheduled, holiday."""
    return _flights()


@pytest.fixture(scope="session")
def posted(flights: pl.DataFrame) -> pl.DataFrame:
    """History up to LAST_HISTORY, then a week of forecast rows (KIA values, no
    target), plus a non-ASCII column to pass through."""
    return flights.with_columns(
        pl.when(pl.col("date") <= LAST_HISTORY).then(pl.col("delayed")).alias("delayed"),
        pl.lit("K\u00f6ln").alias("city"),
    )


@pytest.fixture(scope="session")
def train_flights() -> Callable[..., tsengine.Deployment]:
    """Train the small deployment under a given id (milliseconds)."""
    return _train


@pytest.fixture(scope="session")
def registry_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("registry")
    tsengine.Registry(path).save(_train())
    return path


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def make_client(registry_path: Path) -> AsyncIterator[Callable[..., httpx.AsyncClient]]:
    """Build an in-process client for an app with the given settings overrides."""
    clients: list[httpx.AsyncClient] = []

    def factory(*, registry: Any = None, **overrides: Any) -> httpx.AsyncClient:
        settings = Settings(registry=overrides.pop("registry_path", registry_path), **overrides)
        app = create_app(settings, registry=registry)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
            base_url="http://testserver",
        )
        clients.append(client)
        return client

    yield factory
    for client in clients:
        await client.aclose()


@pytest.fixture
async def client(make_client: Callable[..., httpx.AsyncClient]) -> httpx.AsyncClient:
    return make_client()
