"""DataRobot's ``/api/v2/deployments/{id}/…`` monitoring routes, as the ``datarobot`` client calls them.

Settings and actuals answer **202 with a Location** that the client polls
(``wait_for_async_resolution``): the work is done before answering, so the
status resource is already ``COMPLETED`` and carries the import's report.
Everything else is a GET over a period ``[start, end)`` (ISO 8601, UTC).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import polars as pl
from fastapi import APIRouter, Depends, FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from tsengine.batch.store import new_id
from tsengine.errors import BadRequestError, NotFoundError, ParameterError, ValidationError
from tsengine.io import read_table
from tsengine.monitoring.actuals import actual_records, submit_records
from tsengine.monitoring.service import Monitor
from tsengine.registry import Registry
from tsengine.timestep import parse_timestamp

__all__ = ["add_monitoring_routes"]

V2 = "/api/v2"
_STATUSES = 1000


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NAIVE_UTC),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _when(request: Request, name: str) -> dt.datetime | None:
    value = request.query_params.get(name)
    return None if value is None else parse_timestamp(value.replace(" ", "+"), name=name)


def _interval_settings(deployment: Any) -> dict[str, Any]:
    """DataRobot's ``predictionIntervals`` setting: what the deployment serves, fixed at training."""
    served = list(getattr(deployment, "interval_percentiles", ()))
    return {"enabled": bool(served), "percentiles": served}


def _check_interval_patch(value: Any, served: dict[str, Any]) -> None:
    """A PATCH may restate the intervals, not change them: they are tables built at training.

    Raises:
        ParameterError: naming what the deployment serves and how to get others.
    """
    if isinstance(value, dict) and value.get("enabled", True) == served["enabled"]:
        asked = value.get("percentiles", served["percentiles"])
        whole = isinstance(asked, list) and all(isinstance(p, int) and not isinstance(p, bool) for p in asked)
        if whole and sorted(asked) == served["percentiles"]:
            return
    shown = ", ".join(map(str, served["percentiles"])) or "none"
    msg = (
        f"predictionIntervals: fixed at training (this deployment serves percentiles {shown}); "
        "train with --interval-percentile (several allowed, e.g. 80,50,95) for others"
    )
    raise ParameterError(msg)


