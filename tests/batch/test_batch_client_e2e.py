"""End to end: the unmodified ``datarobot`` client's Batch Prediction API against the real server.

The server runs on loopback (uvicorn, as ``tsengine serve``) with its batch
engine; the client is ``datarobot`` 3.20 exactly as users call it.  Forecasts
are compared with one in-process ``Deployment.predict`` over the whole input.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datarobot as dr
import numpy as np
import pandas as pd
import polars as pl
import pytest
from datarobot.errors import ClientError
from datarobot.models import BatchPredictionJob, BatchPredictionJobDefinition

import tsengine
from api import Settings
from api.testing import running

from http_flights import DEPLOYMENT_ID, flights, train_flights

pytestmark = [
    pytest.mark.filterwarnings(
        "ignore:Using an empty collection for 'allowed_methods':FutureWarning",
        "ignore::DeprecationWarning",
    ),
    pytest.mark.usefixtures("quick_client_polls"),
]
LGBM = "small-flights"
PRED = "delayed (actual)_PREDICTION"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, small_deployment: tsengine.Deployment) -> Path:
    path = tmp_path_factory.mktemp("registry")
    reg = tsengine.Registry(path)
    reg.save(train_flights())
    reg.save(small_deployment)
    return path


@pytest.fixture(scope="module")
def base_url(registry: Path) -> Iterator[str]:
    with running(Settings(registry=registry, batch_workers=2)) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> dr.rest.RESTClientObject:
    return dr.Client(endpoint=f"{base_url}/api/v2", token="any-token")


def history(small: pl.DataFrame) -> pd.DataFrame:
    """Shuffled rows (series interleaved): the engine must not rely on order."""
    return small.sample(fraction=1.0, shuffle=True, seed=7).to_pandas()


def in_process(deployment: tsengine.Deployment, frame: pd.DataFrame, **kwargs: Any) -> pl.DataFrame:
    return deployment.predict(pl.from_pandas(frame), **kwargs)


def assert_same_forecasts(out: pd.DataFrame, expected: pl.DataFrame) -> None:
    got = pl.from_pandas(out).with_columns(pl.col("series").cast(pl.String))
    got = got.sort("series", "date", "FORECAST_DISTANCE")
    want = expected.sort("seriesId", "timestamp", "forecastDistance")
    assert got.height == want.height
    np.testing.assert_allclose(got[PRED].to_numpy(), want["prediction"].to_numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        got["PREDICTION_80_PERCENTILE_LOW"].to_numpy(),
        want["predictionIntervalLow"].to_numpy(),
        rtol=0,
        atol=1e-12,
    )
    assert got["FORECAST_DISTANCE"].to_list() == want["forecastDistance"].to_list()


def test_score_dataframe_to_path_matches_one_in_process_predict(
    client: Any, tmp_path: Path, small_flights: pl.DataFrame, small_deployment: tsengine.Deployment
) -> None:
    frame = history(small_flights)
    out = tmp_path / "out.csv"
    job = BatchPredictionJob.score(
        LGBM,
        intake_settings={"type": "localFile", "file": frame},
        output_settings={"type": "localFile", "path": str(out)},
        timeseries_settings={"type": "forecast", "relax_known_in_advance_features_check": True},
        chunk_size=16 * 1024,
        num_concurrent=2,
    )
    status = job.get_status()
    assert status["status"] == "COMPLETED"
    assert status["scored_rows"] == 3 * 7
    assert status["job_spec"]["num_concurrent"] == 2
    result = pd.read_csv(out)
    assert_same_forecasts(result, in_process(small_deployment, frame, relax_known_in_advance=True))
    assert not list(tmp_path.glob("*.part"))


def test_historical_job_by_file_path_in_many_chunks(
    client: Any, tmp_path: Path, small_flights: pl.DataFrame, small_deployment: tsengine.Deployment
) -> None:
    source = tmp_path / "in.csv"
    history(small_flights).to_csv(source, index=False)
    out = tmp_path / "out.csv"
    job = BatchPredictionJob.score_to_file(
        LGBM,
        str(source),
        str(out),
        timeseries_settings={
            "type": "historical",
            "predictions_start_date": "2013-11-01",
            "predictions_end_date": "2013-12-01",
        },
        chunk_size=16 * 1024,
        passthrough_columns=["holiday"],
    )
    assert job.get_status()["status"] == "COMPLETED"
    expected = small_deployment.predict(pl.read_csv(source), start="2013-11-01", end="2013-12-01")
    result = pd.read_csv(out)
    assert "holiday" in result.columns
    assert_same_forecasts(result, expected)


def test_score_without_path_then_download(client: Any, small_flights: pl.DataFrame) -> None:
    frame = history(small_flights)
    job = BatchPredictionJob.score(
        DEPLOYMENT_ID,
        intake_settings={"type": "localFile", "file": frame},
        output_settings={"type": "localFile"},
        timeseries_settings={"type": "forecast", "forecast_point": "2013-12-01"},
        include_prediction_status=True,
        column_names_remapping={"DEPLOYMENT_APPROVAL_STATUS": None, PRED: "yhat"},
    )
    buffer = io.BytesIO()
    job.download(buffer, timeout=60)
    result = pd.read_csv(io.BytesIO(buffer.getvalue()))
    assert "yhat" in result.columns
    assert "DEPLOYMENT_APPROVAL_STATUS" not in result.columns
    assert set(result["prediction_status"]) == {"OK"}
    assert (result["FORECAST_POINT"] == "2013-12-01T00:00:00Z").all()


def test_score_pandas_joins_back_on_the_index(client: Any) -> None:
    frame = flights().to_pandas()
    frame.index = frame.index + 1000
    _, joined = BatchPredictionJob.score_pandas(
        DEPLOYMENT_ID, frame, timeseries_settings={"type": "historical"}
    )
    assert len(joined) > 0
    assert set(joined.index) <= set(frame.index)
    assert joined[PRED].notna().all()
    # each forecast row joins the input row it forecasts
    assert (joined["date_x"].astype(str) == joined["date_y"].astype(str)).all()


def test_multipart_upload(client: Any, tmp_path: Path, small_flights: pl.DataFrame) -> None:
    source = tmp_path / "in.csv"
    history(small_flights).to_csv(source, index=False)
    out = tmp_path / "out.csv"
    BatchPredictionJob.score(
        LGBM,
        intake_settings={"type": "localFile", "file": str(source), "multipart": True},
        output_settings={"type": "localFile", "path": str(out)},
        timeseries_settings={"type": "forecast", "relax_known_in_advance_features_check": True},
    )
    assert len(pd.read_csv(out)) == 21


def test_status_listing_and_cancel(client: Any, small_flights: pl.DataFrame) -> None:
    job = BatchPredictionJob.score(
        DEPLOYMENT_ID,
        intake_settings={"type": "localFile", "file": history(small_flights)},
        output_settings={"type": "localFile"},
        timeseries_settings={"type": "forecast", "relax_known_in_advance_features_check": True},
    )
    job.wait_for_completion(max_wait=60)
    completed = BatchPredictionJob.list_by_status(["COMPLETED"])
    assert job.id in {item["id"] for item in completed}
    # a job that waits for an upload that never comes
    response = dr.client.get_client().post(
        "batchPredictions/", data={"deploymentId": DEPLOYMENT_ID, "intakeSettings": {"type": "localFile"}}
    )
    pending = BatchPredictionJob.get(response.headers["Location"].split("/")[-2])
    assert pending.get_status()["status"] == "INITIALIZING"
    pending.cancel()
    assert pending.get_status()["status"] == "ABORTED"


def test_malformed_specs_are_422_naming_the_field(client: Any) -> None:
    rest = dr.client.get_client()
    cases = {
        "intakeSettings.type": {"deploymentId": DEPLOYMENT_ID, "intakeSettings": {"type": "ftp"}},
        "outputSettings.table": {
            "deploymentId": DEPLOYMENT_ID,
            "outputSettings": {"type": "jdbc", "dataStoreId": "x", "statementType": "insert"},
        },
        "csvSettings.delimiter": {"deploymentId": DEPLOYMENT_ID, "csvSettings": {"delimiter": ";;"}},
        "timeseriesSettings.predictionsStartDate": {
            "deploymentId": DEPLOYMENT_ID,
            "timeseriesSettings": {
                "type": "historical",
                "predictionsStartDate": "2014-01-01",
                "predictionsEndDate": "2013-01-01",
            },
        },
    }
    for field, body in cases.items():
        with pytest.raises(ClientError) as info:
            rest.post("batchPredictions/", data=body)
        assert info.value.status_code == 422
        assert field in info.value.json["message"]
    with pytest.raises(ClientError) as missing:
        rest.post("batchPredictions/", data={"deploymentId": "nope"})
    assert missing.value.status_code == 404


def test_bad_series_fail_the_job_or_are_reported_per_row(client: Any, tmp_path: Path) -> None:
    frame = flights().with_columns(
        pl.when((pl.col("series") == "JFK-B6") & (pl.col("date") == "2013-03-01"))
        .then(pl.lit("not a date"))
        .otherwise(pl.col("date"))
        .alias("date")
    )
    source = tmp_path / "bad.csv"
    frame.write_csv(source)
    out = tmp_path / "out.csv"
    relax = {"type": "forecast", "relax_known_in_advance_features_check": True}
    with pytest.raises(RuntimeError, match=r"series 'JFK-B6' \(input rows .*not a date"):
        BatchPredictionJob.score(
            DEPLOYMENT_ID,
            intake_settings={"type": "localFile", "file": str(source)},
            output_settings={"type": "localFile", "path": str(out)},
            timeseries_settings=relax,
        )
    assert not out.exists() or out.stat().st_size == 0
    job = BatchPredictionJob.score(
        DEPLOYMENT_ID,
        intake_settings={"type": "localFile", "file": str(source)},
        output_settings={"type": "localFile", "path": str(out)},
        abort_on_error=False,
        include_prediction_status=True,
        timeseries_settings=relax,
        passthrough_columns=["scheduled"],
    )
    status = job.get_status()
    assert status["status"] == "COMPLETED"
    assert status["failed_rows"] == frame.filter(pl.col("series") == "JFK-B6").height
    result = pd.read_csv(out)
    failed = result[result["series"] == "JFK-B6"]
    assert failed["prediction_status"].str.contains("not a date").all()
    assert failed[PRED].isna().all()
    ok = result[result["series"] != "JFK-B6"]
    assert (ok["prediction_status"] == "OK").all()
    assert ok[PRED].notna().all()


def test_model_is_pinned_at_job_creation(client: Any, registry: Path, small_flights: pl.DataFrame) -> None:
    rest = dr.client.get_client()
    response = rest.post(
        "batchPredictions/",
        data={
            "deploymentId": DEPLOYMENT_ID,
            "intakeSettings": {"type": "localFile"},
            "outputSettings": {"type": "localFile"},
            "timeseriesSettings": {"type": "forecast", "relaxKnownInAdvanceFeaturesCheck": True},
        },
    )
    job_id = response.headers["Location"].split("/")[-2]
    before = train_flights()
    retrained = train_flights(horizon=3)
    tsengine.Registry(registry).save(retrained)  # a new live version, mid-job
    try:
        data = flights().write_csv().encode()
        upload = rest.put(
            response.json()["links"]["csvUpload"], data=data, headers={"Content-Type": "text/csv"}
        )
        assert upload.status_code == 202
        job = BatchPredictionJob.get(job_id)
        job.wait_for_completion(max_wait=60)
        result = pd.read_csv(io.BytesIO(job.get_result_when_complete()))
        assert result["FORECAST_DISTANCE"].max() == 7  # the pinned model's horizon, not 3
        expected = before.predict(flights(), relax_known_in_advance=True)
        np.testing.assert_allclose(
            np.sort(result[PRED].to_numpy()), np.sort(expected["prediction"].to_numpy())
        )
    finally:
        tsengine.Registry(registry).save(train_flights())


def test_job_definitions_create_run_update_delete(client: Any, tmp_path: Path) -> None:
    source = tmp_path / "history.csv"
    flights().write_csv(source)
    dataset = tsengine_datasets_add(client, source)
    definition = BatchPredictionJobDefinition.create(
        enabled=False,
        batch_prediction_job={
            "deployment_id": DEPLOYMENT_ID,
            "num_concurrent": 1,
            "intake_settings": {"type": "dataset", "dataset": dataset},
            "output_settings": {"type": "localFile"},
            "timeseries_settings": {"type": "forecast", "relax_known_in_advance_features_check": True},
        },
        name="nightly flights",
    )
    assert BatchPredictionJobDefinition.get(definition.id).name == "nightly flights"
    assert definition.id in {d.id for d in BatchPredictionJobDefinition.list()}
    job = definition.run_once()
    job.wait_for_completion(max_wait=60)
    assert len(pd.read_csv(io.BytesIO(job.get_result_when_complete()))) == 21
    schedule = {"minute": [0], "hour": [3], "day_of_month": ["*"], "month": ["*"], "day_of_week": ["*"]}
    definition.run_on_schedule(schedule)
    refreshed = BatchPredictionJobDefinition.get(definition.id)
    assert refreshed.enabled is True
    assert refreshed.schedule["hour"] == [3]
    definition.delete()
    with pytest.raises(ClientError):
        BatchPredictionJobDefinition.get(definition.id)


def tsengine_datasets_add(client: Any, path: Path) -> Any:
    """Register a catalog dataset over HTTP and wrap it as the client's ``dr.Dataset``."""
    with path.open("rb") as fh:
        response = dr.client.get_client().post(
            "datasets/fromFile/", files={"file": (path.name, fh, "text/csv")}
        )
    body = response.json()
    return dr.Dataset(
        dataset_id=body["datasetId"],
        version_id=body["versionId"],
        name=body["name"],
        categories=[],
        created_at=body["creationDate"],
        is_data_engine_eligible=False,
        is_latest_version=True,
        is_snapshot=True,
        processing_state="COMPLETED",
    )


