"""Monitoring of deployments: what the HTTP routes, batch jobs and the CLI call.

:class:`Monitor` ties the prediction log (:mod:`tsengine.monitoring.log`), the
store, and the numeric cores (:mod:`~tsengine.monitoring.accuracy`,
:mod:`~tsengine.monitoring.drift`) together and answers in DataRobot's shapes
(``accuracy/``, ``accuracyOverTime/``, ``featureDrift/``, ``targetDrift/``,
``serviceStats/``, ``settings/``), so the ``datarobot`` client reads them
unchanged.  Periods are ``[start, end)`` in UTC over the prediction time.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import time
from collections.abc import Mapping
from typing import Any, cast

import numpy as np
import polars as pl

from tsengine.errors import ConflictError, MonitoringStoreError, ParameterError, ValidationError, short_list
from tsengine.monitoring import accuracy as acc
from tsengine.monitoring import drift
from tsengine.monitoring.log import MonitoringLog, PredictionEvent, RequestEvent
from tsengine.monitoring.store import DEFAULT_SETTINGS, MonitoringStore
from tsengine.timestep import parse_timestamp

__all__ = ["MAX_ACTUALS_PER_REQUEST", "Monitor", "canonical_association_id"]

MAX_ACTUALS_PER_REQUEST = 10_000
"""DataRobot's limit per ``actuals/fromJSON/`` call (the client sends batches of this size)."""
DEFAULT_PERIOD = dt.timedelta(days=7)
_SETTINGS_RETRY_SECONDS = 60.0
SLOW_REQUEST_MS = 1000.0
_ASSOCIATION = re.compile(r"^(?P<series>.*)\|(?P<stamp>[^|]+)$")


def canonical_association_id(value: str, *, timeseries: bool) -> str:
    """The stored form of an association id: time series timestamps normalised to ISO UTC.

    ``EWR-UA|2014-01-01``, ``EWR-UA|2014-01-01T00:00:00Z`` and
    ``EWR-UA|2014-01-01 00:00:00+00:00`` name the same forecast.
    """
    text = value.strip()
    if not timeseries:
        return text
    match = _ASSOCIATION.match(text)
    series, stamp = (match["series"], match["stamp"]) if match else (None, text)
    try:
        iso = parse_timestamp(stamp, name="associationId").strftime("%Y-%m-%dT%H:%M:%SZ")
    except ParameterError:
        return text
    return iso if series is None else f"{series}|{iso}"


def _epoch(value: dt.datetime) -> float:
    return value.replace(tzinfo=dt.UTC).timestamp()


def _period(start: dt.datetime, end: dt.datetime) -> dict[str, str]:
    """DataRobot's ``period`` object: both bounds as ISO 8601 UTC with ``Z``."""
    return {"start": start.isoformat() + "Z", "end": end.isoformat() + "Z"}


def _float(value: Any) -> float | None:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return float(value)