class MonitoringRoutes:
    """Route handlers bound to one monitor and registry."""

    def __init__(
        self,
        monitor: Monitor,
        registry: Registry,
        load: Callable[[str], Any],
        dataset_path: Callable[[str, str | None], tuple[Path, str]] | None = None,
    ) -> None:
        self.monitor = monitor
        self.registry = registry
        self.load = load
        self.dataset_path = dataset_path
        self._statuses: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def _done(self, request: Request, result: dict[str, Any]) -> Response:
        status_id = new_id()
        with self._lock:
            self._statuses[status_id] = {"status": "COMPLETED", "statusId": status_id, **result}
            while len(self._statuses) > _STATUSES:
                self._statuses.popitem(last=False)
        location = f"{str(request.base_url).rstrip('/')}{V2}/status/{status_id}/"
        return _json({"statusId": status_id, **result}, 202, {"Location": location})

    async def status(self, status_id: str) -> Response:
        """``GET status/{id}/``: what ``wait_for_async_resolution`` polls."""
        with self._lock:
            found = self._statuses.get(status_id)
        if found is None:
            msg = f"status {status_id!r} not found (statuses are kept for the last {_STATUSES} calls)"
            raise NotFoundError(msg)
        return _json(found)

    async def _deployment(self, deployment_id: str) -> Any:
        return await run_in_threadpool(self.load, deployment_id)

    async def get_settings(self, deployment_id: str) -> Response:
        """``GET deployments/{id}/settings/``, with the intervals the deployment serves."""
        deployment = await self._deployment(deployment_id)
        settings = await run_in_threadpool(self.monitor.settings, deployment_id)
        return _json({**settings, "predictionIntervals": _interval_settings(deployment)})

    async def patch_settings(self, request: Request, deployment_id: str) -> Response:
        """``PATCH deployments/{id}/settings/``: 202 + Location."""
        served = _interval_settings(await self._deployment(deployment_id))
        body = await _body(request)
        if isinstance(body, dict) and "predictionIntervals" in body:
            body = dict(body)
            _check_interval_patch(body.pop("predictionIntervals"), served)
        settings = await run_in_threadpool(self.monitor.update_settings, deployment_id, body)
        return self._done(request, {"settings": {**settings, "predictionIntervals": served}})

    async def actuals(self, request: Request, deployment_id: str) -> Response:
        """``POST deployments/{id}/actuals/fromJSON/``: 202 + Location; the report counts bad rows."""
        deployment = await self._deployment(deployment_id)
        body = await _body(request)
        if not isinstance(body, dict):
            msg = "the body must be an object with a data list"
            raise ParameterError(msg)
        report = await run_in_threadpool(self.monitor.submit_actuals, deployment, body.get("data"))
        return self._reported(request, report)

    def _reported(self, request: Request, report: dict[str, Any]) -> Response:
        """202 when every actual was usable; else 422 naming the bad rows (the good ones are kept)."""
        if report["invalid"]:
            shown = "; ".join(report["invalidRows"][:5])
            more = f" and {report['invalid'] - 5} more" if report["invalid"] > 5 else ""
            msg = (
                f"{report['invalid']} of {report['received']} actuals were not stored: {shown}{more}. "
                f"The other {report['received'] - report['invalid']} were kept "
                f"({report['inserted']} new, {report['duplicates']} already known)"
            )
            raise ValidationError(msg)
        return self._done(request, report)

    async def actuals_from_dataset(self, request: Request, deployment_id: str) -> Response:
        """``POST deployments/{id}/actuals/fromDataset/``: actuals from a catalog dataset's columns."""
        deployment = await self._deployment(deployment_id)
        body = await _body(request)
        if not isinstance(body, dict) or not isinstance(body.get("datasetId"), str):
            msg = "datasetId: required, the catalog dataset holding the actuals"
            raise ParameterError(msg)
        for key in ("actualValueColumn", "associationIdColumn"):
            if not isinstance(body.get(key), str) and not (
                key == "associationIdColumn" and body.get("seriesIdColumn")
            ):
                msg = f"{key}: required, the dataset's column name"
                raise ParameterError(msg)
        if self.dataset_path is None:
            msg = "this server has no dataset catalog"
            raise NotFoundError(msg)
        path, fmt = await run_in_threadpool(
            self.dataset_path, body["datasetId"], body.get("datasetVersionId")
        )
        frame = await run_in_threadpool(pl.read_parquet if fmt == "parquet" else read_table, path)
        records = actual_records(
            deployment,
            frame,
            f"dataset {body['datasetId']}",
            association_column=body.get("associationIdColumn"),
            actual_column=body["actualValueColumn"],
            timestamp_column=body.get("timestampColumn"),
            acted_column=body.get("wasActedOnColumn"),
            series_column=body.get("seriesIdColumn"),
        )
        report = await run_in_threadpool(submit_records, self.monitor, deployment, records)
        return self._reported(request, report)

    async def accuracy(self, request: Request, deployment_id: str) -> Response:
        """``GET deployments/{id}/accuracy/``."""
        deployment = await self._deployment(deployment_id)
        start, end = _when(request, "start"), _when(request, "end")
        return _json(await run_in_threadpool(self.monitor.accuracy, deployment, start, end))

    async def accuracy_over_time(self, request: Request, deployment_id: str) -> Response:
        """``GET deployments/{id}/accuracyOverTime/?metric=…&bucketSize=P1D``."""
        deployment = await self._deployment(deployment_id)
        start, end = _when(request, "start"), _when(request, "end")
        bucket = _duration(request.query_params.get("bucketSize"))
        metric = request.query_params.get("metric")
        result = await run_in_threadpool(
            lambda: self.monitor.accuracy_over_time(deployment, start, end, metric=metric, bucket=bucket)
        )
        return _json(result)

    async def accuracy_breakdown(self, request: Request, deployment_id: str) -> Response:
        """``GET deployments/{id}/accuracyBreakdown/``: by forecast distance and by series."""
        deployment = await self._deployment(deployment_id)
        start, end = _when(request, "start"), _when(request, "end")
        return _json(await run_in_threadpool(self.monitor.accuracy_breakdown, deployment, start, end))

    async def feature_drift(self, request: Request, deployment_id: str) -> Response:
        """``GET deployments/{id}/featureDrift/``."""
        deployment = await self._deployment(deployment_id)
        start, end = _when(request, "start"), _when(request, "end")
        return _json(await run_in_threadpool(self.monitor.feature_drift, deployment, start, end))

    async def target_drift(self, request: Request, deployment_id: str) -> Response:
        """``GET deployments/{id}/targetDrift/``."""
        deployment = await self._deployment(deployment_id)
        start, end = _when(request, "start"), _when(request, "end")
        return _json(await run_in_threadpool(self.monitor.target_drift, deployment, start, end))

    async def service_stats(self, request: Request, deployment_id: str) -> Response:
        """``GET deployments/{id}/serviceStats/``."""
        deployment = await self._deployment(deployment_id)
        start, end = _when(request, "start"), _when(request, "end")
        return _json(await run_in_threadpool(self.monitor.service_stats, deployment, start, end))


