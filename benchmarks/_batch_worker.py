"""One measurement of ``benchmarks/batch.py``, run in its own process.

``python benchmarks/_batch_worker.py '<json>'`` runs one measurement and prints
its result as one JSON line prefixed by ``RESULT``.  Each measurement has a
process of its own, so its peak RSS (``VmHWM``; see :func:`_peak_rss_mb`) is that
measurement's alone.

Modes (``"mode"`` in the JSON):

* ``batch``: one batch job, file (or S3, or PostgreSQL) to file (or S3, or
  PostgreSQL), run in this thread with :meth:`BatchEngine.run_now`.  The engine's
  stage functions are wrapped (not changed) to time them: ``plan_chunks``,
  ``partition``, ``read_chunk``, ``ChunkScorer.score``, the sink's ``write``;
  a sampler thread records RSS every 20 ms and the stage it fell in, and the
  ``.part`` file of a file output is polled for its first byte.
* ``baseline``: one in-process ``Deployment.predict`` over the whole input:
  ``pl.read_csv`` → ``predict`` → ``write_csv``.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import psutil


def _status_mb() -> dict[str, float]:
    """``VmHWM``, ``VmRSS``, ``RssAnon`` and ``RssFile`` of this process, in MB."""
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            name, _, value = line.partition(":")
            if name in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                out[name] = int(value.split()[0]) / 1024.0  # kB
    return out


def _peak_rss_mb() -> float:
    """Peak RSS of this process image: ``VmHWM``.

    ``getrusage(RUSAGE_SELF).ru_maxrss`` is not used as the figure: Linux carries
    it over fork + exec, so a child starts with its parent's high-water mark
    (it is reported beside, as ``ru_maxrss_mb``).
    """
    return _status_mb()["VmHWM"]


def _ru_maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


class _Sampler(threading.Thread):
    """RSS (total, anonymous, file-backed) every ``interval`` s, labelled with the stage the job is in."""

    def __init__(self, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.stage = "start"
        self.peak: dict[str, float] = {}
        self.peak_anon: dict[str, float] = {}
        self.peak_file: dict[str, float] = {}
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            status = _status_mb()
            stage = self.stage
            for peak, key in ((self.peak, "VmRSS"), (self.peak_anon, "RssAnon"), (self.peak_file, "RssFile")):
                if status[key] > peak.get(stage, 0.0):
                    peak[stage] = status[key]
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()


class _Timer:
    """Seconds spent in wrapped functions, by name (summed over threads)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - t0
                with self._lock:
                    self.seconds[name] = self.seconds.get(name, 0.0) + elapsed
                    self.calls[name] = self.calls.get(name, 0) + 1

        return timed


