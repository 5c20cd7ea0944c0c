"""The batch engine in-process: chunking invariants, abort, restart recovery, schedules, snapshots."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tsengine
from tsengine.batch import BatchEngine, parse_job_spec
from tsengine.batch.adapters import Source
from tsengine.batch.catalog import add_dataset
from tsengine.batch.chunks import plan_chunks
from tsengine.errors import ConflictError, NotFoundError, ParameterError, TooManyRequestsError

from http_flights import DEPLOYMENT_ID, flights, train_flights

PRED = "delayed (actual)_PREDICTION"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def flights_deployment() -> tsengine.Deployment:
    return train_flights()


@pytest.fixture
def engine(tmp_path: Path, flights_deployment: tsengine.Deployment) -> BatchEngine:
    registry = tsengine.Registry(tmp_path / "registry")
    registry.save(flights_deployment)
    return BatchEngine(registry)


def file_spec(source: Path, out: Path, **extra: Any) -> Any:
    """A forecast job from one local file to another (the CLI's adapters)."""
    body = {
        "deploymentId": DEPLOYMENT_ID,
        "intakeSettings": {"type": "filesystem", "path": str(source)},
        "outputSettings": {"type": "filesystem", "path": str(out)},
        "timeseriesSettings": {"type": "forecast", "relaxKnownInAdvanceFeaturesCheck": True},
        **extra,
    }
    return parse_job_spec(body, allow_filesystem=True)


def file_job(engine: BatchEngine, source: Path, out: Path, **extra: Any) -> dict[str, Any]:
    job = engine.create_job(file_spec(source, out, **extra), source="test")
    return engine.run_now(job["id"])


def sorted_forecasts(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.col("series").cast(pl.String)).sort("series", "date", "FORECAST_DISTANCE")


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 10_000),
    chunk_size=st.sampled_from([1024, 3000, 8000, 5 * 1024 * 1024]),
    concurrent=st.integers(1, 3),
    historical=st.booleans(),
)
def test_output_equals_one_predict_whatever_the_order_and_chunking(
    tmp_path_factory: pytest.TempPathFactory,
    flights_deployment: tsengine.Deployment,
    seed: int,
    chunk_size: int,
    concurrent: int,
    historical: bool,
) -> None:
    folder = tmp_path_factory.mktemp("prop")
    registry = tsengine.Registry(folder / "registry")
    registry.save(flights_deployment)
    engine = BatchEngine(registry)
    frame = flights().sample(fraction=1.0, shuffle=True, seed=seed)
    source, out = folder / "in.csv", folder / "out.csv"
    frame.write_csv(source)
    ts = (
        {"type": "historical"}
        if historical
        else {"type": "forecast", "relaxKnownInAdvanceFeaturesCheck": True}
    )
    done = file_job(
        engine, source, out, chunkSize=chunk_size, numConcurrent=concurrent, timeseriesSettings=ts
    )
    assert done["status"] == "COMPLETED", done["statusDetails"]
    whole = pl.read_csv(source, schema_overrides=flights_deployment.input_schema_overrides())
    expected = (
        flights_deployment.predict(whole, start="1900-01-01", end="2262-01-01")
        if historical
        else flights_deployment.predict(whole, relax_known_in_advance=True)
    )
    got = pl.read_csv(out)
    assert got.height == expected.height == done["scoredRows"]
    # series in order of first appearance, as one request over the whole input
    assert (
        got["series"].unique(maintain_order=True).to_list()
        == expected["seriesId"].unique(maintain_order=True).to_list()
    )
    got, want = sorted_forecasts(got), expected.sort("seriesId", "timestamp", "forecastDistance")
    np.testing.assert_allclose(got[PRED].to_numpy(), want["prediction"].to_numpy(), rtol=0, atol=1e-12)


