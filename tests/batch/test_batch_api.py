"""The /api/v2 wire rules over a real loopback server, with httpx (chunked uploads, streamed downloads)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
from datarobot.models import BatchPredictionJob
from datarobot.utils import from_api

import tsengine
from api import Settings
from api.app import create_app
from api.testing import running
from tsengine.batch import BatchEngine

from http_flights import DEPLOYMENT_ID, flights, train_flights

KEY = "secret-key"
AUTH = {"Authorization": f"Token {KEY}"}
RELAX = {"type": "forecast", "relaxKnownInAdvanceFeaturesCheck": True}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, BatchEngine]]:
    path = tmp_path_factory.mktemp("registry")
    registry = tsengine.Registry(path)
    registry.save(train_flights())
    settings = Settings(registry=path, api_keys=[KEY], batch_max_upload_bytes=200_000)
    engine = BatchEngine(registry, workers=1)
    with running(settings, app=create_app(settings, registry=registry, engine=engine)) as url:
        yield url, engine


@pytest.fixture
def http(server: tuple[str, BatchEngine]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{server[0]}/api/v2", headers=AUTH, timeout=30) as client:
        yield client


def create(http: httpx.Client, **extra: Any) -> dict[str, Any]:
    response = http.post(
        "/batchPredictions/", json={"deploymentId": DEPLOYMENT_ID, "timeseriesSettings": RELAX, **extra}
    )
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    assert response.headers["Location"] == body["links"]["self"]
    return body


def wait(http: httpx.Client, job_id: str) -> dict[str, Any]:
    for _ in range(300):
        body: dict[str, Any] = http.get(f"/batchPredictions/{job_id}/").json()
        if body["status"] in {"COMPLETED", "FAILED", "ABORTED"}:
            return body
        threading.Event().wait(0.05)
    raise AssertionError("job did not finish")


def test_job_resource_passes_the_clients_own_validation(
    http: httpx.Client, server: tuple[str, BatchEngine]
) -> None:
    job = create(http)
    base = f"{server[0]}/api/v2/batchPredictions/{job['id']}/"
    assert job["links"] == {"self": base, "csvUpload": f"{base}csvUpload/"}
    assert job["links"]["self"].startswith("http://")
    assert job["status"] == "INITIALIZING"
    assert isinstance(job["elapsedTimeSec"], int)
    assert job["statusDetails"].strip()
    assert job["jobSpec"]["numConcurrent"] >= 1
    converted = from_api(job)  # the client's own trafaret schema raises on any wrong field
    converter = (BatchPredictionJob._converter_common + BatchPredictionJob._converter_extra).allow_extra("*")
    converter.check(converted)


def test_every_error_is_json_with_a_message(http: httpx.Client, server: tuple[str, BatchEngine]) -> None:
    unauthorised = httpx.get(f"{server[0]}/api/v2/version/")
    assert unauthorised.status_code == 401
    assert unauthorised.headers["content-type"] == "application/json"
    assert http.get("/version/").json()["versionString"] == "2.49.0"
    missing = http.get("/batchPredictions/nope/")
    assert missing.status_code == 404
    assert "'nope'" in missing.json()["message"]
    bad = http.post("/batchPredictions/", content=b"{not json", headers={"Content-Type": "application/json"})
    assert bad.status_code == 400
    assert "JSON" in bad.json()["message"]


def test_chunked_upload_without_content_length(http: httpx.Client) -> None:
    job = create(http)
    data = flights().write_csv().encode()

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(data), 1000):
            yield data[start : start + 1000]

    response = http.put(job["links"]["csvUpload"], content=pieces(), headers={"Content-Type": "text/csv"})
    assert response.status_code == 202
    assert "content-length" not in response.request.headers
    done = wait(http, job["id"])
    assert done["status"] == "COMPLETED"
    assert done["scoredRows"] == 21
    assert done["jobIntakeSize"] == len(data)


def test_upload_without_csv_type_is_406_and_aborts_the_job(http: httpx.Client) -> None:
    job = create(http)
    response = http.put(
        job["links"]["csvUpload"], content=b"a,b\n1,2\n", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 406
    assert "text/csv" in response.json()["message"]
    status = http.get(f"/batchPredictions/{job['id']}/").json()
    assert status["status"] == "ABORTED"
    assert "text/csv" in status["statusDetails"]


def test_upload_over_the_limit_is_413(http: httpx.Client) -> None:
    job = create(http)
    big = b"x" * 300_000

    def pieces() -> Iterator[bytes]:
        yield big

    response = http.put(job["links"]["csvUpload"], content=pieces(), headers={"Content-Type": "text/csv"})
    assert response.status_code == 413
    assert "limit" in response.json()["message"]
    assert http.get(f"/batchPredictions/{job['id']}/").json()["status"] == "ABORTED"


def test_second_upload_is_409_and_empty_upload_422(http: httpx.Client) -> None:
    job = create(http)
    first = http.put(
        job["links"]["csvUpload"],
        content=flights().write_csv().encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert first.status_code == 202
    again = http.put(job["links"]["csvUpload"], content=b"a\n1\n", headers={"Content-Type": "text/csv"})
    assert again.status_code == 409
    empty = create(http)
    response = http.put(empty["links"]["csvUpload"], content=b"", headers={"Content-Type": "text/csv"})
    assert response.status_code == 422
    assert "empty" in response.json()["message"]


def test_download_streams_while_the_job_is_running(
    http: httpx.Client, server: tuple[str, BatchEngine]
) -> None:
    _, engine = server
    job = create(http, chunkSize=1024, numConcurrent=1)
    gate = threading.Event()
    engine.listen(job["id"], lambda doc: gate.wait(30) if doc.get("scoredRows") else None)
    upload = http.put(
        job["links"]["csvUpload"],
        content=flights().write_csv().encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert upload.status_code == 202
    for _ in range(200):
        status = http.get(f"/batchPredictions/{job['id']}/").json()
        if "download" in status["links"]:
            break
        threading.Event().wait(0.05)
    assert status["status"] == "RUNNING"
    received = b""
    with http.stream("GET", status["links"]["download"]) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        assert "gzip" not in response.headers.get("content-encoding", "")
        assert response.headers["content-disposition"] == f"attachment;filename=result-{job['id']}.csv"
        pieces = response.iter_bytes()
        received += next(pieces)
        # the first chunk arrived while the job is held after its first chunk
        assert http.get(f"/batchPredictions/{job['id']}/").json()["status"] == "RUNNING"
        gate.set()
        for piece in pieces:
            received += piece
    assert http.get(f"/batchPredictions/{job['id']}/").json()["status"] == "COMPLETED"
    frame = pl.read_csv(received)
    assert frame.height == 21
    assert frame["series"].n_unique() == 3


def test_list_paging_filters_and_patch(http: httpx.Client) -> None:
    for _ in range(3):
        create(http)
    page = http.get("/batchPredictions/", params={"status": "INITIALIZING", "limit": 2}).json()
    assert page["count"] == 2
    assert page["next"].startswith("http://")
    following = httpx.get(page["next"], headers=AUTH).json()
    assert following["previous"].startswith("http://")
    assert {j["id"] for j in page["data"]}.isdisjoint({j["id"] for j in following["data"]})
    bad = http.get("/batchPredictions/", params={"status": "QUEUED"})
    assert bad.status_code == 422
    job_id = page["data"][0]["id"]
    assert http.patch(f"/batchPredictions/{job_id}/", json={"hidden": True}).json()["hidden"] is True
    assert http.patch(f"/batchPredictions/{job_id}/", json={"status": "COMPLETED"}).status_code == 422


def test_delete_aborts_then_deletes_results(http: httpx.Client) -> None:
    job = create(http)
    first = http.delete(f"/batchPredictions/{job['id']}/")
    assert first.status_code == 202
    assert first.json()["status"] == "ABORTED"
    again = http.delete(f"/batchPredictions/{job['id']}/")
    assert again.status_code == 202
    assert again.json()["resultsDeleted"] is True
    assert http.delete("/batchPredictions/unknown/").status_code == 404


def test_credentials_never_echo_secrets(http: httpx.Client) -> None:
    created = http.post(
        "/credentials/",
        json={
            "name": "aws",
            "credentialType": "s3",
            "awsAccessKeyId": "AKIA1",
            "awsSecretAccessKey": "TOPSECRET",
        },
    )
    assert created.status_code == 201
    assert "TOPSECRET" not in created.text
    assert "AKIA1" not in created.text
    fetched = http.get(f"/credentials/{created.json()['credentialId']}/")
    assert "TOPSECRET" not in fetched.text
    assert "TOPSECRET" not in http.get("/credentials/").text
    refused = http.post(
        "/externalDataStores/", json={"canonicalName": "pg", "params": {"url": "postgresql://u:pw@h/db"}}
    )
    assert refused.status_code == 422
    assert "password" in refused.json()["message"]


def test_deployment_route_for_the_client(http: httpx.Client) -> None:
    body = http.get(f"/deployments/{DEPLOYMENT_ID}/").json()
    assert body["id"] == DEPLOYMENT_ID
    assert body["model"]["targetName"] == "delayed"
    assert http.get("/deployments/nope/").status_code == 404


def test_uploaded_dataset_is_a_catalog_entry(http: httpx.Client, tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    flights().write_csv(path)
    with path.open("rb") as fh:
        created = http.post("/datasets/fromFile/", files={"file": ("h.csv", fh, "text/csv")})
    assert created.status_code == 202
    body = created.json()
    assert len(body["sha256"]) == 64
    assert str(tmp_path) not in created.text
    listed = http.get("/datasets/").json()
    assert body["datasetId"] in {d["datasetId"] for d in listed["data"]}


def test_the_server_runs_a_scheduled_definition_when_it_is_due(
    http: httpx.Client, server: tuple[str, BatchEngine], tmp_path: Path
) -> None:
    _, engine = server
    path = tmp_path / "h.csv"
    flights().write_csv(path)
    with path.open("rb") as fh:
        dataset = http.post("/datasets/fromFile/", files={"file": ("h.csv", fh, "text/csv")}).json()
    every_minute = {"minute": ["*"], "hour": ["*"], "dayOfMonth": ["*"], "month": ["*"], "dayOfWeek": ["*"]}
    created = http.post(
        "/batchPredictionJobDefinitions/",
        json={
            "name": "every minute",
            "enabled": True,
            "schedule": every_minute,
            "deploymentId": DEPLOYMENT_ID,
            "numConcurrent": 1,
            "intakeSettings": {"type": "dataset", "datasetId": dataset["datasetId"]},
            "outputSettings": {"type": "localFile"},
            "timeseriesSettings": RELAX,
        },
    )
    assert created.status_code == 202, created.text
    definition = created.json()
    # make the next run due now instead of waiting for the minute to turn
    due = engine.store.scheduled_run(definition["id"])
    assert due is not None
    assert engine.store.advance_schedule(definition["id"], expected=due, next_run=time.time() - 1)
    for _ in range(200):  # the server's housekeeping thread starts it within a second or so
        jobs = http.get(
            "/batchPredictions/", params={"batchPredictionJobDefinitionId": definition["id"]}
        ).json()
        if jobs["count"] and jobs["data"][0]["status"] == "COMPLETED":
            break
        time.sleep(0.1)
    assert jobs["count"] == 1
    job = jobs["data"][0]
    assert job["status"] == "COMPLETED"
    assert job["source"] == "scheduled"
    assert job["batchPredictionJobDefinition"]["id"] == definition["id"]
    stored = http.get(f"/batchPredictionJobDefinitions/{definition['id']}/").json()
    assert stored["lastScheduledRunTime"] is not None
    assert stored["lastSuccessfulRunTime"] is not None
    assert (engine.store.scheduled_run(definition["id"]) or 0) > time.time()  # the next minute, not again now
    assert http.delete(f"/batchPredictionJobDefinitions/{definition['id']}/").status_code == 204


def test_a_definition_with_a_forecast_point_policy_over_http(http: httpx.Client, tmp_path: Path) -> None:
    """Stored and echoed as sent; a run takes its start (now) plus the offset, far after this data."""
    path = tmp_path / "h.csv"
    flights().write_csv(path)
    with path.open("rb") as fh:
        dataset = http.post("/datasets/fromFile/", files={"file": ("h.csv", fh, "text/csv")}).json()
    policy = {"type": "jobRunTimeBased", "configuration": {"offset": "-P1D"}}
    created = http.post(
        "/batchPredictionJobDefinitions/",
        json={
            "name": "yesterday",
            "enabled": False,
            "deploymentId": DEPLOYMENT_ID,
            "numConcurrent": 1,
            "intakeSettings": {"type": "dataset", "datasetId": dataset["datasetId"]},
            "timeseriesSettings": {**RELAX, "forecastPointPolicy": policy},
        },
    )
    assert created.status_code == 202, created.text
    definition = created.json()
    assert definition["batchPredictionJob"]["timeseriesSettings"]["forecastPointPolicy"] == policy
    run = http.post("/batchPredictions/fromJobDefinition/", json={"jobDefinitionId": definition["id"]})
    assert run.status_code == 202, run.text
    for _ in range(200):
        job = http.get(f"/batchPredictions/{run.json()['id']}/").json()
        if job["status"] in {"COMPLETED", "FAILED"}:
            break
        time.sleep(0.05)
    assert job["status"] == "FAILED"  # the flights history ends in 2013
    assert "not enough history before forecast point 20" in job["statusDetails"]
    assert any("INFO: forecastPointPolicy: forecast point" in line for line in job["logs"])
    wrong = {**policy, "configuration": {"offset": "yesterday"}}
    refused = http.post(
        "/batchPredictionJobDefinitions/",
        json={
            "deploymentId": DEPLOYMENT_ID,
            "numConcurrent": 1,
            "timeseriesSettings": {"forecastPointPolicy": wrong},
        },
    )
    assert refused.status_code == 422
    assert refused.json()["message"].startswith("timeseriesSettings.forecastPointPolicy.configuration.offset")


def test_multipart_parts_share_the_upload_limit(http: httpx.Client) -> None:
    job = create(http, intakeSettings={"type": "localFile", "multipart": True})
    part = b"date,series\n" + b"2013-01-01,EWR-UA\n" * 6000  # ~110 kB; the test server's limit is 200 kB
    first = http.put(
        f"{job['links']['csvUpload']}part/0/", content=part, headers={"Content-Type": "text/csv"}
    )
    assert first.status_code == 202
    second = http.put(
        f"{job['links']['csvUpload']}part/1/", content=part, headers={"Content-Type": "text/csv"}
    )
    assert second.status_code == 413
    assert "add up to" in second.json()["message"]
    assert http.get(f"/batchPredictions/{job['id']}/").json()["status"] == "ABORTED"
