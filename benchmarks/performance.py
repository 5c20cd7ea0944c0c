"""Latency, throughput, memory, scaling and concurrency of tsengine's prediction path.

Run ``python benchmarks/performance.py`` (``nox -s bench``); ``--quick`` for a smoke
run of every section in a couple of minutes.  It trains a LightGBM deployment on
daily series tiled from ``fixtures/flights_daily.csv`` (see ``_data.py``), starts the
real server (``tsengine serve``) on loopback and drives it with httpx over
keep-alive, measures the core in-process, and compares with baselines measured in
the same run (mlforecast, FastAPI's default JSON path, naive pandas features).
Results go to ``benchmarks/results/performance.md`` and two scaling plots.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import itertools
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import _baselines
import _data
import _report
import _server
import httpx
import numpy as np
import polars as pl
from _measure import post_many, repeat, stats

from api.app import _predict_and_render
from api.parsing import Payload
from tsengine import Registry, train
from tsengine.options import PredictOptions

RESULTS = Path(__file__).resolve().parent / "results"
DEPLOYMENT_ID = "bench"
PREDICT_PATH = f"/predApi/v1.0/deployments/{DEPLOYMENT_ID}/predictions"
HISTORY_ROWS = 100
JEMALLOC_CONF = "_RJEM_MALLOC_CONF"
PROMPT_PURGE = "dirty_decay_ms:0,muzzy_decay_ms:0"
"""polars' jemalloc returning freed pages at once (its default keeps them for seconds), the operator knob in docs/http.md."""


@dataclasses.dataclass(frozen=True)
class Config:
    """Sizes and budgets; ``--quick`` shrinks every one of them."""

    quick: bool
    duration: float
    train_series: int
    big_series: int
    single_n: int
    big_n: int
    budget: float
    scaling_series: tuple[int, ...]
    scaling_history: tuple[int, ...]
    history_series: int
    scaling_repeats: int
    clients: tuple[int, ...]
    memory_series: tuple[int, ...]

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Config:
        if args.quick:
            return cls(
                quick=True,
                duration=args.duration if args.duration_given else 12.0,
                train_series=min(args.series, 120),
                big_series=args.series,
                single_n=300,
                big_n=5,
                budget=3.0,
                scaling_series=(1, 10, 100, 1000),
                scaling_history=(28, 56, 100, 200, 365),
                history_series=100,
                scaling_repeats=3,
                clients=(1, 4, 8),
                memory_series=(args.series,),
            )
        return cls(
            quick=False,
            duration=args.duration,
            train_series=args.series,
            big_series=args.series,
            single_n=2000,
            big_n=30,
            budget=30.0,
            scaling_series=(1, 10, 100, 1000, 3000, 10_000),
            scaling_history=(28, 56, 100, 200, 365),
            history_series=1000,
            scaling_repeats=10,
            clients=(1, 2, 4, 8, 16),
            memory_series=(args.series, 10_000),
        )


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ----------------------------------------------------------------------------- setup


def train_deployment(
    cfg: Config, full: pl.DataFrame, registry: Path, cache: Path | None
) -> tuple[Any, float | None]:
    """Train the LightGBM deployment on the first ``train_series`` series; save it.

    With ``cache`` (``--registry-cache``), a deployment trained by an earlier run on
    the same number of series is reused (training time then reads None).
    """
    cached = cache / f"series-{cfg.train_series}" if cache else None
    if cached is not None and Registry(cached).exists(DEPLOYMENT_ID):
        deployment = Registry(cached).load(DEPLOYMENT_ID)
        Registry(registry).save(deployment)
        return deployment, None
    data = _data.history_tail(full, 365, series=cfg.train_series)
    t0 = time.perf_counter()
    deployment = train(
        data,
        target=_data.TARGET_COL,
        datetime_column=_data.DATETIME_COL,
        series_id_column=_data.SERIES_COL,
        models=["lightgbm"],
        deployment_id=DEPLOYMENT_ID,
        backtests=1,  # serving speed does not depend on the leaderboard; keeps setup short
    )
    seconds = time.perf_counter() - t0
    Registry(registry).save(deployment)
    if cached is not None:
        Registry(cached).save(deployment)
    return deployment, seconds