def test_plan_never_splits_a_series(tmp_path: Path) -> None:
    frame = flights().sample(fraction=1.0, shuffle=True, seed=3)
    path = tmp_path / "in.csv"
    frame.write_csv(path)
    plan = plan_chunks(
        Source(path),
        overrides={"date": pl.String()},
        chunk_bytes=1,
        series_column="series",
        folder=tmp_path / "b",
    )
    assert plan.chunk_of_key is not None
    assert plan.chunk_of_key.height == 3  # one chunk per series at the smallest size
    assert plan.chunk_of_key["__batch_chunk"].to_list() == [0, 1, 2]
    assert plan.rows == frame.height


def test_forecast_point_is_decided_once_for_the_whole_job(
    engine: BatchEngine, tmp_path: Path, flights_deployment: tsengine.Deployment
) -> None:
    # one series ends three days earlier: per chunk it would get its own forecast point
    frame = flights().filter(~((pl.col("series") == "LGA-DL") & (pl.col("date") > "2013-04-27")))
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    frame.write_csv(source)
    done = file_job(engine, source, out, chunkSize=16 * 1024)
    assert done["status"] == "COMPLETED"
    got = pl.read_csv(out)
    assert got["FORECAST_POINT"].unique().to_list() == ["2013-04-30T00:00:00Z"]
    # ... and the core's warnings reach the job's log: the series that stopped early, the imputed KIA values
    warned = [line.split(" WARNING: ", 1)[1] for line in done["logs"] if " WARNING: " in line]
    assert any("series 'LGA-DL' (last target 2013-04-27T00:00:00, 3 steps before)" in w for w in warned)
    assert any(w.startswith("imputed missing known-in-advance values") for w in warned)
    assert done["logs"][-1].endswith("COMPLETED: Job done")


def test_a_job_log_keeps_the_first_warnings_and_counts_the_rest() -> None:
    from tsengine.batch.runner import MAX_NOTES, _notes

    few = tuple(f"w{k}" for k in range(MAX_NOTES))
    assert _notes(few) == few
    many = _notes(tuple(f"w{k}" for k in range(MAX_NOTES + 3)))
    assert many[:MAX_NOTES] == few
    assert many[MAX_NOTES:] == ("and 3 more warnings from other chunks",)


def test_parquet_output_and_passthrough(engine: BatchEngine, tmp_path: Path) -> None:
    source, out = tmp_path / "in.csv", tmp_path / "out.parquet"
    flights().write_csv(source)
    done = file_job(engine, source, out, passthroughColumnsSet="all")
    assert done["status"] == "COMPLETED"
    got = pl.read_parquet(out)
    assert {"scheduled", "holiday", "delayed"} <= set(got.columns)
    assert got.height == 21


def test_non_utf8_tab_separated_input(engine: BatchEngine, tmp_path: Path) -> None:
    source, out = tmp_path / "in.tsv", tmp_path / "out.csv"
    text = flights().with_columns(pl.lit("Köln").alias("city")).write_csv(separator="\t")
    source.write_bytes(text.encode("latin-1"))
    done = file_job(
        engine,
        source,
        out,
        csvSettings={"delimiter": "tab", "encoding": "latin-1"},
        passthroughColumns=["city"],
        timeseriesSettings={"type": "historical"},  # rows that forecast posted rows carry their passthrough
    )
    assert done["status"] == "COMPLETED", done["statusDetails"]
    got = pl.read_csv(out, separator="\t", encoding="latin-1")
    assert set(got["city"]) == {"Köln"}


def test_bad_input_fails_the_job_and_leaves_no_output(engine: BatchEngine, tmp_path: Path) -> None:
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    flights().drop("scheduled").write_csv(source)
    done = file_job(engine, source, out)
    assert done["status"] == "FAILED"
    assert "scheduled" in done["statusDetails"]
    assert not out.exists()
    assert not Path(f"{out}.part").exists()


def test_unknown_passthrough_column_fails_before_scoring(engine: BatchEngine, tmp_path: Path) -> None:
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    flights().write_csv(source)
    done = file_job(engine, source, out, passthroughColumns=["nope"])
    assert done["status"] == "FAILED"
    assert "'nope'" in done["statusDetails"]


