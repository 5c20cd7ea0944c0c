"""Monitoring end to end: predict over HTTP and in a batch job, post actuals later, read accuracy
and drift through the unmodified ``datarobot`` client, and check them against a direct computation."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datarobot as dr
import httpx
import numpy as np
import polars as pl
import pytest
from datarobot.models import BatchPredictionJob

import tsengine
from api import Settings
from api.app import create_app
from api.testing import running
from tsengine.tabular import train_tabular

from http_flights import DEPLOYMENT_ID, LAST_HISTORY, flights, train_flights

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning"),
    pytest.mark.usefixtures("quick_client_polls"),
]
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
LEVELS_ID = "flights-levels"  # the same deployment serving 50 and 95 % intervals beside its 80 %


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    path = tmp_path_factory.mktemp("registry")
    registry = tsengine.Registry(path)
    registry.save(train_flights())
    registry.save(train_flights(LEVELS_ID, interval_percentile=(80, 50, 95)))
    registry.save(
        train_tabular(
            pl.read_csv(FIXTURES / "tabular_binary.csv"),
            target="status",
            task="binary",
            deployment_id="credit",
        )
    )
    settings = Settings(registry=path)
    app = create_app(settings, registry=registry)
    with running(settings, app=app) as url:
        dr.Client(endpoint=f"{url}/api/v2", token="t")
        yield url, app.state.monitor


def history() -> pl.DataFrame:
    return flights().filter(pl.col("date") <= LAST_HISTORY)


def actuals_after(last: str) -> pl.DataFrame:
    return flights().filter(pl.col("date") > last)


def predict_history(url: str, deployment_id: str) -> httpx.Response:
    """POST the flights history as CSV to a deployment's prediction route."""
    return httpx.post(
        f"{url}/predApi/v1.0/deployments/{deployment_id}/predictions",
        params={"relaxKnownInAdvanceFeaturesCheck": "true"},
        content=history().write_csv().encode(),
        headers={"Content-Type": "text/csv"},
        timeout=30,
    )


def actuals_payload(truth: pl.DataFrame) -> list[dict[str, Any]]:
    """The flights actuals as ``submit_actuals`` takes them (time series association ids)."""
    return [
        {"association_id": f"{row['series']}|{row['date']}", "actual_value": float(row["delayed"])}
        for row in truth.to_dicts()
    ]


def test_accuracy_from_realtime_and_batch_predictions(server: tuple[str, Any]) -> None:
    url, monitor = server
    realtime = predict_history(url, DEPLOYMENT_ID)
    assert realtime.status_code == 200
    forecasts = pl.DataFrame(realtime.json()["data"]).select(
        pl.col("seriesId"),
        pl.col("timestamp").str.slice(0, 10).alias("date"),
        pl.col("prediction"),
        pl.col("predictionIntervals").struct.field("80").struct.field("low").alias("low"),
        pl.col("predictionIntervals").struct.field("80").struct.field("high").alias("high"),
    )
    job = BatchPredictionJob.score(
        DEPLOYMENT_ID,
        intake_settings={"type": "localFile", "file": history().to_pandas()},
        output_settings={"type": "localFile"},
        timeseries_settings={"type": "forecast", "relax_known_in_advance_features_check": True},
    )
    job.wait_for_completion(max_wait=60)
    assert monitor.log.flush()

    truth = actuals_after(LAST_HISTORY)
    deployment = dr.Deployment.get(DEPLOYMENT_ID)
    deployment.submit_actuals(actuals_payload(truth))
    accuracy = deployment.get_accuracy()
    # every forecast of a timestamp (realtime and batch) meets its one actual
    joined = forecasts.join(
        truth.select(pl.col("series").alias("seriesId"), "date", "delayed"), on=["seriesId", "date"]
    )
    errors = (joined["prediction"] - joined["delayed"]).to_numpy()
    rmse, mae = math.sqrt(float(np.mean(errors**2))), float(np.mean(np.abs(errors)))
    coverage = float(((joined["low"] <= joined["delayed"]) & (joined["delayed"] <= joined["high"])).mean())
    assert accuracy.metrics["RMSE"]["value"] == pytest.approx(rmse, rel=1e-9)
    assert accuracy.metrics["MAE"]["value"] == pytest.approx(mae, rel=1e-9)
    assert accuracy.metrics["Coverage"]["value"] == pytest.approx(coverage, rel=1e-9)
    assert accuracy.data  # the client requires the list

    over_time = deployment.get_accuracy_over_time(metric="RMSE")
    assert sum(b["sample_size"] for b in over_time.buckets) == 2 * joined.height

    stats = deployment.get_service_stats()
    assert stats.metrics["totalRequests"] >= 1
    assert stats.metrics["totalPredictions"] == 2 * forecasts.height


