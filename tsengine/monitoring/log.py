"""The prediction log: predictions recorded off the request's critical path.

A request hands its prediction frame to :meth:`MonitoringLog.record` and goes on:
that is one ``put_nowait`` on a bounded queue.  A writer thread turns events
into rows (association ids, timestamps as POSIX seconds) and appends them in
one transaction per drained batch.  A full queue never blocks a prediction: the
event is dropped *and counted*; a store that fails never fails a prediction:
the batch is counted as failed and a warning is logged once.  Both counts are
reported by ``serviceStats`` (and ``/metrics``), so a gap in the log is visible.

What a crash loses: the events still in the queue (at most ``capacity``
requests); what was written is in committed transactions, so the store is
never half-written.
"""

from __future__ import annotations

import logging
import queue
import random
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import polars as pl

from tsengine.intervals import INTERVAL_HIGH, INTERVAL_LOW
from tsengine.monitoring.store import MonitoringStore

__all__ = [
    "DEFAULT_CAPACITY",
    "SAMPLE_ROWS",
    "MonitoringLog",
    "PredictionEvent",
    "RequestEvent",
    "association_ids",
]

logger = logging.getLogger("tsengine.monitoring")

DEFAULT_CAPACITY = 10_000
"""Events (requests or batch chunks) the queue holds before new ones are dropped."""
SAMPLE_ROWS = 50
"""Input rows kept per request (or batch chunk) for drift: over many requests, enough for stable
proportions, and small enough that the writer stays cheap beside the requests it logs."""
_BATCH = 256
# Seconds the writer waits for more events before a write.  Measured on 2 cores with
# sequential one-series requests (benchmarks/results/monitoring.md): 0.05 s cost +0.27 to
# +0.37 ms of end-to-end p50 (the writer took the GIL once per request), 0.25 s +0.08 ms,
# 0.5 s +0.19 ms with a worse p99 (one long write).
_LINGER = 0.25
_ISO = "%Y-%m-%dT%H:%M:%SZ"
# A further percentile's output column (tsengine.intervals.interval_columns), and its logged name.
_SERVED = re.compile(rf"{INTERVAL_LOW}_(\d+)")
_FURTHER = re.compile(r"(?:low|high)_\d+")


def association_ids(series: pl.Expr, timestamp: pl.Expr) -> pl.Expr:
    """Time series association ids: ``<series id>|<timestamp>`` (``<timestamp>`` alone for one series).

    The forecast point is left out on purpose, so that one actual posted later
    matches every forecast made for its timestamp, at every distance.
    """
    stamp = timestamp.dt.strftime(_ISO)
    return (
        pl.when(series.is_null())
        .then(stamp)
        .otherwise(pl.concat_str([series.cast(pl.String), stamp], separator="|"))
    )


@dataclass(frozen=True, slots=True)
class PredictionEvent:
    """Predictions of one request (or one batch chunk), as the core produced them."""

    deployment_id: str
    kind: str
    frame: pl.DataFrame
    created: float
    request_id: str = ""
    source: str = "realtime"
    version: str | None = None
    model_id: str = ""
    association: pl.Series | None = None
    inputs: pl.DataFrame | None = None
    positive_class: Any = None


@dataclass(frozen=True, slots=True)
class RequestEvent:
    """One served request, for service health."""

    deployment_id: str
    created: float
    route: str
    status: int
    latency_ms: float
    rows: int = 0
    cache_hit: bool = False


@dataclass
class _Counts:
    recorded: int = 0
    written: int = 0
    dropped: int = 0
    failed: int = 0
    last_error: str | None = None
    warned: bool = field(default=False, repr=False)


