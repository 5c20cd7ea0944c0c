"""The prediction log never blocks or fails a prediction, and counts what it could not keep."""

from __future__ import annotations

import time
from pathlib import Path

import polars as pl
import pytest

from tsengine.monitoring.log import MonitoringLog, PredictionEvent, RequestEvent, association_ids
from tsengine.monitoring.store import MonitoringStore
from tsengine.options import PredictOptions

from http_flights import LAST_HISTORY, flights, train_flights


@pytest.fixture(scope="module")
def forecast() -> pl.DataFrame:
    history = flights().filter(pl.col("date") <= LAST_HISTORY)
    return train_flights().predict_result(history, PredictOptions(relax_known_in_advance=True)).frame


def event(frame: pl.DataFrame) -> PredictionEvent:
    return PredictionEvent("flights", "timeseries", frame, time.time(), request_id="r1", version="v0001")


def test_rows_land_with_association_ids(tmp_path: Path, forecast: pl.DataFrame) -> None:
    log = MonitoringLog(MonitoringStore.in_folder(tmp_path))
    assert log.record(event(forecast))
    assert log.record(RequestEvent("flights", time.time(), "predictions", 200, 3.5, rows=21))
    assert log.flush()
    stored = log.store.frame("mon_predictions", "flights")
    assert stored.height == forecast.height
    assert stored["association_id"].to_list()[0] == "EWR-UA|2013-04-24T00:00:00Z"
    assert stored["version"].unique().to_list() == ["v0001"]
    assert log.store.frame("mon_requests", "flights")["latency_ms"].to_list() == [3.5]
    assert log.stats()["written"] == 2
    log.close()


def test_a_full_queue_drops_and_counts(tmp_path: Path, forecast: pl.DataFrame) -> None:
    log = MonitoringLog(MonitoringStore.in_folder(tmp_path), capacity=1)
    results = [log.record(event(forecast)) for _ in range(50)]
    assert not all(results)
    assert log.stats()["dropped"] == results.count(False)
    log.close()


def test_a_failing_store_is_counted_and_never_raises(
    tmp_path: Path, forecast: pl.DataFrame, caplog: pytest.LogCaptureFixture
) -> None:
    store = MonitoringStore.in_folder(tmp_path)
    log = MonitoringLog(store)

    def broken(*_args: object) -> None:
        raise OSError("disk full")

    store.insert_rows = broken  # type: ignore[method-assign]
    for _ in range(3):
        assert log.record(event(forecast))
        assert log.flush()
    stats = log.stats()
    assert stats["failed"] == 3
    assert "disk full" in stats["lastError"]
    assert sum("monitoring store" in r.message for r in caplog.records) == 1  # warned once
    log.close()


def test_single_series_ids_are_the_timestamp() -> None:
    frame = pl.DataFrame({"s": [None, "A"], "t": ["2020-01-01", "2020-01-02"]}).with_columns(
        pl.col("t").str.to_datetime()
    )
    ids = frame.select(association_ids(pl.col("s"), pl.col("t"))).to_series().to_list()
    assert ids == ["2020-01-01T00:00:00Z", "A|2020-01-02T00:00:00Z"]
