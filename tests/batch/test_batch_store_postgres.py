"""The job store on PostgreSQL (TSENGINE_BATCH_STORE_URL): two servers share one queue."""

from __future__ import annotations

import time
from pathlib import Path

import polars as pl

import tsengine
from tsengine.batch import BatchEngine, BatchStore, parse_job_spec

from http_flights import DEPLOYMENT_ID, flights, train_flights


def test_a_job_created_by_one_server_runs_on_another(fresh_postgres_url: str, tmp_path: Path) -> None:
    registry = tsengine.Registry(tmp_path / "registry")
    registry.save(train_flights())
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    flights().write_csv(source)
    front = BatchEngine(registry, store=BatchStore(fresh_postgres_url), folder=tmp_path / "front")
    worker = BatchEngine(registry, store=BatchStore(fresh_postgres_url), folder=tmp_path / "worker").start()
    try:
        body = {
            "deploymentId": DEPLOYMENT_ID,
            "intakeSettings": {"type": "filesystem", "path": str(source)},
            "outputSettings": {"type": "filesystem", "path": str(out)},
            "timeseriesSettings": {"type": "forecast", "relaxKnownInAdvanceFeaturesCheck": True},
        }
        job = front.create_job(parse_job_spec(body, allow_filesystem=True))
        for _ in range(300):  # the worker's recovery round finds the unclaimed job
            doc = front.store.job(job["id"])
            if doc["status"] == "COMPLETED":
                break
            time.sleep(0.1)
        assert doc["status"] == "COMPLETED", doc["statusDetails"]
        assert doc["_owner"] == worker.owner
        assert pl.read_csv(out).height == 21
        listed, total = front.store.jobs(statuses=["COMPLETED"])
        assert total == 1
        assert listed[0]["id"] == job["id"]
    finally:
        worker.stop()


def test_claims_and_abort_flags_are_shared(fresh_postgres_url: str, tmp_path: Path) -> None:
    registry = tsengine.Registry(tmp_path / "registry")
    registry.save(train_flights())
    one = BatchEngine(registry, store=BatchStore(fresh_postgres_url), folder=tmp_path / "one")
    two = BatchEngine(registry, store=BatchStore(fresh_postgres_url), folder=tmp_path / "two")
    job = one.create_job(parse_job_spec({"deploymentId": DEPLOYMENT_ID}))
    assert one.store.claim(job["id"], one.owner)
    assert not two.store.claim(job["id"], two.owner)
    two.store.request_abort(job["id"])
    assert one.store.abort_requested(job["id"])
