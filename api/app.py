"""The HTTP application: DataRobot predApi v1.0 routes over the deployment registry.

The app is deliberately thin: it parses (``api.parsing``), calls the core
(``Deployment.predict_result``; in a worker thread, since the core is synchronous
and CPU-bound, except for small bodies, whose ~1 ms answer the thread hop would
only lengthen), and has the core render the rows (``tsengine.render``), sending
a large answer in pieces as they were rendered.  Two things live here because
they concern every response:

* :class:`DataRobotMiddleware` adds DataRobot's ``X-DataRobot-*`` headers to every
  response (errors and 404s included; one official client crashes without
  ``X-DataRobot-Execution-Time``, an integer of milliseconds) and
  ``X-TSEngine-Execution-Time-Ms`` (the same time with microsecond
  resolution, e.g. ``1.234``), refuses over-long request lines with 414, and
  turns an unexpected exception into a logged 500 that names the request id.
* One handler maps the core's whole :class:`~tsengine.errors.TsEngineError` tree
  to ``{"message": ...}``; FastAPI's and Starlette's own 404/405/422 get the
  same shape, because DataRobot's client reads ``message`` from every error.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import orjson
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response, StreamingResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import check_credentials
from api.batch import add_batch_routes
from api.cache import LRUCache
from api.docs import add_offline_docs
from api.errors import error_response as error_response  # re-exported: its old home
from api.errors import exception_response
from api.metrics import Metrics
from api.monitoring import add_monitoring_routes
from api.openapi import ERROR_RESPONSES, PREDICTION_OPENAPI, Pong
from api.parsing import (
    Payload,
    choose_format,
    decompress,
    parse_options,
    read_body,
    unwrap_multipart,
)
from api.predicting import predict_and_log
from api.settings import Settings
from api.web import add_web_routes
from tsengine import render
from tsengine.batch import BatchEngine, BatchStore
from tsengine.batch.catalog import snapshot_path
from tsengine.errors import NotFoundError, ParameterError, TsEngineError, short_list
from tsengine.monitoring.log import RequestEvent
from tsengine.monitoring.service import Monitor
from tsengine.monitoring.store import MonitoringStore
from tsengine.registry import Registry

if TYPE_CHECKING:
    from tsengine.deployment import Deployment
    from tsengine.options import PredictOptions

__all__ = ["PRECISE_TIME_HEADER", "DataRobotMiddleware", "RequestContext", "create_app"]

logger = logging.getLogger("tsengine.api")

PREFIX = "/predApi/v1.0"
NOT_FOUND = (
    "The requested URL was not found on the server. "
    "If you entered the URL manually please check your spelling and try again."
)
METHOD_NOT_ALLOWED = "The method is not allowed for the requested URL."
PRECISE_TIME_HEADER = "X-TSEngine-Execution-Time-Ms"
"""The server-side time as a decimal number of milliseconds (``1.234``), beside
DataRobot's integer ``X-DataRobot-Execution-Time``."""
EXPOSED_HEADERS = (
    "Content-Type,Content-Length,X-DataRobot-Execution-Time,X-DataRobot-Model-Cache-Hit,"
    "X-DataRobot-Model-Id,X-DataRobot-Request-Id,X-DataRobot-Warnings," + PRECISE_TIME_HEADER
)
INLINE_BODY_BYTES = 16 * 1024
"""Bodies up to this size (a few series of a hundred rows) are predicted on the
event loop itself rather than in a worker thread; see ``_Routes._predict``."""
# Warnings travel in a header: one line, ASCII, bounded.
_MAX_WARNINGS_HEADER = 4096
_CONTEXT_KEY = "tsengine.context"


@dataclass
class RequestContext:
    """Per-request facts the routes learn and the middleware writes as headers."""

    request_id: str
    started: float
    model_id: str | None = None
    cache_hit: bool = False
    warnings: tuple[str, ...] = ()
    rows: int = 0


def _context(request: Request) -> RequestContext:
    context = request.scope.get(_CONTEXT_KEY)
    if context is None:  # only when the app runs without its middleware
        context = RequestContext(uuid.uuid4().hex, time.perf_counter())
        request.scope[_CONTEXT_KEY] = context
    assert isinstance(context, RequestContext)
    return context


