"""The app in-process: routes, input forms, headers, limits, auth and errors."""

from __future__ import annotations

import bz2
import gzip
import logging
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import polars as pl
import pytest

import tsengine
from tsengine.errors import DeploymentStoreError
from tsengine.render import timeseries as render

pytestmark = pytest.mark.anyio

DEPLOYMENT_ID = "flights"  # as trained by conftest
SERIES = ["EWR-UA", "JFK-B6", "LGA-DL"]
ClientFactory = Callable[..., httpx.AsyncClient]
URL = f"/predApi/v1.0/deployments/{DEPLOYMENT_ID}/predictions"
DR_HEADERS = (
    "x-datarobot-execution-time",
    "x-datarobot-model-cache-hit",
    "x-datarobot-request-id",
)
NOT_FOUND = (
    "The requested URL was not found on the server. "
    "If you entered the URL manually please check your spelling and try again."
)


@pytest.fixture
def csv(posted: pl.DataFrame) -> bytes:
    return posted.write_csv().encode()


def assert_datarobot_headers(response: httpx.Response) -> None:
    for name in DR_HEADERS:
        assert name in response.headers, name
    assert response.headers["x-datarobot-execution-time"].isdigit()
    assert response.headers["x-datarobot-model-cache-hit"] in {"true", "false"}
    assert len(response.headers["x-datarobot-request-id"]) == 32
    assert "X-DataRobot-Model-Id" in response.headers["access-control-expose-headers"]


