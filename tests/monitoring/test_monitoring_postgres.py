"""The monitoring store on PostgreSQL (TSENGINE_MONITORING_URL): the same rows and figures as SQLite."""

from __future__ import annotations

import time
import uuid

import polars as pl
import pytest
import sqlalchemy as sa

from tsengine.monitoring.service import Monitor
from tsengine.monitoring.store import MonitoringStore
from tsengine.options import PredictOptions

from http_flights import LAST_HISTORY, flights, train_flights


@pytest.fixture
def database(postgres_url: str) -> str:
    name = f"mon_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return postgres_url.rsplit("/", 1)[0] + f"/{name}"


def test_log_actuals_and_accuracy_on_postgres(database: str, tmp_path: object) -> None:
    deployment = train_flights()
    forecast = deployment.predict_result(
        flights().filter(pl.col("date") <= LAST_HISTORY), PredictOptions(relax_known_in_advance=True)
    ).frame
    monitor = Monitor(MonitoringStore(database))
    assert monitor.record_prediction(deployment, forecast, flights().head(30), created=time.time())
    assert monitor.log.flush(30)
    assert monitor.log.stats()["failed"] == 0
    truth = flights().filter(pl.col("date") > LAST_HISTORY)
    report = monitor.submit_actuals(
        deployment,
        [
            {"associationId": f"{r['series']}|{r['date']}", "actualValue": r["delayed"]}
            for r in truth.to_dicts()
        ],
    )
    assert report["inserted"] == 21
    accuracy = monitor.accuracy(deployment, None, None)
    joined = forecast.with_columns(pl.col("timestamp").dt.strftime("%Y-%m-%d").alias("date")).join(
        truth.select(pl.col("series").alias("seriesId"), "date", "delayed"), on=["seriesId", "date"]
    )
    mae = (joined["prediction"] - joined["delayed"]).abs().mean()
    assert accuracy["metrics"]["MAE"]["value"] == pytest.approx(mae, rel=1e-9)
    assert monitor.store.samples(deployment.id).height == 30
    monitor.close()
