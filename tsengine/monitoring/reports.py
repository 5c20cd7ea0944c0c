"""The monitor's reports: accuracy, drift and service health over a period.

These are the read side of :class:`~tsengine.monitoring.service.Monitor` (a
mixin of it): each joins what the store logged with the deployment's training
baselines and answers in DataRobot's shapes (``accuracy/``,
``accuracyOverTime/``, ``featureDrift/``, ``targetDrift/``, ``serviceStats/``),
so the ``datarobot`` client reads them unchanged.  The numeric cores are
:mod:`~tsengine.monitoring.accuracy` and :mod:`~tsengine.monitoring.drift`;
what is here picks the period, the rows and the baseline.  Periods are
``[start, end)`` in UTC over the prediction time.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import polars as pl

from tsengine.errors import MonitoringStoreError, ParameterError
from tsengine.monitoring import accuracy as acc
from tsengine.monitoring import drift
from tsengine.monitoring.log import MonitoringLog
from tsengine.monitoring.store import MonitoringStore

__all__ = ["DEFAULT_PERIOD", "SLOW_REQUEST_MS", "MonitorReports", "epoch_seconds"]

DEFAULT_PERIOD = dt.timedelta(days=7)
SLOW_REQUEST_MS = 1000.0


def epoch_seconds(value: dt.datetime) -> float:
    """A naive UTC datetime as POSIX seconds, as the store keeps times."""
    return value.replace(tzinfo=dt.UTC).timestamp()


def _period(start: dt.datetime, end: dt.datetime) -> dict[str, str]:
    """DataRobot's ``period`` object: both bounds as ISO 8601 UTC with ``Z``."""
    return {"start": start.isoformat() + "Z", "end": end.isoformat() + "Z"}


def _float(value: Any) -> float | None:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return float(value)