def test_unknown_deployment_and_references_are_refused_at_creation(engine: BatchEngine) -> None:
    with pytest.raises(NotFoundError, match="'ghost'"):
        engine.create_job(parse_job_spec({"deploymentId": "ghost"}))
    spec = parse_job_spec(
        {
            "deploymentId": DEPLOYMENT_ID,
            "intakeSettings": {"type": "s3", "url": "s3://b/k", "credentialId": "nope"},
        }
    )
    with pytest.raises(ParameterError, match="intakeSettings: credential 'nope' not found"):
        engine.create_job(spec)


def test_full_queue_is_429(engine: BatchEngine) -> None:
    engine.max_queued = 2
    spec = parse_job_spec({"deploymentId": DEPLOYMENT_ID})
    engine.create_job(spec)
    engine.create_job(spec)
    with pytest.raises(TooManyRequestsError, match="limit 2"):
        engine.create_job(spec)


def test_upload_states(engine: BatchEngine) -> None:
    job = engine.create_job(parse_job_spec({"deploymentId": DEPLOYMENT_ID}))
    engine.begin_upload(job["id"])
    with pytest.raises(ConflictError, match="already begun"):
        engine.begin_upload(job["id"])
    with pytest.raises(ConflictError, match="only multipart"):
        engine.finalize_multipart(job["id"])


def test_cancel_between_chunks(engine: BatchEngine, tmp_path: Path) -> None:
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    flights().write_csv(source)
    job = engine.create_job(file_spec(source, out, chunkSize=1024, numConcurrent=1))
    engine.listen(job["id"], lambda doc: engine.cancel(doc["id"]) if doc.get("scoredRows") else None)
    done = engine.run_now(job["id"])
    assert done["status"] == "ABORTED"
    assert done["statusDetails"] == "Job cancelled by user"
    assert 0 < done["scoredRows"] < 21
    assert not out.exists()
    assert not Path(f"{out}.part").exists()


def test_model_snapshot_survives_retraining(engine: BatchEngine, tmp_path: Path) -> None:
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    flights().write_csv(source)
    job = engine.create_job(file_spec(source, out))
    assert job["jobSpec"]["deploymentVersion"] == "v0001"
    shorter = train_flights(horizon=2)
    engine.registry.save(shorter)
    done = engine.run_now(job["id"])
    assert done["status"] == "COMPLETED"
    assert pl.read_csv(out)["FORECAST_DISTANCE"].max() == 7


def test_dataset_intake_is_pinned_to_its_version(engine: BatchEngine, tmp_path: Path) -> None:
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    flights().write_csv(source)
    dataset = add_dataset(engine.store, engine.folder / "datasets", source)
    body = {
        "deploymentId": DEPLOYMENT_ID,
        "intakeSettings": {"type": "dataset", "datasetId": dataset["datasetId"]},
        "outputSettings": {"type": "filesystem", "path": str(out)},
        "timeseriesSettings": {"type": "forecast", "relaxKnownInAdvanceFeaturesCheck": True},
    }
    job = engine.create_job(parse_job_spec(body, allow_filesystem=True))
    assert job["jobSpec"]["intakeSettings"]["datasetVersionId"] == dataset["versionId"]
    # a new version (one series only) does not change the queued job
    flights().filter(pl.col("series") == "EWR-UA").write_csv(source)
    newer = add_dataset(engine.store, engine.folder / "datasets", source, dataset_id=dataset["datasetId"])
    assert newer["versionId"] != dataset["versionId"]
    done = engine.run_now(job["id"])
    assert done["status"] == "COMPLETED"
    assert pl.read_csv(out)["series"].n_unique() == 3