def test_actuals_report_bad_rows_and_duplicates(server: tuple[str, Any]) -> None:
    url, _ = server
    response = httpx.post(
        f"{url}/api/v2/deployments/{DEPLOYMENT_ID}/actuals/fromJSON/",
        json={
            "data": [
                {"associationId": "EWR-UA|2013-04-24", "actualValue": 3},
                {"associationId": "EWR-UA|2013-04-24T00:00:00Z", "actualValue": 4},
                {"associationId": "", "actualValue": 1},
                {"associationId": "x", "actualValue": "many"},
                {"associationId": "nobody|2013-01-01", "actualValue": 1},
            ]
        },
    )
    assert response.status_code == 422
    message = response.json()["message"]
    assert message.startswith("2 of 5 actuals were not stored")
    assert "data[2].associationId" in message
    assert "data[3].actualValue" in message
    assert "The other 3 were kept" in message
    # the good rows were stored: sending one again is a duplicate, an unknown id is reported
    again = httpx.post(
        f"{url}/api/v2/deployments/{DEPLOYMENT_ID}/actuals/fromJSON/",
        json={
            "data": [
                {"associationId": "EWR-UA|2013-04-24", "actualValue": 3},
                {"associationId": "nobody|2013-01-02", "actualValue": 1},
            ]
        },
    )
    assert again.status_code == 202
    status = httpx.get(again.headers["Location"]).json()
    assert status["status"] == "COMPLETED"
    assert status["duplicates"] == 1
    assert status["unknownAssociationIds"] == 1
    missing = httpx.post(
        f"{url}/api/v2/deployments/nope/actuals/fromJSON/",
        json={"data": [{"associationId": "a", "actualValue": 1}]},
    )
    assert missing.status_code == 404


