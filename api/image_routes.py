"""Two more request styles for tabular deployments, for clients written against other platforms.

* **Peltarion's deployment API** (``POST /deployment/{id}/forward``, also at
  ``/deployments/{id}/peltarion``): ``{"rows": [...]}`` in, with images as
  ``data:image/...;base64,`` URIs and arrays as
  ``data:application/x.peltarion.npy;base64,`` URIs, or one example as form
  fields (``curl -F "photo=@shoe.png" -F "size=1.3"``); ``{"rows": [{"<target>":
  value}]}`` out, a classifier's value being ``{class: probability}``.
* **Einstein Vision's predict** (``POST /v2/vision/predict``): a form with
  ``modelId`` (the deployment id) and the image as ``sampleContent`` (a file),
  ``sampleBase64Content`` or ``sampleLocation`` (a URL, fetched only from hosts
  the operator allow-lists: no server-side request forgery); the labels with
  their probabilities, highest first.

Both authenticate with ``Authorization: Bearer <key>`` only (their clients send
no ``datarobot-key``), go through the same prediction path as the predApi
routes (:func:`api.predicting.predict_and_log`: same decoding, same model, same
prediction log) and answer errors as ``{"message": ...}``.
"""

from __future__ import annotations

import base64
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

import orjson
import polars as pl
from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.responses import Response

from api.middleware import request_context
from api.parsing import FormFile, FormItem, Payload, form_row, read_form
from api.predicting import predict_and_log
from api.routes import PredictionRoutes
from tsengine.errors import BadRequestError, ParameterError, short_list
from tsengine.options import PredictOptions
from tsengine.tabular.deployment import TabularDeployment, probability_column

__all__ = ["EINSTEIN_PREDICT", "ImageRoutes", "fetch_sample"]

EINSTEIN_PREDICT = "/v2/vision/predict"
_FETCH_TIMEOUT = 10.0


class ImageRoutes:
    """The Peltarion and Einstein handlers, sharing the predApi routes' cache and monitor."""

    def __init__(self, routes: PredictionRoutes) -> None:
        self.routes = routes

    async def _tabular(self, request: Request, deployment_id: str, style: str) -> TabularDeployment:
        deployment = await self.routes.deployment(request, deployment_id)
        if not isinstance(deployment, TabularDeployment):
            msg = (
                f"deployment {deployment_id!r} is a time series deployment; {style} requests serve "
                f"tabular deployments: POST its rows to /predApi/v1.0/deployments/{deployment_id}/predictions"
            )
            raise ParameterError(msg)
        return deployment

    async def _form(self, request: Request, payload: Payload) -> list[FormItem]:
        """The form fields of a multipart or URL-encoded body.

        Peltarion's own curl examples pass ``-H "Content-Type: application/json"``
        with ``-F`` fields, which sends a multipart body under a JSON type with no
        boundary; such a body is recognised by its first line and read as the
        multipart form it is.
        """
        limit = self.routes.settings.max_body_bytes
        if payload.media_type == "application/x-www-form-urlencoded":
            text = payload.data.decode("utf-8", errors="replace")
            return [(k, v) for k, v in urllib.parse.parse_qsl(text, keep_blank_values=True)]
        headers: Headers = request.headers
        if payload.media_type != "multipart/form-data":
            boundary = _sniffed_boundary(payload.data)
            if boundary is None:
                return []
            headers = Headers({"content-type": f"multipart/form-data; boundary={boundary}"})
        return await read_form(payload, headers, limit=limit)

    async def peltarion(self, request: Request, deployment_id: str) -> Response:
        """Peltarion-style ``{"rows": [...]}`` (or one example as form fields) → ``{"rows": [...]}``."""
        deployment = await self._tabular(request, deployment_id, "Peltarion-style")
        payload = await self.routes.payload(request)
        items = await self._form(request, payload)
        if items:
            payload = form_row(items, deployment.image_columns)
        elif _sniffed_boundary(payload.data) is None and payload.media_type not in {"", "application/json"}:
            msg = f'Content-Type {payload.media_type!r} is not supported here; send application/json {{"rows": [...]}}'
            raise BadRequestError(msg)
        else:
            payload = Payload(payload.data, "application/json", payload.charset)
        prediction = await run_in_threadpool(self._predict, request, deployment, payload)
        return Response(_peltarion_rows(deployment, prediction), media_type="application/json")

    def _predict(self, request: Request, deployment: TabularDeployment, payload: Payload) -> pl.DataFrame:
        _, prediction = predict_and_log(
            deployment,
            payload,
            PredictOptions(),
            self.routes.monitor,
            request_id=request_context(request).request_id,
            version=self.routes.cache.version(deployment.id),
        )
        return prediction.frame

    async def einstein(self, request: Request) -> Response:
        """Einstein Vision's ``predict``: one image → labels and probabilities, highest first."""
        payload = await self.routes.payload(request)
        items = await self._form(request, payload)
        if not items:
            msg = (
                "send a multipart/form-data body: modelId and one of sampleContent (a file), "
                "sampleBase64Content or sampleLocation"
            )
            raise BadRequestError(msg)
        fields = {name: value for name, value in items}
        model_id = _text(fields, "modelId")
        if not model_id:
            msg = "modelId is required: the id of the deployment to predict with"
            raise BadRequestError(msg)
        deployment = await self._tabular(request, model_id, "Einstein-style")
        if deployment.task == "regression":
            msg = f"model {model_id!r} is a regression model; Einstein-style predictions need a classifier"
            raise ParameterError(msg)
        images = deployment.image_columns
        if len(images) != 1:
            msg = (
                f"model {model_id!r} reads {len(images)} image columns ({short_list(list(images))}); "
                "Einstein-style predictions need exactly one"
            )
            raise ParameterError(msg)
        image = await self._sample(fields)
        num_results = _num_results(fields.get("numResults"))
        row: dict[str, Any] = {c.name: None for c in deployment.schema.columns}
        row.update({k: v for k, v in fields.items() if k in row and isinstance(v, str)})
        row[images[0]] = image
        body = Payload(orjson.dumps([row]), "application/json")
        frame = await run_in_threadpool(self._predict, request, deployment, body)
        labels = [str(c) for c in deployment.classes]
        scores = [
            frame.get_column(probability_column(deployment.target, c)).item() for c in deployment.classes
        ]
        ranked = sorted(zip(labels, scores, strict=True), key=lambda pair: -pair[1])[:num_results]
        answer: dict[str, Any] = {
            "probabilities": [{"label": label, "probability": p} for label, p in ranked],
            "object": "predictresponse",
        }
        sample_id = _text(fields, "sampleId")
        if sample_id:
            answer["sampleId"] = sample_id
        return Response(orjson.dumps(answer), media_type="application/json")

    async def _sample(self, fields: dict[str, str | FormFile]) -> str:
        """The one image of an Einstein request, as base64 text."""
        given = [k for k in ("sampleContent", "sampleBase64Content", "sampleLocation") if fields.get(k)]
        if len(given) != 1:
            msg = "send exactly one of sampleContent (a file), sampleBase64Content or sampleLocation" + (
                f"; got {', '.join(given)}" if given else ""
            )
            raise BadRequestError(msg)
        value = fields[given[0]]
        if isinstance(value, FormFile):
            return base64.b64encode(value.data).decode("ascii")
        if given[0] == "sampleContent":
            msg = "sampleContent must be an uploaded file (curl -F sampleContent=@photo.jpg)"
            raise BadRequestError(msg)
        if given[0] == "sampleBase64Content":
            return value
        settings = self.routes.settings
        data = await run_in_threadpool(
            fetch_sample, value, settings.sample_location_hosts, limit=settings.max_body_bytes
        )
        return base64.b64encode(data).decode("ascii")