def test_scheduled_definition_runs_when_due(engine: BatchEngine, tmp_path: Path) -> None:
    from tsengine.batch.definitions import build_definition

    source = tmp_path / "in.csv"
    flights().write_csv(source)
    dataset = add_dataset(engine.store, engine.folder / "datasets", source)
    doc = build_definition(
        {
            "name": "every minute",
            "enabled": True,
            "schedule": {
                "minute": ["*"],
                "hour": ["*"],
                "dayOfMonth": ["*"],
                "month": ["*"],
                "dayOfWeek": ["*"],
            },
            "deploymentId": DEPLOYMENT_ID,
            "intakeSettings": {"type": "dataset", "datasetId": dataset["datasetId"]},
            "timeseriesSettings": {"type": "forecast", "relaxKnownInAdvanceFeaturesCheck": True},
        }
    )
    engine.save_definition(doc)
    assert engine.run_due_definitions(now=time.time()) == []  # next run is in the future
    later = time.time() + 120
    started = engine.run_due_definitions(now=later)
    assert len(started) == 1
    assert engine.run_due_definitions(now=later) == []  # each due run starts once
    done = engine.run_now(started[0])
    assert done["status"] == "COMPLETED"
    stored = engine.store.definition(doc["id"])
    assert stored["lastScheduledRunTime"] is not None
    assert stored["lastSuccessfulRunTime"] is not None


