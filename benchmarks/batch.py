"""Batch prediction at scale: a ≥ 1 GB CSV scored file to file, against one in-process predict.

Run ``python benchmarks/batch.py`` (about 10-20 minutes on 2 cores; the data and
the deployment are built once into ``benchmarks/.cache/``, git-ignored).  What it
measures, each in a process of its own and one at a time, so that a process's
peak RSS (``VmHWM``) is one measurement's:

* ``batch``: a :class:`tsengine.batch.BatchEngine` job, filesystem CSV in →
  filesystem CSV out, ``numConcurrent`` 2: wall time, forecast and input rows/s,
  peak RSS, time to the first output byte, where the time goes (plan, partition,
  scoring, writing) and the row count of the output file.
* ``baseline``: ``pl.read_csv`` → ``Deployment.predict`` → ``write_csv`` of the same
  file in one process: the in-process reference the batch job is compared with.
* ``scaling``: batch jobs over the first 10 % and 30 % of the series (the 100 %
  point is the ``batch`` run), to show time grows linearly with rows.
* ``s3`` and ``postgres``: the same job on a slice (``--slice-series``, 1 M rows by
  default) read from and written to moto's S3 server and a throwaway PostgreSQL
  cluster on loopback.

Data: the 12 daily series of ``fixtures/flights_daily.csv`` tiled into
``--series`` series (``S000001`` …) of the last ``--rows-per-series`` days each;
series ``i`` copies fixture series ``i mod 12`` with its target scaled by a
per-series factor (log-uniform 0.2-5) and ±10 % per-row noise, fixed seed.  Five
columns the model does not use (a station name, two floats, a weather word, a gate) pad
rows to ~110 bytes, the width of a realistic export, so 10 M rows make ≥ 1 GB.
The file is sorted by series then date, as an export is; the engine does not
rely on that order.

Results: ``benchmarks/results/batch.md`` and ``batch_scaling.png``.  Measurements
are merged into ``benchmarks/.cache/batch-results-<size>.json`` so ``--only`` can
re-run one section; the results file says when each was measured.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _data
import numpy as np
import polars as pl
from _env import package_versions

import tsengine

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
RESULTS = HERE / "results"
WORKER = HERE / "_batch_worker.py"
DEPLOYMENT_ID = "batch-bench"
SEED = 20130101
BLOCK = 10_000  # series per generated block; each block has its own seeded generator
SECTIONS = ("batch", "baseline", "scaling", "s3", "postgres")
TARGET_RSS_MB = 1.5 * 1024
TARGET_RATIO = 0.8
PACKAGES = ("tsengine", "polars", "pyarrow", "numpy", "lightgbm", "sqlalchemy", "psycopg", "boto3", "moto")

AIRPORTS = {
    "EWR": "Newark Liberty International Airport",
    "JFK": "John F. Kennedy International Airport",
    "LGA": "LaGuardia Airport",
}
CARRIERS = {
    "9E": "Endeavor Air",
    "AA": "American Airlines",
    "B6": "JetBlue Airways",
    "DL": "Delta Air Lines",
    "EV": "ExpressJet Airlines",
    "MQ": "Envoy Air",
    "UA": "United Airlines",
    "US": "US Airways",
}
WEATHER = ("clear", "partly cloudy", "overcast", "light rain", "heavy rain", "snow showers", "fog", "windy")
PG_COLUMNS = (
    "series text, date date, delayed double precision, scheduled integer, holiday integer, "
    "station text, load_factor double precision, fuel_price double precision, weather text, gate text"
)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ------------------------------------------------------------------------------ data


def _base(rows: int) -> pl.DataFrame:
    base = pl.read_csv(_data.FIXTURE, schema_overrides={"date": pl.String}).sort("series", "date")
    per_series = base.height // base.get_column("series").n_unique()
    if rows > per_series:
        msg = f"the fixture has {per_series} days per series, {rows} asked"
        raise ValueError(msg)
    base = base.filter(pl.int_range(pl.len()).over("series") >= per_series - rows)
    station = {
        name: f"{AIRPORTS[name[:3]]} / {CARRIERS[name[4:]]}"
        for name in base.get_column("series").unique().to_list()
    }
    return base.with_columns(pl.col("series").replace_strict(station).alias("station"))


def _block(base: pl.DataFrame, block: int, n: int, rows: int) -> pl.DataFrame:
    """Series ``block * BLOCK`` … ``+ n`` (draws are always BLOCK-sized, so prefixes agree)."""
    rng = np.random.default_rng([SEED, block])
    factor = np.exp(rng.uniform(np.log(0.2), np.log(5.0), size=BLOCK))[:n]
    noise = rng.uniform(0.9, 1.1, size=BLOCK * rows)[: n * rows]
    load = rng.uniform(0.55, 0.98, size=BLOCK * rows)[: n * rows]
    fuel = rng.normal(2.9, 0.15, size=BLOCK * rows)[: n * rows]
    weather = rng.integers(0, len(WEATHER), size=BLOCK * rows)[: n * rows]
    gate = rng.integers(0, 3 * 60, size=BLOCK * rows)[: n * rows]
    series = np.repeat(np.arange(block * BLOCK, block * BLOCK + n), rows)
    day = np.tile(np.arange(rows), n)
    source = (series % 12) * rows + day
    picked = base[source]
    return (
        pl.DataFrame(
            {
                "series": "S" + pl.Series(series + 1).cast(pl.String).str.zfill(6),
                "date": picked.get_column("date"),
                "delayed": (picked.get_column("delayed").to_numpy() * np.repeat(factor, rows) * noise).round(
                    3
                ),
                "scheduled": (picked.get_column("scheduled").to_numpy() * np.repeat(factor, rows))
                .round()
                .astype(np.int64),
                "holiday": picked.get_column("holiday"),
                "station": picked.get_column("station"),
                "load_factor": load.round(3),
                "fuel_price": fuel.round(3),
                "weather": pl.Series(np.asarray(WEATHER)[weather]),
                "gate": pl.Series(np.asarray(["A", "B", "C"])[gate // 60]),
                "gate_number": gate % 60 + 1,
            }
        )
        .with_columns(pl.format("Terminal {} gate {}{}", "gate", "gate", "gate_number").alias("gate"))
        .drop("gate_number")
    )


def ensure_data(n_series: int, rows: int) -> tuple[Path, dict[str, Any]]:
    """The CSV of ``n_series`` × ``rows`` (generated once into the cache) and its size."""
    path = CACHE / f"flights-{n_series}x{rows}.csv"
    meta_path = path.with_suffix(".json")
    if path.exists() and meta_path.exists():
        return path, json.loads(meta_path.read_text())
    CACHE.mkdir(parents=True, exist_ok=True)
    base = _base(rows)
    t0 = time.perf_counter()
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as out:
        for block in range(-(-n_series // BLOCK)):
            n = min(BLOCK, n_series - block * BLOCK)
            _block(base, block, n, rows).write_csv(out, include_header=block == 0, float_precision=3)
    tmp.replace(path)
    meta = {"series": n_series, "rows": n_series * rows, "bytes": path.stat().st_size}
    meta_path.write_text(json.dumps(meta))
    log(
        f"generated {path.name}: {meta['rows']:,} rows, {meta['bytes'] / 1e9:.2f} GB in {time.perf_counter() - t0:.0f} s"
    )
    return path, meta


def ensure_deployment(args: argparse.Namespace, data: Path) -> tuple[Path, dict[str, Any]]:
    """A LightGBM deployment trained on the first ``--train-series`` series, in a cached registry."""
    fw = f"{args.forecast_window[0]}-{args.forecast_window[1]}"
    registry = CACHE / f"registry-t{args.train_series}-r{args.rows_per_series}-fdw{args.fdw}-fw{fw}"
    info_path = registry / "bench-info.json"
    if tsengine.Registry(registry).exists(DEPLOYMENT_ID) and info_path.exists():
        return registry, json.loads(info_path.read_text())
    frame = pl.read_csv(
        data,
        n_rows=args.train_series * args.rows_per_series,
        columns=["series", "date", "delayed"],
        schema_overrides={"series": pl.String, "date": pl.String},
    )
    t0 = time.perf_counter()
    dep = tsengine.train(
        frame,
        target="delayed",
        datetime_column="date",
        series_id_column="series",
        models=["lightgbm"],
        feature_derivation_window=(-args.fdw, 0),
        forecast_window=tuple(args.forecast_window),
        deployment_id=DEPLOYMENT_ID,
        backtests=1,
    )
    seconds = time.perf_counter() - t0
    tsengine.Registry(registry).save(dep)
    described = dep.model.describe()
    info = {
        "train_s": seconds,
        "train_series": args.train_series,
        "train_rows": frame.height,
        "fdw": list(dep.spec.feature_derivation_window),
        "fw": list(dep.spec.forecast_window),
        "rounds": described.get("rounds"),
        "features": len(dep.spec.features) if dep.spec.features else None,
        "intervals": dep.intervals is not None,
    }
    info_path.write_text(json.dumps(info))
    log(f"trained {DEPLOYMENT_ID} on {args.train_series} series in {seconds:.1f} s")
    return registry, info


# ---------------------------------------------------------------------- measurements


def run_worker(cfg: dict[str, Any]) -> dict[str, Any]:
    """Run one measurement in a fresh process; its RESULT line."""
    done = subprocess.run(
        [sys.executable, str(WORKER), json.dumps(cfg)], capture_output=True, text=True, check=False, cwd=HERE
    )
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    msg = f"worker {cfg['mode']} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    raise RuntimeError(msg)


def data_lines(path: Path) -> int:
    """Data rows of a CSV (lines but the header)."""
    lines = 0
    with path.open("rb") as fh:
        while block := fh.read(1 << 24):
            lines += block.count(b"\n")
    return lines - 1


def _engine_folder(name: str) -> Path:
    folder = CACHE / "engine" / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def bench_batch(
    args: argparse.Namespace, registry: Path, data: Path, meta: dict[str, Any], fw: int
) -> dict[str, Any]:
    """One file → file job over ``data``; checks the output's row count."""
    out = CACHE / "out" / f"batch-{meta['series']}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    folder = _engine_folder(f"batch-{meta['series']}")
    result = run_worker(
        {
            "mode": "batch",
            "registry": str(registry),
            "folder": str(folder),
            "deployment_id": DEPLOYMENT_ID,
            "num_concurrent": args.num_concurrent,
            "intake": {"type": "filesystem", "path": str(data)},
            "output": {"type": "filesystem", "path": str(out)},
        }
    )
    shutil.rmtree(folder, ignore_errors=True)
    result.update(input_rows=meta["rows"], input_bytes=meta["bytes"], series=meta["series"])
    result["expected_rows"] = meta["series"] * fw
    result["output_rows"] = data_lines(out) if out.exists() else None
    result["output_bytes"] = out.stat().st_size if out.exists() else None
    if not args.keep_outputs:
        out.unlink(missing_ok=True)
    return result


