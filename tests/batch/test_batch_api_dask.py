"""Batch jobs created over HTTP score on a Dask cluster when the server is given one.

``TSENGINE_DASK_SCHEDULER`` (here ``local:2``, a 2-worker LocalCluster the server
starts with itself) sends each job's chunks to the cluster; the result must be
the bytes a server without a cluster writes for the same upload.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

import tsengine
from api import Settings
from api.app import create_app
from api.testing import running
from tsengine.distributed import DaskSchedulerError

from http_flights import DEPLOYMENT_ID, flights, train_flights

RELAX = {"type": "forecast", "relaxKnownInAdvanceFeaturesCheck": True}


def _score(url: str) -> tuple[bytes, dict[str, Any]]:
    with httpx.Client(base_url=f"{url}/api/v2", timeout=60) as http:
        created = http.post(
            "/batchPredictions/",
            json={"deploymentId": DEPLOYMENT_ID, "timeseriesSettings": RELAX, "chunkSize": 1024},
        )
        assert created.status_code == 202, created.text
        job = created.json()
        upload = http.put(
            job["links"]["csvUpload"],
            content=flights().write_csv().encode(),
            headers={"Content-Type": "text/csv"},
        )
        assert upload.status_code == 202, upload.text
        for _ in range(600):
            status: dict[str, Any] = http.get(f"/batchPredictions/{job['id']}/").json()
            if status["status"] in {"COMPLETED", "FAILED", "ABORTED"}:
                break
            threading.Event().wait(0.05)
        assert status["status"] == "COMPLETED", status["statusDetails"]
        return http.get(status["links"]["download"]).content, status


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("registry")
    tsengine.Registry(path).save(train_flights())
    return path


def test_server_jobs_score_on_the_cluster_with_the_same_output(registry: Path) -> None:
    plain = Settings(registry=registry)
    with running(plain, app=create_app(plain)) as url:
        expected, _ = _score(url)
    clustered = Settings(registry=registry, dask_scheduler="local:2")
    app = create_app(clustered)
    with running(clustered, app=app) as url:
        got, status = _score(url)
        assert app.state.batch_engine.dask is not None  # the chunks went to the cluster
    assert got == expected
    assert status["scoredRows"] > 0


def test_a_server_whose_scheduler_does_not_answer_does_not_start(
    registry: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TSENGINE_DASK_CONNECT_TIMEOUT", "1.5")  # a refused address is retried until then
    settings = Settings(registry=registry, dask_scheduler="tcp://127.0.0.1:9")
    app = create_app(settings)

    async def start() -> None:
        async with app.router.lifespan_context(app):
            pass

    with pytest.raises(DaskSchedulerError, match="cannot be reached"):
        asyncio.run(start())
