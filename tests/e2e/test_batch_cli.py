"""``tsengine batch`` and ``tsengine datasets`` on a real deployment.

Most cases run the typer app in-process (``CliRunner``, with the same argv
preprocessing as the console script); the exit-status cases and one full job
run the installed console script in a subprocess, as a user would.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

import tsengine
from tsengine.batch import BatchEngine, BatchStore, parse_job_spec
from tsengine.batch_cli import adapter_from_location, parse_bytes
from tsengine.cli import app, expand_multi_options
from tsengine.errors import ParameterError

DEPLOYMENT = "small-flights"
PRED = "delayed (actual)_PREDICTION"
COLUMNS = [
    "series",
    "FORECAST_POINT",
    "date",
    "FORECAST_DISTANCE",
    PRED,
    "PREDICTION_80_PERCENTILE_LOW",
    "PREDICTION_80_PERCENTILE_HIGH",
    "DEPLOYMENT_APPROVAL_STATUS",
]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, small_deployment: tsengine.Deployment) -> Path:
    path = tmp_path_factory.mktemp("batch-cli") / "registry"
    tsengine.Registry(path).save(small_deployment)
    return path


@pytest.fixture(scope="module")
def intake(registry: Path, small_flights: pl.DataFrame) -> Path:
    """The three series, rows shuffled (the engine must regroup them)."""
    path = registry.parent / "input.csv"
    small_flights.sample(fraction=1.0, shuffle=True, seed=7).write_csv(path)
    return path


def script() -> str:
    found = shutil.which("tsengine", path=os.path.dirname(sys.executable)) or shutil.which("tsengine")
    assert found is not None, "the tsengine console script is not installed"
    return found


def cli(registry: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, expand_multi_options([*args, "--registry", str(registry)]))
    return result.exit_code, result.stdout, result.stderr


def whole(deployment: tsengine.Deployment, path: Path) -> pl.DataFrame:
    return pl.read_csv(path, schema_overrides=deployment.input_schema_overrides())


def assert_same_predictions(got: pl.DataFrame, expected: pl.DataFrame) -> None:
    got = got.with_columns(pl.col("series").cast(pl.String), pl.col("date").cast(pl.String))
    got = got.sort("series", "date", "FORECAST_DISTANCE")
    want = expected.sort("seriesId", "timestamp", "forecastDistance")
    assert got.height == want.height > 0
    np.testing.assert_allclose(got[PRED].to_numpy(), want["prediction"].to_numpy(), rtol=0, atol=1e-12)


def forecast(deployment: tsengine.Deployment, path: Path) -> pl.DataFrame:
    return deployment.predict(whole(deployment, path), relax_known_in_advance=True)


def test_forecast_job_file_to_file_in_a_subprocess_equals_one_predict(
    registry: Path, intake: Path, small_deployment: tsengine.Deployment, tmp_path: Path
) -> None:
    out = tmp_path / "forecasts.csv"
    run = subprocess.run(
        [script(), "batch", DEPLOYMENT, "--intake", str(intake), "--output", str(out)]
        + ["--relax-known-in-advance", "--chunk-size", "16K", "--num-concurrent", "2"]
        + ["--registry", str(registry)],
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr.decode()
    assert b"COMPLETED" in run.stdout
    assert str(out).encode() in run.stdout
    assert b"\x1b[" not in run.stderr  # no terminal: the bar prints plain text
    assert b"warning: imputed missing known-in-advance values" in run.stderr  # as `tsengine predict` says
    got = pl.read_csv(out)
    assert got.columns == COLUMNS
    assert_same_predictions(got, forecast(small_deployment, intake))
    # the job fed the same prediction log as the server's jobs
    from tsengine.monitoring.store import MonitoringStore

    logged = MonitoringStore.in_folder(registry / ".monitoring").frame("mon_predictions", DEPLOYMENT)
    assert logged.filter(pl.col("source") == "batch").height >= got.height


def test_explicit_run_writes_parquet(
    registry: Path, intake: Path, small_deployment: tsengine.Deployment, tmp_path: Path
) -> None:
    out = tmp_path / "forecasts.parquet"
    code, stdout, err = cli(
        registry,
        "batch",
        "run",
        DEPLOYMENT,
        "--intake",
        str(intake),
        "--output",
        str(out),
        "--relax-known-in-advance",
    )
    assert code == 0, err
    assert "COMPLETED" in stdout
    got = pl.read_parquet(out)
    assert got.columns == COLUMNS
    assert_same_predictions(got, forecast(small_deployment, intake))


def test_historical_range_equals_one_predict(
    registry: Path, intake: Path, small_deployment: tsengine.Deployment, tmp_path: Path
) -> None:
    out = tmp_path / "history.csv"
    code, _, err = cli(
        registry,
        "batch",
        DEPLOYMENT,
        "--intake",
        str(intake),
        "--output",
        str(out),
        "--start",
        "2013-12-01",
        "--end",
        "2013-12-15",
        "--passthrough",
        "scheduled,holiday",
    )
    assert code == 0, err
    got = pl.read_csv(out)
    assert {"scheduled", "holiday"} <= set(got.columns)
    expected = small_deployment.predict(whole(small_deployment, intake), start="2013-12-01", end="2013-12-15")
    assert_same_predictions(got, expected)
    assert got["date"].min() >= "2013-12-01"
    assert got["date"].max() < "2013-12-15"


def test_list_and_status_show_the_completed_job(registry: Path, intake: Path, tmp_path: Path) -> None:
    out = tmp_path / "f.csv"
    code, _, err = cli(
        registry,
        "batch",
        DEPLOYMENT,
        "--intake",
        str(intake),
        "--output",
        str(out),
        "--relax-known-in-advance",
    )
    assert code == 0, err
    code, listed, _ = cli(registry, "batch", "list", "--json", "--limit", "1")
    assert code == 0
    job = json.loads(listed)[0]
    assert job["status"] == "COMPLETED"
    assert job["source"] == "cli"
    code, table, _ = cli(registry, "batch", "list", "--status", "completed")
    assert code == 0
    assert job["id"] in table
    assert "COMPLETED" in table
    code, status, _ = cli(registry, "batch", "status", job["id"], "--json")
    assert code == 0
    doc = json.loads(status)
    assert doc["id"] == job["id"]
    assert doc["status"] == "COMPLETED"
    assert doc["percentageCompleted"] == 100.0
    assert doc["scoredRows"] == pl.read_csv(out).height
    assert doc["jobSpec"]["outputSettings"] == {"type": "filesystem", "path": str(out), "format": "csv"}
    assert not [k for k in doc if k.startswith("_")]
    code, text, _ = cli(registry, "batch", "status", job["id"])
    assert code == 0
    assert "COMPLETED" in text


def test_cancel_of_a_waiting_job_aborts_it(registry: Path) -> None:
    engine = BatchEngine(tsengine.Registry(registry))
    spec = parse_job_spec(
        {
            "deploymentId": DEPLOYMENT,
            "intakeSettings": {"type": "localFile"},
            "outputSettings": {"type": "localFile"},
        }
    )
    job = engine.create_job(spec)
    code, out, err = cli(registry, "batch", "cancel", job["id"])
    assert code == 0, err
    assert "ABORTED" in out
    assert engine.store.job(job["id"])["status"] == "ABORTED"
    code, _, err = cli(registry, "batch", "cancel", "no-such-job")
    assert code == 2
    assert "no-such-job" in err


def test_sqlite_output_registers_the_data_store_once(
    registry: Path, intake: Path, small_deployment: tsengine.Deployment, tmp_path: Path
) -> None:
    db = tmp_path / "out.db"
    for _ in range(2):
        code, stdout, err = cli(
            registry,
            "batch",
            DEPLOYMENT,
            "--intake",
            str(intake),
            "--output",
            f"sqlite:///{db}#forecasts",
            "--relax-known-in-advance",
        )
        assert code == 0, err
        assert "#forecasts" in stdout
    with sqlite3.connect(db) as conn:
        rows = conn.execute(f'SELECT series, date, FORECAST_DISTANCE, "{PRED}" FROM forecasts').fetchall()
    got = pl.DataFrame(rows, schema=["series", "date", "FORECAST_DISTANCE", PRED], orient="row")
    expected = forecast(small_deployment, intake)
    assert got.height == 2 * expected.height  # insert appends
    assert_same_predictions(got.unique(), expected)
    stores = [
        d
        for d in BatchEngine(tsengine.Registry(registry)).store.data_stores()
        if str(db) in d["canonicalName"]
    ]
    assert len(stores) == 1


def test_dataset_intake(
    registry: Path, intake: Path, small_deployment: tsengine.Deployment, tmp_path: Path
) -> None:
    code, out, err = cli(registry, "datasets", "add", str(intake), "--name", "flights-input")
    assert code == 0, err
    dataset_id, version_id = out.split()
    code, listed, _ = cli(registry, "datasets", "list", "--json")
    assert code == 0
    assert any(d["datasetId"] == dataset_id and d["versionId"] == version_id for d in json.loads(listed))
    target = tmp_path / "from-dataset.csv"
    code, _, err = cli(
        registry,
        "batch",
        DEPLOYMENT,
        "--intake",
        f"dataset:{dataset_id}",
        "--output",
        str(target),
        "--relax-known-in-advance",
    )
    assert code == 0, err
    assert_same_predictions(pl.read_csv(target), forecast(small_deployment, intake))


def test_bad_input_exits_2_naming_it(registry: Path, intake: Path, tmp_path: Path) -> None:
    missing = tmp_path / "absent.csv"
    bad = subprocess.run(
        [script(), "batch", DEPLOYMENT, "--intake", str(missing), "--output", str(tmp_path / "o.csv")]
        + ["--registry", str(registry)],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert bad.returncode == 2
    assert str(missing) in bad.stderr.decode()
    code, _, err = cli(
        registry, "batch", "nope", "--intake", str(intake), "--output", str(tmp_path / "o.csv")
    )
    assert code == 2
    assert "deployment 'nope' not found" in err
    code, _, err = cli(
        registry, "batch", DEPLOYMENT, "--intake", str(intake), "--output", "x.csv", "--start", "2013-12-01"
    )
    assert code == 2
    assert "--start and --end go together" in err
    code, _, err = cli(registry, "batch", "status", "no-such-job")
    assert code == 2
    assert "no-such-job" in err


def test_failed_job_exits_1_with_the_reason(registry: Path, intake: Path, tmp_path: Path) -> None:
    # without --relax-known-in-advance the forecast rows lack scheduled/holiday
    code, out, err = cli(
        registry, "batch", DEPLOYMENT, "--intake", str(intake), "--output", str(tmp_path / "o.csv")
    )
    assert code == 1, err
    assert "FAILED" in out
    assert "known-in-advance" in err
    assert not (tmp_path / "o.csv").exists()


def test_ctrl_c_cancels_the_job_and_exits_130(
    tmp_path: Path, small_deployment: tsengine.Deployment, flights_csv: Path
) -> None:
    registry = tmp_path / "registry"
    tsengine.Registry(registry).save(small_deployment)
    big = tmp_path / "big.csv"
    frame = pl.read_csv(flights_csv, schema_overrides={"date": pl.String})
    pl.concat(
        [frame.with_columns(pl.col("series") + f"-{k}") for k in range(8)]  # 96 series, one chunk each
    ).write_csv(big)
    out = tmp_path / "o.csv"
    proc = subprocess.Popen(
        [script(), "batch", DEPLOYMENT, "--intake", str(big), "--output", str(out)]
        + [
            "--relax-known-in-advance",
            "--chunk-size",
            "16K",
            "--num-concurrent",
            "1",
            "--registry",
            str(registry),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    store = BatchStore.in_folder(registry / ".batch")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        jobs = store.jobs()[0]
        if jobs and jobs[0]["status"] == "RUNNING" and jobs[0]["scoredRows"]:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    job = store.jobs()[0][0]
    if job["status"] == "COMPLETED":
        pytest.skip("the job finished before the interrupt arrived")
    assert proc.returncode == 130, err.decode()
    assert job["status"] == "ABORTED", (job["statusDetails"], err.decode())
    assert not out.exists()
    assert not Path(f"{out}.part").exists()


# ------------------------------------------------------------------ locations


def test_local_paths_become_filesystem_adapters(tmp_path: Path) -> None:
    store = BatchStore.in_folder(tmp_path / "store")
    source = tmp_path / "in.csv"
    source.write_text("a\n1\n")
    assert adapter_from_location(str(source), output=False, store=store) == {
        "type": "filesystem",
        "path": str(source),
        "format": "csv",
    }
    assert adapter_from_location(str(tmp_path / "o.parquet"), output=True, store=store)["format"] == "parquet"
    with pytest.raises(ParameterError, match="absent.csv"):
        adapter_from_location(str(tmp_path / "absent.csv"), output=False, store=store)
    with pytest.raises(ParameterError, match="does not exist"):
        adapter_from_location(str(tmp_path / "no" / "o.csv"), output=True, store=store)


def test_s3_and_dataset_locations(tmp_path: Path) -> None:
    store = BatchStore.in_folder(tmp_path / "store")
    assert adapter_from_location(
        "s3://bucket/in.parquet",
        output=False,
        store=store,
        endpoint_url="http://minio:9000",
        credential_id="c1",
    ) == {
        "type": "s3",
        "url": "s3://bucket/in.parquet",
        "format": "parquet",
        "endpointUrl": "http://minio:9000",
        "credentialId": "c1",
    }
    assert adapter_from_location("dataset:abc", output=False, store=store) == {
        "type": "dataset",
        "datasetId": "abc",
    }
    with pytest.raises(ParameterError, match="intake only"):
        adapter_from_location("dataset:abc", output=True, store=store)


def test_database_urls_become_data_stores_without_passwords(tmp_path: Path) -> None:
    store = BatchStore.in_folder(tmp_path / "store")
    url = "postgresql://scott:tiger@db.example:5432/sales#analytics.forecasts"
    adapter = adapter_from_location(url, output=True, store=store)
    assert adapter["table"] == "forecasts"
    assert adapter["schema"] == "analytics"
    assert adapter["statementType"] == "insert"
    assert adapter["createTableIfNotExists"] is True
    (data_store,) = store.data_stores()
    assert data_store["id"] == adapter["dataStoreId"]
    assert data_store["params"]["url"] == "postgresql+psycopg://scott@db.example:5432/sales"
    assert "tiger" not in json.dumps(data_store) + json.dumps(adapter)
    assert store.secret(adapter["credentialId"]) == {"user": "scott", "password": "tiger"}
    again = adapter_from_location(
        url.replace("#analytics.forecasts", "#query:SELECT 1"), output=False, store=store
    )
    assert again == {
        "type": "jdbc",
        "dataStoreId": adapter["dataStoreId"],
        "credentialId": adapter["credentialId"],
        "query": "SELECT 1",
    }
    assert len(store.data_stores()) == 1
    assert len(store.credentials()) == 1
    upsert = adapter_from_location(
        "sqlite:///rel.db#t", output=True, store=store, statement_type="insert_update", where_columns=["k"]
    )
    assert upsert["whereColumns"] == ["k"]
    sqlite_store = store.data_store(upsert["dataStoreId"])
    assert sqlite_store["params"]["url"] == f"sqlite:///{Path('rel.db').resolve()}"
    assert "credentialId" not in upsert
    with pytest.raises(ParameterError, match="name the table"):
        adapter_from_location("sqlite:///x.db", output=True, store=store)
    with pytest.raises(ParameterError, match="statement-type"):
        adapter_from_location("sqlite:///x.db#t", output=True, store=store, statement_type="merge")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("16384", 16384), ("512K", 512 * 1024), ("5MB", 5 << 20), ("1g", 1 << 30), ("auto", "auto")],
)
def test_chunk_sizes(text: str, expected: Any) -> None:
    assert parse_bytes(text) == expected


def test_chunk_size_rejects_words() -> None:
    with pytest.raises(ParameterError, match="--chunk-size"):
        parse_bytes("big")


def test_serve_passes_batch_workers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import api.server

    seen: dict[str, Any] = {}
    monkeypatch.setattr(api.server, "serve", lambda **kwargs: seen.update(kwargs))
    result = CliRunner().invoke(app, ["serve", "--batch-workers", "3", "--registry", str(tmp_path)])
    assert result.exit_code == 0, result.stderr
    assert seen["batch_workers"] == 3
    assert seen["workers"] == 1
    result = CliRunner().invoke(app, ["serve", "--batch-workers", "0", "--registry", str(tmp_path)])
    assert result.exit_code == 2


def test_postgresql_table_in_and_out(
    registry: Path, intake: Path, small_deployment: tsengine.Deployment, fresh_postgres_url: str
) -> None:
    import sqlalchemy as sa

    url = fresh_postgres_url.replace("postgresql+psycopg://", "postgresql://")  # as a user would type it
    engine = sa.create_engine(fresh_postgres_url)
    pl.read_csv(intake).write_database("history", engine, if_table_exists="replace")
    code, stdout, err = cli(
        registry,
        "batch",
        DEPLOYMENT,
        "--intake",
        f"{url}#history",
        "--output",
        f"{url}#forecasts",
        "--statement-type",
        "create_table",
        "--relax-known-in-advance",
    )
    assert code == 0, err
    assert "COMPLETED" in stdout
    got = pl.read_database(f'SELECT series, date, "FORECAST_DISTANCE", "{PRED}" FROM forecasts', engine)
    engine.dispose()
    assert_same_predictions(got, forecast(small_deployment, intake))


def test_s3_in_and_out_with_the_aws_environment(
    registry: Path,
    intake: Path,
    small_deployment: tsengine.Deployment,
    s3_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from services import new_bucket, s3_client

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    bucket = new_bucket(s3_endpoint)
    s3 = s3_client(s3_endpoint)
    s3.upload_file(str(intake), bucket, "in/history.csv")
    code, stdout, err = cli(
        registry,
        "batch",
        DEPLOYMENT,
        "--intake",
        f"s3://{bucket}/in/history.csv",
        "--output",
        f"s3://{bucket}/out/forecasts.csv",
        "--s3-endpoint-url",
        s3_endpoint,
        "--relax-known-in-advance",
    )
    assert code == 0, err
    body = s3.get_object(Bucket=bucket, Key="out/forecasts.csv")["Body"].read()
    assert_same_predictions(pl.read_csv(body), forecast(small_deployment, intake))