def single_bodies(full: pl.DataFrame, count: int = 50) -> list[bytes]:
    """One-series requests (100 history rows each) for ``count`` different series."""
    tail = _data.history_tail(full, HISTORY_ROWS, series=count)
    return [_data.to_csv_bytes(g) for _, g in tail.group_by(_data.SERIES_COL, maintain_order=True)]


# ------------------------------------------------------------------------ in-process


def bench_in_process(cfg: Config, dep: Any, bodies: list[bytes], big: bytes) -> dict[str, Any]:
    """The core without HTTP: parse → predict → render, and LightGBM scoring alone."""
    out: dict[str, Any] = {}
    options = PredictOptions()
    payload = Payload(bodies[0], "text/csv")
    out["single_csv"] = stats(
        repeat(lambda: _predict_and_render(dep, payload, options, "csv"), n=cfg.single_n, budget=cfg.budget)
    )
    out["single_json"] = stats(
        repeat(lambda: _predict_and_render(dep, payload, options, "json"), n=cfg.single_n, budget=cfg.budget)
    )
    big_payload = Payload(big, "text/csv")
    out["big_csv"] = stats(
        repeat(lambda: _predict_and_render(dep, big_payload, options, "csv"), n=cfg.big_n, budget=cfg.budget)
    )
    # Scoring throughput: the booster on the design matrix of the big request.
    frame = pl.read_csv(big, schema_overrides=dep.input_schema_overrides())
    window = dep.window(frame, options)
    design = dep.model.design(window.history, window.query, dep.spec)
    booster = dep.model._booster
    rows = design.x.shape[0]
    for threads in (1, 2):
        times = repeat(
            lambda t=threads: booster.predict(design.x, num_threads=t), n=cfg.big_n, budget=cfg.budget
        )
        out[f"score_rows_s_{threads}"] = rows / float(np.median(times))
    out["predict_result_big"] = stats(
        repeat(lambda: dep.predict_result(frame, options), n=cfg.big_n, budget=cfg.budget)
    )
    out["design_big"] = stats(
        repeat(
            lambda: dep.model.design(window.history, window.query, dep.spec), n=cfg.big_n, budget=cfg.budget
        )
    )
    out["score_rows"] = rows
    out["design"] = design
    out["window"] = window
    out["big_frame"] = frame
    return out


def bench_baselines(
    cfg: Config, dep: Any, full: pl.DataFrame, big_history: pl.DataFrame, inproc: dict[str, Any]
) -> dict[str, Any]:
    """mlforecast predict, naive pandas features, FastAPI default JSON: same data, same run."""
    out: dict[str, Any] = {}
    trees, leaves = _baselines.booster_size(dep.model._booster)
    out["trees"], out["leaves"] = trees, leaves
    train_data = _data.history_tail(full, 365, series=cfg.train_series)
    t0 = time.perf_counter()
    mlf = _baselines.fit_mlforecast(train_data, n_estimators=trees, num_leaves=leaves)
    out["mlf_fit_s"] = time.perf_counter() - t0
    new_df = _baselines.to_mlforecast_frame(big_history)
    forecast = mlf.predict(_data.HORIZON, new_df=new_df)
    out["mlf_rows"] = len(forecast)
    out["mlf_predict"] = stats(
        repeat(lambda: mlf.predict(_data.HORIZON, new_df=new_df), n=cfg.big_n, budget=cfg.budget, warmup=1)
    )
    # FastAPI's default JSON vs the orjson renderer, in-process, on the big request's rows.
    frame = inproc["big_frame"]
    options = PredictOptions()
    result = dep.predict_result(frame, options)
    from tsengine import render

    ours = render.to_json(dep, result, frame, options)
    theirs = _baselines.default_json(dep, result)
    out["json_same"] = _json_equal(ours, theirs)
    out["render_orjson"] = stats(
        repeat(lambda: render.to_json(dep, result, frame, options), n=cfg.big_n, budget=cfg.budget)
    )
    out["render_default"] = stats(
        repeat(lambda: _baselines.default_json(dep, result), n=cfg.big_n, budget=cfg.budget)
    )
    # Naive pandas features on a slice (it is slow), checked against build_design.
    window = inproc["window"]
    n_naive = 10 if cfg.quick else 100
    sids = window.query.get_column("__sid").unique(maintain_order=True).head(n_naive)
    query = window.query.filter(pl.col("__sid").is_in(sids.implode()))
    history = window.history.filter(pl.col("__sid").is_in(sids.implode()))
    model = dep.model
    t0 = time.perf_counter()
    naive = _baselines.naive_design(history, query, model.plan, model, dep.spec.time_step)
    out["naive_s"] = time.perf_counter() - t0
    ours_x = model.design(history, query, dep.spec).x
    out["naive_rows"] = naive.shape[0]
    out["naive_match"] = bool(
        naive.shape == ours_x.shape and np.allclose(naive, ours_x, equal_nan=True, rtol=1e-9, atol=1e-9)
    )
    out["naive_max_diff"] = (
        float(np.nanmax(np.abs(naive - ours_x))) if naive.shape == ours_x.shape else float("nan")
    )
    out["design_slice"] = stats(
        repeat(lambda: model.design(history, query, dep.spec), n=cfg.big_n, budget=cfg.budget)
    )
    return out