def _header_safe(text: str) -> str:
    """One ASCII line: header values are latin-1 on the wire and must not break lines."""
    flat = " ".join(text.split())
    ascii_only = flat.encode("ascii", "backslashreplace").decode("ascii")
    if len(ascii_only) > _MAX_WARNINGS_HEADER:
        return ascii_only[: _MAX_WARNINGS_HEADER - 3] + "..."
    return ascii_only


class DataRobotMiddleware:
    """Pure ASGI middleware for what every response must carry.

    Execution time: ``X-DataRobot-Execution-Time`` is DataRobot's whole number
    of milliseconds (clients parse it as an integer, so it stays one: a
    0.8 ms answer reads ``0``); ``X-TSEngine-Execution-Time-Ms`` carries the
    same span, from this middleware's first sight of the request to the start
    of the response, in milliseconds with three decimals, for clients and
    benchmarks that measure below a millisecond.

    It is pure ASGI (not ``BaseHTTPMiddleware``) so that it sees the raw request
    line before routing and can add headers to streamed responses as they start.

    Request-line limit: DataRobot documents 8,192 bytes.  uvicorn's h11 parser has
    its own, larger limit on a request head still being received (16 KiB by
    default; ``api.server.serve`` raises it to 64 KiB), so lines between the two
    reach this middleware and get DataRobot's JSON 414.  Only a head beyond 64 KiB
    that arrives in pieces is refused by uvicorn itself, with a plain-text 400.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_request_line: int,
        monitor: Monitor | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        """Wrap ``app``; ``max_request_line`` is the longest accepted line in bytes.

        With a ``monitor``, every prediction request's status and latency is
        queued for ``serviceStats`` (one non-blocking put).
        """
        self.app = app
        self.max_request_line = max_request_line
        self.monitor = monitor
        self.metrics = metrics

    def _record(self, scope: Scope, context: RequestContext, status: int) -> None:
        """Count a prediction request for serviceStats and /metrics (a regex and two puts)."""
        if self.monitor is None and self.metrics is None:
            return
        match = _PREDICTION_PATH.search(scope["path"])
        if match is None:
            return
        seconds = time.perf_counter() - context.started
        if self.metrics is not None:
            self.metrics.observe(
                match["id"], match["route"], status, seconds, context.rows, context.cache_hit
            )
        if self.monitor is not None:
            self.monitor.record_request(
                RequestEvent(
                    deployment_id=match["id"],
                    created=time.time(),
                    route=match["route"],
                    status=status,
                    latency_ms=seconds * 1000,
                    rows=context.rows,
                    cache_hit=context.cache_hit,
                )
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one connection event, adding headers and guarding against crashes."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        context = RequestContext(uuid.uuid4().hex, time.perf_counter())
        scope[_CONTEXT_KEY] = context
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                elapsed_ms = (time.perf_counter() - context.started) * 1000
                headers["X-DataRobot-Execution-Time"] = str(int(elapsed_ms))
                headers[PRECISE_TIME_HEADER] = f"{elapsed_ms:.3f}"
                headers["X-DataRobot-Model-Cache-Hit"] = "true" if context.cache_hit else "false"
                headers["X-DataRobot-Request-ID"] = context.request_id
                if context.model_id is not None:
                    headers["X-DataRobot-Model-Id"] = _header_safe(context.model_id)
                if context.warnings:
                    headers["X-DataRobot-Warnings"] = _header_safe("; ".join(context.warnings))
                headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
                self._record(scope, context, message["status"])
            await send(message)

        length = _request_line_length(scope)
        if length > self.max_request_line:
            msg = (
                f"The request line is {length} bytes, over the {self.max_request_line}-byte "
                "limit; send fewer passthroughColumns (or passthroughColumnsSet=all)"
            )
            await error_response(414, msg)(scope, receive, send_with_headers)
            return
        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            logger.exception("Unexpected error serving request %s", context.request_id)
            if started:  # too late for an error response; the server drops the connection
                raise
            msg = f"Internal server error (request id {context.request_id})"
            await error_response(500, msg)(scope, receive, send_with_headers)


_PREDICTION_PATH = re.compile(
    r"/deployments/(?P<id>[^/]+)/(?P<route>predictions|timeSeriesPredictions|predictionExplanations)$"
)


def _request_line_length(scope: Scope) -> int:
    """Bytes of ``METHOD SP target SP HTTP/x.y`` as the client sent them."""
    path = scope.get("raw_path") or scope["path"].encode("utf-8")
    query = scope.get("query_string", b"")
    target = len(path) + (1 + len(query) if query else 0)
    version = len("HTTP/") + len(scope.get("http_version", "1.1"))
    return len(scope["method"]) + 1 + target + 1 + version


# ------------------------------------------------------------------ error handlers


async def _on_engine_error(request: Request, exc: Exception) -> Response:
    """The core's error tree (see :func:`api.errors.describe_error`)."""
    return exception_response(exc, request_id=_context(request).request_id)


