"""What monitoring costs a prediction: single-series latency with the prediction log on and off.

Run ``python benchmarks/monitoring.py``.  It trains the performance benchmark's
LightGBM deployment (daily series tiled from ``fixtures/flights_daily.csv``),
starts the real server (``tsengine serve``) with ``TSENGINE_MONITORING_ENABLED``
true and false in alternating rounds (so drift of the machine hits both alike),
posts the same one-series requests over keep-alive, and reports p50/p99 of the
server-side (``X-DataRobot-Execution-Time``, integer ms) and end-to-end latency.
It also measures, in process, the cost of queueing one request's predictions and
how fast the writer thread stores them.  Results: ``benchmarks/results/monitoring.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any

import _data
import _server
import httpx
import numpy as np
import polars as pl
from _env import package_versions
from _measure import post_many

from tsengine import Registry, train
from tsengine.monitoring.service import Monitor
from tsengine.monitoring.store import MonitoringStore
from tsengine.options import PredictOptions

RESULTS = Path(__file__).resolve().parent / "results"
DEPLOYMENT_ID = "bench"
PATH = f"/predApi/v1.0/deployments/{DEPLOYMENT_ID}/predictions"


def percentiles(seconds: list[float]) -> tuple[float, float]:
    values = np.asarray(seconds) * 1000
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


def write_log(
    folder: Path, deployment: Any, forecast: pl.DataFrame, inputs: pl.DataFrame, events: int
) -> tuple[float, float, dict[str, Any]]:
    """Queue ``events`` copies of one request's predictions, wait for the writer.

    Returns:
        Seconds spent queueing, seconds until everything was written, the log's counters.
    """
    monitor = Monitor(MonitoringStore.in_folder(folder))
    t0 = time.perf_counter()
    for _ in range(events):
        monitor.record_prediction(deployment, forecast, inputs, created=time.time())
    queued = time.perf_counter() - t0
    t1 = time.perf_counter()
    monitor.log.flush(600)
    written = time.perf_counter() - t1 + queued
    stats = monitor.log.stats()
    monitor.close()
    return queued, written, stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=600, help="requests per round and setting")
    parser.add_argument("--out", type=Path, default=RESULTS / "monitoring.md")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="tsengine-monitoring-bench-"))
    registry = work / "registry"
    full = _data.tiled_daily(50)
    deployment = train(
        full,
        target=_data.TARGET_COL,
        datetime_column=_data.DATETIME_COL,
        series_id_column=_data.SERIES_COL,
        models=["lightgbm"],
        deployment_id=DEPLOYMENT_ID,
        backtests=1,
        interval_percentile=(80, 50, 95),
    )
    levels = deployment  # serving 50 and 95 % beside its own 80 %: measured in process below
    deployment = dataclasses.replace(deployment, more_intervals=())  # the served one: its own 80 % only
    Registry(registry).save(deployment)
    tail = _data.history_tail(full, 100, series=20)
    bodies = [_data.to_csv_bytes(g) for _, g in tail.group_by(_data.SERIES_COL, maintain_order=True)]

    samples: dict[bool, dict[str, list[float]]] = {
        True: {"server": [], "e2e": []},
        False: {"server": [], "e2e": []},
    }
    for _ in range(args.rounds):
        for enabled in (True, False):
            port = _server.free_port()
            env = {"TSENGINE_MONITORING_ENABLED": "true" if enabled else "false"}
            with (
                _server.start_server(
                    _server.tsengine_command(registry, port),
                    port=port,
                    log=work / f"serve-{enabled}.log",
                    env=env,
                ) as srv,
                httpx.Client(timeout=60.0) as client,
            ):
                sample = post_many(
                    client,
                    srv.url + PATH,
                    bodies,
                    accept="text/csv",
                    n=args.requests,
                    budget=120.0,
                    warmup=20,
                )
            samples[enabled]["server"] += sample.server
            samples[enabled]["e2e"] += sample.e2e

    # in process: queueing cost on the request path, and the writer's throughput
    frame = pl.read_csv(bodies[0], schema_overrides=deployment.input_schema_overrides())
    prediction = deployment.predict_result(frame, PredictOptions())
    events = 5000
    queued, written, stats = write_log(work / "inproc", deployment, prediction.frame, frame, events)
    three = levels.predict_result(frame, PredictOptions()).frame
    _, written3, stats3 = write_log(work / "inproc3", levels, three, frame, events)

    on_server, off_server = percentiles(samples[True]["server"]), percentiles(samples[False]["server"])
    on_e2e, off_e2e = percentiles(samples[True]["e2e"]), percentiles(samples[False]["e2e"])
    rows = prediction.frame.height * stats["written"]
    lines = [
        "# What monitoring costs a prediction",
        "",
        f"Produced by `python benchmarks/monitoring.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        f"Packages: {package_versions(['tsengine', 'polars', 'lightgbm', 'sqlalchemy', 'uvicorn'])}.",
        "",
        f"`tsengine serve` (one worker) with the prediction log on and off, {args.rounds} alternating rounds of "
        f"{args.requests} one-series requests each (100 history rows, LightGBM, {prediction.frame.height} forecast rows "
        "per request), CSV over one keep-alive connection.",
        "",
        "| prediction log | requests | server p50 ms | server p99 ms | end-to-end p50 ms | end-to-end p99 ms |",
        "|---|---:|---:|---:|---:|---:|",
        f"| on | {len(samples[True]['e2e'])} | {on_server[0]:.2f} | {on_server[1]:.2f} | {on_e2e[0]:.2f} | {on_e2e[1]:.2f} |",
        f"| off | {len(samples[False]['e2e'])} | {off_server[0]:.2f} | {off_server[1]:.2f} | {off_e2e[0]:.2f} | {off_e2e[1]:.2f} |",
        "",
        f"Cost of the log on end-to-end p50: **{on_e2e[0] - off_e2e[0]:+.2f} ms** (target +0.2 ms or less). "
        "The server-side figure is DataRobot's integer `X-DataRobot-Execution-Time`, so it moves in whole ms.",
        "",
        "In process (no HTTP):",
        "",
        f"- queueing one request's predictions (`Monitor.record_prediction`): {1e6 * queued / events:.1f} µs per request "
        f"({events} requests);",
        f"- the writer thread stored {stats['written']:,} events ({rows:,} prediction rows plus feature samples) in "
        f"{written:.2f} s: {rows / written:,.0f} prediction rows/s into SQLite; dropped {stats['dropped']}, failed {stats['failed']};",
        f"- the same deployment serving 50 and 95 % intervals beside its 80 % (each forecast row also logs two "
        f"rows of further bounds): {stats3['written']:,} events in {written3:.2f} s, "
        f"{three.height * stats3['written'] / written3:,.0f} prediction rows/s; dropped {stats3['dropped']}, "
        f"failed {stats3['failed']}.",
        "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