def bench_baseline(
    args: argparse.Namespace, registry: Path, data: Path, meta: dict[str, Any]
) -> dict[str, Any]:
    """``read_csv`` → ``predict`` → ``write_csv`` over the same file, in one process."""
    out = CACHE / "out" / f"baseline-{meta['series']}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    result = run_worker(
        {
            "mode": "baseline",
            "registry": str(registry),
            "deployment_id": DEPLOYMENT_ID,
            "input": str(data),
            "output": str(out),
        }
    )
    result.update(input_bytes=meta["bytes"], series=meta["series"])
    batch_out = CACHE / "out" / f"batch-{meta['series']}.csv"
    if batch_out.exists():  # kept by --keep-outputs: is the batch output the in-process one?
        result["same_as_batch"] = same_forecasts(batch_out, out)
    if not args.keep_outputs:
        out.unlink(missing_ok=True)
    return result


def same_forecasts(batch_out: Path, baseline_out: Path) -> str:
    """Do the batch CSV and the in-process ``predict`` frame hold the same forecasts?

    The batch output has the predApi CSV columns (``series, FORECAST_POINT, date,
    FORECAST_DISTANCE, <target> (actual)_PREDICTION, …``), ``predict`` its own names.
    """
    ours = pl.read_csv(batch_out, infer_schema_length=None, schema_overrides={"date": pl.String})
    theirs = pl.read_csv(
        baseline_out, infer_schema_length=None, schema_overrides={"originalFormatTimestamp": pl.String}
    )
    pred = next((c for c in ours.columns if c.endswith("_PREDICTION")), None)
    if pred is None:
        return f"not compared (no prediction column in {ours.columns})"
    a = ours.select(
        pl.col("series").cast(pl.String),
        pl.col("date"),
        pl.col("FORECAST_DISTANCE").alias("d"),
        pl.col(pred).alias("a"),
    )
    b = theirs.select(
        pl.col("seriesId").cast(pl.String).alias("series"),
        pl.col("originalFormatTimestamp").alias("date"),
        pl.col("forecastDistance").alias("d"),
        pl.col("prediction").alias("b"),
    )
    joined = a.join(b, on=["series", "date", "d"], how="inner")
    diff = float((joined.get_column("a") - joined.get_column("b")).abs().max() or 0.0)
    same = joined.height == a.height == b.height and diff < 1e-9
    order = a.select("series", "date").equals(b.select("series", "date"))
    return (
        f"{'yes' if same else 'no'}: {a.height:,} vs {b.height:,} rows, {joined.height:,} matched on (series, date, distance), "
        f"max |Δ prediction| {diff:.2g}, same row order: {order}"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bench_s3(
    args: argparse.Namespace, registry: Path, data: Path, meta: dict[str, Any], fw: int
) -> dict[str, Any]:
    """The job from and to moto's S3 server (in this process, so not in the worker's RSS)."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log per request
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        client = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        ).client("s3", endpoint_url=endpoint)
        client.create_bucket(Bucket="bench")
        t0 = time.perf_counter()
        client.upload_file(str(data), "bench", "in.csv")
        upload_s = time.perf_counter() - t0
        folder = _engine_folder("s3")
        common = {"endpointUrl": endpoint, "credentialId": "c1"}
        result = run_worker(
            {
                "mode": "batch",
                "registry": str(registry),
                "folder": str(folder),
                "deployment_id": DEPLOYMENT_ID,
                "num_concurrent": args.num_concurrent,
                "credentials": [
                    [
                        {"credentialId": "c1", "name": "bench", "credentialType": "s3"},
                        {"awsAccessKeyId": "testing", "awsSecretAccessKey": "testing"},
                    ]
                ],
                "intake": {"type": "s3", "url": "s3://bench/in.csv", **common},
                "output": {"type": "s3", "url": "s3://bench/out.csv", **common},
            }
        )
        shutil.rmtree(folder, ignore_errors=True)
        local = CACHE / "out" / "s3-out.csv"
        local.parent.mkdir(parents=True, exist_ok=True)
        if result["status"] == "COMPLETED":
            client.download_file("bench", "out.csv", str(local))
            result["output_rows"] = data_lines(local)
            local.unlink()
        result["upload_s"] = upload_s
    finally:
        server.stop()
    result.update(input_rows=meta["rows"], input_bytes=meta["bytes"], series=meta["series"])
    result["expected_rows"] = meta["series"] * fw
    return result


def _postgres_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return candidates[-1].parent if candidates else None


def _as_postgres(argv: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root.
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@contextlib.contextmanager
def postgres_server(bindir: Path) -> Iterator[tuple[str, int]]:
    """A throwaway cluster on a free loopback port (trust auth); yields (SQLAlchemy URL, port)."""
    root = Path(tempfile.mkdtemp(prefix="tsengine-bench-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    data, logfile = root / "data", root / "server.log"
    port = _free_port()

    def run(argv: list[str]) -> None:
        done = subprocess.run(_as_postgres(argv), cwd=root, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            msg = f"{' '.join(argv)} failed: {done.stderr.strip()} {logfile.read_text() if logfile.exists() else ''}"
            raise RuntimeError(msg)

    started = False
    try:
        run([str(bindir / "initdb"), "-D", str(data), "--auth=trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"])  # fmt: skip
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off -c full_page_writes=off"
        run([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(logfile), "-w", "-t", "60", "-o", options, "start"])  # fmt: skip
        started = True
        import psycopg

        with psycopg.connect(
            f"host=127.0.0.1 port={port} user=postgres dbname=postgres", autocommit=True
        ) as conn:
            conn.execute("CREATE DATABASE bench")
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/bench", port
    finally:
        if started:
            subprocess.run(
                _as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
                cwd=root,
                capture_output=True,
                check=False,
            )
        shutil.rmtree(root, ignore_errors=True)


def bench_postgres(
    args: argparse.Namespace, registry: Path, data: Path, meta: dict[str, Any], fw: int
) -> dict[str, Any]:
    """The job from table ``history`` to a new table ``forecasts`` of a local PostgreSQL."""
    import psycopg

    bindir = _postgres_bin()
    if bindir is None:
        return {"skipped": "PostgreSQL is not installed (no initdb on PATH or in /usr/lib/postgresql)"}
    with postgres_server(bindir) as (url, port):
        dsn = f"host=127.0.0.1 port={port} user=postgres dbname=bench"
        t0 = time.perf_counter()
        with psycopg.connect(dsn) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE TABLE history ({PG_COLUMNS})")
            with (
                cur.copy("COPY history FROM STDIN WITH (FORMAT csv, HEADER true)") as copy,
                data.open("rb") as fh,
            ):
                while block := fh.read(1 << 20):
                    copy.write(block)
        load_s = time.perf_counter() - t0
        folder = _engine_folder("postgres")
        result = run_worker(
            {
                "mode": "batch",
                "registry": str(registry),
                "folder": str(folder),
                "deployment_id": DEPLOYMENT_ID,
                "num_concurrent": args.num_concurrent,
                "data_stores": [
                    {"id": "pg", "canonicalName": "pg", "type": "jdbc", "params": {"url": url}},
                ],
                "intake": {"type": "jdbc", "dataStoreId": "pg", "table": "history"},
                "output": {
                    "type": "jdbc",
                    "dataStoreId": "pg",
                    "table": "forecasts",
                    "statementType": "create_table",
                },
            }
        )
        shutil.rmtree(folder, ignore_errors=True)
        if result["status"] == "COMPLETED":
            with psycopg.connect(dsn) as conn, conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM forecasts")
                row = cur.fetchone()
                result["output_rows"] = int(row[0]) if row else None
        result["load_s"] = load_s
    result.update(input_rows=meta["rows"], input_bytes=meta["bytes"], series=meta["series"])
    result["expected_rows"] = meta["series"] * fw
    return result


# --------------------------------------------------------------------------- report


def machine() -> dict[str, str]:
    """CPU model (/proc/cpuinfo), cores, RAM (/proc/meminfo), OS, Python."""
    cpu, ram = platform.processor() or "?", "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 2**20:.1f} GiB"
                break
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "ram": ram,
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def engine_version() -> str:
    """The commit measured, and whether ``tsengine/`` had uncommitted changes (with a digest of them)."""
    import hashlib

    root = HERE.parent

    def git(*argv: str) -> str:
        done = subprocess.run(["git", *argv], cwd=root, capture_output=True, text=True, check=False)
        return done.stdout.rstrip("\n") if done.returncode == 0 else ""

    head = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    changed = [line[3:] for line in git("status", "--porcelain", "--", "tsengine").splitlines()]
    if not changed:
        return f"commit {head} (clean `tsengine/`)"
    digest = hashlib.sha256(git("diff", "HEAD", "--", "tsengine").encode()).hexdigest()[:12]
    return f"commit {head} plus uncommitted changes to {', '.join(f'`{c}`' for c in changed)} (diff sha256 {digest})"


def plot_scaling(points: list[dict[str, Any]], path: Path) -> bool:
    """Log-log time vs input rows, with the slope-1 line through the smallest run."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    xs = np.array([p["input_rows"] for p in points], dtype=float)
    ys = np.array([p["wall_s"] for p in points], dtype=float)
    fig, ax = plt.subplots(figsize=(6.5, 4.2), dpi=120)
    ax.plot(xs, ys, "o-", label="batch job wall time (file → file)")
    ax.plot(xs, ys[0] * xs / xs[0], "k:", label="linear (slope 1 through the smallest run)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("input rows (100 per series)")
    ax.set_ylabel("seconds")
    ax.set_title("tsengine batch: time vs input size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def _verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _stage_table(r: dict[str, Any]) -> list[str]:
    """Where a batch job's time and memory went."""
    out = [
        "| stage | seconds | calls | peak RSS in stage (anonymous + file-backed) |",
        "|---|---:|---:|---:|",
    ]
    total, anon, filed = (
        r.get("rss_peak_by_stage_mb", {}),
        r.get("anon_peak_by_stage_mb", {}),
        r.get("file_peak_by_stage_mb", {}),
    )

    def mem(stage: str | None) -> str:
        if stage is None or stage not in total:
            return ""
        split = f" ({anon[stage]:,.0f} + {filed[stage]:,.0f})" if stage in anon and stage in filed else ""
        return f"{total[stage]:,.0f} MB{split}"

    labels = (
        ("intake_source", "intake (materialise the input locally)", "intake_source"),
        ("plan_chunks", "plan (`plan_chunks`: parse the input, tally series, forecast point)", "plan_chunks"),
        ("partition", "partition (`partition`: one Arrow IPC file per chunk)", "partition"),
        ("read_chunk", "read chunk files (in scoring threads)", None),
        ("score (ChunkScorer.score)", "score chunks (predict_result + csv_table; 2 threads, summed)", None),
        ("finish", "finish (remapping)", None),
        ("sink.write", "sink write (CSV encode + write; runner thread)", None),
        ("sink.commit", "sink commit", None),
    )
    for key, label, stage in labels:
        if key not in r["timers"]:
            continue
        out.append(f"| {label} | {r['timers'][key]:.2f} | {r['calls'][key]:,} | {mem(stage)} |")
    out.append(
        f"| scoring + writing phase (wall, from the end of partition to the end) | {r['wall_s'] - _partition_end(r):.2f} |  | "
        f"{mem('scoring+writing')} |"
    )
    return out


def _load(r: dict[str, Any]) -> str:
    """1-minute load average before → after a measurement (2 cores: above 2 means sharing)."""
    if "load_before" not in r:
        return "—"
    return f"{r['load_before']:.1f} → {r['load_after']:.1f}"


def _expected(r: dict[str, Any]) -> str:
    return "= expected" if r.get("output_rows") == r["expected_rows"] else f"expected {r['expected_rows']:,}"


def _count(n: int | None) -> str:
    return "—" if n is None else f"{n:,}"


def _partition_end(r: dict[str, Any]) -> float:
    for stage in r["stages"]:
        if stage["details"].startswith("Scoring"):
            return float(stage["t"])
    return 0.0


def markdown(res: dict[str, Any], info: dict[str, Any], args: argparse.Namespace) -> str:
    m = machine()
    lines: list[str] = []
    add = lines.append
    full = res.get("batch")
    base = res.get("baseline")
    add("# tsengine batch predictions at scale")
    add("")
    add(
        "Produced by `python benchmarks/batch.py"
        + (f" --series {args.series}" if args.series != 100_000 else "")
        + (f" --rows-per-series {args.rows_per_series}" if args.rows_per_series != 100 else "")
        + "`. Each measurement ran in a fresh process of its own, one at a time; peak RSS is that process's "
        "`VmHWM` (/proc/self/status; Python, polars, LightGBM and the loaded model included). Not `ru_maxrss`: Linux "
        "carries `ru_maxrss` over fork + exec, so a child reports its parent's high-water mark when that is higher (the "
        "worker records it too, as `ru_maxrss_mb` in the cached JSON). RSS counts file-backed pages too (a memory-mapped "
        "input shows there), so the stage tables split the peaks sampled every 20 ms into anonymous + file-backed."
    )
    add("")
    add(f"- Machine: {m['cpu']}, {m['cores']} cores, {m['ram']} RAM; {m['os']}; Python {m['python']}.")
    add(f"- Packages: {package_versions(PACKAGES)}.")
    versions = sorted({r["engine"] for k, r in res.items() if isinstance(r, dict) and "engine" in r})
    add(f"- Engine measured: {'; '.join(versions) or 'unknown'}.")
    add(
        "- Timings on a shared 2-core machine are noisy: the `load avg` columns give the 1-minute load average before → "
        "after each measurement (above ~2 means another process shared the cores)."
    )
    meta = res["data"]
    add(
        f"- Data: `{meta['file']}` — {meta['series']:,} daily series × {args.rows_per_series} rows = "
        f"{meta['rows']:,} history rows, {meta['bytes']:,} bytes ({meta['bytes'] / 1e9:.2f} GB, {meta['bytes'] / 2**30:.2f} GiB) "
        "of CSV, generated once into `benchmarks/.cache/`. The 12 series of `fixtures/flights_daily.csv` (last "
        f"{args.rows_per_series} days of 2013) tiled: series `S{{i:06d}}` copies fixture series i mod 12, target × a per-series "
        "factor (log-uniform 0.2-5) × ±10 % per-row noise, fixed seed. Columns: `series, date, delayed` (target), the fixture's "
        "`scheduled, holiday`, and five padding columns the model does not use (`station` ~55 characters of text, `load_factor`, "
        "`fuel_price`, `weather`, `gate`) so a row is ~110 bytes and 10 M rows make ≥ 1 GB: the padding is there to reach the "
        "size honestly, and every column is still parsed. Sorted by series then date (a realistic export); the engine "
        "does not rely on order (it groups series by key in its planning pass)."
    )
    add(
        f"- Model: one LightGBM deployment (`models=['lightgbm']`, 1 backtest) trained on the first {info['train_series']} series "
        f"({info['train_rows']:,} rows) in {info['train_s']:.1f} s; feature derivation window {info['fdw']}, forecast window "
        f"{info['fw']} (so {info['fw'][1] - info['fw'][0] + 1} forecast rows per series), prediction intervals "
        f"{'on' if info['intervals'] else 'off'}. The other series are unseen at training and served by the model's "
        "no-id fallback. Jobs run in forecast mode without a forecast point (the engine takes the latest date with a target), "
        "`relaxKnownInAdvanceFeaturesCheck: true`."
    )
    add("")
    # targets
    add("## Targets")
    add("")
    add("| target | measured | verdict |")
    add("|---|---|---|")
    if full:
        add(
            f"| ≥ 1 GB CSV, ≥ 10 M history rows, ≥ 100,000 series, file → file | {full['input_bytes'] / 1e9:.2f} GB, "
            f"{full['input_rows']:,} rows, {full['series']:,} series; {full['status']} | "
            f"{_verdict(full['input_bytes'] >= 1e9 and full['input_rows'] >= 10_000_000 and full['series'] >= 100_000 and full['status'] == 'COMPLETED')} |"
        )
        add(
            f"| batch peak RSS ≤ 1.5 GB | {full['peak_rss_mb']:,.0f} MB | {_verdict(full['peak_rss_mb'] <= TARGET_RSS_MB)} |"
        )
        if base:
            ratio = (full["scoredRows"] / full["wall_s"]) / (base["rows"] / base["wall_s"])
            add(
                f"| forecast rows/s ≥ 0.8 × in-process `Deployment.predict` (same run) | {ratio:.2f} × "
                f"({full['scoredRows'] / full['wall_s']:,.0f} vs {base['rows'] / base['wall_s']:,.0f} rows/s) | "
                f"{_verdict(ratio >= TARGET_RATIO)} |"
            )
        sc = res.get("scaling")
        if sc:
            pts = sc["points"]
            slope = float(
                np.polyfit(np.log([p["input_rows"] for p in pts]), np.log([p["wall_s"] for p in pts]), 1)[0]
            )
            add(
                f"| scales linearly in rows | log-log slope of time vs rows {slope:.2f} over "
                f"{pts[0]['input_rows']:,}-{pts[-1]['input_rows']:,} rows (1.00 = linear) | {_verdict(slope <= 1.1)} |"
            )
        add(
            f"| time to first output byte (reported) | {full['first_output_s']:.1f} s of {full['wall_s']:.1f} s | reported |"
        )
    for key, label in (
        ("s3", "S3 (moto) throughput (reported)"),
        ("postgres", "PostgreSQL throughput (reported)"),
    ):
        r = res.get(key)
        if r and "skipped" not in r and r.get("status") == "COMPLETED":
            add(
                f"| {label} | {r['scoredRows'] / r['wall_s']:,.0f} forecast rows/s, {r['input_rows'] / r['wall_s']:,.0f} input rows/s | reported |"
            )
        elif r:
            add(f"| {label} | not measured: {r.get('skipped') or r.get('statusDetails')} | — |")
    add("")
    # batch
    if full:
        add(f"## Batch job, file → file ({full['series']:,} series; measured {full['measured']})")
        add("")
        add(
            f"`BatchEngine.run_now`, `numConcurrent` {args.num_concurrent}, default chunk size (5 MiB of input), "
            "filesystem intake and output (CSV). The model is loaded before the clock starts (a server has it cached)."
        )
        add("")
        add(
            "| wall s | forecast rows | forecast rows/s | input rows/s | input MB/s | peak RSS | first output byte | output rows (file) | output bytes | load avg |"
        )
        add("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        add(
            f"| {full['wall_s']:.1f} | {full['scoredRows']:,} | {full['scoredRows'] / full['wall_s']:,.0f} | "
            f"{full['input_rows'] / full['wall_s']:,.0f} | {full['input_bytes'] / 2**20 / full['wall_s']:,.1f} | "
            f"{full['peak_rss_mb']:,.0f} MB | {full['first_output_s']:.2f} s | {full['output_rows']:,} "
            f"({_expected(full)}) | "
            f"{full['output_bytes']:,} | {_load(full)} |"
        )
        add("")
        add(
            f"Chunks written: {full['chunks_written']}. RSS after loading the model, before the job: {full['rss_before_mb']:,.0f} MB. "
            "First output byte: time from `run_now` to the first non-empty `out.csv.part` (polled every 2 ms)."
        )
        add("")
        add(
            "Where the time and memory went (the engine's stage functions wrapped and timed by the worker; scoring runs in 2 threads, so its sum can exceed its wall time):"
        )
        add("")
        lines.extend(_stage_table(full))
        add("")
    if base:
        add(f"## In-process baseline ({base['series']:,} series; measured {base['measured']})")
        add("")
        add(
            "`pl.read_csv(path, schema_overrides=dep.input_schema_overrides(), infer_schema_length=None)` → "
            "`dep.predict(frame, relax_known_in_advance=True)` → `write_csv`, one process."
        )
        add("")
        add(
            "| read s | predict s | write s | wall s | forecast rows | forecast rows/s | peak RSS | load avg |"
        )
        add("|---:|---:|---:|---:|---:|---:|---:|---:|")
        add(
            f"| {base['read_s']:.1f} | {base['predict_s']:.1f} | {base['write_s']:.1f} | {base['wall_s']:.1f} | "
            f"{base['rows']:,} | {base['rows'] / base['wall_s']:,.0f} | {base['peak_rss_mb']:,.0f} MB | {_load(base)} |"
        )
        add("")
        if full:
            ratio = (full["scoredRows"] / full["wall_s"]) / (base["rows"] / base["wall_s"])
            add(
                f"Ratio batch / in-process forecast rows/s: **{ratio:.2f}** (target ≥ {TARGET_RATIO}); "
                f"peak RSS batch / in-process: {full['peak_rss_mb'] / base['peak_rss_mb']:.2f}."
            )
            add("")
        if base.get("same_as_batch"):
            add(f"Batch output file vs in-process `predict` frame, same forecasts: {base['same_as_batch']}.")
            add("")
    sc = res.get("scaling")
    if sc:
        add(f"## Scaling (measured {sc['measured']})")
        add("")
        add("Batch jobs over the first N series of the same data (the largest is the batch run above):")
        add("")
        add(
            "| series | input rows | input bytes | wall s | forecast rows/s | input rows/s | peak RSS | first output byte | load avg |"
        )
        add("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for p in sc["points"]:
            add(
                f"| {p['series']:,} | {p['input_rows']:,} | {p['input_bytes']:,} | {p['wall_s']:.1f} | "
                f"{p['scoredRows'] / p['wall_s']:,.0f} | {p['input_rows'] / p['wall_s']:,.0f} | {p['peak_rss_mb']:,.0f} MB | "
                f"{p['first_output_s']:.2f} s | {_load(p)} |"
            )
        add("")
        if sc.get("plot"):
            add("![time vs rows, log-log](batch_scaling.png)")
            add("")
    for key, title in (
        ("s3", "S3 (moto server on loopback)"),
        ("postgres", "PostgreSQL (local cluster on loopback)"),
    ):
        r = res.get(key)
        if not r:
            continue
        add(f"## {title}" + (f" (measured {r['measured']})" if "measured" in r else ""))
        add("")
        if "skipped" in r:
            add(f"Not measured: {r['skipped']}.")
            add("")
            continue
        if key == "s3":
            add(
                "moto's `ThreadedMotoServer` on 127.0.0.1 in the benchmark's parent process (so its memory is not in the "
                f"job's RSS); the input was uploaded with boto3 first ({r['upload_s']:.1f} s, not counted). Job: intake "
                "`s3://bench/in.csv`, output `s3://bench/out.csv` (multipart upload), `endpointUrl` and a stored credential."
            )
        else:
            add(
                "A throwaway PostgreSQL cluster (`initdb` + `pg_ctl`, fsync off) on 127.0.0.1; table `history` loaded with "
                f"`COPY` first ({r['load_s']:.1f} s, not counted). Job: intake `{{type: jdbc, table: history}}`, output "
                "`{type: jdbc, table: forecasts, statementType: create_table}` through a data store with a "
                "`postgresql+psycopg://` URL."
            )
        add("")
        add(
            "| series | input rows | status | wall s | forecast rows | forecast rows/s | input rows/s | peak RSS | first output | output rows | load avg |"
        )
        add("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        first = f"{r['first_output_s']:.2f} s" if r.get("first_output_s") is not None else "—"
        add(
            f"| {r['series']:,} | {r['input_rows']:,} | {r['status']} | {r['wall_s']:.1f} | {r['scoredRows']:,} | "
            f"{r['scoredRows'] / r['wall_s']:,.0f} | {r['input_rows'] / r['wall_s']:,.0f} | {r['peak_rss_mb']:,.0f} MB | "
            f"{first} | {_count(r.get('output_rows'))} ({_expected(r)}) | {_load(r)} |"
        )
        if r["status"] != "COMPLETED":
            add("")
            add(f"Job ended {r['status']}: {r['statusDetails']}")
        add("")
        add("Time by stage:")
        add("")
        lines.extend(_stage_table(r))
        add("")
    add("## Re-running")
    add("")
    add("```")
    add(
        "python benchmarks/batch.py                          # everything: data + deployment cached in benchmarks/.cache/"
    )
    add(
        "python benchmarks/batch.py --only batch baseline    # some sections; the others are kept from the last run"
    )
    add("python benchmarks/batch.py --series 2000            # a small smoke run (results file of that size)")
    add("```")
    add("")
    add(
        "Flags: `--series` (100,000), `--rows-per-series` (100), `--train-series` (200), `--slice-series` (10,000: the S3 and "
        "PostgreSQL slice), `--scaling 0.1 0.3` (fractions run besides the full batch), `--num-concurrent` (2), "
        "`--only batch|baseline|scaling|s3|postgres`, `--keep-outputs`, `--out`."
    )
    add("")
    return "\n".join(lines)


# ------------------------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--series", type=int, default=100_000, help="series in the full input (default 100,000)"
    )
    parser.add_argument(
        "--rows-per-series", type=int, default=100, help="history rows per series (default 100)"
    )
    parser.add_argument("--train-series", type=int, default=200, help="series the deployment is trained on")
    parser.add_argument("--fdw", type=int, default=28, help="feature derivation window in days (default 28)")
    parser.add_argument(
        "--forecast-window", type=int, nargs=2, default=[1, 28], help="forecast window (default 1 28)"
    )
    parser.add_argument("--slice-series", type=int, default=10_000, help="series of the S3/PostgreSQL slice")
    parser.add_argument("--scaling", type=float, nargs="*", default=[0.1, 0.3], help="fractions besides 1.0")
    parser.add_argument("--num-concurrent", type=int, default=2, help="numConcurrent of the jobs (default 2)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="sections to run")
    parser.add_argument("--keep-outputs", action="store_true", help="keep the output files in the cache")
    parser.add_argument("--out", type=Path, default=None, help="results file (default results/batch.md)")
    args = parser.parse_args()
    started = time.perf_counter()
    data, meta = ensure_data(args.series, args.rows_per_series)
    registry, info = ensure_deployment(args, data)
    fw = info["fw"][1] - info["fw"][0] + 1
    store = CACHE / f"batch-results-{args.series}x{args.rows_per_series}.json"
    res: dict[str, Any] = json.loads(store.read_text()) if store.exists() else {}
    res["data"] = {**meta, "file": data.name}
    stamp = time.strftime("%Y-%m-%d %H:%M %Z")

    version = engine_version()

    def save(key: str, value: dict[str, Any]) -> None:
        value["measured"] = stamp
        value["engine"] = version
        res[key] = value
        store.write_text(json.dumps(res, indent=1))

    if "batch" in args.only:
        log(f"batch: {meta['rows']:,} rows, {meta['bytes'] / 1e9:.2f} GB")
        r = bench_batch(args, registry, data, meta, fw)
        log(
            f"batch: {r['status']} in {r['wall_s']:.1f} s, {r['scoredRows']:,} rows, peak RSS {r['peak_rss_mb']:,.0f} MB, "
            f"first byte {r['first_output_s']} s"
        )
        save("batch", r)
    if "baseline" in args.only:
        log("baseline: read_csv → predict → write_csv")
        r = bench_baseline(args, registry, data, meta)
        log(f"baseline: {r['wall_s']:.1f} s, {r['rows']:,} rows, peak RSS {r['peak_rss_mb']:,.0f} MB")
        save("baseline", r)
    if "scaling" in args.only:
        points = []
        for fraction in sorted(args.scaling):
            n = max(1, round(args.series * fraction))
            part, part_meta = ensure_data(n, args.rows_per_series)
            log(f"scaling: {n:,} series")
            points.append(bench_batch(args, registry, part, part_meta, fw))
        if "batch" in res:
            points.append(res["batch"])
        plotted = plot_scaling(points, RESULTS / "batch_scaling.png") if len(points) > 1 else False
        save("scaling", {"points": points, "plot": plotted})
    slice_data: tuple[Path, dict[str, Any]] | None = None
    if {"s3", "postgres"} & set(args.only):
        slice_data = ensure_data(min(args.slice_series, args.series), args.rows_per_series)
    if "s3" in args.only and slice_data:
        log(f"s3: {slice_data[1]['rows']:,} rows")
        r = bench_s3(args, registry, *slice_data, fw)
        log(f"s3: {r['status']} in {r['wall_s']:.1f} s")
        save("s3", r)
    if "postgres" in args.only and slice_data:
        log(f"postgres: {slice_data[1]['rows']:,} rows")
        r = bench_postgres(args, registry, *slice_data, fw)
        log(f"postgres: {r.get('status', r.get('skipped'))} in {r.get('wall_s', 0):.1f} s")
        save("postgres", r)
    out = args.out or (RESULTS / "batch.md")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out.write_text(markdown(res, info, args))
    log(f"wrote {out} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
