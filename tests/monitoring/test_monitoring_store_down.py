"""A monitoring database that cannot be reached never stops predictions; the gap is reported."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import polars as pl

import tsengine
from api import Settings
from api.app import create_app
from api.testing import running

from http_flights import DEPLOYMENT_ID, LAST_HISTORY, flights, train_flights


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_predictions_are_served_and_the_gap_reported(tmp_path: Path) -> None:
    registry = tsengine.Registry(tmp_path / "registry")
    registry.save(train_flights())
    url = f"postgresql+psycopg://scorer:hunter2@127.0.0.1:{closed_port()}/monitoring"
    settings = Settings(registry=registry.path, monitoring_url=url)
    app = create_app(settings, registry=registry)
    body = flights().filter(pl.col("date") <= LAST_HISTORY).write_csv().encode()
    with running(settings, app=app) as base:
        for _ in range(2):
            served = httpx.post(
                f"{base}/predApi/v1.0/deployments/{DEPLOYMENT_ID}/predictions",
                params={"relaxKnownInAdvanceFeaturesCheck": "true"},
                content=body,
                headers={"Content-Type": "text/csv"},
                timeout=60,
            )
            assert served.status_code == 200
        assert app.state.monitor.log.flush(60)
        stats = httpx.get(f"{base}/api/v2/deployments/{DEPLOYMENT_ID}/serviceStats/", timeout=60).json()
        log = stats["monitoringLog"]
        assert log["failed"] >= 2
        assert "cannot be reached" in log["storeError"]
        assert "hunter2" not in str(stats)
        accuracy = httpx.get(f"{base}/api/v2/deployments/{DEPLOYMENT_ID}/accuracy/", timeout=60)
        assert accuracy.status_code == 503
        assert "monitoring store" in accuracy.json()["message"]
        assert "hunter2" not in accuracy.text