class Monitor:
    """Records predictions and requests, takes actuals, reports accuracy, drift and health."""

    def __init__(self, store: MonitoringStore, *, capacity: int | None = None) -> None:
        """Open the log in front of ``store``."""
        self.store = store
        self.log = MonitoringLog(store) if capacity is None else MonitoringLog(store, capacity=capacity)
        self._settings: dict[str, dict[str, Any]] = {}
        self._fallback: dict[str, float] = {}

    def close(self) -> None:
        """Write what is queued and stop the writer."""
        self.log.close()

    # -------------------------------------------------------------- recording

    def settings(self, deployment_id: str) -> dict[str, Any]:
        """The deployment's monitoring settings (cached; changed only through :meth:`update_settings`)."""
        cached = self._settings.get(deployment_id)
        if cached is None or (
            deployment_id in self._fallback and time.monotonic() > self._fallback[deployment_id]
        ):
            try:
                cached = self.store.settings(deployment_id)
                self._fallback.pop(deployment_id, None)
            except MonitoringStoreError:
                # the store is down: serve with the defaults and look again in a minute
                cached = {key: dict(value) for key, value in DEFAULT_SETTINGS.items()}
                self._fallback[deployment_id] = time.monotonic() + _SETTINGS_RETRY_SECONDS
            self._settings[deployment_id] = cached
        return cached

    def last_prediction(self, deployment_id: str) -> dt.datetime | None:
        """When the deployment last predicted, as logged; None if never or the store is down."""
        try:
            seconds = self.store.last_prediction(deployment_id)
        except MonitoringStoreError:
            return None
        return None if seconds is None else dt.datetime.fromtimestamp(seconds, dt.UTC)

    def update_settings(self, deployment_id: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        """Apply ``PATCH settings/``: association id, drift switches.

        Raises:
            ParameterError: a malformed field, naming it.
            ConflictError: the association id column would change after predictions used it.
        """
        if not isinstance(patch, Mapping):
            msg = "the settings must be a JSON object"
            raise ParameterError(msg)
        current = self.store.settings(deployment_id)
        allowed = {"associationId", "targetDrift", "featureDrift", "predictionsDataCollection"}
        unknown = [k for k in patch if k not in allowed]
        if unknown:
            msg = f"{unknown[0]}: not a monitoring setting; use {', '.join(sorted(allowed))}"
            raise ParameterError(msg)
        for key in ("targetDrift", "featureDrift", "predictionsDataCollection"):
            if key in patch:
                value = patch[key]
                if not isinstance(value, Mapping) or not isinstance(value.get("enabled"), bool):
                    msg = f"{key}.enabled: must be true or false"
                    raise ParameterError(msg)
                current[key] = {"enabled": value["enabled"]}
        if "associationId" in patch:
            current["associationId"] = self._association_setting(
                deployment_id, current, patch["associationId"]
            )
        self.store.put_settings(deployment_id, current)
        self._settings[deployment_id] = current
        return current

    def _association_setting(self, deployment_id: str, current: dict[str, Any], value: Any) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            msg = "associationId: must be an object with columnNames and requiredInPredictionRequests"
            raise ParameterError(msg)
        names = value.get("columnNames", current["associationId"]["columnNames"])
        if not isinstance(names, list) or len(names) > 1 or not all(isinstance(n, str) and n for n in names):
            msg = "associationId.columnNames: exactly one column name may be given (a list of one string)"
            raise ParameterError(msg)
        required = value.get(
            "requiredInPredictionRequests", current["associationId"]["requiredInPredictionRequests"]
        )
        if not isinstance(required, bool):
            msg = "associationId.requiredInPredictionRequests: must be true or false"
            raise ParameterError(msg)
        old = current["associationId"]["columnNames"]
        if old and names != old and self.store.has_predictions(deployment_id):
            msg = (
                f"associationId.columnNames: predictions already carry {old[0]!r} as their association id; "
                "it cannot change now (as in DataRobot)"
            )
            raise ConflictError(msg)
        return {"columnNames": names, "requiredInPredictionRequests": required}

    def association_column(self, deployment: Any, frame: pl.DataFrame) -> pl.Series | None:
        """A tabular request's association ids, from the configured column.

        Raises:
            ValidationError: the column is required but missing (or empty in some rows).
        """
        setting = self.settings(deployment.id)["associationId"]
        names = setting["columnNames"]
        if not names or deployment.kind == "timeseries":
            return None
        name = names[0]
        if name not in frame.columns:
            if setting["requiredInPredictionRequests"]:
                msg = f"the association id column {name!r} is required in prediction requests and is missing"
                raise ValidationError(msg)
            return None
        column = frame.get_column(name)
        if setting["requiredInPredictionRequests"] and column.null_count():
            rows = np.flatnonzero(column.is_null().to_numpy()).tolist()
            msg = f"the association id column {name!r} is empty in rows {short_list(rows)}"
            raise ValidationError(msg)
        return column

    def record_prediction(
        self,
        deployment: Any,
        frame: pl.DataFrame,
        inputs: pl.DataFrame | None,
        *,
        created: float,
        request_id: str = "",
        source: str = "realtime",
        version: str | None = None,
        association: pl.Series | None = None,
    ) -> bool:
        """Queue one request's (or chunk's) predictions; never raises, never blocks."""
        if not self.settings(deployment.id)["predictionsDataCollection"]["enabled"]:
            return False
        tabular = deployment.kind == "tabular"
        event = PredictionEvent(
            deployment_id=deployment.id,
            kind=deployment.kind,
            frame=frame,
            created=created,
            request_id=request_id,
            source=source,
            version=version,
            model_id=deployment.model_id,
            association=association,
            # no feature samples while feature drift is off: nothing would read them
            inputs=inputs if self.settings(deployment.id)["featureDrift"]["enabled"] else None,
            positive_class=deployment.positive_class if tabular and deployment.task == "binary" else None,
        )
        return self.log.record(event)

    def record_request(self, event: RequestEvent) -> bool:
        """Queue one served request's status and latency."""
        return self.log.record(event)

    # ---------------------------------------------------------------- actuals

    def submit_actuals(self, deployment: Any, data: Any) -> dict[str, Any]:
        """Store posted actuals; bad rows are counted and named, never fatal for the rest.

        Args:
            deployment: the deployment the actuals belong to.
            data: the ``data`` list of ``actuals/fromJSON/``: ``associationId``,
                ``actualValue``, optional ``timestamp`` and ``wasActedOn``.

        Returns:
            A report: ``received``, ``inserted``, ``duplicates``, ``invalid``
            (count and the first messages), ``unknownAssociationIds``.

        Raises:
            ParameterError: ``data`` is not a list of 1 to 10,000 objects.
        """
        if not isinstance(data, list) or not data:
            msg = "data: required, a list of 1 to 10,000 actuals"
            raise ParameterError(msg)
        if len(data) > MAX_ACTUALS_PER_REQUEST:
            msg = f"data: at most {MAX_ACTUALS_PER_REQUEST:,} actuals per request, got {len(data):,}"
            raise ParameterError(msg)
        timeseries = deployment.kind == "timeseries"
        classifier = deployment.kind == "tabular" and deployment.task != "regression"
        rows: list[dict[str, Any]] = []
        problems: list[str] = []
        now = self.store.now()
        for index, item in enumerate(data):
            row, problem = self._actual_row(
                item, index, timeseries=timeseries, classifier=classifier, deployment=deployment
            )
            if problem:
                problems.append(problem)
            else:
                row["received"] = now
                rows.append(row)
        inserted, duplicates = self.store.upsert_actuals(deployment.id, rows)
        known = self.store.frame("mon_predictions", deployment.id).get_column("association_id")
        unknown = len({r["association_id"] for r in rows} - set(known.drop_nulls().to_list()))
        return {
            "received": len(data),
            "inserted": inserted,
            "duplicates": duplicates,
            "invalid": len(problems),
            "invalidRows": problems[:20],
            "unknownAssociationIds": unknown,
        }

    @staticmethod
    def _actual_row(
        item: Any, index: int, *, timeseries: bool, classifier: bool, deployment: Any
    ) -> tuple[dict[str, Any], str | None]:
        where = f"data[{index}]"
        if not isinstance(item, Mapping):
            return {}, f"{where}: must be an object with associationId and actualValue"
        association = item.get("associationId")
        if (
            not isinstance(association, str | int)
            or isinstance(association, bool)
            or str(association).strip() == ""
        ):
            return {}, f"{where}.associationId: required, a non-empty string"
        value = item.get("actualValue")
        actual: float | None = None
        label: str | None = None
        if classifier:
            if value is None or isinstance(value, dict | list):
                return {}, f"{where}.actualValue: required, a class label"
            label = str(value)
            if deployment.task == "binary":
                classes = [str(c) for c in deployment.classes]
                if label not in classes:
                    return (
                        {},
                        f"{where}.actualValue: {value!r} is not a class of this deployment ({', '.join(classes)})",
                    )
                actual = 1.0 if label == str(deployment.positive_class) else 0.0
        else:
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                return {}, f"{where}.actualValue: must be a finite number, got {value!r}"
            actual = float(value)
        stamp = item.get("timestamp")
        seconds = None
        if stamp is not None:
            try:
                seconds = _epoch(parse_timestamp(str(stamp), name=f"{where}.timestamp"))
            except ParameterError as exc:
                return {}, exc.message
        acted = item.get("wasActedOn")
        if acted is not None and not isinstance(acted, bool):
            return {}, f"{where}.wasActedOn: must be true or false"
        return {
            "association_id": canonical_association_id(str(association), timeseries=timeseries),
            "actual": actual,
            "actual_label": label,
            "timestamp": seconds,
            "was_acted_on": acted,
        }, None

    # --------------------------------------------------------------- reporting

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
        joined = self.store.joined(deployment.id, start=_epoch(start), end=_epoch(end))
        stamp = pl.col("timestamp") if deployment.kind == "timeseries" else pl.col("actual_timestamp")
        return joined.with_columns(
            (stamp * 1_000_000).cast(pl.Int64).cast(pl.Datetime("us")).alias("timestamp"),
            pl.col("series_id"),
            pl.col("label"),
        )

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
        """Training-time errors to compare with: the backtest MASE where the deployment has one."""
        metadata = getattr(deployment, "metadata", {})
        chosen = metadata.get("selection", {}).get("model")
        row = next((r for r in metadata.get("leaderboard", []) if r.get("model") == chosen), None)
        mase = row.get("mase") if row else None
        return {"MASE": float(mase)} if isinstance(mase, int | float) and math.isfinite(mase) else {}

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
        names = {"regression": acc.REGRESSION_METRICS, "binary": acc.BINARY_METRICS}.get(
            kind, acc.MULTICLASS_METRICS
        )
        metric = metric or names[0]
        if metric not in names:
            msg = f"metric: {metric!r} is not reported for this deployment; use one of {', '.join(names)}"
            raise ParameterError(msg)
        joined = self._joined(deployment, start, end)
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
        sample = self.store.samples(deployment.id, start=_epoch(start), end=_epoch(end))
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
        predictions = self.store.frame("mon_predictions", deployment.id, start=_epoch(start), end=_epoch(end))
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
            requests = self.store.frame("mon_requests", deployment.id, start=_epoch(start), end=_epoch(end))
            predictions = self.store.frame(
                "mon_predictions", deployment.id, start=_epoch(start), end=_epoch(end)
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
