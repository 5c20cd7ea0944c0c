"""The HTTP application factory: DataRobot predApi v1.0 over the deployment registry.

:func:`create_app` is the one place that assembles a server from its parts, so
that a reader sees every route, handler and middleware it mounts in one list:

* the predApi v1.0 and PPS-style prediction routes (:mod:`api.routes`), thin
  handlers that parse, call the core and send the core's rendering;
* :class:`~api.middleware.DataRobotMiddleware`, which gives every response
  DataRobot's ``X-DataRobot-*`` headers (errors and 404s included), refuses
  over-long request lines and turns a crash into a logged 500;
* one handler for the core's whole :class:`~tsengine.errors.TsEngineError` tree,
  mapping it to ``{"message": ...}``; FastAPI's and Starlette's own 404/405/422
  get the same shape, because DataRobot's client reads ``message`` from every error;
* the Peltarion- and Einstein-style routes for tabular (image) deployments
  (:mod:`api.image_routes`);
* the batch (``/api/v2``), monitoring, web and ``/metrics`` routes, each added
  by its own module.

It also builds the monitor and the batch engine a server runs
(:func:`monitor_for`, :func:`batch_engine`) from the settings.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from api.batch import add_batch_routes
from api.docs import add_offline_docs
from api.errors import error_response as error_response  # re-exported: its old home
from api.errors import exception_response
from api.image_routes import EINSTEIN_PREDICT, ImageRoutes
from api.metrics import Metrics
from api.middleware import PRECISE_TIME_HEADER as PRECISE_TIME_HEADER  # re-exported: its old home
from api.middleware import DataRobotMiddleware as DataRobotMiddleware  # re-exported: its old home
from api.middleware import RequestContext as RequestContext  # re-exported: its old home
from api.middleware import request_context
from api.monitoring import add_monitoring_routes
from api.openapi import ERROR_RESPONSES, PREDICTION_OPENAPI, Pong
from api.routes import PredictionRoutes
from api.routes import _predict_and_render as _predict_and_render  # re-exported: benchmarks time it here
from api.settings import Settings
from api.web import add_web_routes
from tsengine.batch import BatchEngine, BatchStore
from tsengine.batch.catalog import snapshot_path
from tsengine.distributed import DaskScoring, connect
from tsengine.errors import TsEngineError
from tsengine.monitoring.service import Monitor
from tsengine.monitoring.store import MonitoringStore
from tsengine.registry import Registry

__all__ = [
    "PRECISE_TIME_HEADER",
    "DataRobotMiddleware",
    "RequestContext",
    "batch_engine",
    "create_app",
    "monitor_for",
]

PREFIX = "/predApi/v1.0"


# ------------------------------------------------------------------ error handlers


async def _on_engine_error(request: Request, exc: Exception) -> Response:
    """The core's error tree (see :func:`api.errors.describe_error`)."""
    return exception_response(exc, request_id=request_context(request).request_id)


async def _on_http_error(request: Request, exc: Exception) -> Response:
    """Routing's 404/405 and raised HTTP errors, in DataRobot's words."""
    return exception_response(exc, request_id=request_context(request).request_id)


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    """FastAPI's request validation: 422 naming each bad field."""
    return exception_response(exc, request_id=request_context(request).request_id)


# ---------------------------------------------------------------- prediction routes


def _add_prediction_routes(
    app: FastAPI,
    routes: PredictionRoutes,
    table: list[tuple[str, Callable[..., Awaitable[Response]], bool]],
) -> None:
    """Mount the prediction POSTs as plain Starlette routes, first in line; document them as usual.

    They are the hot path.  A FastAPI route pays for dependency solving, path
    parameter validation and the nested-router lookup on every call: measured
    in process on one core, 0.3-0.6 ms of a 1.6-2.2 ms one-series answer, where
    these routes take 0.2-0.3 ms.  The handlers read their body and query
    themselves, so FastAPI had nothing else to do for them.  Authentication runs
    first, as the dependency did, and errors reach the same exception handlers.

    FastAPI documents only its own routes, so the same table is also added to an
    :class:`APIRouter` that is never mounted, and the app's OpenAPI schema is
    generated from both (:data:`~api.openapi.PREDICTION_OPENAPI` as before).
    """
    documented = APIRouter(responses=ERROR_RESPONSES)
    plain: list[BaseRoute] = []
    for path, handler, deprecated in table:
        documented.add_api_route(
            path, handler, methods=["POST"], openapi_extra=PREDICTION_OPENAPI, deprecated=deprecated or None
        )
        plain.append(Route(path, _authenticated(routes, handler), methods=["POST"]))
    app.router.routes[0:0] = plain

    def openapi() -> dict[str, Any]:
        # built on each call (tens of ms, for /openapi.json only): routes added later show up
        return get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=[*documented.routes, *app.routes],
        )

    app.openapi = openapi  # type: ignore[method-assign]


def _authenticated(
    routes: PredictionRoutes, handler: Callable[..., Awaitable[Response]]
) -> Callable[[Request], Awaitable[Response]]:
    """A Starlette endpoint: check the keys, then call ``handler`` with the path's parameters."""

    async def endpoint(request: Request) -> Response:
        await routes.authenticate(request)
        return await handler(request, **request.path_params)

    return endpoint


# ------------------------------------------------------------------------- factory


