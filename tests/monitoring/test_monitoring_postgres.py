"""The monitoring store on PostgreSQL (TSENGINE_MONITORING_URL): the same rows and figures as SQLite."""

from __future__ import annotations

import time

import polars as pl
import pytest

from tsengine.monitoring.service import Monitor
from tsengine.monitoring.store import MonitoringStore
from tsengine.options import PredictOptions

from http_flights import LAST_HISTORY, flights, train_flights


def test_log_actuals_and_accuracy_on_postgres(fresh_postgres_url: str, tmp_path: object) -> None:
    deployment = train_flights(interval_percentile=(80, 50, 95), backtests=3)
    forecast = deployment.predict_result(
        flights().filter(pl.col("date") <= LAST_HISTORY), PredictOptions(relax_known_in_advance=True)
    ).frame
    monitor = Monitor(MonitoringStore(fresh_postgres_url))
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
    for p in (50, 95):  # the further percentiles' bounds, stored beside the forecast
        low, high = pl.col(f"predictionIntervalLow_{p}"), pl.col(f"predictionIntervalHigh_{p}")
        inside = joined.select(((low <= pl.col("delayed")) & (pl.col("delayed") <= high)).mean()).item()
        assert accuracy["metrics"][f"Coverage{p}"]["value"] == pytest.approx(inside, rel=1e-9)
    # each interval's baseline is training's held-out check, as a share
    for name, table in [
        ("Coverage", deployment.intervals),
        *((f"Coverage{t.percentile}", t) for t in deployment.more_intervals),
    ]:
        assert table is not None
        check = table.describe()["check"]["coverage"]
        assert accuracy["metrics"][name]["baselineValue"] == pytest.approx(check / 100.0, rel=1e-12)
    assert monitor.store.samples(deployment.id).height == 30
    monitor.close()


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_rows_over_several_driver_batches_land_whole(
    database: str, request: pytest.FixtureRequest, tmp_path: object
) -> None:
    """The writer hands rows to executemany a batch at a time: none lost or repeated at the seams."""
    from pathlib import Path

    from tsengine.monitoring import store as store_module

    store = (
        MonitoringStore(request.getfixturevalue("fresh_postgres_url"))
        if database == "postgresql"
        else MonitoringStore.in_folder(Path(str(tmp_path)))
    )
    n = 2 * store_module._ROWS_AT_ONCE + 7
    rows = pl.DataFrame(
        {
            "deployment_id": ["d"] * n,
            "created": [float(i) for i in range(n)],
            "route": ["predictions"] * n,
            "status": [200] * n,
            "latency_ms": [i / 10 for i in range(n)],
            "rows": list(range(n)),
            "cache_hit": [i % 2 == 0 for i in range(n)],
        }
    )
    store.insert_rows("mon_requests", rows)
    stored = store.frame("mon_requests", "d").sort("created")
    assert stored.height == n
    assert stored["rows"].to_list() == list(range(n))
    assert stored["latency_ms"].to_list() == pytest.approx([i / 10 for i in range(n)])
