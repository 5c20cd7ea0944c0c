"""Prometheus metrics at ``GET /metrics``, labelled by deployment and route.

Each app owns its own :class:`prometheus_client.CollectorRegistry` (tests build
many apps in one process).  The middleware counts prediction requests as their
response starts; the prediction log's counters (dropped and failed events) are
read when Prometheus scrapes, so a gap in monitoring shows on the dashboard too.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.responses import Response

from tsengine.monitoring.service import Monitor

__all__ = ["Metrics"]

# Latency buckets in seconds: a one-series forecast takes ~10 ms, a big batch request seconds.
_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class _LogCollector(Collector):
    """The prediction log's counters, read at scrape time."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor

    def collect(self) -> Iterator[Metric]:
        stats = self.monitor.log.stats()
        events = CounterMetricFamily(
            "tsengine_monitoring_events", "Prediction-log events by outcome", labels=["outcome"]
        )
        for outcome in ("recorded", "written", "dropped", "failed"):
            events.add_metric([outcome], float(stats[outcome]))
        yield events
        yield GaugeMetricFamily(
            "tsengine_monitoring_queued", "Prediction-log events waiting", value=stats["queued"]
        )


class Metrics:
    """The counters one app exports."""

    def __init__(self, monitor: Monitor | None) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "tsengine_prediction_requests",
            "Prediction requests by deployment, route and HTTP status",
            ["deployment", "route", "status"],
            registry=self.registry,
        )
        self.predictions = Counter(
            "tsengine_predictions",
            "Prediction rows returned, by deployment",
            ["deployment"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tsengine_prediction_latency_seconds",
            "Time from request to response start, by deployment and route",
            ["deployment", "route"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.cache = Counter(
            "tsengine_model_cache_lookups",
            "Model cache lookups by deployment and result",
            ["deployment", "result"],
            registry=self.registry,
        )
        if monitor is not None:
            self.registry.register(_LogCollector(monitor))

    def observe(
        self, deployment: str, route: str, status: int, seconds: float, rows: int, cache_hit: bool
    ) -> None:
        """Count one prediction request."""
        self.requests.labels(deployment, route, str(status)).inc()
        self.latency.labels(deployment, route).observe(seconds)
        self.cache.labels(deployment, "hit" if cache_hit else "miss").inc()
        if rows:
            self.predictions.labels(deployment).inc(rows)

    def response(self) -> Response:
        """The exposition text for ``GET /metrics``."""
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)
