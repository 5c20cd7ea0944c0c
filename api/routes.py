"""The predApi v1.0 and PPS-style route handlers: parse, call the core, send its bytes.

The handlers stay thin: they parse (``api.parsing``), call the core
(``Deployment.predict_result``; in a worker thread, since the core is
synchronous and CPU-bound, except for small bodies, whose ~1 ms answer the
thread hop would only lengthen), and have the core render the rows
(``tsengine.render``), sending a large answer in pieces as they were rendered.
They live apart from :func:`api.app.create_app` so that the factory reads as the
list of routes it mounts, and the request path as one file.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import TYPE_CHECKING, Literal

import orjson
from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from api.auth import check_credentials
from api.cache import LRUCache
from api.middleware import request_context
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
from tsengine import render
from tsengine.errors import NotFoundError, ParameterError, short_list
from tsengine.monitoring.service import Monitor
from tsengine.registry import Registry

if TYPE_CHECKING:
    from tsengine.deployment import Deployment
    from tsengine.options import PredictOptions

__all__ = ["INLINE_BODY_BYTES", "PredictionRoutes"]

INLINE_BODY_BYTES = 16 * 1024
"""Bodies up to this size (a few series of a hundred rows) are predicted on the
event loop itself rather than in a worker thread; see ``PredictionRoutes._predict``."""


class PredictionRoutes:
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
        context = request_context(request)
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
        payload = await self.payload(request)
        if payload.media_type == "multipart/form-data":
            payload = await unwrap_multipart(
                payload, request.headers, limit=limit, image_columns=deployment.image_columns
            )
        output = choose_format(request.headers.get("accept"))
        context = request_context(request)
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

    async def payload(self, request: Request) -> Payload:
        """The request body, size-capped and decompressed, with its media type and charset."""
        limit = self.settings.max_body_bytes
        data = await read_body(
            request.stream(), limit=limit, content_length=request.headers.get("content-length")
        )
        encoding = request.headers.get("content-encoding")
        if encoding:
            data = await run_in_threadpool(decompress, data, encoding, limit=limit)
        return Payload.from_content_type(data, request.headers.get("content-type"))

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
    thread (``PredictionRoutes._predict``).
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
