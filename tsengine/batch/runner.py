"""Running one batch job: read the intake, plan chunks, score them, write the output.

A mixin of :class:`~tsengine.batch.engine.BatchEngine`, apart from the queue
that feeds it.  Inside a job ``numConcurrent`` chunks are scored at once and
written in input order (at most ``2 × numConcurrent`` in flight), so memory
holds a bounded number of chunks whatever the input size.  The runner checks
for a cancel or a shutdown between chunks, and every failure ends the job
with a reason in ``statusDetails`` instead of escaping the worker thread.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import polars as pl

from tsengine.batch.adapters import AdapterContext, Sink, intake_source, open_sink, remove_folder
from tsengine.batch.chunks import Chunk, normalise_source, partition, plan_chunks, read_chunk
from tsengine.batch.engine_base import EngineBase
from tsengine.batch.score import ChunkResult, ChunkScorer, finish
from tsengine.batch.spec import JobSpec, parse_job_spec, relative_forecast_point
from tsengine.batch.store import utc_now
from tsengine.errors import ParameterError, TsEngineError
from tsengine.nowcast import next_forecast_point

__all__ = ["CANCELLED", "DONE", "SHUT_DOWN", "JobRunner"]

logger = logging.getLogger("tsengine.batch")

DONE = "Job done"
CANCELLED = "Job cancelled by user"
# Warnings kept in a job's log: each chunk words its own (its series, its counts),
# and a job of thousands of chunks must not bury the log.
MAX_NOTES = 10


class _Aborted(Exception):
    """The job was cancelled between chunks."""


class _ShutDown(Exception):
    """The engine is stopping (server shutdown) between chunks."""


SHUT_DOWN = (
    "The server shut down while this job was running; its partial output was discarded. "
    "Run it again (e.g. POST batchPredictions/fromExisting/)."
)


class JobRunner(EngineBase):
    """The part of the engine that runs a claimed job to its end."""

    def _deployment(self, deployment_id: str, version: str | None) -> Any:
        key = (deployment_id, version)
        with self._lock:
            cached = self._deployments.get(key)
        if cached is None:
            cached = self.registry.load(deployment_id, version=version)
            with self._lock:
                if len(self._deployments) >= 4:
                    self._deployments.pop(next(iter(self._deployments)))
                self._deployments[key] = cached
        return cached

    def _run(self, job_id: str) -> None:
        with self._lock:
            self._running.add(job_id)
        sink: Sink | None = None
        started = time.time()
        try:
            doc = self.store.job(job_id)
            if doc["_abortRequested"]:
                raise _Aborted
            spec = parse_job_spec(doc["jobSpec"], allow_filesystem=True)
            folder = self.job_folder(job_id)
            folder.mkdir(parents=True, exist_ok=True)
            self._update(
                job_id, status="RUNNING", statusDetails="Reading the input", queued=False, _startedTs=started
            )
            ctx = AdapterContext(job_id, folder, self.store)
            deployment = self._deployment(spec.deployment_id, spec.deployment_version)
            if spec.prediction_threshold is not None and getattr(deployment, "task", None) == "binary":
                deployment = replace(deployment, threshold=spec.prediction_threshold)
            source = normalise_source(intake_source(spec.intake, spec.csv, ctx), folder)
            self._update(job_id, jobIntakeSize=source.path.stat().st_size, statusDetails="Planning chunks")
            chunks, forecast_point, total = self._plan(job_id, spec, deployment, source, folder)
            options = spec.predict_options(forecast_point=forecast_point)
            scorer = ChunkScorer(deployment, spec, options, observe=self._observer(job_id, spec, deployment))
            sink = open_sink(spec.output, spec.csv, ctx)
            self._update(job_id, _downloadReady=True, statusDetails=f"Scoring {len(chunks)} chunks")
            counts = self._score(job_id, spec, deployment, scorer, chunks, sink, total)
            sink.commit()
            sink_bytes = sink.bytes_written
            sink = None
            remove_folder(folder / "chunks")
            self._finish(
                job_id,
                "COMPLETED",
                DONE
                if not counts["errors"]
                else f"Job done; {counts['failedRows']} rows failed: {counts['errors'][0]}",
                notes=_notes(tuple(counts["warnings"])),
                percentageCompleted=100.0,
                jobOutputSize=sink_bytes,
                scoredRows=counts["scoredRows"],
                failedRows=counts["failedRows"],
                skippedRows=counts["skippedRows"],
            )
        except _Aborted:
            self._finish(job_id, "ABORTED", CANCELLED)
        except _ShutDown:
            self._finish(job_id, "FAILED", SHUT_DOWN)
        except TsEngineError as exc:
            self._finish(job_id, "FAILED", exc.message)
        except Exception as exc:
            logger.exception("batch job %s failed", job_id)
            self._finish(job_id, "FAILED", f"internal error ({type(exc).__name__}): {exc}")
        finally:
            if sink is not None:
                sink.abort()
            with self._lock:
                self._running.discard(job_id)
            self._listeners.pop(job_id, None)

    def _observer(
        self, job_id: str, spec: JobSpec, deployment: Any
    ) -> Callable[[pl.DataFrame, pl.DataFrame], None] | None:
        """What feeds the prediction log from a job's chunks (None: no monitor, or skipped)."""
        monitor = self.monitor
        if monitor is None or spec.skip_drift_tracking:
            return None

        def observe(rows: pl.DataFrame, inputs: pl.DataFrame) -> None:
            monitor.record_prediction(
                deployment,
                rows,
                inputs,
                created=time.time(),
                request_id=job_id,
                source="batch",
                version=spec.deployment_version,
                association=monitor.association_column(deployment, inputs),
            )

        return observe

    def _plan(
        self, job_id: str, spec: JobSpec, deployment: Any, source: Any, folder: Path
    ) -> tuple[list[Chunk], dt.datetime | None, int]:
        ts = getattr(deployment, "kind", "timeseries") == "timeseries"
        overrides = deployment.input_schema_overrides()
        series_column = deployment.spec.series_id_column if ts else None
        integer_ids = ts and deployment.spec.series_id_type == "int"
        infer = None
        relative = None
        offset = spec.timeseries.forecast_point_offset
        if ts and not spec.timeseries.is_historical and spec.timeseries.forecast_point is None:
            if offset is not None:  # forecastPointPolicy: the run's start plus the offset
                relative = relative_forecast_point(deployment.spec.time_step, run_start(), offset)
                line = (
                    f"forecastPointPolicy: forecast point {relative.isoformat()} "
                    f"(the run's start plus {offset}, floored to the grid)"
                )
                self._update(
                    job_id, logs=[*self.store.job(job_id).get("logs", []), f"{utc_now()} INFO: {line}"]
                )
            else:
                infer = (
                    deployment.spec.datetime_column,
                    deployment.spec.target,
                    deployment.spec.datetime_format,
                )
        plan = plan_chunks(
            source,
            overrides=overrides,
            chunk_bytes=spec.chunk_size,
            series_column=series_column or None,
            integer_ids=integer_ids,
            single_series=ts and not series_column,
            infer_forecast_point=infer,
            folder=folder / "blocks",
        )
        missing = [c for c in spec.passthrough_columns if c not in plan.schema]
        if missing:
            msg = f"passthroughColumns: the input has no column {missing[0]!r}; its columns are {list(plan.schema)[:12]}"
            raise ParameterError(msg)
        chunks = partition(
            plan, folder / "chunks", series_column=series_column or None, integer_ids=integer_ids
        )
        self._update(job_id, intakeRows=plan.rows, intakeSeries=plan.series)
        # A nowcast's inferred forecast point is the step after the latest target (tsengine.nowcast).
        forecast_point = (
            next_forecast_point(deployment.spec, plan.forecast_point) if infer else plan.forecast_point
        )
        return chunks, relative or forecast_point, plan.rows

    def _score(
        self,
        job_id: str,
        spec: JobSpec,
        deployment: Any,
        scorer: ChunkScorer,
        chunks: list[Chunk],
        sink: Sink,
        total: int,
    ) -> dict[str, Any]:
        counts: dict[str, Any] = {
            "scoredRows": 0,
            "failedRows": 0,
            "skippedRows": 0,
            "errors": [],
            "warnings": {},  # insertion-ordered, each the core's warning once however many chunks gave it
        }
        series_done = 0
        columns: pl.Schema | None = None
        held: list[pl.DataFrame] = []  # failed-only chunks before the first scored one
        done_rows = 0
        results = (
            self._ordered_on_cluster(chunks, scorer)
            if self.dask is not None
            else self._ordered(spec.num_concurrent, chunks, scorer)
        )
        for chunk, result in results:
            if self.store.abort_requested(job_id):
                raise _Aborted
            if self._stop.is_set():
                raise _ShutDown
            counts["scoredRows"] += result.scored
            counts["failedRows"] += result.failed
            counts["skippedRows"] += result.skipped
            counts["errors"].extend(result.errors)
            counts["warnings"].update(dict.fromkeys(result.warnings))
            frame = result.frame
            if columns is None and result.scored:
                columns = frame.schema
                for early in held:
                    sink.write(finish(_align(early, columns), spec, deployment))
                held.clear()
            if frame.height:
                if columns is None:
                    held.append(frame)
                else:
                    sink.write(finish(_align(frame, columns), spec, deployment))
            done_rows += chunk.rows
            series_done += result.series
            self._update(
                job_id,
                processedRows=done_rows,
                seriesScored=series_done,
                percentageCompleted=round(100.0 * done_rows / max(total, 1), 2),
                scoredRows=counts["scoredRows"],
                failedRows=counts["failedRows"],
                skippedRows=counts["skippedRows"],
                jobOutputSize=sink.bytes_written,
                statusDetails=f"Scored chunk {chunk.index + 1} of {len(chunks)}",
            )
        for early in held:  # nothing scored at all: the failed rows alone
            sink.write(finish(early, spec, deployment))
        return counts

    @staticmethod
    def _ordered(
        concurrency: int, chunks: list[Chunk], scorer: ChunkScorer
    ) -> Iterator[tuple[Chunk, ChunkResult]]:
        """Chunks scored ``concurrency`` at a time, yielded in input order.

        At most ``2 × concurrency`` chunks are in flight, so memory stays bounded
        however far ahead the fast chunks get.
        """

        def score(chunk: Chunk) -> ChunkResult:
            return scorer.score(read_chunk(chunk))

        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="tsengine-chunk") as pool:
            pending: deque[tuple[Chunk, Future[ChunkResult]]] = deque()
            upcoming = iter(chunks)
            try:
                for chunk in upcoming:
                    pending.append((chunk, pool.submit(score, chunk)))
                    if len(pending) >= 2 * concurrency:
                        break
                while pending:
                    chunk, future = pending.popleft()
                    result = future.result()
                    following = next(upcoming, None)
                    if following is not None:
                        pending.append((following, pool.submit(score, following)))
                    yield chunk, result
            finally:
                for _, future in pending:
                    future.cancel()

    def _ordered_on_cluster(
        self, chunks: list[Chunk], scorer: ChunkScorer
    ) -> Iterator[tuple[Chunk, ChunkResult]]:
        """Like :meth:`_ordered`, on the Dask cluster (:mod:`tsengine.distributed`).

        Two chunks per worker thread are in flight; results are yielded in input order.
        """
        submit = self.dask.bind(scorer)
        threads = sum(w.get("nthreads", 1) for w in self.dask.client.scheduler_info()["workers"].values())
        window = 2 * max(1, threads)
        pending: deque[tuple[Chunk, Any]] = deque()
        upcoming = iter(chunks)
        try:
            for chunk in upcoming:
                pending.append((chunk, submit(read_chunk(chunk))))
                if len(pending) >= window:
                    break
            while pending:
                chunk, future = pending.popleft()
                result = future.result()
                following = next(upcoming, None)
                if following is not None:
                    pending.append((following, submit(read_chunk(following))))
                yield chunk, result
        finally:
            for _, future in pending:
                future.cancel()


def _align(frame: pl.DataFrame, schema: pl.Schema) -> pl.DataFrame:
    """A chunk's rows in the job's output columns (failed rows lack the prediction columns)."""
    if frame.schema == schema:
        return frame
    return frame.select(
        [
            pl.col(name).cast(dtype, strict=False)
            if name in frame.columns
            else pl.lit(None, dtype).alias(name)
            for name, dtype in schema.items()
        ]
    )


def _notes(warnings: tuple[str, ...]) -> tuple[str, ...]:
    """The first :data:`MAX_NOTES` distinct warnings, and how many more there were."""
    if len(warnings) <= MAX_NOTES:
        return warnings
    return (*warnings[:MAX_NOTES], f"and {len(warnings) - MAX_NOTES} more warnings from other chunks")


def run_start() -> dt.datetime:
    """Now, in naive UTC: the moment a ``forecastPointPolicy`` offset counts from (tests set it)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)
