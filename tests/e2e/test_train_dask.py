"""Training on a Dask cluster (a 2-worker LocalCluster) equals training in one process.

The per-series candidates run per partition of series and are merged; the
global ones run on one worker.  The stored models, leaderboard, backtest trace
and the forecasts they make must equal a single-process training's; a worker
killed mid-training is replaced and the result is still the same; a scheduler
that cannot be reached is a clear error.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

import tsengine
from tsengine.cli import app, expand_multi_options
from tsengine.cluster_train import series_partition

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "flights_daily.csv"
# Every per-series kind, the global ones (LightGBM equal too: it trains on one worker), and what
# the driver builds from them.
MODELS = ["lightgbm", "ets", "theta", "arima", "seasonal_naive", "linear", "ensemble", "per_series"]


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    from distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as dask_client,
    ):
        yield dask_client


@pytest.fixture(scope="module")
def panel() -> pl.DataFrame:
    """The 12 flight series, last 200 days, with a known-in-advance regressor for ARIMA."""
    frame = pl.read_csv(FIXTURE, schema_overrides={"date": pl.String})
    return frame.filter(pl.col("date") >= "2013-06-15")


def _train(panel: pl.DataFrame, **kwargs: Any) -> tsengine.Deployment:
    return tsengine.train(
        panel,
        target="delayed",
        datetime_column="date",
        series_id_column="series",
        known_in_advance=["scheduled"],
        models=MODELS,
        forecast_window=[1, 7],
        feature_derivation_window=[-28, 0],
        deployment_id="flights",
        **kwargs,
    )


@pytest.fixture(scope="module")
def single(panel: pl.DataFrame) -> tsengine.Deployment:
    return _train(panel)


def _same(a: tsengine.Deployment, b: tsengine.Deployment, panel: pl.DataFrame) -> None:
    assert a.metadata["leaderboard"] == b.metadata["leaderboard"]
    assert a.metadata["selection"] == b.metadata["selection"]
    assert a.model.kind == b.model.kind
    members = {m.kind: m for m in getattr(a.model, "members", [a.model])}
    for other in getattr(b.model, "members", [b.model]):
        mine = members[other.kind]
        if hasattr(other, "series"):
            assert dict(sorted(mine.series.items())) == dict(sorted(other.series.items())), other.kind
    pa = a.predict(panel, forecast_point="2013-12-20")
    pb = b.predict(panel, forecast_point="2013-12-20")
    assert pa.columns == pb.columns
    np.testing.assert_allclose(pa.get_column("prediction").to_numpy(), pb.get_column("prediction").to_numpy())
    assert a.backtest_trace is not None
    assert b.backtest_trace is not None
    assert_frame_equal(a.backtest_trace, b.backtest_trace)


def test_cluster_training_equals_single_process(
    client: Any, panel: pl.DataFrame, single: tsengine.Deployment
) -> None:
    messages: list[str] = []
    clustered = _train(panel, dask=client, progress=messages.append)
    _same(single, clustered, panel)
    assert any("partitions" in m for m in messages), messages  # progress by partitions


def test_a_worker_killed_mid_training_is_replaced_and_the_result_is_the_same(
    client: Any, panel: pl.DataFrame, single: tsengine.Deployment
) -> None:
    victims = list(client.run(os.getpid).values())
    killed: list[int] = []

    def kill_once(message: str) -> None:
        if message.startswith("sent ") and not killed:  # every task is in flight
            time.sleep(0.5)
            killed.append(victims[0])
            os.kill(victims[0], signal.SIGKILL)

    clustered = _train(panel, dask=client, progress=kill_once)
    assert killed
    _same(single, clustered, panel)


def test_a_lost_panel_is_sent_again_and_the_result_is_the_same(
    client: Any, panel: pl.DataFrame, single: tsengine.Deployment
) -> None:
    """The scattered panel gone with a worker (here: cancelled) cancels its tasks; training sends it again."""
    from distributed import Future

    lost: list[str] = []

    def lose_panel(message: str) -> None:
        if message.startswith("sent ") and not lost:
            lost.extend(str(k) for k in client.futures if str(k).startswith("DataFrame-"))
            client.cancel([Future(k, client) for k in list(client.futures) if str(k) in lost], force=True)
        if "sending it again" in message:
            lost.append(message)

    clustered = _train(panel, dask=client, progress=lose_panel)
    assert any("sending it again" in m for m in lost), lost
    _same(single, clustered, panel)


def test_partitions_are_stable_across_processes_and_versions() -> None:
    """BLAKE2b-64 of the UTF-8 id, big-endian, modulo P: these values are fixed for good."""
    ids = pl.Series(["EWR-EV", "JFK-B6", "store 7", "Köln", ""])
    assert series_partition(ids, 8).to_list() == [3, 4, 0, 0, 4]
    assert series_partition(ids, 1000).to_list() == [867, 996, 320, 424, 876]


def test_unreachable_scheduler_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TSENGINE_DASK_CONNECT_TIMEOUT", "1.5")  # a refused address is retried until then
    args = [
        "train",
        str(FIXTURE),
        "--name",
        "x",
        "--target",
        "delayed",
        "--datetime",
        "date",
        "--series-id",
        "series",
        "--models",
        "seasonal_naive",
        "--dask",
        "tcp://127.0.0.1:9",
        "--registry",
        str(tmp_path / "registry"),
    ]
    result = CliRunner().invoke(app, expand_multi_options(args))
    assert result.exit_code != 0
    assert "cannot be reached" in result.stderr
    assert not (tmp_path / "registry" / "x").exists()
