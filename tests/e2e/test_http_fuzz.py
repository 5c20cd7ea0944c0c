"""Fuzzing the HTTP layer: nothing a client sends may produce a 5xx.

Two generators drive the in-process app in front of a real (small) deployment:
schemathesis, from the app's own OpenAPI schema, and a hypothesis strategy of
mutated prediction requests (rows dropped, columns dropped or garbled, random
query parameters, wrong media types and encodings).  Every answer must be a 2xx,
or a 4xx with a JSON ``{"message": ...}``.  ``TSENGINE_FUZZ_EXAMPLES`` raises the
example counts for a longer run.
"""

from __future__ import annotations

import asyncio
import bz2
import gzip
import os
from pathlib import Path
from typing import Any

import httpx
import orjson
import polars as pl
import pytest
import schemathesis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

import tsengine
from api import Settings, create_app
from api.parsing import ALLOWED_QUERY_KEYS

from http_flights import DEPLOYMENT_ID, LAST_HISTORY, flights, train_flights

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("TSENGINE_FUZZ_EXAMPLES", "100"))
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=True,
)


POSTED = flights().with_columns(
    pl.when(pl.col("date") <= LAST_HISTORY).then(pl.col("delayed")).alias("delayed")
)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    path = tmp_path_factory.mktemp("registry")
    deployment = train_flights()
    tsengine.Registry(path).save(deployment)
    return create_app(Settings(registry=path, max_body_bytes=1_000_000))


def assert_not_a_server_fault(status: int, content_type: str, body: bytes) -> None:
    assert status < 500, body[:500]
    if status >= 400:
        assert content_type == "application/json", (status, body[:200])
        message = orjson.loads(body)["message"]
        assert isinstance(message, str)
        assert message


# ---------------------------------------------------------------------- schemathesis


def test_schema_driven_requests_never_get_a_5xx(app: Any) -> None:
    """Valid and invalid requests generated from the app's own OpenAPI schema."""
    api_schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    cases = st.one_of(
        api_schema.as_strategy(GenerationMode.POSITIVE),
        api_schema.as_strategy(GenerationMode.NEGATIVE),
    )

    @FUZZ_SETTINGS
    @given(case=cases, aim=st.booleans())
    def check(case: Any, aim: bool) -> None:
        if aim and "deployment_id" in (case.path_parameters or {}):
            # Random ids only reach the 404 path; aim half the cases at the real one.
            case.path_parameters["deployment_id"] = DEPLOYMENT_ID
        response = case.call()
        content_type = response.headers.get("content-type", [""])[0]
        assert_not_a_server_fault(response.status_code, content_type, response.content)

    check()


# ------------------------------------------------------------------------ hypothesis

_DATETIMES = st.one_of(
    st.sampled_from(
        [
            "2013-04-23",
            "2013-04-20T00:00:00Z",
            "2013-04-10T00:00:00.000000Z",
            "2262-04-11T23:47:16.854775+00:00",
            "1900-01-01T00:00:00.000000Z",
            "0001-01-01",
            "9999-12-31T23:59:59",
            "2013-04-23T12:00:00",
        ]
    ),
    st.datetimes().map(lambda d: d.isoformat()),
    st.text(max_size=12),
)
_VALUES = st.one_of(
    _DATETIMES,
    st.sampled_from(["true", "False", "1", "0", "all", "shap", "", "city", "series", "-1"]),
    st.integers(-10, 10**20).map(str),
    st.floats(allow_nan=True).map(str),
)
_PARAMS = st.lists(
    st.tuples(st.sampled_from([*sorted(ALLOWED_QUERY_KEYS), "wd", "forecast_point"]), _VALUES),
    max_size=4,
)
_NULL_OR_TEXT = st.one_of(st.none(), st.text(max_size=8))


@st.composite
def _frames(draw: st.DrawFn) -> pl.DataFrame:
    rows = draw(st.lists(st.integers(0, POSTED.height - 1), max_size=60, unique=True))
    frame = POSTED[sorted(rows)] if draw(st.booleans()) else POSTED
    dropped = draw(st.lists(st.sampled_from(POSTED.columns), max_size=2, unique=True))
    frame = frame.drop(dropped)
    if frame.width and frame.height and draw(st.booleans()):
        column = draw(st.sampled_from(frame.columns))
        values = draw(st.lists(_NULL_OR_TEXT, min_size=frame.height, max_size=frame.height))
        frame = frame.with_columns(pl.Series(column, values, dtype=pl.String))
    return frame


@st.composite
def _requests(draw: st.DrawFn) -> dict[str, Any]:
    frame = draw(_frames())
    form = draw(st.sampled_from(["csv", "json", "rows", "bytes", "multipart"]))
    headers: dict[str, str] = {}
    if form == "csv":
        content = frame.write_csv().encode()
        headers["content-type"] = draw(
            st.sampled_from(["text/csv", "text/plain", "", "text/csv; charset=latin-1"])
        )
    elif form in {"json", "rows"}:
        records = orjson.dumps(frame.to_dicts())
        content = records if form == "json" else b'{"rows":' + records + b"}"
        headers["content-type"] = draw(st.sampled_from(["application/json", "text/json", "application/xml"]))
    elif form == "bytes":
        content = draw(st.binary(max_size=300))
        headers["content-type"] = draw(
            st.sampled_from(["text/csv", "application/json", "multipart/form-data"])
        )
    else:
        boundary = "fuzz"
        csv = frame.write_csv().encode()
        content = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.csv"\r\n'
                f"Content-Type: text/csv\r\n\r\n"
            ).encode()
            + csv
            + f"\r\n--{boundary}--\r\n".encode()
        )
        headers["content-type"] = f"multipart/form-data; boundary={boundary}"
    encoding = draw(st.sampled_from([None, None, "gzip", "bz2", "deflate"]))
    if encoding == "gzip":
        content = gzip.compress(content)
    elif encoding == "bz2":
        content = bz2.compress(content)
    if encoding is not None:
        headers["content-encoding"] = encoding
    if draw(st.booleans()):
        headers["accept"] = "text/csv"
    route = draw(st.sampled_from(["predictions", "timeSeriesPredictions", "predictionExplanations"]))
    return {
        "url": f"/predApi/v1.0/deployments/{DEPLOYMENT_ID}/{route}",
        "params": draw(_PARAMS),
        "content": content,
        "headers": headers,
    }


async def _send(app: Any, request: dict[str, Any]) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await client.post(**request)


def _pinned(route: str, **params: str) -> dict[str, Any]:
    return {
        "url": f"/predApi/v1.0/deployments/{DEPLOYMENT_ID}/{route}",
        "params": params,
        "content": POSTED.write_csv().encode(),
        "headers": {"content-type": "text/csv"},
    }


@FUZZ_SETTINGS
@given(request=_requests())
@example(request=_pinned("predictions"))
@example(request=_pinned("predictionExplanations"))
@example(request=_pinned("predictions", maxExplanations="2", passthroughColumnsSet="all"))
@example(request=_pinned("timeSeriesPredictions", relaxKnownInAdvanceFeaturesCheck="true"))
def test_mutated_prediction_requests_never_get_a_5xx(app: Any, request: dict[str, Any]) -> None:
    response = asyncio.run(_send(app, request))
    assert_not_a_server_fault(
        response.status_code, response.headers.get("content-type", ""), response.content
    )