class MonitorReports:
    """The reporting half of the monitor; it reads the store and the log the monitor opened."""

    store: MonitoringStore
    log: MonitoringLog

    if TYPE_CHECKING:

        def settings(self, deployment_id: str) -> dict[str, Any]:
            """Provided by the monitor."""
            ...

    def period(self, start: dt.datetime | None, end: dt.datetime | None) -> tuple[dt.datetime, dt.datetime]:
        """The reporting period: given bounds, else the last 7 days up to the next hour.

        Raises:
            ParameterError: start not before end.
        """
        now = dt.datetime.fromtimestamp(self.store.now(), dt.UTC).replace(tzinfo=None)
        end = end or (now.replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1))
        start = start or (end - DEFAULT_PERIOD)
        if start >= end:
            msg = f"start ({start.isoformat()}) must be before end ({end.isoformat()})"
            raise ParameterError(msg)
        return start, end

    @staticmethod
    def _kind(deployment: Any) -> acc.Kind:
        """Time series deployments are scored as regression."""
        task = "regression" if deployment.kind == "timeseries" else str(deployment.task)
        return cast("acc.Kind", task)

    def _joined(self, deployment: Any, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
        """The period's predictions with their actuals, with bounds columns for every served percentile.

        A percentile served but not in the log (predictions logged before it
        was stored) gets null bounds, so its ``Coverage<p>`` reads None.
        """
        joined = self.store.joined(deployment.id, start=epoch_seconds(start), end=epoch_seconds(end))
        stamp = pl.col("timestamp") if deployment.kind == "timeseries" else pl.col("actual_timestamp")
        return joined.with_columns(
            (stamp * 1_000_000).cast(pl.Int64).cast(pl.Datetime("us")).alias("timestamp"),
            pl.col("series_id"),
            pl.col("label"),
            *(
                pl.lit(None, pl.Float64).alias(f"{bound}_{p}")
                for p in self._further(deployment)
                for bound in ("low", "high")
                if f"{bound}_{p}" not in joined.columns
            ),
        )

    @staticmethod
    def _further(deployment: Any) -> tuple[int, ...]:
        """The percentiles a deployment serves beside its own interval (``--interval-percentile``)."""
        return tuple(sorted(t.percentile for t in getattr(deployment, "more_intervals", ())))

    def accuracy(self, deployment: Any, start: dt.datetime | None, end: dt.datetime | None) -> dict[str, Any]:
        """``GET accuracy/``: each metric over the period, with the training backtest as baseline."""
        start, end = self.period(start, end)
        joined = self._joined(deployment, start, end)
        kind = self._kind(deployment)
        values = acc.metrics(joined, kind=kind)
        baselines = self._baselines(deployment)
        metrics: dict[str, Any] = {}
        data = []
        for name, value in values.items():
            base = baselines.get(name)
            change = (
                None if value is None or base in (None, 0) else round(100.0 * (value - base) / abs(base), 4)
            )
            metrics[name] = {"value": _float(value), "baselineValue": _float(base), "percentChange": change}
            data.append(
                {
                    "modelId": deployment.model_id,
                    "metricName": name,
                    "value": _float(value),
                    "sampleSize": joined.height,
                    "baselineValue": _float(base),
                    "baselineSampleSize": None,
                    "percentChange": change,
                }
            )
        return {
            "period": _period(start, end),
            "metrics": metrics,
            "data": data,
            "modelId": deployment.model_id,
            "sampleSize": joined.height,
        }

    @staticmethod
    def _baselines(deployment: Any) -> dict[str, float]:
        """Training-time figures to compare with: the backtest MASE and each interval's held-out coverage.

        An interval's baseline is training's own held-out check (``tsengine
        info``): the share of later backtest actuals inside intervals fitted on
        the origins before them, as a share like the logged ``Coverage``.
        """
        metadata = getattr(deployment, "metadata", {})
        chosen = metadata.get("selection", {}).get("model")
        row = next((r for r in metadata.get("leaderboard", []) if r.get("model") == chosen), None)
        mase = row.get("mase") if row else None
        out = {"MASE": float(mase)} if isinstance(mase, int | float) and math.isfinite(mase) else {}
        own = getattr(deployment, "intervals", None)
        for table in (own, *getattr(deployment, "more_intervals", ())) if own is not None else ():
            covered = table.describe().get("check", {}).get("coverage")
            if isinstance(covered, int | float) and math.isfinite(covered):
                out["Coverage" if table is own else acc.coverage_metric(table.percentile)] = covered / 100.0
        return out

    def accuracy_over_time(
        self,
        deployment: Any,
        start: dt.datetime | None,
        end: dt.datetime | None,
        *,
        metric: str | None = None,
        bucket: dt.timedelta | None = None,
    ) -> dict[str, Any]:
        """``GET accuracyOverTime/``: one metric by time bucket of the predicted timestamp."""
        start, end = self.period(start, end)
        kind = self._kind(deployment)
        joined = self._joined(deployment, start, end)
        names = acc.metric_names(kind, joined)
        metric = metric or names[0]
        if metric not in names:
            msg = f"metric: {metric!r} is not reported for this deployment; use one of {', '.join(names)}"
            raise ParameterError(msg)
        # forecasts are bucketed by the time they forecast; the period selects when they were made
        stamps = joined.get_column("timestamp").drop_nulls()
        lo = stamps.min() if stamps.len() else start
        hi = stamps.max() if stamps.len() else end
        assert isinstance(lo, dt.datetime)
        assert isinstance(hi, dt.datetime)
        hi = hi + dt.timedelta(microseconds=1)
        width = bucket or acc.choose_bucket(lo, hi)
        table = acc.over_time(joined, kind=kind, bucket=width, start=lo, end=hi)
        buckets = [
            {
                "period": _period(row["bucketStart"], row["bucketEnd"]),
                "value": _float(row.get(metric)),
                "sampleSize": int(row["sampleSize"]),
            }
            for row in table.to_dicts()
        ]
        return {
            "buckets": buckets,
            "baselines": [],
            "metric": metric,
            "modelId": deployment.model_id,
            "summary": {
                "period": _period(lo, hi),
                "value": _float(acc.metrics(joined, kind=kind).get(metric)),
                "sampleSize": joined.height,
            },
        }

    def accuracy_breakdown(
        self, deployment: Any, start: dt.datetime | None, end: dt.datetime | None
    ) -> dict[str, Any]:
        """Accuracy by forecast distance and by series (tsengine's extension for planners)."""
        start, end = self.period(start, end)
        joined = self._joined(deployment, start, end)
        kind = self._kind(deployment)
        return {
            "period": _period(start, end),
            "byForecastDistance": acc.by_distance(joined, kind=kind).to_dicts(),
            "bySeries": acc.by_series(joined, kind=kind).to_dicts(),
        }

    def _require_tracking(self, deployment_id: str, kind: str) -> None:
        if not self.settings(deployment_id)[kind]["enabled"]:
            msg = (
                f"{kind} tracking is disabled for deployment {deployment_id!r}; enable it with "
                f'PATCH settings/ {{"{kind}": {{"enabled": true}}}}'
            )
            raise ParameterError(msg)

    def feature_drift(
        self, deployment: Any, start: dt.datetime | None, end: dt.datetime | None
    ) -> dict[str, Any]:
        """``GET featureDrift/``: PSI of each feature's logged sample against its training baseline.

        Raises:
            ParameterError: feature drift tracking is switched off in the settings.
        """
        self._require_tracking(deployment.id, "featureDrift")
        start, end = self.period(start, end)
        baseline = deployment.metadata.get("drift_baseline") or {}
        sample = self.store.samples(deployment.id, start=epoch_seconds(start), end=epoch_seconds(end))
        importance = drift.model_importance(deployment)
        data = (
            drift.feature_drift(baseline.get("features", {}), sample, importance=importance)
            if sample.height
            else []
        )
        return {
            "period": _period(start, end),
            "metric": "psi",
            "modelId": deployment.model_id,
            "data": data,
            "next": None,
            "previous": None,
            "count": len(data),
        }

    def target_drift(
        self, deployment: Any, start: dt.datetime | None, end: dt.datetime | None
    ) -> dict[str, Any]:
        """``GET targetDrift/``: PSI of the predictions against the training-time distribution.

        Raises:
            ParameterError: target drift tracking is switched off in the settings.
        """
        self._require_tracking(deployment.id, "targetDrift")
        start, end = self.period(start, end)
        stored = deployment.metadata.get("drift_baseline") or {}
        # predictions against the model's backtest predictions where training kept them (time
        # series); else against the training target (tabular, older deployments)
        baseline = stored.get("predictions") or stored.get("target")
        predictions = self.store.frame(
            "mon_predictions", deployment.id, start=epoch_seconds(start), end=epoch_seconds(end)
        )
        values = predictions.get_column(
            "label" if baseline and baseline.get("type") == "categorical" else "prediction"
        )
        result = (
            drift.target_drift(baseline, values)
            if baseline
            else {
                "driftScore": None,
                "sampleSize": values.len(),
                "baselineSampleSize": None,
                "status": "unknown",
            }
        )
        target = deployment.target if deployment.kind == "tabular" else deployment.spec.target
        return {
            "period": _period(start, end),
            "metric": "psi",
            "modelId": deployment.model_id,
            "targetName": target,
            "segmentValue": None,
            **result,
        }

    def service_stats(
        self, deployment: Any, start: dt.datetime | None, end: dt.datetime | None
    ) -> dict[str, Any]:
        """``GET serviceStats/``: requests, predictions, latency, error rates, cache hits, log health."""
        start, end = self.period(start, end)
        try:
            requests = self.store.frame(
                "mon_requests", deployment.id, start=epoch_seconds(start), end=epoch_seconds(end)
            )
            predictions = self.store.frame(
                "mon_predictions", deployment.id, start=epoch_seconds(start), end=epoch_seconds(end)
            )
            store_error = None
        except MonitoringStoreError as exc:  # the log's own counters still tell the gap
            requests = predictions = pl.DataFrame({"latency_ms": [], "status": [], "cache_hit": []})
            store_error = exc.message
        total = requests.height
        latency = requests.get_column("latency_ms").to_numpy() if total else np.empty(0)
        status = requests.get_column("status").to_numpy() if total else np.empty(0)
        hits = requests.get_column("cache_hit").to_numpy() if total else np.empty(0)
        metrics = {
            "totalPredictions": predictions.height,
            "totalRequests": total,
            "slowRequests": int((latency > SLOW_REQUEST_MS).sum()),
            "executionTime": _float(np.median(latency)) if total else None,
            "responseTime": _float(np.percentile(latency, 99)) if total else None,
            "userErrorRate": float(((status >= 400) & (status < 500)).mean()) if total else 0.0,
            "serverErrorRate": float((status >= 500).mean()) if total else 0.0,
            "numConsumers": 1 if total else 0,
            "cacheHitRatio": float(hits.mean()) if total else 0.0,
        }
        return {
            "period": _period(start, end),
            "metrics": metrics,
            "modelId": deployment.model_id,
            "latencyMs": {
                "p50": _float(np.percentile(latency, 50)) if total else None,
                "p99": _float(np.percentile(latency, 99)) if total else None,
            },
            "monitoringLog": {**self.log.stats(), "storeError": store_error},
        }