def run_batch(cfg: dict[str, Any]) -> dict[str, Any]:
    """One job; returns timings, counts, memory."""
    import tsengine
    import tsengine.batch.adapters as adapters
    import tsengine.batch.runner as runner_module
    from tsengine.batch import BatchEngine, parse_job_spec

    timer = _Timer()
    sampler = _Sampler()
    for name in ("plan_chunks", "partition", "read_chunk", "normalise_source", "intake_source", "open_sink"):
        original = getattr(runner_module, name)

        def staged(*args: Any, _fn: Any = original, _name: str = name, **kwargs: Any) -> Any:
            if _name in ("plan_chunks", "partition", "intake_source"):
                sampler.stage = _name
            result = timer.wrap(_name, _fn)(*args, **kwargs)
            if _name == "partition":
                sampler.stage = "scoring+writing"
            return result

        setattr(runner_module, name, staged)
    runner_module.ChunkScorer.score = timer.wrap("score (ChunkScorer.score)", runner_module.ChunkScorer.score)
    runner_module.finish = timer.wrap("finish", runner_module.finish)
    adapters.FileSink.write = timer.wrap("sink.write", adapters.FileSink.write)
    if cfg["output"]["type"] == "s3":
        import tsengine.batch.s3 as s3

        s3.S3Sink.write = timer.wrap("sink.write", s3.S3Sink.write)
        s3.S3Sink.commit = timer.wrap("sink.commit", s3.S3Sink.commit)
    if cfg["output"]["type"] == "jdbc":
        import tsengine.batch.sql as sql

        sql.SqlSink.write = timer.wrap("sink.write", sql.SqlSink.write)

    registry = tsengine.Registry(Path(cfg["registry"]))
    engine = BatchEngine(registry, workers=1, folder=Path(cfg["folder"]))
    for credential, secret in cfg.get("credentials", []):
        engine.store.put_credential(credential, secret)
    for store in cfg.get("data_stores", []):
        engine.store.put_data_store(store)
    spec = parse_job_spec(
        {
            "deploymentId": cfg["deployment_id"],
            "numConcurrent": cfg["num_concurrent"],
            "intakeSettings": cfg["intake"],
            "outputSettings": cfg["output"],
            "timeseriesSettings": {"type": "forecast", "relaxKnownInAdvanceFeaturesCheck": True},
        },
        allow_filesystem=True,
    )
    # Load the model before the clock starts, as a running server has it cached.
    engine._deployment(
        cfg["deployment_id"], spec.deployment_version or registry.live_version(cfg["deployment_id"])
    )
    job = engine.create_job(spec)
    load_before = os.getloadavg()[0]
    rss_before = _rss_mb()
    events: list[tuple[float, str, int]] = []
    first_output: dict[str, float] = {}
    t0 = time.perf_counter()

    def listen(doc: dict[str, Any]) -> None:
        now = time.perf_counter() - t0
        size = int(doc.get("jobOutputSize") or 0)
        if size and "listener" not in first_output:
            first_output["listener"] = now
        details = str(doc.get("statusDetails"))
        if not events or events[-1][1] != details:
            events.append((now, details, size))

    engine.listen(job["id"], listen)
    stop_poll = threading.Event()
    part = None
    if cfg["output"]["type"] == "filesystem":
        final = Path(cfg["output"]["path"])
        part = final.with_name(final.name + ".part")

        def poll() -> None:
            while not stop_poll.is_set():
                try:
                    if part is not None and part.stat().st_size > 0:
                        first_output["part_file"] = time.perf_counter() - t0
                        return
                except FileNotFoundError:
                    pass
                stop_poll.wait(0.002)

        threading.Thread(target=poll, daemon=True).start()
    sampler.start()
    done = engine.run_now(job["id"])
    wall = time.perf_counter() - t0
    stop_poll.set()
    sampler.stop()
    stages = [
        {"t": t, "details": d, "output_bytes": s} for t, d, s in events if not d.startswith("Scored chunk")
    ]
    chunk_events = [t for t, d, _ in events if d.startswith("Scored chunk")]
    return {
        "mode": "batch",
        "status": done["status"],
        "statusDetails": done["statusDetails"],
        "scoredRows": done["scoredRows"],
        "failedRows": done["failedRows"],
        "skippedRows": done["skippedRows"],
        "jobIntakeSize": done.get("jobIntakeSize"),
        "jobOutputSize": done.get("jobOutputSize"),
        "wall_s": wall,
        "first_output_s": first_output.get("part_file", first_output.get("listener")),
        "first_output_listener_s": first_output.get("listener"),
        "chunks_written": len(chunk_events),
        "stages": stages,
        "last_chunk_s": chunk_events[-1] if chunk_events else None,
        "timers": timer.seconds,
        "calls": timer.calls,
        "rss_before_mb": rss_before,
        "rss_peak_by_stage_mb": sampler.peak,
        "anon_peak_by_stage_mb": sampler.peak_anon,
        "file_peak_by_stage_mb": sampler.peak_file,
        "peak_rss_mb": _peak_rss_mb(),
        "ru_maxrss_mb": _ru_maxrss_mb(),
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
    }


def run_baseline(cfg: dict[str, Any]) -> dict[str, Any]:
    """``read_csv`` → ``Deployment.predict`` → ``write_csv`` over the whole input."""
    import tsengine

    registry = tsengine.Registry(Path(cfg["registry"]))
    dep = registry.load(cfg["deployment_id"])
    load_before = os.getloadavg()[0]
    rss_before = _rss_mb()
    sampler = _Sampler()
    sampler.start()
    t0 = time.perf_counter()
    sampler.stage = "read_csv"
    frame = pl.read_csv(cfg["input"], schema_overrides=dep.input_schema_overrides(), infer_schema_length=None)
    t1 = time.perf_counter()
    sampler.stage = "predict"
    forecast = dep.predict(frame, relax_known_in_advance=True)
    t2 = time.perf_counter()
    sampler.stage = "write_csv"
    forecast.write_csv(cfg["output"])
    t3 = time.perf_counter()
    sampler.stop()
    return {
        "mode": "baseline",
        "input_rows": frame.height,
        "rows": forecast.height,
        "read_s": t1 - t0,
        "predict_s": t2 - t1,
        "write_s": t3 - t2,
        "wall_s": t3 - t0,
        "output_bytes": os.path.getsize(cfg["output"]),
        "rss_before_mb": rss_before,
        "rss_peak_by_stage_mb": sampler.peak,
        "anon_peak_by_stage_mb": sampler.peak_anon,
        "file_peak_by_stage_mb": sampler.peak_file,
        "peak_rss_mb": _peak_rss_mb(),
        "ru_maxrss_mb": _ru_maxrss_mb(),
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
    }


def main() -> None:
    cfg = json.loads(sys.argv[1])
    if cfg["mode"] == "batch":
        result = run_batch(cfg)
    elif cfg["mode"] == "baseline":
        result = run_baseline(cfg)
    else:
        msg = f"unknown mode {cfg['mode']!r}"
        raise SystemExit(msg)
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
