"""Monitoring of deployments: what the HTTP routes, batch jobs and the CLI call.

:class:`Monitor` ties the prediction log (:mod:`tsengine.monitoring.log`), the
store, and the numeric cores (:mod:`~tsengine.monitoring.accuracy`,
:mod:`~tsengine.monitoring.drift`) together and answers in DataRobot's shapes
(``accuracy/``, ``accuracyOverTime/``, ``featureDrift/``, ``targetDrift/``,
``serviceStats/``, ``settings/``), so the ``datarobot`` client reads them
unchanged.  Periods are ``[start, end)`` in UTC over the prediction time.

This module records (predictions, requests, actuals) and keeps the settings;
the reports are the :class:`~tsengine.monitoring.reports.MonitorReports` half
of :class:`Monitor`, in their own module.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import polars as pl

from tsengine.datetimes import parse_timestamp
from tsengine.errors import ConflictError, MonitoringStoreError, ParameterError, ValidationError, short_list
from tsengine.monitoring.log import MonitoringLog, PredictionEvent, RequestEvent
from tsengine.monitoring.reports import MonitorReports, epoch_seconds
from tsengine.monitoring.store import DEFAULT_SETTINGS, MonitoringStore

__all__ = ["MAX_ACTUALS_PER_REQUEST", "Monitor", "canonical_association_id"]

MAX_ACTUALS_PER_REQUEST = 10_000
"""DataRobot's limit per ``actuals/fromJSON/`` call (the client sends batches of this size)."""
_SETTINGS_RETRY_SECONDS = 60.0
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


class Monitor(MonitorReports):
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
                seconds = epoch_seconds(parse_timestamp(str(stamp), name=f"{where}.timestamp"))
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