def assert_error(response: httpx.Response, status: int, message: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert message in response.json()["message"], response.json()
    assert_datarobot_headers(response)


# -------------------------------------------------------------------- predictions


async def test_forecast_mode_json_has_rows_per_series_and_distance(
    client: httpx.AsyncClient, registry_path: Path, csv: bytes
) -> None:
    response = await client.post(URL, content=csv, headers={"content-type": "text/csv"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert_datarobot_headers(response)
    model_id = tsengine.Registry(registry_path).load(DEPLOYMENT_ID).model_id
    assert response.headers["x-datarobot-model-id"] == model_id
    rows = response.json()["data"]
    assert len(rows) == len(SERIES) * 7
    assert {row["seriesId"] for row in rows} == set(SERIES)
    assert {row["forecastPoint"] for row in rows} == {"2013-04-23T00:00:00Z"}
    assert sorted({row["forecastDistance"] for row in rows}) == list(range(1, 8))


async def test_model_cache_hit_header_turns_true(client: httpx.AsyncClient, csv: bytes) -> None:
    first = await client.post(URL, content=csv, headers={"content-type": "text/csv"})
    second = await client.post(URL, content=csv, headers={"content-type": "text/csv"})
    assert first.headers["x-datarobot-model-cache-hit"] == "false"
    assert second.headers["x-datarobot-model-cache-hit"] == "true"
    assert first.headers["x-datarobot-request-id"] != second.headers["x-datarobot-request-id"]


async def test_csv_output_when_accept_is_text_csv(client: httpx.AsyncClient, csv: bytes) -> None:
    response = await client.post(URL, content=csv, headers={"content-type": "text/csv", "accept": "text/csv"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    header = response.text.splitlines()[0].split(",")
    assert header[:5] == [
        "series",
        "FORECAST_POINT",
        "date",
        "FORECAST_DISTANCE",
        "delayed (actual)_PREDICTION",
    ]
    assert len(response.text.splitlines()) == 1 + len(SERIES) * 7


async def test_historical_mode(client: httpx.AsyncClient, csv: bytes) -> None:
    response = await client.post(
        URL,
        params={
            "predictionsStartDate": "2013-04-10T00:00:00.000000Z",
            "predictionsEndDate": "2013-04-12T00:00:00+00:00",
        },
        content=csv,
        headers={"content-type": "text/csv"},
    )
    assert response.status_code == 200, response.text
    rows = response.json()["data"]
    assert rows
    assert {row["timestamp"][:10] for row in rows} == {"2013-04-10", "2013-04-11"}
    assert len({row["forecastPoint"] for row in rows}) > 1


def _multipart(data: bytes, filename: str, content_type: str) -> dict[str, Any]:
    return {"files": {"anything": (filename, data, content_type)}}


def _forms(frame: pl.DataFrame) -> dict[str, dict[str, Any]]:
    csv = frame.write_csv().encode()
    records = orjson.dumps(frame.to_dicts())
    return {
        "csv": {"content": csv, "headers": {"content-type": "text/csv"}},
        "text/plain": {"content": csv, "headers": {"content-type": "text/plain"}},
        "no content-type": {"content": csv},
        "json records": {"content": records, "headers": {"content-type": "application/json"}},
        "text/json": {"content": records, "headers": {"content-type": "text/json"}},
        "rows": {
            "content": b'{"rows":' + records + b"}",
            "headers": {"content-type": "application/json"},
        },
        "multipart csv": _multipart(csv, "x.csv", "text/csv"),
        "multipart octet-stream": _multipart(csv, "x.csv", "application/octet-stream"),
        "multipart json": _multipart(records, "x.json", "application/octet-stream"),
        "gzip": {
            "content": gzip.compress(csv),
            "headers": {"content-type": "text/csv", "content-encoding": "gzip"},
        },
        "bz2": {
            "content": bz2.compress(records),
            "headers": {"content-type": "application/json", "content-encoding": "bz2"},
        },
        "latin-1": {
            "content": csv.decode().encode("latin-1"),
            "headers": {"content-type": "text/csv; charset=latin-1"},
        },
        "utf-16 json": {
            "content": records.decode().encode("utf-16"),
            "headers": {"content-type": "application/json; charset=utf-16"},
        },
    }


async def test_every_input_form_gives_identical_predictions(
    client: httpx.AsyncClient, posted: pl.DataFrame
) -> None:
    params = {"passthroughColumns": "city"}
    results = {}
    for name, request in _forms(posted).items():
        response = await client.post(URL, params=params, **request)
        assert response.status_code == 200, (name, response.text)
        results[name] = response.content
    reference = results["csv"]
    assert "K\u00f6ln" in reference.decode()
    assert {name for name, content in results.items() if content != reference} == set()


async def test_chunked_upload_without_content_length(client: httpx.AsyncClient, csv: bytes) -> None:
    data = csv

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(data), 1000):
            yield data[start : start + 1000]

    response = await client.post(URL, content=chunks(), headers={"content-type": "text/csv"})
    assert response.status_code == 200, response.text


async def test_execution_time_has_a_precise_form_beside_the_integer(
    client: httpx.AsyncClient, csv: bytes
) -> None:
    response = await client.post(URL, content=csv, headers={"content-type": "text/csv"})
    precise = response.headers["x-tsengine-execution-time-ms"]
    assert re.fullmatch(r"\d+\.\d{3}", precise), precise
    assert abs(float(precise) - int(response.headers["x-datarobot-execution-time"])) <= 1
    assert "X-TSEngine-Execution-Time-Ms" in response.headers["access-control-expose-headers"]
    missing = await client.get("/no/such/route")
    assert "x-tsengine-execution-time-ms" in missing.headers


@pytest.mark.parametrize("accept", ["text/csv", "application/json"])
async def test_a_large_answer_is_sent_in_pieces_with_the_same_bytes(
    client: httpx.AsyncClient, csv: bytes, accept: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = {"content-type": "text/csv", "accept": accept}
    whole = await client.post(URL, content=csv, headers=headers)
    monkeypatch.setattr(render, "SMALL_ROWS", 0)  # polars writes it ...
    monkeypatch.setattr(render, "RENDER_CHUNK_ROWS", 4)  # ... in pieces of 4 rows
    pieces = await client.post(URL, content=csv, headers=headers)
    assert pieces.status_code == 200, pieces.text
    assert pieces.content == whole.content
    assert int(pieces.headers["content-length"]) == len(pieces.content)
    assert pieces.headers["content-type"] == whole.headers["content-type"]
    assert_datarobot_headers(pieces)


@pytest.mark.parametrize(
    "path",
    [
        f"/predApi/v1.0/deployments/{DEPLOYMENT_ID}/timeSeriesPredictions",
        f"/predApi/v1.0/deployments/{DEPLOYMENT_ID}/predictionExplanations?maxCodes=0",
        f"/deployments/{DEPLOYMENT_ID}/predictions",
        "/predictions",
    ],
)
async def test_aliases_and_pps_routes_predict_the_same(
    client: httpx.AsyncClient, path: str, csv: bytes
) -> None:
    reference = await client.post(URL, content=csv)
    response = await client.post(path, content=csv)
    assert response.status_code == 200, response.text
    assert response.json() == reference.json()


async def test_relaxed_kia_reports_a_warning_header(client: httpx.AsyncClient, flights: pl.DataFrame) -> None:
    history = flights.filter(pl.col("date") <= "2013-04-23").write_csv().encode()
    strict = await client.post(URL, content=history)
    assert_error(strict, 422, "known-in-advance feature(s) 'scheduled', 'holiday' missing")
    relaxed = await client.post(URL, params={"relaxKnownInAdvanceFeaturesCheck": "True"}, content=history)
    assert relaxed.status_code == 200, relaxed.text
    assert relaxed.headers["x-datarobot-warnings"]
    assert len(relaxed.json()["data"]) == len(SERIES) * 7


# ------------------------------------------------------------- info, ping, listing


@pytest.mark.parametrize("path", ["/ping", "/predApi/v1.0/ping"])
async def test_ping_needs_no_key(make_client: ClientFactory, path: str) -> None:
    client = make_client(api_keys=["k1"])
    response = await client.get(path)
    assert response.status_code == 200
    assert response.json() == {"response": "pong"}
    assert_datarobot_headers(response)


async def test_info_routes_and_listing(client: httpx.AsyncClient) -> None:
    info = await client.get(f"/deployments/{DEPLOYMENT_ID}/info")
    assert info.status_code == 200
    assert info.json()["id"] == DEPLOYMENT_ID
    assert info.headers["x-datarobot-model-id"] == info.json()["model_id"]
    assert (await client.get("/info")).json() == info.json()
    assert (await client.get("/deployments")).json() == {"data": [{"id": DEPLOYMENT_ID}]}


async def test_default_deployment_with_several_or_none(
    make_client: ClientFactory, tmp_path: Path, csv: bytes, train_flights: Any
) -> None:
    registry = tsengine.Registry(tmp_path)
    empty = make_client(registry_path=tmp_path)
    assert_error(await empty.post("/predictions", content=csv), 404, "No deployment in the registry")
    registry.save(train_flights("flights"))
    registry.save(train_flights("other"))
    several = make_client(registry_path=tmp_path)
    assert_error(
        await several.post("/predictions", content=csv),
        422,
        "The registry holds 2 deployments ('flights', 'other'), so /predictions cannot choose",
    )
    chosen = make_client(registry_path=tmp_path, default_deployment="other")
    response = await chosen.get("/info")
    assert response.json()["id"] == "other"


# -------------------------------------------------------------------------- errors


@pytest.mark.parametrize("deployment_id", ["nope", "..", "a b", "x" * 300])
async def test_unknown_deployment_is_404_naming_it(client: httpx.AsyncClient, deployment_id: str) -> None:
    response = await client.post(f"/predApi/v1.0/deployments/{deployment_id}/predictions", content=b"a\n1\n")
    if deployment_id == "..":  # the client normalises the dot segment away: an unknown route
        assert_error(response, 404, NOT_FOUND)
        return
    assert_error(response, 404, f"deployment {deployment_id[:60]!r}"[:-1])


async def test_framework_errors_have_the_message_shape(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/nowhere"), 404, NOT_FOUND)
    response = await client.get(URL)
    assert_error(response, 405, "The method is not allowed for the requested URL.")
    assert response.headers["allow"] == "POST"


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("wd=1", 422, "'wd': wd is not allowed key"),
        ("forecastPoint=soon", 422, "forecastPoint: 'soon' is not a datetime"),
        ("forecastPoint=2013-04-23T12:00:00", 422, "2013-04-23"),
        ("passthroughColumns=nope", 400, "passthroughColumns 'nope' not found"),
        ("passthroughColumns=", 422, "passthroughColumns must not be blank"),
        ("relaxKnownInAdvanceFeaturesCheck=yes", 422, "relaxKnownInAdvanceFeaturesCheck must be"),
        ("predictionsStartDate=2013-04-10", 422, "predictionsStartDate was given without"),
    ],
)
async def test_bad_parameters(
    client: httpx.AsyncClient, query: str, status: int, message: str, csv: bytes
) -> None:
    response = await client.post(f"{URL}?{query}", content=csv)
    assert_error(response, status, message)
    assert "x-datarobot-model-id" in response.headers


@pytest.mark.parametrize(
    ("content", "headers", "status", "message"),
    [
        (b"", {}, 400, "The request body is empty"),
        (b"date\n2013-01-01\n", {}, 422, "'series'"),
        (b"[1, 2]", {"content-type": "application/json"}, 400, "Record 0 of the JSON body is a int"),
        (b"\x00\xff garbage", {"content-encoding": "gzip"}, 400, "not valid gzip data"),
        (b"a,b\n1,2\n", {"content-type": "image/png"}, 400, "Content-Type 'image/png' is not supported"),
        (b"--x\r\n", {"content-type": "multipart/form-data"}, 400, "multipart/form-data body is malformed"),
        (
            b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\n\r\n--b--\r\n',
            {"content-type": "multipart/form-data; boundary=b"},
            400,
            "The request body is empty",
        ),
        (
            b"--b--\r\n",
            {"content-type": "multipart/form-data; boundary=b"},
            400,
            "has no file part",
        ),
    ],
)
async def test_bad_bodies(
    client: httpx.AsyncClient, content: bytes, headers: dict[str, str], status: int, message: str
) -> None:
    assert_error(await client.post(URL, content=content, headers=headers), status, message)


async def test_body_over_the_limit_is_413_by_content_length(make_client: ClientFactory, csv: bytes) -> None:
    client = make_client(max_body_bytes=1000)
    response = await client.post(URL, content=csv)
    assert_error(response, 413, "over the 1000-byte limit")


async def test_streamed_body_over_the_limit_is_413(make_client: ClientFactory) -> None:
    client = make_client(max_body_bytes=1000)
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(1000):
            sent += 1
            yield b"x" * 100

    response = await client.post(URL, content=endless())
    assert_error(response, 413, "more than 1000 bytes")


async def test_request_line_over_the_limit_is_414(make_client: ClientFactory, csv: bytes) -> None:
    client = make_client(max_request_line=200)
    line_overhead = len("POST ") + len(URL) + len("?") + len(" HTTP/1.1")
    fits = "passthroughColumns=" + "c" * (200 - line_overhead - len("passthroughColumns="))
    response = await client.post(f"{URL}?{fits}", content=csv)
    assert response.status_code == 400  # within the limit: reaches the route (unknown column)
    response = await client.post(f"{URL}?{fits}c", content=csv)
    assert_error(response, 414, "The request line is 201 bytes, over the 200-byte limit")


# ---------------------------------------------------------------------------- auth


async def test_api_keys_are_enforced(make_client: ClientFactory, csv: bytes) -> None:
    client = make_client(api_keys=["k1"], datarobot_key="dk")
    response = await client.post(URL, content=csv)
    assert_error(response, 401, "Invalid API token")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert_error(await client.get("/deployments"), 401, "Invalid API token")
    response = await client.post(URL, content=csv, headers={"authorization": "Bearer k1"})
    assert_error(response, 401, "The datarobot-key header is missing")
    response = await client.post(
        URL, content=csv, headers={"authorization": "Token k1", "datarobot-key": "dk"}
    )
    assert response.status_code == 200
    response = await client.post(
        URL, content=csv, headers={"authorization": "Bearer k1", "datarobot-key": "no"}
    )
    assert_error(response, 401, "The datarobot-key header is invalid")


# ------------------------------------------------------------------- server faults


class _Broken:
    model_id = "broken-model"

    def input_schema_overrides(self) -> dict[str, pl.DataType]:
        return {}

    def predict_result(self, frame: pl.DataFrame, options: object) -> object:
        msg = "a bug"
        raise RuntimeError(msg)


class _FaultyRegistry:
    def __init__(self, path: Path) -> None:
        self.real = tsengine.Registry(path)

    def list(self) -> list[str]:
        return [*self.real.list(), "broken", "corrupt"]

    def live_version(self, deployment_id: str) -> str | None:
        return self.real.live_version(deployment_id)

    def load(self, deployment_id: str) -> Any:
        if deployment_id == "broken":
            return _Broken()
        if deployment_id == "corrupt":
            msg = "deployment 'corrupt' is corrupt or incomplete"
            raise DeploymentStoreError(msg)
        return self.real.load(deployment_id)


async def test_unexpected_exception_is_500_naming_the_request(
    make_client: ClientFactory, registry_path: Path, caplog: pytest.LogCaptureFixture, csv: bytes
) -> None:
    client = make_client(registry=_FaultyRegistry(registry_path))
    with caplog.at_level(logging.ERROR, logger="tsengine.api"):
        response = await client.post("/predApi/v1.0/deployments/broken/predictions", content=csv)
    request_id = response.headers["x-datarobot-request-id"]
    assert_error(response, 500, f"Internal server error (request id {request_id})")
    assert response.json()["message"] == f"Internal server error (request id {request_id})"
    assert response.headers["x-datarobot-model-id"] == "broken-model"
    assert any(request_id in r.getMessage() and r.exc_info for r in caplog.records)


async def test_corrupt_store_is_500_with_message_and_request_id(
    make_client: ClientFactory, registry_path: Path, csv: bytes
) -> None:
    client = make_client(registry=_FaultyRegistry(registry_path))
    response = await client.post("/predApi/v1.0/deployments/corrupt/predictions", content=csv)
    request_id = response.headers["x-datarobot-request-id"]
    assert_error(response, 500, f"is corrupt or incomplete (request id {request_id})")


async def test_openapi_documents_the_prediction_contract(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    operation = schema["paths"]["/predApi/v1.0/deployments/{deployment_id}/predictions"]["post"]
    names = {p["name"] for p in operation["parameters"]}
    assert {"deployment_id", "forecastPoint", "passthroughColumns", "maxCodes"} <= names
    assert set(operation["requestBody"]["content"]) >= {"text/csv", "application/json", "multipart/form-data"}
    assert operation["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "ErrorMessage"
    )


async def test_prediction_explanations_route_defaults_to_three_without_a_5xx(
    client: httpx.AsyncClient, csv: bytes
) -> None:
    """DataRobot's deprecated route asks for 3 explanations unless told otherwise."""
    response = await client.post(
        f"/predApi/v1.0/deployments/{DEPLOYMENT_ID}/predictionExplanations", content=csv
    )
    assert response.status_code < 500, response.text
    if response.status_code == 200:
        rows = response.json()["data"]
        assert len(rows) == len(SERIES) * 7
    else:
        assert_error(response, response.status_code, "xplanation")


async def test_a_new_version_is_served_without_a_restart(
    make_client: ClientFactory, registry_path: Path, csv: bytes
) -> None:
    """Retraining (or a humility change) saves a new version; the cache notices it."""
    registry = tsengine.Registry(registry_path)
    dep_id = registry.list()[0]
    async with make_client() as client:
        url = f"/predApi/v1.0/deployments/{dep_id}/predictions"
        first = await client.post(url, content=csv, headers={"Content-Type": "text/csv"})
        again = await client.post(url, content=csv, headers={"Content-Type": "text/csv"})
        assert again.headers["X-DataRobot-Model-Cache-Hit"] == "true"
        registry.save(registry.load(dep_id))
        after = await client.post(url, content=csv, headers={"Content-Type": "text/csv"})
    assert first.status_code == after.status_code == 200
    assert after.headers["X-DataRobot-Model-Cache-Hit"] == "false"