def test_tabular_association_id_drift_and_accuracy(server: tuple[str, Any]) -> None:
    url, monitor = server
    deployment = dr.Deployment.get("credit")
    deployment.update_association_id_settings(column_names=["loan_id"], required_in_prediction_requests=True)
    assert deployment.get_association_id_settings()["column_names"] == ["loan_id"]
    credit = pl.read_csv(FIXTURES / "tabular_binary.csv").head(300).with_row_index("loan_id")
    refused = httpx.post(
        f"{url}/predApi/v1.0/deployments/credit/predictions",
        content=credit.drop("loan_id").write_csv().encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert refused.status_code == 422
    assert "loan_id" in refused.json()["message"]
    served = httpx.post(
        f"{url}/predApi/v1.0/deployments/credit/predictions",
        content=credit.drop("status").write_csv().encode(),
        headers={"Content-Type": "text/csv"},
        timeout=30,
    )
    assert served.status_code == 200
    assert monitor.log.flush()
    deployment.submit_actuals(
        [{"association_id": str(r["loan_id"]), "actual_value": r["status"]} for r in credit.to_dicts()]
    )
    accuracy = deployment.get_accuracy()
    assert {"LogLoss", "AUC", "Accuracy"} <= set(accuracy.metrics)
    assert 0.5 < accuracy.metrics["AUC"]["value"] <= 1.0
    drift = deployment.get_feature_drift()
    names = {d.name for d in drift}
    assert {"income", "seniority"} <= names
    assert all(d.drift_score is None or d.drift_score >= 0 for d in drift)
    target = deployment.get_target_drift()
    assert target.target_name == "status"
    assert target.sample_size == 300


def test_prometheus_metrics_count_prediction_requests(server: tuple[str, Any]) -> None:
    url, monitor = server
    response = predict_history(url, DEPLOYMENT_ID)
    assert response.status_code == 200
    bad = httpx.post(
        f"{url}/predApi/v1.0/deployments/{DEPLOYMENT_ID}/predictions",
        content=b"date,series\n2013-01-01,X\n",
        headers={"Content-Type": "text/csv"},
    )
    assert bad.status_code == 422
    text = httpx.get(f"{url}/metrics").text
    assert (
        f'tsengine_prediction_requests_total{{deployment="{DEPLOYMENT_ID}",route="predictions",status="200"}}'
        in text
    )
    assert (
        f'tsengine_prediction_requests_total{{deployment="{DEPLOYMENT_ID}",route="predictions",status="422"}} 1.0'
        in text
    )
    assert f'tsengine_predictions_total{{deployment="{DEPLOYMENT_ID}"}}' in text
    assert 'tsengine_monitoring_events_total{outcome="dropped"} 0.0' in text


def test_actuals_from_a_catalog_dataset(server: tuple[str, Any], tmp_path: Path) -> None:
    url, _ = server
    path = tmp_path / "actuals.csv"
    actuals_after(LAST_HISTORY).select("series", "date", "delayed").write_csv(path)
    with path.open("rb") as fh:
        dataset = httpx.post(
            f"{url}/api/v2/datasets/fromFile/", files={"file": ("actuals.csv", fh, "text/csv")}
        ).json()
    response = httpx.post(
        f"{url}/api/v2/deployments/{DEPLOYMENT_ID}/actuals/fromDataset/",
        json={
            "datasetId": dataset["datasetId"],
            "seriesIdColumn": "series",
            "timestampColumn": "date",
            "actualValueColumn": "delayed",
        },
    )
    assert response.status_code == 202, response.text
    status = httpx.get(response.headers["Location"]).json()
    assert status["received"] == 21
    assert status["invalid"] == 0
    assert status["inserted"] + status["duplicates"] == 21
    wrong = httpx.post(
        f"{url}/api/v2/deployments/{DEPLOYMENT_ID}/actuals/fromDataset/",
        json={
            "datasetId": dataset["datasetId"],
            "associationIdColumn": "nope",
            "actualValueColumn": "delayed",
        },
    )
    assert wrong.status_code == 422
    assert "'nope'" in wrong.json()["message"]


def test_drift_switched_off_is_reported_and_not_sampled(server: tuple[str, Any]) -> None:
    url, monitor = server
    deployment = dr.Deployment.get(DEPLOYMENT_ID)
    deployment.update_drift_tracking_settings(feature_drift_enabled=False)
    try:
        assert deployment.get_drift_tracking_settings()["feature_drift"]["enabled"] is False
        off = httpx.get(f"{url}/api/v2/deployments/{DEPLOYMENT_ID}/featureDrift/")
        assert off.status_code == 422
        assert "featureDrift tracking is disabled" in off.json()["message"]
        assert monitor.log.flush()  # earlier tests' events are written first
        before = monitor.store.samples(DEPLOYMENT_ID).height
        served = predict_history(url, DEPLOYMENT_ID)
        assert served.status_code == 200
        assert monitor.log.flush()
        assert monitor.store.samples(DEPLOYMENT_ID).height == before
    finally:
        deployment.update_drift_tracking_settings(feature_drift_enabled=True)


def test_coverage_of_every_served_percentile(server: tuple[str, Any]) -> None:
    """A deployment serving 80, 50 and 95 % reports Coverage (its own 80 %), Coverage50 and Coverage95."""
    url, monitor = server
    response = predict_history(url, LEVELS_ID)
    assert response.status_code == 200, response.text
    rows = pl.DataFrame(response.json()["data"])
    bounds = {
        p: rows.select(
            pl.col("seriesId"),
            pl.col("timestamp").str.slice(0, 10).alias("date"),
            pl.col("predictionIntervals").struct.field(p).struct.field("low").alias("low"),
            pl.col("predictionIntervals").struct.field(p).struct.field("high").alias("high"),
        )
        for p in ("80", "50", "95")
    }
    assert monitor.log.flush()
    truth = actuals_after(LAST_HISTORY)
    deployment = dr.Deployment.get(LEVELS_ID)
    deployment.submit_actuals(actuals_payload(truth))
    actual = truth.select(pl.col("series").alias("seriesId"), "date", "delayed")

    def coverage(p: str) -> float:
        joined = bounds[p].join(actual, on=["seriesId", "date"])
        inside = (joined["low"] <= joined["delayed"]) & (joined["delayed"] <= joined["high"])
        return float(inside.mean())

    metrics = deployment.get_accuracy().metrics
    assert metrics["Coverage"]["value"] == pytest.approx(coverage("80"), rel=1e-9)
    assert metrics["Coverage50"]["value"] == pytest.approx(coverage("50"), rel=1e-9)
    assert metrics["Coverage95"]["value"] == pytest.approx(coverage("95"), rel=1e-9)
    assert coverage("50") <= coverage("80") <= coverage("95")
    assert metrics["Coverage95"]["baseline_value"] is None  # one backtest: no held-out check to compare with

    over_time = deployment.get_accuracy_over_time(metric="Coverage95")
    assert over_time.summary["value"] == pytest.approx(coverage("95"), rel=1e-9)
    other = httpx.get(
        f"{url}/api/v2/deployments/{LEVELS_ID}/accuracyOverTime/", params={"metric": "Coverage90"}
    )
    assert other.status_code == 422
    assert "Coverage95" in other.json()["message"]
    # a deployment serving its own interval only reports no further coverage
    assert "Coverage50" not in dr.Deployment.get(DEPLOYMENT_ID).get_accuracy().metrics


def test_prediction_interval_settings_are_what_training_built(server: tuple[str, Any]) -> None:
    """The client reads the served percentiles; a PATCH may restate them, never change them."""
    url, _monitor = server
    assert dr.Deployment.get(DEPLOYMENT_ID).get_prediction_intervals_settings() == {
        "enabled": True,
        "percentiles": [80],
    }
    assert dr.Deployment.get("credit").get_prediction_intervals_settings() == {
        "enabled": False,
        "percentiles": [],
    }
    route = f"{url}/api/v2/deployments/{DEPLOYMENT_ID}/settings/"
    same = httpx.patch(route, json={"predictionIntervals": {"enabled": True, "percentiles": [80]}})
    assert same.status_code == 202, same.text
    for bad in ({"enabled": True, "percentiles": [90]}, {"enabled": False}, {"percentiles": ["x", 80]}, [80]):
        other = httpx.patch(route, json={"predictionIntervals": bad})
        assert other.status_code == 422, bad
        assert "serves percentiles 80" in other.json()["message"]
        assert "--interval-percentile" in other.json()["message"]