def test_dataframe_upload_with_a_semicolon_dialect(
    client: Any, tmp_path: Path, small_flights: pl.DataFrame
) -> None:
    # the client writes a DataFrame with commas whatever csv_settings says; the output keeps ';'
    out = tmp_path / "out.csv"
    job = BatchPredictionJob.score(
        LGBM,
        intake_settings={"type": "localFile", "file": history(small_flights)},
        output_settings={"type": "localFile", "path": str(out)},
        timeseries_settings={"type": "forecast", "relax_known_in_advance_features_check": True},
        csv_settings={"delimiter": ";"},
        passthrough_columns_set="all",
    )
    assert job.get_status()["status"] == "COMPLETED"
    result = pd.read_csv(out, sep=";")
    assert len(result) == 21
    assert "scheduled" in result.columns


def test_score_from_existing_runs_the_same_spec_again(client: Any, tmp_path: Path) -> None:
    source = tmp_path / "history.csv"
    flights().write_csv(source)
    dataset = tsengine_datasets_add(client, source)
    first = BatchPredictionJob.score(
        DEPLOYMENT_ID,
        intake_settings={"type": "dataset", "dataset": dataset},
        output_settings={"type": "localFile"},
        timeseries_settings={"type": "forecast", "relax_known_in_advance_features_check": True},
        passthrough_columns=["holiday"],
    )
    first.wait_for_completion(max_wait=60)
    again = BatchPredictionJob.score_from_existing(first.id)
    assert again.id != first.id
    again.wait_for_completion(max_wait=60)
    status = again.get_status()
    assert status["status"] == "COMPLETED"
    assert status["job_spec"]["passthrough_columns"] == ["holiday"]
    assert first.get_result_when_complete() == again.get_result_when_complete()
