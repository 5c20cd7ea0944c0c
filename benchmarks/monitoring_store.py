"""SQLite or DuckDB for the embedded prediction log: measured, as the monitoring issue asks.

Run ``python benchmarks/monitoring_store.py``.  The workload is the log's own:
many small appends (one batch of forecast rows per drained writer round, as
``tsengine.monitoring.log`` writes them) while reports aggregate one
deployment's window (the accuracy join of predictions with actuals, grouped by
day).  Both engines get the same rows through their Python DBAPI
``executemany``; DuckDB is also given its bulk path (inserting an Arrow table),
which the log could use.  Results: ``benchmarks/results/monitoring_store.md``.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
from _env import package_versions

RESULTS = Path(__file__).resolve().parent / "results"
COLUMNS = (
    "deployment_id",
    "created",
    "association_id",
    "series_id",
    "timestamp",
    "distance",
    "prediction",
    "low",
    "high",
)
CREATE = (
    "CREATE TABLE mon_predictions (deployment_id TEXT, created DOUBLE, association_id TEXT, series_id TEXT, "
    "timestamp DOUBLE, distance INTEGER, prediction DOUBLE, low DOUBLE, high DOUBLE)"
)
CREATE_ACTUALS = "CREATE TABLE mon_actuals (deployment_id TEXT, association_id TEXT, actual DOUBLE)"
AGGREGATE = """
SELECT CAST(p.timestamp / 86400 AS INTEGER) AS day,
       sqrt(avg((p.prediction - a.actual) * (p.prediction - a.actual))) AS rmse,
       avg(abs(p.prediction - a.actual)) AS mae,
       count(*) AS n
FROM mon_predictions p JOIN mon_actuals a
  ON a.deployment_id = p.deployment_id AND a.association_id = p.association_id
WHERE p.deployment_id = 'dep' AND p.created >= ? AND p.created < ?
GROUP BY day ORDER BY day
"""


def batches(n_batches: int, rows_per_batch: int, seed: int = 0) -> list[pl.DataFrame]:
    rng = np.random.default_rng(seed)
    out = []
    for b in range(n_batches):
        series = rng.integers(0, 500, rows_per_batch)
        stamp = 1.7e9 + 86400 * rng.integers(0, 60, rows_per_batch)
        out.append(
            pl.DataFrame(
                {
                    "deployment_id": ["dep"] * rows_per_batch,
                    "created": np.full(rows_per_batch, 1.7e9 + b),
                    "association_id": [f"S{s}|{int(t)}" for s, t in zip(series, stamp, strict=True)],
                    "series_id": [f"S{s}" for s in series],
                    "timestamp": stamp,
                    "distance": rng.integers(1, 29, rows_per_batch),
                    "prediction": rng.normal(10, 3, rows_per_batch),
                    "low": rng.normal(7, 3, rows_per_batch),
                    "high": rng.normal(13, 3, rows_per_batch),
                }
            )
        )
    return out


def actuals(frames: list[pl.DataFrame]) -> pl.DataFrame:
    ids = pl.concat(frames).get_column("association_id").unique()
    return pl.DataFrame(
        {
            "deployment_id": "dep",
            "association_id": ids,
            "actual": np.random.default_rng(1).normal(10, 3, ids.len()),
        }
    )


def run_sqlite(folder: Path, frames: list[pl.DataFrame], truth: pl.DataFrame) -> dict[str, float]:
    con = sqlite3.connect(folder / "log.sqlite3")
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute(CREATE)
    con.execute(CREATE_ACTUALS)
    con.execute("CREATE INDEX ix_p ON mon_predictions (deployment_id, created)")
    con.execute("CREATE INDEX ix_pa ON mon_predictions (deployment_id, association_id)")
    con.execute("CREATE UNIQUE INDEX ix_a ON mon_actuals (deployment_id, association_id)")
    marks = ", ".join("?" * len(COLUMNS))
    t0 = time.perf_counter()
    for frame in frames:
        with con:
            con.executemany(f"INSERT INTO mon_predictions VALUES ({marks})", frame.select(COLUMNS).rows())
    write = time.perf_counter() - t0
    with con:
        con.executemany("INSERT INTO mon_actuals VALUES (?, ?, ?)", truth.rows())
    t1 = time.perf_counter()
    result = con.execute(AGGREGATE, (0, 2e9)).fetchall()
    aggregate = time.perf_counter() - t1
    con.close()
    return {"write": write, "aggregate": aggregate, "days": len(result)}


def run_duckdb(
    folder: Path, frames: list[pl.DataFrame], truth: pl.DataFrame, *, bulk: bool
) -> dict[str, float]:
    con = duckdb.connect(str(folder / ("bulk.duckdb" if bulk else "log.duckdb")))
    con.execute(CREATE)
    con.execute(CREATE_ACTUALS)
    marks = ", ".join("?" * len(COLUMNS))
    t0 = time.perf_counter()
    for frame in frames:
        if bulk:
            chunk = frame.select(COLUMNS).to_arrow()  # noqa: F841 - read by DuckDB's replacement scan
            con.execute("INSERT INTO mon_predictions SELECT * FROM chunk")
        else:
            con.executemany(f"INSERT INTO mon_predictions VALUES ({marks})", frame.select(COLUMNS).rows())
    write = time.perf_counter() - t0
    arrow = truth.to_arrow()  # noqa: F841
    con.execute("INSERT INTO mon_actuals SELECT * FROM arrow")
    t1 = time.perf_counter()
    result = con.execute(AGGREGATE, [0, 2e9]).fetchall()
    aggregate = time.perf_counter() - t1
    con.close()
    return {"write": write, "aggregate": aggregate, "days": len(result)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=400, help="writer rounds")
    parser.add_argument("--rows", type=int, default=500, help="forecast rows per round")
    parser.add_argument("--out", type=Path, default=RESULTS / "monitoring_store.md")
    args = parser.parse_args()
    frames = batches(args.batches, args.rows)
    truth = actuals(frames)
    total = args.batches * args.rows
    results = {}
    for name, fn in (
        ("SQLite (executemany, WAL)", lambda d: run_sqlite(d, frames, truth)),
        ("DuckDB (executemany)", lambda d: run_duckdb(d, frames, truth, bulk=False)),
        ("DuckDB (Arrow insert)", lambda d: run_duckdb(d, frames, truth, bulk=True)),
    ):
        with tempfile.TemporaryDirectory() as folder:
            results[name] = fn(Path(folder))
    lines = [
        "# SQLite or DuckDB for the embedded prediction log",
        "",
        f"Produced by `python benchmarks/monitoring_store.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"{package_versions(['duckdb'])}, SQLite {sqlite3.sqlite_version}.",
        "",
        f"{args.batches} appends of {args.rows} forecast rows ({total:,} rows, one transaction each, as the writer "
        f"thread does), then the accuracy aggregate (join with {truth.height:,} actuals, RMSE and MAE by day).",
        "",
        "| engine | append rows/s | aggregate s |",
        "|---|---:|---:|",
    ]
    for name, r in results.items():
        lines.append(f"| {name} | {total / r['write']:,.0f} | {r['aggregate']:.3f} |")
    lines += [
        "",
        "tsengine keeps SQLite: the log's writes are many small appends, and the Python "
        "`executemany` path of each engine is what it uses (the Arrow insert needs a "
        "DuckDB-only code path, and DuckDB allows one writing process per file, while "
        "several `tsengine serve --workers` processes and CLI jobs share the log). The "
        "aggregate runs on one deployment's window, where both are fast enough for a report.",
        "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
