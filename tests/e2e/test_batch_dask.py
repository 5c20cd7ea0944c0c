"""Batch scoring on a Dask cluster (a 2-worker LocalCluster): the same output as in-process.

``tsengine batch … --dask local:2`` starts two worker processes, sends them the
job's scorer once and its chunks one by one; the output file must equal, byte
for byte, the same job scored in threads, and the prediction log must get the
same forecasts.  An unreachable scheduler is a clear error, not a hang.
"""

from __future__ import annotations

import time
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

import tsengine
from tsengine.cli import app, expand_multi_options
from tsengine.distributed import parse_address
from tsengine.errors import ParameterError
from tsengine.monitoring.store import MonitoringStore

DEPLOYMENT = "small-flights"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, small_deployment: tsengine.Deployment) -> Path:
    path = tmp_path_factory.mktemp("batch-dask") / "registry"
    tsengine.Registry(path).save(small_deployment)
    return path


@pytest.fixture(scope="module")
def intake(registry: Path, small_flights: pl.DataFrame) -> Path:
    path = registry.parent / "input.csv"
    small_flights.sample(fraction=1.0, shuffle=True, seed=11).write_csv(path)
    return path


def _batch(registry: Path, intake: Path, output: Path, *extra: str) -> tuple[int, str, str]:
    args = [
        "batch",
        DEPLOYMENT,
        "--intake",
        str(intake),
        "--output",
        str(output),
        "--relax-known-in-advance",
        "--chunk-size",
        "8K",
        *extra,
        "--registry",
        str(registry),
    ]
    result = CliRunner().invoke(app, expand_multi_options(args))
    return result.exit_code, result.stdout, result.stderr


def test_dask_output_equals_in_process_output(registry: Path, intake: Path, tmp_path: Path) -> None:
    here, there = tmp_path / "threads.csv", tmp_path / "dask.csv"
    code, stdout, stderr = _batch(registry, intake, here)
    assert code == 0, stderr
    code, stdout, stderr = _batch(registry, intake, there, "--dask", "local:2")
    assert code == 0, stderr
    assert "COMPLETED" in stdout
    assert there.read_bytes() == here.read_bytes()
    assert pl.read_csv(there).height == 3 * 7  # three series, seven distances
    # the driver fed the prediction log with what the workers scored: once per job
    store = MonitoringStore.in_folder(registry / ".monitoring")
    deadline = time.monotonic() + 10
    while store.frame("mon_predictions", DEPLOYMENT).height < 2 * 21 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert store.frame("mon_predictions", DEPLOYMENT).height == 2 * 21


def test_unreachable_scheduler_is_a_clear_error(
    registry: Path, intake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TSENGINE_DASK_CONNECT_TIMEOUT", "1.5")  # a refused address is retried until then
    started = time.monotonic()
    code, _stdout, stderr = _batch(registry, intake, tmp_path / "x.csv", "--dask", "tcp://127.0.0.1:9")
    assert code == 2
    assert "the Dask scheduler at 'tcp://127.0.0.1:9' cannot be reached" in " ".join(stderr.split())
    assert time.monotonic() - started < 60
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.parametrize("value", ["0", "-3", "soon", "nan"])
def test_a_bad_connect_timeout_is_named(
    registry: Path, intake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("TSENGINE_DASK_CONNECT_TIMEOUT", value)
    code, _stdout, stderr = _batch(registry, intake, tmp_path / "x.csv", "--dask", "tcp://127.0.0.1:9")
    assert code == 2
    assert f"TSENGINE_DASK_CONNECT_TIMEOUT must be a positive number of seconds, got {value!r}" in " ".join(
        stderr.split()
    )
    assert not (tmp_path / "x.csv").exists()


def test_local_addresses() -> None:
    assert parse_address("local") == ("local", None)
    assert parse_address("local:3") == ("local", 3)
    assert parse_address("tcp://10.0.0.1:8786") == ("tcp://10.0.0.1:8786", None)
    for bad in ("local:0", "local:x"):
        with pytest.raises(ParameterError, match="positive number of workers"):
            parse_address(bad)


def test_a_worker_killed_mid_job_is_replaced_and_the_output_is_identical(
    registry: Path, small_flights: pl.DataFrame, tmp_path: Path
) -> None:
    import os
    import signal

    from distributed import Client, LocalCluster

    from tsengine.batch import BatchEngine, parse_job_spec
    from tsengine.distributed import DaskScoring

    # 60 series (the three, tiled), one chunk each: plenty in flight when a worker dies
    panel = pl.concat(small_flights.with_columns(pl.col("series") + f"-{k:02d}") for k in range(20)).sample(
        fraction=1.0, shuffle=True, seed=3
    )
    source = tmp_path / "panel.csv"
    panel.write_csv(source)

    def spec(out: Path) -> object:
        return parse_job_spec(
            {
                "deploymentId": DEPLOYMENT,
                "intakeSettings": {"type": "filesystem", "path": str(source)},
                "outputSettings": {"type": "filesystem", "path": str(out)},
                "chunkSize": 2000,
                "timeseriesSettings": {"type": "forecast", "relaxKnownInAdvanceFeaturesCheck": True},
            },
            allow_filesystem=True,
        )

    reg = tsengine.Registry(registry)
    local = BatchEngine(reg, folder=tmp_path / "local-jobs")
    job = local.create_job(spec(tmp_path / "local.csv"), source="test")  # type: ignore[arg-type]
    assert local.run_now(job["id"])["status"] == "COMPLETED"

    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        engine = BatchEngine(reg, folder=tmp_path / "dask-jobs", dask=DaskScoring(client))
        job = engine.create_job(spec(tmp_path / "dask.csv"), source="test")  # type: ignore[arg-type]
        victims = list(client.run(os.getpid).values())
        killed: list[int] = []

        def kill_once(doc: dict[str, object]) -> None:
            if not killed:
                killed.append(victims[0])
                os.kill(victims[0], signal.SIGKILL)

        engine.listen(job["id"], kill_once)
        done = engine.run_now(job["id"])
    assert killed
    assert done["status"] == "COMPLETED", done["statusDetails"]
    assert (tmp_path / "dask.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()