class MonitoringLog:
    """A bounded queue and one writer thread in front of a :class:`MonitoringStore`."""

    def __init__(self, store: MonitoringStore, *, capacity: int = DEFAULT_CAPACITY) -> None:
        """Start the writer thread."""
        self.store = store
        self._queue: queue.Queue[PredictionEvent | RequestEvent | None] = queue.Queue(maxsize=capacity)
        self.counts = _Counts()
        self._writer = threading.Thread(target=self._write_loop, name="tsengine-monitoring", daemon=True)
        self._writer.start()

    def record(self, event: PredictionEvent | RequestEvent) -> bool:
        """Queue an event without waiting; False (and counted) when the queue is full."""
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.counts.dropped += 1
            return False
        self.counts.recorded += 1
        return True

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued event is written (tests, shutdown); False on timeout."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the writer."""
        self.flush(timeout)
        self._queue.put(None)
        self._writer.join(timeout)

    def stats(self) -> dict[str, Any]:
        """Counters for service health: recorded, written, dropped, failed, queued."""
        return {
            "recorded": self.counts.recorded,
            "written": self.counts.written,
            "dropped": self.counts.dropped,
            "failed": self.counts.failed,
            "queued": self._queue.qsize(),
            "lastError": self.counts.last_error,
        }

    # ----------------------------------------------------------------- writer

    def _write_loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                self._queue.task_done()
                return
            if self._queue.qsize() < _BATCH:
                time.sleep(_LINGER)  # let a few requests' events gather: one insert serves them all
            batch = [first]
            while len(batch) < _BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # stop after this batch
                    self._queue.task_done()
                    break
                batch.append(item)
            try:
                self._write(batch)
                self.counts.written += len(batch)
            except Exception as exc:  # the store is down or refuses: never the caller's problem
                self.counts.failed += len(batch)
                self.counts.last_error = f"{type(exc).__name__}: {exc}"[:500]
                if not self.counts.warned:
                    self.counts.warned = True
                    logger.warning(
                        "monitoring store %r failed; predictions are served but not logged: %s",
                        self.store,
                        exc,
                    )
            finally:
                for _ in batch:
                    self._queue.task_done()

    def _write(self, batch: list[PredictionEvent | RequestEvent]) -> None:
        """Store a drained batch: one frame per table, built column-wise, one insert each.

        Building rows per event cost ~270 µs of polars calls for a 28-row
        forecast and SQLAlchemy's dict parameters ~7.6 µs a row; concatenating
        the batch first and inserting tuples keeps the writer's share of the
        GIL small, since it runs beside the requests it logs.
        """
        events = [e for e in batch if isinstance(e, PredictionEvent)]
        requests = [e for e in batch if isinstance(e, RequestEvent)]
        if events:
            values = _prediction_table(events)
            further = [c for c in values.columns if _FURTHER.fullmatch(c)]
            self.store.insert_frames(
                {"mon_predictions": values.drop(further), "mon_intervals": _interval_table(values, further)}
            )
            samples = [_sample(e) for e in events if e.inputs is not None and e.inputs.height]
            if samples:
                self.store.insert_rows(
                    "mon_feature_samples", pl.DataFrame(samples, orient="row", schema=_SAMPLE_SCHEMA)
                )
        if requests:
            self.store.insert_rows(
                "mon_requests",
                pl.DataFrame(
                    [
                        (e.deployment_id, e.created, e.route, e.status, e.latency_ms, e.rows, e.cache_hit)
                        for e in requests
                    ],
                    orient="row",
                    schema=_REQUEST_SCHEMA,
                ),
            )


_SAMPLE_SCHEMA = {"deployment_id": pl.String, "created": pl.Float64, "rows": pl.String}
_REQUEST_SCHEMA = {
    "deployment_id": pl.String,
    "created": pl.Float64,
    "route": pl.String,
    "status": pl.Int64,
    "latency_ms": pl.Float64,
    "rows": pl.Int64,
    "cache_hit": pl.Boolean,
}
_META = ("deployment_id", "version", "model_id", "request_id", "source", "created")


def _sample(event: PredictionEvent) -> tuple[str, float, str]:
    """Up to :data:`SAMPLE_ROWS` input rows of one event, as JSON columns, for drift."""
    assert event.inputs is not None
    sample = event.inputs
    if sample.height > SAMPLE_ROWS:
        sample = sample.sample(SAMPLE_ROWS, seed=random.randrange(2**31))
    rows = orjson.dumps(sample.to_dict(as_series=False), option=orjson.OPT_SERIALIZE_NUMPY)
    return event.deployment_id, event.created, rows.decode()


