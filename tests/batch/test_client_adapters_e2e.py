"""End to end: the unmodified ``datarobot`` client's S3 and JDBC adapters against the real server.

The server runs on loopback (uvicorn, as ``tsengine serve``) with its batch
engine; the stores are real too: moto's standalone S3 server and a PostgreSQL
cluster started for the session (``conftest.py``).  Secrets and data stores are
registered over REST as a user would (``credentials/``, ``externalDataStores/``),
jobs are created with ``BatchPredictionJob.score``/``score_s3``, and forecasts
are compared with one in-process ``Deployment.predict`` over the same history.
"""

from __future__ import annotations

import io
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datarobot as dr
import numpy as np
import orjson
import pandas as pd
import polars as pl
import pytest
import sqlalchemy as sa
from datarobot.errors import ClientError
from datarobot.models import BatchPredictionJob
from services import free_port, new_bucket, s3_client, unique_name

import tsengine
from api import Settings
from api.testing import running

from http_flights import DEPLOYMENT_ID, HORIZON, SERIES, flights, train_flights

pytestmark = [
    pytest.mark.filterwarnings(
        "ignore:Using an empty collection for 'allowed_methods':FutureWarning",
        "ignore::DeprecationWarning",
    ),
    pytest.mark.usefixtures("quick_client_polls"),
]
PRED = "delayed (actual)_PREDICTION"
LOW = "PREDICTION_80_PERCENTILE_LOW"
HIGH = "PREDICTION_80_PERCENTILE_HIGH"
TS = {"type": "forecast", "relax_known_in_advance_features_check": True}
TERMINAL = {"COMPLETED", "ABORTED", "FAILED"}
ACCESS_KEY = "AKIAE2EADAPTERKEY"
SECRET_KEY = "e2e/S3cr3t+key-never-shown"
DB_PASSWORD = "pg-pa55-never-shown"
# The minimum chunk size: the padded history (about 80 kB) makes one chunk per series.
SMALL_CHUNK = 16 * 1024


# -------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def deployment() -> tsengine.Deployment:
    return train_flights()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, deployment: tsengine.Deployment) -> Path:
    path = tmp_path_factory.mktemp("registry")
    tsengine.Registry(path).save(deployment)
    return path


@pytest.fixture(scope="module")
def base_url(registry: Path) -> Iterator[str]:
    with running(Settings(registry=registry, batch_workers=2)) as url:
        yield url


def connect(base_url: str) -> Any:
    dr.Client(endpoint=f"{base_url}/api/v2", token="t")
    return dr.client.get_client()


@pytest.fixture(autouse=True)
def client(base_url: str) -> Any:
    """The global ``datarobot`` client, set for every test as users do."""
    return connect(base_url)


@pytest.fixture(scope="module")
def s3_credential(base_url: str) -> str:
    body = {
        "name": "e2e s3",
        "credentialType": "s3",
        "awsAccessKeyId": ACCESS_KEY,
        "awsSecretAccessKey": SECRET_KEY,
    }
    response = connect(base_url).post("credentials/", data=body)
    assert response.status_code == 201
    return str(response.json()["credentialId"])


@pytest.fixture
def bucket(s3_endpoint: str) -> str:
    return new_bucket(s3_endpoint)