async def _body(request: Request) -> Any:
    data = await request.body()
    try:
        return orjson.loads(data) if data.strip() else {}
    except orjson.JSONDecodeError as exc:
        msg = f"The body is not valid JSON: {exc}"
        raise BadRequestError(msg) from exc


def _duration(text: str | None) -> dt.timedelta | None:
    """``P1D``, ``PT1H``, ``P7D`` (ISO 8601 durations of days and hours), or None."""
    if text is None:
        return None
    units = {"PT1H": dt.timedelta(hours=1), "P1D": dt.timedelta(days=1), "P7D": dt.timedelta(days=7)}
    if text not in units:
        msg = f"bucketSize must be PT1H, P1D or P7D, got {text!r}"
        raise ParameterError(msg)
    return units[text]


def add_monitoring_routes(
    app: FastAPI,
    monitor: Monitor,
    registry: Registry,
    load: Callable[[str], Any],
    auth: Callable[..., Any],
    dataset_path: Callable[[str, str | None], tuple[Path, str]] | None = None,
) -> None:
    """Mount the monitoring routes (behind the API-key check); ``dataset_path`` resolves catalog datasets."""
    routes = MonitoringRoutes(monitor, registry, load, dataset_path)
    router = APIRouter(prefix=V2, dependencies=[Depends(auth)], tags=["monitoring"])
    add = router.add_api_route
    deployment = "/deployments/{deployment_id}"
    add("/status/{status_id}/", routes.status, methods=["GET"])
    add(f"{deployment}/settings/", routes.get_settings, methods=["GET"])
    add(f"{deployment}/settings/", routes.patch_settings, methods=["PATCH"], status_code=202)
    add(f"{deployment}/actuals/fromJSON/", routes.actuals, methods=["POST"], status_code=202)
    add(f"{deployment}/actuals/fromDataset/", routes.actuals_from_dataset, methods=["POST"], status_code=202)
    add(f"{deployment}/accuracy/", routes.accuracy, methods=["GET"])
    add(f"{deployment}/accuracyOverTime/", routes.accuracy_over_time, methods=["GET"])
    add(f"{deployment}/accuracyBreakdown/", routes.accuracy_breakdown, methods=["GET"])
    add(f"{deployment}/featureDrift/", routes.feature_drift, methods=["GET"])
    add(f"{deployment}/targetDrift/", routes.target_drift, methods=["GET"])
    add(f"{deployment}/serviceStats/", routes.service_stats, methods=["GET"])
    app.include_router(router)