def _prediction_table(events: list[PredictionEvent]) -> pl.DataFrame:
    """Every event's predicted values as rows of ``mon_predictions``, built once for the batch.

    Time series frames are concatenated first and converted by one expression
    set: per-event expressions cost ~150 µs of polars overhead each.
    """
    ordered = [e for e in events if e.kind == "timeseries"] + [e for e in events if e.kind != "timeseries"]
    forecasts = [e.frame for e in ordered if e.kind == "timeseries"]
    parts = [_forecast_values(pl.concat(forecasts, how="diagonal_relaxed"))] if forecasts else []
    parts += [_tabular_values(e) for e in ordered if e.kind != "timeseries"]
    owner = pl.Series(np.repeat(np.arange(len(ordered)), [e.frame.height for e in ordered]))
    meta = [
        pl.Series(
            name, [getattr(e, name) for e in ordered], dtype=pl.Float64 if name == "created" else pl.String
        )
        .gather(owner)
        .alias(name)
        for name in _META
    ]
    values = pl.concat(parts, how="diagonal_relaxed")
    return values.with_columns(meta)


def _interval_table(values: pl.DataFrame, further: list[str]) -> pl.DataFrame:
    """Rows of ``mon_intervals``: the ``low_<p>``/``high_<p>`` columns of ``values``, one row per percentile."""
    keys = ["deployment_id", "created", "association_id", "forecast_point"]
    parts = [
        values.select(
            *keys,
            pl.lit(int(p), pl.Int64).alias("percentile"),
            pl.col(f"low_{p}").alias("low"),
            pl.col(f"high_{p}").alias("high"),
        ).filter(pl.col("low").is_not_null() | pl.col("high").is_not_null())
        for p in sorted({c.partition("_")[2] for c in further}, key=int)
    ]
    return pl.concat(parts) if parts else pl.DataFrame()


def _forecast_values(frame: pl.DataFrame) -> pl.DataFrame:
    """Association ids, series, times, distances, predictions and intervals of forecast rows.

    The deployment's own interval is ``low``/``high``; each further percentile
    it serves (``predictionIntervalLow_<p>``) becomes ``low_<p>``/``high_<p>``.
    """
    interval = "predictionIntervalLow" in frame.columns
    further = [m.group(1) for c in frame.columns if (m := _SERVED.fullmatch(c))]
    series = pl.col("seriesId").cast(pl.String)
    return frame.select(
        association_ids(series, pl.col("timestamp")).alias("association_id"),
        series.alias("series_id"),
        (pl.col("forecastPoint").dt.epoch("us") / 1e6).alias("forecast_point"),
        (pl.col("timestamp").dt.epoch("us") / 1e6).alias("timestamp"),
        pl.col("forecastDistance").cast(pl.Int64).alias("distance"),
        pl.col("prediction").cast(pl.Float64),
        (pl.col("predictionIntervalLow") if interval else pl.lit(None, pl.Float64)).alias("low"),
        (pl.col("predictionIntervalHigh") if interval else pl.lit(None, pl.Float64)).alias("high"),
        *(
            pl.col(f"{name}_{p}").cast(pl.Float64).alias(f"{bound}_{p}")
            for p in further
            for name, bound in ((INTERVAL_LOW, "low"), (INTERVAL_HIGH, "high"))
        ),
    )


def _tabular_values(event: PredictionEvent) -> pl.DataFrame:
    """Association ids, scores and labels of one tabular request."""
    frame = event.frame
    association = (
        event.association.cast(pl.String).alias("association_id")
        if event.association is not None
        else pl.Series("association_id", [None] * frame.height, dtype=pl.String)
    )
    label = frame.get_column("prediction")
    labelled = label.dtype == pl.String or event.positive_class is not None
    return pl.DataFrame(
        [
            association,
            pl.Series("prediction", _score_column(frame, event.positive_class), dtype=pl.Float64),
            label.cast(pl.String).alias("label")
            if labelled
            else pl.Series("label", [None] * frame.height, dtype=pl.String),
        ]
    )


def _score_column(frame: pl.DataFrame, positive_class: Any) -> Any:
    """Regression: the value; binary: the positive class probability; multiclass: None."""
    if positive_class is None:
        column = frame.get_column("prediction")
        return column.cast(pl.Float64, strict=False) if column.dtype != pl.String else [None] * frame.height
    probability = [c for c in frame.columns if c.endswith(f"_{positive_class}_PREDICTION")]
    return frame.get_column(probability[0]) if probability else [None] * frame.height
