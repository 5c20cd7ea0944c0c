"""What every HTTP response carries, whichever route (or none) answered it.

DataRobot's clients read ``X-DataRobot-*`` headers from every response, errors
and 404s included (one official client crashes without
``X-DataRobot-Execution-Time``), so they are written by one ASGI middleware
wrapped round the whole app rather than by each route.  The routes tell it what
they learnt (the model id, a cache hit, warnings, the row count) through the
request's :class:`RequestContext`.  The same middleware refuses over-long request
lines with DataRobot's 414, turns an unexpected exception into a logged 500
that names the request id, and counts prediction requests for ``serviceStats``
and ``/metrics``.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from dataclasses import dataclass

from fastapi import Request
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_response
from api.metrics import Metrics
from tsengine.monitoring.log import RequestEvent
from tsengine.monitoring.service import Monitor

__all__ = [
    "EXPOSED_HEADERS",
    "PRECISE_TIME_HEADER",
    "DataRobotMiddleware",
    "RequestContext",
    "request_context",
]

logger = logging.getLogger("tsengine.api")

PRECISE_TIME_HEADER = "X-TSEngine-Execution-Time-Ms"
"""The server-side time as a decimal number of milliseconds (``1.234``), beside
DataRobot's integer ``X-DataRobot-Execution-Time``."""
EXPOSED_HEADERS = (
    "Content-Type,Content-Length,X-DataRobot-Execution-Time,X-DataRobot-Model-Cache-Hit,"
    "X-DataRobot-Model-Id,X-DataRobot-Request-Id,X-DataRobot-Warnings," + PRECISE_TIME_HEADER
)
# Warnings travel in a header: one line, ASCII, bounded.
_MAX_WARNINGS_HEADER = 4096
_CONTEXT_KEY = "tsengine.context"
_PREDICTION_PATH = re.compile(
    r"/deployments/(?P<id>[^/]+)/(?P<route>predictions|timeSeriesPredictions|predictionExplanations)$"
)


@dataclass
class RequestContext:
    """Per-request facts the routes learn and the middleware writes as headers."""

    request_id: str
    started: float
    model_id: str | None = None
    cache_hit: bool = False
    warnings: tuple[str, ...] = ()
    rows: int = 0


def request_context(request: Request) -> RequestContext:
    """The request's context, set by :class:`DataRobotMiddleware` (made here without it)."""
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


def _request_line_length(scope: Scope) -> int:
    """Bytes of ``METHOD SP target SP HTTP/x.y`` as the client sent them."""
    path = scope.get("raw_path") or scope["path"].encode("utf-8")
    query = scope.get("query_string", b"")
    target = len(path) + (1 + len(query) if query else 0)
    version = len("HTTP/") + len(scope.get("http_version", "1.1"))
    return len(scope["method"]) + 1 + target + 1 + version