@pytest.fixture(scope="module")
def pg_engine(postgres_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(postgres_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def data_store(base_url: str, postgres_url: str) -> str:
    body = {"canonicalName": "pg", "type": "jdbc", "params": {"url": postgres_url}}
    response = connect(base_url).post("externalDataStores/", data=body)
    assert response.status_code == 201
    return str(response.json()["id"])


@pytest.fixture(scope="module")
def pg_history(pg_engine: sa.Engine) -> str:
    """The flights history as a PostgreSQL table (``date`` a DATE column)."""
    table = unique_name("history")
    frame = flights().with_columns(pl.col("date").str.to_date())
    frame.to_pandas().to_sql(table, pg_engine, index=False)
    return table


# --------------------------------------------------------------------- helpers


def padded_history(*, seed: int = 7) -> pl.DataFrame:
    """The history with a 200-character ``note`` per row, so 16 kB chunks hold one series each."""
    rnd = random.Random(seed)
    notes = ["".join(rnd.choices("0123456789abcdef", k=200)) for _ in range(flights().height)]
    return flights().with_columns(pl.Series("note", notes))


def final_status(job: BatchPredictionJob, timeout: float = 90) -> dict[str, Any]:
    """Poll ``get_status()`` until a final status (``wait_for_completion`` ignores FAILED)."""
    deadline = time.monotonic() + timeout
    while True:
        status = job.get_status()
        if status["status"] in TERMINAL:
            return status
        assert time.monotonic() < deadline, f"job still {status['status']}: {status.get('status_details')}"
        time.sleep(0.2)


def wait_completed(job: BatchPredictionJob) -> dict[str, Any]:
    job.wait_for_completion(max_wait=60)
    status = job.get_status()
    assert status["status"] == "COMPLETED", status.get("status_details")
    return status


def expected_forecasts(deployment: tsengine.Deployment, frame: pl.DataFrame | None = None) -> pl.DataFrame:
    return deployment.predict(flights() if frame is None else frame, relax_known_in_advance=True)


def assert_same_forecasts(out: pd.DataFrame | pl.DataFrame, expected: pl.DataFrame) -> None:
    got = pl.from_pandas(out) if isinstance(out, pd.DataFrame) else out
    got = got.with_columns(
        pl.col("series").cast(pl.String), pl.col("date").cast(pl.String).str.slice(0, 10)
    ).sort("series", "date", "FORECAST_DISTANCE")
    want = expected.sort("seriesId", "timestamp", "forecastDistance")
    assert got.height == want.height
    assert got["series"].to_list() == want["seriesId"].to_list()
    assert got["date"].to_list() == want["timestamp"].dt.strftime("%Y-%m-%d").to_list()
    assert got["FORECAST_DISTANCE"].to_list() == want["forecastDistance"].to_list()
    for column, reference in (
        (PRED, "prediction"),
        (LOW, "predictionIntervalLow"),
        (HIGH, "predictionIntervalHigh"),
    ):
        np.testing.assert_allclose(
            got[column].to_numpy(), want[reference].to_numpy(), rtol=0, atol=1e-12, err_msg=column
        )


def s3_body(endpoint: str, bucket: str, key: str) -> bytes:
    return bytes(s3_client(endpoint).get_object(Bucket=bucket, Key=key)["Body"].read())


def s3_keys(endpoint: str, bucket: str) -> list[str]:
    listing = s3_client(endpoint).list_objects_v2(Bucket=bucket)
    return [o["Key"] for o in listing.get("Contents", [])]


def put_history(endpoint: str, bucket: str, key: str = "in.csv") -> str:
    s3_client(endpoint).put_object(Bucket=bucket, Key=key, Body=flights().write_csv().encode())
    return f"s3://{bucket}/{key}"


def read_table(engine: sa.Engine, table: str) -> pl.DataFrame:
    with engine.connect() as conn:
        return pl.from_pandas(pd.read_sql_table(table, conn))


def forecast_table(engine: sa.Engine, name: str, *, unique: bool = False, check: str | None = None) -> str:
    """An empty table with the job's output columns (and the types ``create_table`` would pick)."""
    columns = [
        sa.Column("series", sa.Text(), *([sa.CheckConstraint(check)] if check else [])),
        sa.Column("FORECAST_POINT", sa.Text()),
        sa.Column("date", sa.Text()),
        sa.Column("FORECAST_DISTANCE", sa.BigInteger()),
        sa.Column(PRED, sa.Double()),
        sa.Column(LOW, sa.Double()),
        sa.Column(HIGH, sa.Double()),
        sa.Column("DEPLOYMENT_APPROVAL_STATUS", sa.Text()),
    ]
    constraints = [sa.UniqueConstraint("series", "date")] if unique else []
    table = sa.Table(name, sa.MetaData(), *columns, *constraints)
    with engine.begin() as conn:
        table.create(conn)
    return name


# ----------------------------------------------------------------------- S3


def test_score_s3_csv_to_csv(
    s3_endpoint: str, bucket: str, s3_credential: str, deployment: tsengine.Deployment
) -> None:
    job = BatchPredictionJob.score_s3(
        DEPLOYMENT_ID,
        source_url=put_history(s3_endpoint, bucket),
        destination_url=f"s3://{bucket}/out.csv",
        credential=s3_credential,
        endpoint_url=s3_endpoint,
        timeseries_settings=TS,
    )
    status = wait_completed(job)
    assert status["scored_rows"] == len(SERIES) * HORIZON
    assert status["job_spec"]["output_settings"]["type"] == "s3"
    result = pd.read_csv(io.BytesIO(s3_body(s3_endpoint, bucket, "out.csv")))
    assert_same_forecasts(result, expected_forecasts(deployment))


def test_score_s3_to_parquet(
    s3_endpoint: str, bucket: str, s3_credential: str, deployment: tsengine.Deployment
) -> None:
    s3 = {"type": "s3", "credential_id": s3_credential, "endpoint_url": s3_endpoint}
    job = BatchPredictionJob.score(
        DEPLOYMENT_ID,
        intake_settings={**s3, "url": put_history(s3_endpoint, bucket)},
        output_settings={**s3, "url": f"s3://{bucket}/out.parquet", "format": "parquet"},
        timeseries_settings=TS,
    )
    wait_completed(job)
    body = s3_body(s3_endpoint, bucket, "out.parquet")
    assert body[:4] == b"PAR1"
    assert_same_forecasts(pl.read_parquet(io.BytesIO(body)), expected_forecasts(deployment))


def test_dataframe_upload_to_s3_output(
    s3_endpoint: str, bucket: str, s3_credential: str, deployment: tsengine.Deployment
) -> None:
    frame = flights().sample(fraction=1.0, shuffle=True, seed=3).to_pandas()
    job = BatchPredictionJob.score(
        DEPLOYMENT_ID,
        intake_settings={"type": "localFile", "file": frame},
        output_settings={
            "type": "s3",
            "url": f"s3://{bucket}/from-upload.csv",
            "credential_id": s3_credential,
            "endpoint_url": s3_endpoint,
        },
        timeseries_settings=TS,
    )
    wait_completed(job)
    assert "download" not in job.get_status()["links"]
    result = pd.read_csv(io.BytesIO(s3_body(s3_endpoint, bucket, "from-upload.csv")))
    assert_same_forecasts(result, expected_forecasts(deployment))


def test_s3_intake_to_local_file_download(
    s3_endpoint: str, bucket: str, s3_credential: str, deployment: tsengine.Deployment
) -> None:
    job = BatchPredictionJob.score(
        DEPLOYMENT_ID,
        intake_settings={
            "type": "s3",
            "url": put_history(s3_endpoint, bucket),
            "credential_id": s3_credential,
            "endpoint_url": s3_endpoint,
        },
        output_settings={"type": "localFile"},
        timeseries_settings=TS,
    )
    buffer = io.BytesIO()
    job.download(buffer, timeout=60)
    assert job.get_status()["status"] == "COMPLETED"
    assert_same_forecasts(pd.read_csv(io.BytesIO(buffer.getvalue())), expected_forecasts(deployment))


# --------------------------------------------------------------------- JDBC


def test_jdbc_table_to_new_table(
    pg_engine: sa.Engine, data_store: str, pg_history: str, deployment: tsengine.Deployment
) -> None:
    target = unique_name("forecasts")
    job = BatchPredictionJob.score(
        DEPLOYMENT_ID,
        intake_settings={"type": "jdbc", "data_store_id": data_store, "table": pg_history},
        output_settings={
            "type": "jdbc",
            "data_store_id": data_store,
            "table": target,
            "statement_type": "create_table",
        },
        timeseries_settings=TS,
    )
    wait_completed(job)
    assert_same_forecasts(read_table(pg_engine, target), expected_forecasts(deployment))


def test_jdbc_query_intake_to_local_file(
    tmp_path: Path, data_store: str, pg_history: str, deployment: tsengine.Deployment
) -> None:
    out = tmp_path / "out.csv"
    job = BatchPredictionJob.score(
        DEPLOYMENT_ID,
        intake_settings={
            "type": "jdbc",
            "data_store_id": data_store,
            "query": f"SELECT * FROM \"{pg_history}\" WHERE series <> 'JFK-B6'",
            "fetch_size": 50,
        },
        output_settings={"type": "localFile", "path": str(out)},
        timeseries_settings=TS,
    )
    assert job.get_status()["status"] == "COMPLETED"
    expected = expected_forecasts(deployment, flights().filter(pl.col("series") != "JFK-B6"))
    assert_same_forecasts(pd.read_csv(out), expected)


def test_jdbc_insert_update_twice_leaves_one_row_per_key(
    pg_engine: sa.Engine, data_store: str, pg_history: str, deployment: tsengine.Deployment
) -> None:
    target = forecast_table(pg_engine, unique_name("upsert"), unique=True)
    output = {
        "type": "jdbc",
        "data_store_id": data_store,
        "table": target,
        "statement_type": "insert_update",
        "where_columns": ["series", "date"],
    }
    # first run: two series from a query, with the target shifted (other forecasts)
    shifted = (
        f"SELECT series, date, delayed + 1000 AS delayed, scheduled, holiday "
        f"FROM \"{pg_history}\" WHERE series <> 'LGA-DL'"
    )
    first = BatchPredictionJob.score(
        DEPLOYMENT_ID,
        intake_settings={"type": "jdbc", "data_store_id": data_store, "query": shifted},
        output_settings=output,
        timeseries_settings=TS,
    )
    wait_completed(first)
    partial = read_table(pg_engine, target)
    assert partial.height == 2 * HORIZON
    assert (partial[PRED] >= 900).all()
    # second run: every series from the table; updates the 14 rows, inserts 7
    second = BatchPredictionJob.score(
        DEPLOYMENT_ID,
        intake_settings={"type": "jdbc", "data_store_id": data_store, "table": pg_history},
        output_settings=output,
        timeseries_settings=TS,
    )
    wait_completed(second)
    result = read_table(pg_engine, target)
    assert result.height == len(SERIES) * HORIZON
    assert result.select("series", "date").is_duplicated().sum() == 0
    assert_same_forecasts(result, expected_forecasts(deployment))


# ------------------------------------------------------------------- faults


def test_unreachable_s3_endpoint_fails_without_the_secret(bucket: str, s3_credential: str) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    job = BatchPredictionJob.score_s3(
        DEPLOYMENT_ID,
        source_url=f"s3://{bucket}/in.csv",
        destination_url=f"s3://{bucket}/out.csv",
        credential=s3_credential,
        endpoint_url=endpoint,
        timeseries_settings=TS,
    )
    status = final_status(job)
    assert status["status"] == "FAILED"
    assert endpoint in status["status_details"]
    assert f"s3://{bucket}/in.csv" in status["status_details"]
    text = orjson.dumps(status).decode()
    assert SECRET_KEY not in text
    assert ACCESS_KEY not in text


def test_unreachable_database_fails_naming_the_store_without_password(client: Any) -> None:
    port = free_port()
    url = f"postgresql+psycopg://scorer@127.0.0.1:{port}/nowhere"
    store = client.post(
        "externalDataStores/", data={"canonicalName": "down", "type": "jdbc", "params": {"url": url}}
    ).json()["id"]
    credential = client.post(
        "credentials/",
        data={"name": "db", "credentialType": "basic", "user": "scorer", "password": DB_PASSWORD},
    ).json()["credentialId"]
    job = BatchPredictionJob.score(
        DEPLOYMENT_ID,
        intake_settings={
            "type": "jdbc",
            "data_store_id": store,
            "table": "history",
            "credential_id": credential,
        },
        output_settings={"type": "localFile"},
        timeseries_settings=TS,
    )
    status = final_status(job)
    assert status["status"] == "FAILED"
    details = status["status_details"]
    assert f"127.0.0.1:{port}/nowhere" in details
    assert "down" in details
    assert DB_PASSWORD not in orjson.dumps(status).decode()


def test_data_store_url_with_password_is_refused(client: Any) -> None:
    body = {
        "canonicalName": "leaky",
        "type": "jdbc",
        "params": {"url": f"postgresql+psycopg://scorer:{DB_PASSWORD}@127.0.0.1:5432/db"},
    }
    with pytest.raises(ClientError) as info:
        client.post("externalDataStores/", data=body)
    assert info.value.status_code == 422
    assert "params.url" in info.value.json["message"]
    assert DB_PASSWORD not in orjson.dumps(info.value.json).decode()


def test_credentials_never_return_their_secret(client: Any, s3_credential: str) -> None:
    basic = client.post(
        "credentials/",
        data={"name": "basic", "credentialType": "basic", "user": "scorer", "password": DB_PASSWORD},
    )
    assert basic.status_code == 201
    responses = [
        basic,
        client.get(f"credentials/{s3_credential}/"),
        client.get(f"credentials/{basic.json()['credentialId']}/"),
        client.get("credentials/"),
    ]
    for response in responses:
        assert response.status_code in (200, 201)
        for secret in (SECRET_KEY, ACCESS_KEY, DB_PASSWORD):
            assert secret not in response.text
    one = responses[1].json()
    assert one["credentialId"] == s3_credential
    assert one["credentialType"] == "s3"
    assert not {"awsSecretAccessKey", "awsAccessKeyId", "password"} & set(one)


def test_s3_output_to_a_missing_bucket_fails_and_writes_nothing(s3_endpoint: str, s3_credential: str) -> None:
    missing = unique_name("missing-bucket")
    job = BatchPredictionJob.score(
        DEPLOYMENT_ID,
        intake_settings={"type": "localFile", "file": flights().to_pandas()},
        output_settings={
            "type": "s3",
            "url": f"s3://{missing}/out.csv",
            "credential_id": s3_credential,
            "endpoint_url": s3_endpoint,
        },
        timeseries_settings=TS,
    )
    status = final_status(job)
    assert status["status"] == "FAILED"
    assert f"s3://{missing}/out.csv" in status["status_details"]
    assert SECRET_KEY not in status["status_details"]
    buckets = {b["Name"] for b in s3_client(s3_endpoint).list_buckets()["Buckets"]}
    assert missing not in buckets


def test_s3_output_failing_mid_way_leaves_no_object(
    s3_endpoint: str, bucket: str, s3_credential: str
) -> None:
    """The second of three chunks fails to score: the multipart upload is aborted, no object."""
    frame = padded_history().with_columns(
        pl.when((pl.col("series") == "JFK-B6") & (pl.col("date") == "2013-03-01"))
        .then(pl.lit("not a date"))
        .otherwise(pl.col("date"))
        .alias("date")
    )
    job = BatchPredictionJob.score(
        DEPLOYMENT_ID,
        intake_settings={"type": "localFile", "file": frame.to_pandas()},
        output_settings={
            "type": "s3",
            "url": f"s3://{bucket}/out.csv",
            "credential_id": s3_credential,
            "endpoint_url": s3_endpoint,
        },
        timeseries_settings=TS,
        chunk_size=SMALL_CHUNK,
        num_concurrent=1,
    )
    status = final_status(job)
    assert status["status"] == "FAILED"
    assert "JFK-B6" in status["status_details"]
    assert s3_keys(s3_endpoint, bucket) == []
    uploads = s3_client(s3_endpoint).list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert uploads == []


def test_jdbc_insert_failing_mid_way_keeps_whole_chunks_only(pg_engine: sa.Engine, data_store: str) -> None:
    """The table refuses the second chunk (series JFK-B6): the first chunk stays whole, nothing after it."""
    target = forecast_table(pg_engine, unique_name("refuse"), check="series <> 'JFK-B6'")
    job = BatchPredictionJob.score(
        DEPLOYMENT_ID,
        intake_settings={"type": "localFile", "file": padded_history().to_pandas()},
        output_settings={
            "type": "jdbc",
            "data_store_id": data_store,
            "table": target,
            "statement_type": "insert",
        },
        timeseries_settings=TS,
        chunk_size=SMALL_CHUNK,
        num_concurrent=1,
    )
    status = final_status(job)
    assert status["status"] == "FAILED"
    assert target in status["status_details"]
    result = read_table(pg_engine, target)
    # chunk 1 (EWR-UA) was committed whole; chunk 2 left nothing; chunk 3 never ran
    assert result["series"].to_list() == ["EWR-UA"] * HORIZON
    assert sorted(result["FORECAST_DISTANCE"].to_list()) == list(range(1, HORIZON + 1))


def test_camel_case_statement_type_is_422_naming_the_field(client: Any, data_store: str) -> None:
    body = {
        "deploymentId": DEPLOYMENT_ID,
        "intakeSettings": {"type": "localFile"},
        "outputSettings": {
            "type": "jdbc",
            "dataStoreId": data_store,
            "table": "forecasts",
            "statementType": "insertUpdate",
            "whereColumns": ["series", "date"],
        },
    }
    with pytest.raises(ClientError) as info:
        client.post("batchPredictions/", data=body)
    assert info.value.status_code == 422
    message = info.value.json["message"]
    assert "outputSettings.statementType" in message
    assert "insert_update" in message
