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


def test_further_percentiles_land_beside_the_forecast(tmp_path: Path, forecast: pl.DataFrame) -> None:
    """Bounds of each further served percentile are stored per forecast and joined back by the store."""
    levels = forecast.with_columns(
        (pl.col("prediction") - 1.0).alias("predictionIntervalLow_50"),
        (pl.col("prediction") + 1.0).alias("predictionIntervalHigh_50"),
        (pl.col("prediction") - 5.0).alias("predictionIntervalLow_95"),
        (pl.col("prediction") + 5.0).alias("predictionIntervalHigh_95"),
    )
    log = MonitoringLog(MonitoringStore.in_folder(tmp_path))
    assert log.record(PredictionEvent("flights", "timeseries", levels, 100.0))
    # the same forecast again, from a deployment serving its own interval only
    assert log.record(PredictionEvent("flights", "timeseries", forecast, 200.0))
    assert log.flush()
    assert log.stats()["failed"] == 0
    predictions = log.store.frame("mon_predictions", "flights")
    assert predictions.height == 2 * forecast.height
    assert not {"low_50", "high_50"} & set(predictions.columns)
    intervals = log.store.frame("mon_intervals", "flights")
    assert intervals.height == 2 * forecast.height  # 50 and 95 of the first event only
    assert sorted(intervals.get_column("percentile").unique().to_list()) == [50, 95]

    ids = predictions.get_column("association_id").unique().to_list()
    log.store.upsert_actuals("flights", [{"association_id": a, "actual": 1.0, "received": 0.0} for a in ids])
    joined = log.store.joined("flights").sort("created", "association_id", "forecast_point")
    assert joined.height == 2 * forecast.height  # each logged forecast once, whatever it was joined to
    first, second = joined.filter(pl.col("created") == 100.0), joined.filter(pl.col("created") == 200.0)
    assert (first["high_95"] - first["low_95"]).to_list() == [10.0] * forecast.height
    assert (first["high_50"] - first["prediction"]).to_list() == pytest.approx([1.0] * forecast.height)
    assert second["low_50"].null_count() == second["high_95"].null_count() == forecast.height
    log.close()


def test_a_store_from_before_the_interval_table_gets_it(tmp_path: Path, forecast: pl.DataFrame) -> None:
    """create_all adds ``mon_intervals`` to a store written without it: no migration step."""
    store = MonitoringStore.in_folder(tmp_path)
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE mon_intervals")
    again = MonitoringStore(store.url)
    log = MonitoringLog(again)
    served = forecast.with_columns(
        pl.col("prediction").alias("predictionIntervalLow_50"),
        pl.col("prediction").alias("predictionIntervalHigh_50"),
    )
    assert log.record(event(served))
    assert log.flush()
    assert log.stats()["failed"] == 0
    assert again.frame("mon_intervals", "flights").height == forecast.height
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

    store.insert_frames = broken  # type: ignore[method-assign]
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