async def _on_http_error(request: Request, exc: Exception) -> Response:
    """Routing's 404/405 and raised HTTP errors, in DataRobot's words."""
    return exception_response(exc, request_id=_context(request).request_id)


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    """FastAPI's request validation: 422 naming each bad field."""
    return exception_response(exc, request_id=_context(request).request_id)


# -------------------------------------------------------------------------- routes


class _Routes:
    """The route handlers, bound to one app's settings, registry and cache."""

    def __init__(self, settings: Settings, registry: Registry, monitor: Monitor | None = None) -> None:
        self.settings = settings
        self.registry = registry
        self.monitor = monitor
        self.cache: LRUCache[Deployment] = LRUCache(
            registry.load, size=settings.cache_size, version_of=registry.live_version
        )

    async def authenticate_api_key(self, request: Request) -> None:
        """Dependency of the ``/api/v2`` routes: the API key only.

        The ``datarobot-key`` header belongs to prediction servers; DataRobot's
        ``/api/v2`` clients never send it.
        """
        check_credentials(request.headers, api_keys=self.settings.api_keys, datarobot_key=None)

    async def authenticate(self, request: Request) -> None:
        """Dependency of every route but ping: check API key and datarobot-key."""
        check_credentials(
            request.headers,
            api_keys=self.settings.api_keys,
            datarobot_key=self.settings.datarobot_key,
        )

    async def ping(self) -> dict[str, str]:
        """Liveness: answers without touching the registry or checking keys."""
        return {"response": "pong"}

    async def deployment(self, request: Request, deployment_id: str) -> Deployment:
        """The deployment, from the cache or loaded in a thread; records headers.

        The registry answers 404 for unknown ids, including ids that could not be
        folder names (``..``), so the URL cannot reach outside the registry.
        """
        deployment, hit = await self.cache.get(deployment_id)
        context = _context(request)
        context.cache_hit = hit
        context.model_id = deployment.model_id
        return deployment

    async def default_deployment_id(self) -> str:
        """The deployment the PPS-style routes serve: configured, else the only one."""
        if self.settings.default_deployment is not None:
            return self.settings.default_deployment
        ids = sorted(await run_in_threadpool(self.registry.list))
        if len(ids) == 1:
            return ids[0]
        if not ids:
            msg = (
                f"No deployment in the registry {str(self.settings.registry)!r}; "
                "train one first (tsengine train ...)"
            )
            raise NotFoundError(msg)
        msg = (
            f"The registry holds {len(ids)} deployments ({short_list(ids)}), so /predictions "
            "cannot choose one; POST to /deployments/<id>/predictions, or set "
            "TSENGINE_DEFAULT_DEPLOYMENT"
        )
        raise ParameterError(msg)

    async def predict(self, request: Request, deployment_id: str) -> Response:
        """Predict the posted rows (forecast or historical mode by the query)."""
        return await self._predict(request, deployment_id, default_max_explanations=0)

    async def predict_explanations(self, request: Request, deployment_id: str) -> Response:
        """Deprecated DataRobot route: predictions with explanations (3 by default)."""
        return await self._predict(request, deployment_id, default_max_explanations=3)

    async def predict_default(self, request: Request) -> Response:
        """PPS-style ``POST /predictions`` on the single default deployment."""
        deployment_id = await self.default_deployment_id()
        return await self._predict(request, deployment_id, default_max_explanations=0)

    async def _predict(
        self, request: Request, deployment_id: str, *, default_max_explanations: int
    ) -> Response:
        deployment = await self.deployment(request, deployment_id)
        options = parse_options(
            request.query_params.multi_items(),
            default_max_explanations=default_max_explanations,
        )
        limit = self.settings.max_body_bytes
        data = await read_body(
            request.stream(), limit=limit, content_length=request.headers.get("content-length")
        )
        encoding = request.headers.get("content-encoding")
        if encoding:
            data = await run_in_threadpool(decompress, data, encoding, limit=limit)
        payload = Payload.from_content_type(data, request.headers.get("content-type"))
        if payload.media_type == "multipart/form-data":
            payload = await unwrap_multipart(payload, request.headers, limit=limit)
        output = choose_format(request.headers.get("accept"))
        context = _context(request)
        work = (
            deployment,
            payload,
            options,
            output,
            self.monitor,
            context.request_id,
            self.cache.version(deployment_id),
        )
        if len(payload.data) <= INLINE_BODY_BYTES and options.max_explanations == 0:
            # A few series: the hop to a worker thread and back would cost ~0.1 ms
            # of a ~1 ms answer, and buy nothing (the work holds the GIL anyway).
            parts, warnings, rows = _predict_and_render(*work)
        else:
            parts, warnings, rows = await run_in_threadpool(_predict_and_render, *work)
        context.warnings = warnings
        context.rows = rows
        media_type = "text/csv; charset=utf-8" if output == "csv" else "application/json"
        if len(parts) == 1:
            return Response(parts[0], media_type=media_type)
        # A large answer goes out piece by piece (each released once sent): joined,
        # it would be one more copy, and the socket's buffer another.
        length = str(sum(len(part) for part in parts))
        return StreamingResponse(_drain(parts), media_type=media_type, headers={"Content-Length": length})

    async def info(self, request: Request, deployment_id: str) -> Response:
        """PPS-style summary of one deployment."""
        deployment = await self.deployment(request, deployment_id)
        return Response(orjson.dumps(deployment.info()), media_type="application/json")

    async def info_default(self, request: Request) -> Response:
        """PPS-style summary of the default deployment."""
        return await self.info(request, await self.default_deployment_id())

    async def list_deployments(self) -> Response:
        """The ids in the registry, without loading any model."""
        ids = sorted(await run_in_threadpool(self.registry.list))
        return Response(orjson.dumps({"data": [{"id": id_} for id_ in ids]}), media_type="application/json")