def _json_equal(a: bytes, b: bytes) -> bool:
    import orjson

    return bool(orjson.loads(a) == orjson.loads(b))


# ---------------------------------------------------------------------------- server


def bench_http(cfg: Config, registry: Path, bodies: list[bytes], big: bytes, logs: Path) -> dict[str, Any]:
    """Single-series and big requests against ``tsengine serve`` over keep-alive."""
    out: dict[str, Any] = {}
    port = _server.free_port()
    with _server.start_server(
        _server.tsengine_command(registry, port), port=port, log=logs / "serve.log"
    ) as srv:
        url = srv.url + PREDICT_PATH
        with httpx.Client(timeout=120.0) as client:
            out["idle_rss_cold"] = srv.rss()
            for accept in ("application/json", "text/csv"):
                sample = post_many(client, url, bodies, accept=accept, n=cfg.single_n, budget=cfg.budget)
                out[f"single_{accept}"] = sample
            out["big"] = post_many(
                client, url, [big], accept="text/csv", n=cfg.big_n, budget=cfg.budget, warmup=1
            )
            out["big_json"] = post_many(
                client, url, [big], accept="application/json", n=cfg.big_n, budget=cfg.budget, warmup=1
            )
    return out


PINNED_ROUNDS = 5


def bench_pinned(cfg: Config, registry: Path, bodies: list[bytes], logs: Path) -> Any:
    """One-series requests with the server on core 0 and this client on core 1, in rounds.

    A client posting from another machine takes no CPU from the server; on one
    2-core box, unpinned, the load generator and the server contend for the
    same cores and the server's span includes waits for the client's turn.
    Pinning each to its own core measures the server alone.

    The same code measured 1.6 to 2.6 ms p50 from one minute to the next on
    this shared VM, so one run is one draw: :data:`PINNED_ROUNDS` rounds, each
    with a fresh server, give a median and a range.  None with fewer than two
    cores or without ``taskset``.
    """
    if (os.cpu_count() or 1) < 2 or shutil.which("taskset") is None:
        return None
    rounds = []
    for k in range(PINNED_ROUNDS):
        port = _server.free_port()
        command = ["taskset", "-c", "0", *_server.tsengine_command(registry, port)]
        mask = os.sched_getaffinity(0)
        with _server.start_server(command, port=port, log=logs / f"serve-pinned-{k}.log") as srv:
            os.sched_setaffinity(0, {1})
            try:
                with httpx.Client(timeout=120.0) as client:
                    rounds.append(
                        post_many(
                            client,
                            srv.url + PREDICT_PATH,
                            bodies,
                            accept="text/csv",
                            n=max(cfg.single_n // PINNED_ROUNDS, 100),
                            budget=cfg.budget / PINNED_ROUNDS,
                        )
                    )
            finally:
                os.sched_setaffinity(0, mask)
    return rounds


def bench_json_baseline(cfg: Config, registry: Path, big: bytes, logs: Path) -> dict[str, Any]:
    """The big request, JSON out, against the FastAPI default-JSON app."""
    port = _server.free_port()
    command = _server.baseline_command(registry, DEPLOYMENT_ID, port)
    with (
        _server.start_server(command, port=port, log=logs / "baseline.log") as srv,
        httpx.Client(timeout=120.0) as client,
    ):
        url = srv.url + PREDICT_PATH
        headers = {"Content-Type": "text/csv", "Accept": "application/json"}
        for _ in range(1):
            client.post(url, content=big, headers=headers).raise_for_status()
        times = []
        deadline = time.perf_counter() + cfg.budget
        while len(times) < cfg.big_n and (not times or time.perf_counter() < deadline):
            t0 = time.perf_counter()
            r = client.post(url, content=big, headers=headers)
            times.append(time.perf_counter() - t0)
            r.raise_for_status()
    return {"e2e": stats(times), "bytes": len(r.content)}


def bench_memory(
    cfg: Config, registry: Path, full: pl.DataFrame, small: bytes, logs: Path
) -> list[dict[str, Any]]:
    """Peak server RSS during one big request, in a fresh server per size (warmed up)."""
    rows = []
    warmup = _data.to_csv_bytes(_data.history_tail(full, HISTORY_ROWS, series=30))  # > 64 KiB
    for n_series, allocator in itertools.product(cfg.memory_series, (None, PROMPT_PURGE)):
        body = _data.to_csv_bytes(_data.history_tail(full, HISTORY_ROWS, series=n_series))
        decoded = pl.read_csv(body).estimated_size()
        port = _server.free_port()
        env = {JEMALLOC_CONF: allocator} if allocator else None
        with (
            _server.start_server(
                _server.tsengine_command(registry, port), port=port, log=logs / "memory.log", env=env
            ) as srv,
            httpx.Client(timeout=300.0) as client,
        ):
            url = srv.url + PREDICT_PATH
            # Warm up every code path the big request takes, not its size: a one-series body
            # takes the small-CSV reader (tsengine/small_csv.py), so polars' CSV reader would
            # first start (thread pool, buffers) inside the measured request.
            for warm in (small, warmup):
                client.post(url, content=warm, headers={"Content-Type": "text/csv"}).raise_for_status()
            time.sleep(0.5)
            before = srv.rss()
            with _server.RssSampler(srv.pid, interval=0.002) as sampler:
                r = client.post(url, content=body, headers={"Content-Type": "text/csv", "Accept": "text/csv"})
                r.raise_for_status()
            # The same request again: what a server that has answered one of this size adds.
            time.sleep(0.5)
            again_before = srv.rss()
            with _server.RssSampler(srv.pid, interval=0.002) as again:
                client.post(
                    url, content=body, headers={"Content-Type": "text/csv", "Accept": "text/csv"}
                ).raise_for_status()
            rows.append(
                {
                    "series": n_series,
                    "allocator": allocator,
                    "body_bytes": len(body),
                    "frame_bytes": decoded,
                    "before": before,
                    "peak": sampler.peak,
                    "delta": sampler.peak - before,
                    "again_delta": again.peak - again_before,
                    "samples": len(sampler.samples),
                }
            )
    return rows


def bench_idle_cache(dep: Any, tmp: Path, small: bytes, logs: Path) -> dict[str, Any]:
    """Idle RSS of a server holding 16 deployments in its model cache."""
    registry = tmp / "registry16"
    store = Registry(registry)
    ids = [f"bench{i:02d}" for i in range(16)]
    for id_ in ids:
        store.save(dataclasses.replace(dep, id=id_))
    port = _server.free_port()
    with (
        _server.start_server(
            _server.tsengine_command(registry, port), port=port, log=logs / "idle.log"
        ) as srv,
        httpx.Client(timeout=60.0) as client,
    ):
        time.sleep(1.0)
        empty = srv.rss()
        for id_ in ids:
            client.post(
                f"{srv.url}/predApi/v1.0/deployments/{id_}/predictions",
                content=small,
                headers={"Content-Type": "text/csv"},
            ).raise_for_status()
        time.sleep(1.0)
        full = srv.rss()
        model_bytes = (registry / ids[0] / "v0001" / "model.bin").stat().st_size
    return {"empty": empty, "cached16": full, "model_file_bytes": model_bytes}


def bench_scaling(
    cfg: Config, registry: Path, full: pl.DataFrame, logs: Path
) -> dict[str, list[dict[str, Any]]]:
    """End-to-end time vs number of series (100 rows each) and vs history length."""
    series_rows, history_rows = [], []
    port = _server.free_port()
    with (
        _server.start_server(
            _server.tsengine_command(registry, port), port=port, log=logs / "scaling.log"
        ) as srv,
        httpx.Client(timeout=600.0) as client,
    ):
        url = srv.url + PREDICT_PATH
        for n in cfg.scaling_series:
            body = _data.to_csv_bytes(_data.history_tail(full, HISTORY_ROWS, series=n))
            repeats = max(2, cfg.scaling_repeats // (1 + n // 2000))
            s = post_many(client, url, [body], accept="text/csv", n=repeats, budget=cfg.budget * 2, warmup=1)
            series_rows.append(_scaling_row(n, HISTORY_ROWS, body, s))
            log(f"  scaling: {n} series: p50 {series_rows[-1]['e2e'].p50:.1f} ms")
        for h in cfg.scaling_history:
            body = _data.to_csv_bytes(_data.history_tail(full, h, series=cfg.history_series))
            s = post_many(
                client, url, [body], accept="text/csv", n=cfg.scaling_repeats, budget=cfg.budget * 2, warmup=1
            )
            history_rows.append(_scaling_row(cfg.history_series, h, body, s))
            log(f"  scaling: history {h}: p50 {history_rows[-1]['e2e'].p50:.1f} ms")
    return {"series": series_rows, "history": history_rows}


def _scaling_row(n_series: int, history: int, body: bytes, sample: Any) -> dict[str, Any]:
    e2e = stats(sample.e2e)
    return {
        "series": n_series,
        "history": history,
        "body_bytes": len(body),
        "e2e": e2e,
        "server": stats(sample.server),
        "forecast_rows_s": n_series * _data.HORIZON / (e2e.p50 / 1000.0),
    }


def bench_concurrency(cfg: Config, registry: Path, bodies: list[bytes], logs: Path) -> dict[str, Any]:
    """N client threads (own keep-alive connection each) against ``--workers 2``."""
    port = _server.free_port()
    levels: list[dict[str, Any]] = []
    per_level = cfg.duration / len(cfg.clients)
    command = _server.tsengine_command(registry, port, workers=2)
    with _server.start_server(command, port=port, log=logs / "concurrency.log") as srv:
        url = srv.url + PREDICT_PATH
        # Warm both workers' model caches: a keep-alive connection stays on one
        # worker, so several connections at once reach both.
        _load(url, bodies, 4, 3.0)
        rss_start = srv.rss()
        with _server.RssSampler(srv.pid, interval=0.5) as sampler:
            for n in cfg.clients:
                levels.append(_load(url, bodies, n, per_level))
                log(
                    f"  concurrency {n}: {levels[-1]['rps']:.0f} req/s, p99 {levels[-1]['lat'].p99:.1f} ms, errors {levels[-1]['errors']}"
                )
        rss = [r for _, r in sampler.samples]
    return {
        "levels": levels,
        "rss_start": rss_start,
        "rss_peak": max(rss),
        "rss_end": rss[-1],
        "rss_samples": len(rss),
        "per_level_s": per_level,
    }


def _load(url: str, bodies: list[bytes], clients: int, seconds: float) -> dict[str, Any]:
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    start = threading.Barrier(clients + 1)
    stop_at: list[float] = []

    def worker(k: int) -> None:
        with httpx.Client(timeout=60.0) as client:
            start.wait()
            i = k
            while time.perf_counter() < stop_at[0]:
                body = bodies[i % len(bodies)]
                i += clients
                t0 = time.perf_counter()
                try:
                    r = client.post(
                        url, content=body, headers={"Content-Type": "text/csv", "Accept": "text/csv"}
                    )
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies[k].append(time.perf_counter() - t0)
                errors[k] += not ok

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    stop_at.append(time.perf_counter() + seconds)
    t0 = time.perf_counter()
    start.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    flat = [x for lat in latencies for x in lat]
    return {
        "clients": clients,
        "requests": len(flat),
        "errors": sum(errors),
        "rps": len(flat) / elapsed,
        "rows_s": len(flat) * _data.HORIZON / elapsed,
        "lat": stats(flat),
    }


# --------------------------------------------------------------------------- profile


def profile(cfg: Config, dep: Any, bodies: list[bytes], big: bytes) -> dict[str, str]:
    """pyinstrument text profiles of the single-series and the big request, in-process."""
    from pyinstrument import Profiler

    options = PredictOptions()
    texts = {}
    for name, body, reps in (
        ("single", bodies[0], 100 if cfg.quick else 500),
        ("1000", big, 3 if cfg.quick else 10),
    ):
        payload = Payload(body, "text/csv")
        _predict_and_render(dep, payload, options, "csv")
        profiler = Profiler(interval=0.0002)
        profiler.start()
        for _ in range(reps):
            _predict_and_render(dep, payload, options, "csv")
        profiler.stop()
        text = profiler.output_text(unicode=False, color=False, show_all=False, short_mode=False)
        path = RESULTS / f"profile_{name}.txt"
        header = f"# pyinstrument, in-process: api.app._predict_and_render (parse CSV -> predict -> render CSV) x {reps}\n"
        path.write_text(header + text)
        texts[name] = str(path)
    return texts


# ------------------------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smoke run of every section (~2-3 minutes)")
    parser.add_argument(
        "--duration", type=float, default=None, help="seconds of the concurrency run (default 60)"
    )
    parser.add_argument("--series", type=int, default=1000, help="series in the big request (default 1000)")
    parser.add_argument(
        "--registry-cache",
        type=Path,
        default=None,
        help="reuse a deployment trained by an earlier run (default: train anew)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "performance.md", help="results file")
    args, _unknown = parser.parse_known_args()  # nox passes its posargs to both benchmarks
    args.duration_given = args.duration is not None
    args.duration = 60.0 if args.duration is None else args.duration
    cfg = Config.from_args(args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: dict[str, Any] = {
        "config": cfg,
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "load_at_start": os.getloadavg(),
    }

    with tempfile.TemporaryDirectory(prefix="tsengine-bench-") as tmp_name:
        tmp = Path(tmp_name)
        logs = tmp / "logs"
        registry = tmp / "registry"
        n_full = max(cfg.big_series, *cfg.scaling_series, *cfg.memory_series)
        full = _data.tiled_daily(n_full)
        log(f"dataset: {full.height:,} rows, {n_full:,} series; training on {cfg.train_series} series")
        dep, results["train_s"] = train_deployment(cfg, full, registry, args.registry_cache)
        log(
            f"deployment ready (training {results['train_s'] or 0:.1f} s): {dep.model.describe()['rounds']} rounds"
        )
        bodies = single_bodies(full)
        big_history = _data.history_tail(full, HISTORY_ROWS, series=cfg.big_series)
        big = _data.to_csv_bytes(big_history)
        results["big_bytes"] = len(big)

        log("in-process core")
        results["inproc"] = bench_in_process(cfg, dep, bodies, big)
        log("baselines: mlforecast, FastAPI default JSON, naive pandas features")
        results["baselines"] = bench_baselines(cfg, dep, full, big_history, results["inproc"])
        log("HTTP: tsengine serve")
        results["http"] = bench_http(cfg, registry, bodies, big, logs)
        log("one-series latency, server and client on their own cores")
        results["pinned"] = bench_pinned(cfg, registry, bodies, logs)
        log("HTTP: FastAPI default-JSON baseline app")
        results["json_baseline"] = bench_json_baseline(cfg, registry, big, logs)
        log("memory per request")
        results["memory"] = bench_memory(cfg, registry, full, bodies[0], logs)
        log("idle RSS with 16 cached deployments")
        results["idle"] = bench_idle_cache(dep, tmp, bodies[0], logs)
        log("scaling")
        results["scaling"] = bench_scaling(cfg, registry, full, logs)
        log(f"concurrency ({cfg.duration:.0f} s, --workers 2)")
        results["concurrency"] = bench_concurrency(cfg, registry, bodies, logs)
        log("profiles")
        results["profiles"] = profile(cfg, dep, bodies, big)

    results["elapsed_s"] = time.perf_counter() - started
    _report.plot_scaling(results["scaling"], RESULTS)
    text = _report.markdown(results)
    args.out.write_text(text)
    buffer = io.StringIO(text)
    print(buffer.getvalue())
    log(f"wrote {args.out} in {results['elapsed_s']:.0f} s")


if __name__ == "__main__":
    main()