def _sniffed_boundary(data: bytes) -> str | None:
    """The boundary of a body that is multipart whatever its Content-Type says."""
    if not data.startswith(b"--"):
        return None
    first = data.split(b"\r\n", 1)[0][2:].strip()
    if not first or len(first) > 200 or not all(32 < c < 127 for c in first):
        return None
    return first.decode("ascii")


def _text(fields: dict[str, str | FormFile], name: str) -> str:
    value = fields.get(name)
    if isinstance(value, FormFile):
        return value.data.decode("utf-8", errors="replace").strip()
    return (value or "").strip()


def _num_results(value: str | FormFile | None) -> int:
    if value is None or value == "":
        return 10**6
    text = value if isinstance(value, str) else value.data.decode("utf-8", errors="replace")
    try:
        number = int(text.strip())
    except ValueError:
        number = 0
    if number < 1:
        msg = f"numResults must be a positive integer, got {text!r}"
        raise BadRequestError(msg)
    return number


def _peltarion_rows(deployment: TabularDeployment, frame: pl.DataFrame) -> bytes:
    """``{"rows": [{"<target>": value}]}``; a classifier's value is ``{class: probability}``."""
    target = deployment.target
    if deployment.task == "regression":
        out = frame.select(pl.col("prediction").alias(target))
    else:
        out = frame.select(
            pl.struct(
                [pl.col(probability_column(target, c)).alias(str(c)) for c in deployment.classes]
            ).alias(target)
        )
    return b'{"rows":' + out.write_json().encode() + b"}"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are answered as the HTTP error they are: they could lead off the allow-list."""

    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None


def fetch_sample(url: str, allowed_hosts: Sequence[str], *, limit: int) -> bytes:
    """An image's bytes from an allow-listed host; anything else is refused before connecting.

    With no allow-list (the default) every URL is refused: a prediction server
    usually sits inside a network the caller cannot reach, and fetching URLs
    for anyone would let them reach it (SSRF).  Redirects are not followed,
    since they could lead off the list.

    Raises:
        BadRequestError: URL refused, unreachable, not 200, or over ``limit`` bytes.
    """
    parts = urllib.parse.urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    allowed = {h.strip().lower() for h in allowed_hosts if h.strip()}
    if not allowed:
        msg = (
            "sampleLocation URLs are refused: this server fetches from no host; send the image as "
            "sampleContent or sampleBase64Content (the operator may allow hosts with "
            "TSENGINE_SAMPLE_LOCATION_HOSTS)"
        )
        raise BadRequestError(msg)
    if parts.scheme not in {"http", "https"} or host not in allowed:
        msg = f"sampleLocation {url!r} is refused: only http(s) URLs on {', '.join(sorted(allowed))} are fetched"
        raise BadRequestError(msg)
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(url, timeout=_FETCH_TIMEOUT) as answer:  # noqa: S310 - scheme and host checked above
            data: bytes = answer.read(limit + 1)
    except urllib.error.HTTPError as exc:
        msg = f"sampleLocation {url!r} answered HTTP {exc.code}"
        raise BadRequestError(msg) from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        msg = f"sampleLocation {url!r} could not be fetched: {exc}"
        raise BadRequestError(msg) from exc
    if len(data) > limit:
        msg = f"sampleLocation {url!r} is over the {limit}-byte limit"
        raise BadRequestError(msg)
    return data