def test_a_forecast_point_policy_counts_from_each_runs_start(
    engine: BatchEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``jobRunTimeBased``: the run's start plus the offset, floored to the daily grid."""
    from tsengine.batch import runner
    from tsengine.batch.definitions import build_definition

    source = tmp_path / "in.csv"
    flights().write_csv(source)
    dataset = add_dataset(engine.store, engine.folder / "datasets", source)
    policy = {"type": "jobRunTimeBased", "configuration": {"offset": "-P2DT5H"}}
    doc = build_definition(
        {
            "name": "two days back",
            "deploymentId": DEPLOYMENT_ID,
            "intakeSettings": {"type": "dataset", "datasetId": dataset["datasetId"]},
            "timeseriesSettings": {
                "type": "forecast",
                "forecastPointPolicy": policy,
                "relaxKnownInAdvanceFeaturesCheck": True,
            },
        }
    )
    assert doc["batchPredictionJob"]["timeseriesSettings"]["forecastPointPolicy"] == policy
    engine.save_definition(doc)
    for started, forecast_point in (
        (dt.datetime(2013, 4, 22, 3, 0), "2013-04-19T00:00:00Z"),  # 04-19 22:00, floored
        (dt.datetime(2013, 4, 23, 6, 10), "2013-04-21T00:00:00Z"),
    ):
        monkeypatch.setattr(runner, "run_start", lambda started=started: started)
        job = engine.run_definition(doc["id"])
        done = engine.run_now(job["id"])
        assert done["status"] == "COMPLETED", done["statusDetails"]
        out = pl.read_csv(engine.job_folder(job["id"]) / "result.csv")
        assert out["FORECAST_POINT"].unique().to_list() == [forecast_point]
        assert any(f"forecast point {forecast_point[:-1]}" in line for line in done["logs"]), done["logs"]


def test_schedule_semantics_follow_cron() -> None:
    from tsengine.batch.definitions import cron_expression, next_run

    schedule = {"minute": [0], "hour": [9], "dayOfMonth": [1], "month": ["*"], "dayOfWeek": ["sun"]}
    assert cron_expression(schedule) == "0 9 1 * sun"
    after = dt.datetime(2026, 12, 1, 10, tzinfo=dt.UTC)  # a Tuesday the 1st, after 09:00
    assert dt.datetime.fromtimestamp(next_run(schedule, after) or 0, dt.UTC) == dt.datetime(
        2026, 12, 6, 9, tzinfo=dt.UTC
    )
    with pytest.raises(ParameterError, match="schedule.dayOfWeek"):
        cron_expression({k: v for k, v in schedule.items() if k != "dayOfWeek"})
    with pytest.raises(ParameterError, match="not a valid schedule"):
        cron_expression({**schedule, "hour": [25]})


def test_a_killed_process_leaves_its_job_failed_and_no_output(
    tmp_path: Path, flights_deployment: tsengine.Deployment
) -> None:
    registry = tsengine.Registry(tmp_path / "registry")
    registry.save(flights_deployment)
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    flights().write_csv(source)
    script = textwrap.dedent(
        f"""
        import sys, time
        import tsengine
        from tsengine.batch import BatchEngine, parse_job_spec
        engine = BatchEngine(tsengine.Registry({str(registry.path)!r}))
        body = {{"deploymentId": "flights", "chunkSize": 1024, "numConcurrent": 1,
                 "intakeSettings": {{"type": "filesystem", "path": {str(source)!r}}},
                 "outputSettings": {{"type": "filesystem", "path": {str(out)!r}}},
                 "timeseriesSettings": {{"type": "forecast", "relaxKnownInAdvanceFeaturesCheck": True}}}}
        job = engine.create_job(parse_job_spec(body, allow_filesystem=True))
        def hang(doc):
            if doc.get("scoredRows"):
                print(doc["id"], flush=True)
                time.sleep(3600)
        engine.listen(job["id"], hang)
        engine.run_now(job["id"])
        """
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert process.stdout is not None
        job_id = process.stdout.readline().strip()
        assert job_id, "the job did not start scoring"
        assert Path(f"{out}.part").exists()
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    restarted = BatchEngine(registry)
    assert restarted.store.job(job_id)["status"] == "RUNNING"
    assert restarted.recover() == [job_id]
    job = restarted.store.job(job_id)
    assert job["status"] == "FAILED"
    assert "stopped while this job was running" in job["statusDetails"]
    assert not out.exists()
    assert not Path(f"{out}.part").exists()


def test_blocks_cut_at_records_and_merge_types(
    engine: BatchEngine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    flights_deployment: tsengine.Deployment,
) -> None:
    from tsengine.batch import chunks

    monkeypatch.setattr(chunks, "BLOCK_BYTES", 700)  # many blocks, cut inside quoted fields
    frame = flights().with_columns(
        pl.format('note "{}",\nline two', pl.col("series")).alias("note"),
        # integers in the first rows, decimals later: one Float64 column for the whole job
        pl.when(pl.int_range(pl.len()) < 200).then(pl.lit("1")).otherwise(pl.lit("1.5")).alias("weight"),
    )
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    frame.write_csv(source, quote_style="necessary")
    done = file_job(
        engine, source, out, passthroughColumns=["note", "weight"], timeseriesSettings={"type": "historical"}
    )
    assert done["status"] == "COMPLETED", done["statusDetails"]
    got = pl.read_csv(out)
    assert set(got["note"]) == {f'note "{s}",\nline two' for s in ("EWR-UA", "JFK-B6", "LGA-DL")}
    assert got["weight"].dtype == pl.Float64
    whole = pl.read_csv(
        source, schema_overrides=flights_deployment.input_schema_overrides(), infer_schema_length=None
    )
    expected = flights_deployment.predict(whole, start="1900-01-01", end="2262-01-01")
    assert got.height == expected.height


def test_progress_counts_rows_and_series(engine: BatchEngine, tmp_path: Path) -> None:
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    flights().write_csv(source)
    done = file_job(engine, source, out, chunkSize=1024)
    assert done["intakeRows"] == done["processedRows"] == flights().height
    assert done["intakeSeries"] == done["seriesScored"] == 3
    assert done["percentageCompleted"] == 100.0
    assert done["skippedRows"] == flights().height  # history rows only: the forecasts are generated rows


def test_a_server_shutdown_fails_the_running_job_with_that_reason(
    engine: BatchEngine, tmp_path: Path
) -> None:
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    flights().write_csv(source)
    job = engine.create_job(file_spec(source, out, chunkSize=1024, numConcurrent=1))
    engine.listen(job["id"], lambda doc: engine._stop.set() if doc.get("scoredRows") else None)
    done = engine.run_now(job["id"])
    assert done["status"] == "FAILED"
    assert "shut down" in done["statusDetails"]
    assert not out.exists()