def monitor_for(settings: Settings, registry: Registry) -> Monitor:
    """The monitor a server runs: its store from the settings (SQLite in the registry by default)."""
    folder = Path(getattr(registry, "path", settings.registry)) / ".monitoring"
    store = (
        MonitoringStore(settings.monitoring_url)
        if settings.monitoring_url
        else MonitoringStore.in_folder(folder)
    )
    return Monitor(store, capacity=settings.monitoring_queue)


def batch_engine(settings: Settings, registry: Registry, monitor: Monitor | None = None) -> BatchEngine:
    """The batch engine a server runs: its store from the settings, its workers."""
    store = BatchStore(settings.batch_store_url) if settings.batch_store_url else None
    return BatchEngine(
        registry,
        folder=Path(getattr(registry, "path", settings.registry)) / ".batch",
        store=store,
        workers=settings.batch_workers,
        max_queued=settings.batch_max_queued,
        retention_hours=settings.batch_retention_hours,
        monitor=monitor,
    )


def create_app(
    settings: Settings | None = None,
    *,
    registry: Registry | None = None,
    engine: BatchEngine | None = None,
) -> FastAPI:
    """Build the prediction server for one registry.

    Args:
        settings: limits, keys and registry path; read from ``TSENGINE_*`` when None.
        registry: the deployment store; defaults to ``Registry(settings.registry)``.
            Tests pass their own.
        engine: the batch job engine; by default one built from the settings,
            started with the app and stopped with it.

    Returns:
        A FastAPI app serving DataRobot's predApi v1.0, PPS-style routes and the
        ``/api/v2`` batch prediction routes.
    """
    settings = settings if settings is not None else Settings()
    registry = registry if registry is not None else Registry(settings.registry)
    monitor: Monitor | None = None
    if engine is not None and engine.monitor is not None:
        monitor = engine.monitor
    elif settings.monitoring_enabled:
        monitor = monitor_for(settings, registry)
    routes = PredictionRoutes(settings, registry, monitor)
    jobs = engine if engine is not None else batch_engine(settings, registry, monitor)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        with contextlib.ExitStack() as cluster:
            if settings.dask_scheduler and engine is None:
                # batch jobs score on the cluster; a scheduler that does not answer stops the start
                client = await run_in_threadpool(cluster.enter_context, connect(settings.dask_scheduler))
                jobs.dask = DaskScoring(client)
            await run_in_threadpool(jobs.start)
            try:
                yield
            finally:
                await run_in_threadpool(jobs.stop)
                if monitor is not None:
                    await run_in_threadpool(monitor.close)

    app = FastAPI(
        title="tsengine prediction API",
        description=(
            "DataRobot predApi v1.0 compatible time series predictions, and DataRobot's "
            "Batch Prediction API (/api/v2) over files, S3 and databases."
        ),
        version="1.0",
        responses=ERROR_RESPONSES,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    add_offline_docs(app)
    app.state.batch_engine = jobs
    app.state.monitor = monitor
    app.add_exception_handler(TsEngineError, _on_engine_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    metrics = Metrics(monitor)
    app.state.metrics = metrics
    app.add_middleware(
        DataRobotMiddleware, max_request_line=settings.max_request_line, monitor=monitor, metrics=metrics
    )

    public = APIRouter()
    public.add_api_route(f"{PREFIX}/ping", routes.ping, methods=["GET"], response_model=Pong)
    public.add_api_route("/ping", routes.ping, methods=["GET"], response_model=Pong)
    app.include_router(public)

    deployment_path = f"{PREFIX}/deployments/{{deployment_id}}"
    _add_prediction_routes(
        app,
        routes,
        [
            (f"{deployment_path}/predictions", routes.predict, False),
            (f"{deployment_path}/timeSeriesPredictions", routes.predict, True),
            (f"{deployment_path}/predictionExplanations", routes.predict_explanations, True),
            ("/predictions", routes.predict_default, False),
            ("/deployments/{deployment_id}/predictions", routes.predict, False),
        ],
    )
    private = APIRouter(dependencies=[Depends(routes.authenticate)])
    private.add_api_route("/info", routes.info_default, methods=["GET"])
    private.add_api_route("/deployments/{deployment_id}/info", routes.info, methods=["GET"])
    private.add_api_route("/deployments", routes.list_deployments, methods=["GET"])
    app.include_router(private)
    images = ImageRoutes(routes)
    styles = APIRouter(dependencies=[Depends(routes.authenticate_api_key)], tags=["image request styles"])
    styles.add_api_route("/deployment/{deployment_id}/forward", images.peltarion, methods=["POST"])
    styles.add_api_route("/deployments/{deployment_id}/peltarion", images.peltarion, methods=["POST"])
    styles.add_api_route(EINSTEIN_PREDICT, images.einstein, methods=["POST"])
    app.include_router(styles)
    batch_routes = add_batch_routes(app, jobs, settings, registry, routes.authenticate_api_key)
    add_web_routes(
        app, settings=settings, registry=registry, cache=routes.cache, monitor=monitor, batch=batch_routes
    )
    if monitor is not None:
        add_monitoring_routes(
            app,
            monitor,
            registry,
            registry.load,
            routes.authenticate_api_key,
            dataset_path=lambda dataset_id, version: snapshot_path(jobs.store, dataset_id, version),
        )

    async def prometheus() -> Response:
        """Prometheus exposition: prediction requests, latency, rows, cache, the log's counters."""
        return metrics.response()

    app.add_api_route(
        "/metrics",
        prometheus,
        methods=["GET"],
        dependencies=[Depends(routes.authenticate_api_key)],
        tags=["monitoring"],
    )
    return app