async def _drain(parts: list[bytes]) -> AsyncIterator[bytes]:
    """Yield the pieces in order, dropping each from the list as it goes."""
    parts.reverse()
    while parts:
        yield parts.pop()


def _predict_and_render(
    deployment: Deployment,
    payload: Payload,
    options: PredictOptions,
    output: Literal["json", "csv"],
    monitor: Monitor | None = None,
    request_id: str = "",
    version: str | None = None,
) -> tuple[list[bytes], tuple[str, ...], int]:
    """Parse, predict, render and queue for the prediction log.

    Returns the body in consecutive pieces (one for a small answer; see
    :func:`tsengine.render.csv_parts`), the warnings and the number of rows.
    The routes run it on the event loop for a small body, else in a worker
    thread (``_Routes._predict``).
    """
    frame, prediction = predict_and_log(
        deployment, payload, options, monitor, request_id=request_id, version=version
    )
    # Only the rows are rendered: let the window (validated history and query) and,
    # unless columns pass through, the posted rows go before the text is written.
    if prediction.window is not None:
        prediction = replace(prediction, window=None)
    if not (options.passthrough_all or options.passthrough_columns):
        frame = frame.clear()
    to_parts = render.csv_parts if output == "csv" else render.json_parts
    parts = to_parts(deployment, prediction, frame, options)
    return parts, tuple(prediction.warnings), prediction.frame.height


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
    routes = _Routes(settings, registry, monitor)
    jobs = engine if engine is not None else batch_engine(settings, registry, monitor)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
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

    private = APIRouter(dependencies=[Depends(routes.authenticate)])
    predict: dict[str, Any] = {"methods": ["POST"], "openapi_extra": PREDICTION_OPENAPI}
    deprecated: dict[str, Any] = {**predict, "deprecated": True}
    deployment_path = f"{PREFIX}/deployments/{{deployment_id}}"
    private.add_api_route(f"{deployment_path}/predictions", routes.predict, **predict)
    private.add_api_route(f"{deployment_path}/timeSeriesPredictions", routes.predict, **deprecated)
    private.add_api_route(
        f"{deployment_path}/predictionExplanations", routes.predict_explanations, **deprecated
    )
    private.add_api_route("/predictions", routes.predict_default, **predict)
    private.add_api_route("/deployments/{deployment_id}/predictions", routes.predict, **predict)
    private.add_api_route("/info", routes.info_default, methods=["GET"])
    private.add_api_route("/deployments/{deployment_id}/info", routes.info, methods=["GET"])
    private.add_api_route("/deployments", routes.list_deployments, methods=["GET"])
    app.include_router(private)
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
