"""The batch engine: a job queue with bounded workers, inside the server (or the CLI).

Life of a job::

    create ──> INITIALIZING ──(data uploaded / readable)──> queued ──> RUNNING ──> COMPLETED
                    │                                                    ├──> FAILED   (bad data, unreachable store)
                    └────────────── cancel ─────────────────────────────└──> ABORTED  (cancelled)

* The deployment version is pinned when the job is created (DataRobot: "the
  deployed model at the time of job creation"); retraining later never changes
  a queued or running job.
* ``workers`` jobs run at once; inside a job ``numConcurrent`` chunks are scored
  at once and written in input order, so memory holds a bounded number of
  chunks whatever the input size.
* The store survives restarts.  A job whose process died while it ran is marked
  FAILED with a ``statusDetails`` that says so, and its partial output is never
  left under the final name; a job that was queued but not started is resumed.
* Cancellation is a flag in the store, so ``tsengine batch cancel`` reaches a
  job running inside a server; the runner stops between chunks.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import polars as pl

from tsengine.batch.adapters import (
    RESULT_NAME,
    UPLOAD_NAME,
    AdapterContext,
    Sink,
    intake_source,
    open_sink,
    remove_folder,
)
from tsengine.batch.catalog import latest_version
from tsengine.batch.chunks import Chunk, normalise_source, partition, plan_chunks, read_chunk
from tsengine.batch.definitions import ScheduledRuns
from tsengine.batch.score import ChunkResult, ChunkScorer, finish
from tsengine.batch.spec import JobSpec, parse_job_spec
from tsengine.batch.store import ACTIVE, TERMINAL, BatchStore, new_id, utc_now
from tsengine.errors import (
    ConflictError,
    NotFoundError,
    ParameterError,
    TooManyRequestsError,
    TsEngineError,
)
from tsengine.monitoring.service import Monitor
from tsengine.registry import Registry

__all__ = ["DEFAULT_MAX_QUEUED", "DEFAULT_RETENTION_HOURS", "BatchEngine", "Progress", "public_job"]

logger = logging.getLogger("tsengine.batch")

DEFAULT_MAX_QUEUED = 100
# DataRobot: "stored data retention for local file adapter: 48 hours".
DEFAULT_RETENTION_HOURS = 48.0
HEARTBEAT_SECONDS = 5.0
# A running job whose heartbeat is older than this belongs to a dead process.
STALE_SECONDS = 60.0

DONE = "Job done"
CANCELLED = "Job cancelled by user"
WAITING_UPLOAD = "Waiting for the data upload (PUT csvUpload/)"


class _Aborted(Exception):
    """The job was cancelled between chunks."""


class _ShutDown(Exception):
    """The engine is stopping (server shutdown) between chunks."""


SHUT_DOWN = (
    "The server shut down while this job was running; its partial output was discarded. "
    "Run it again (e.g. POST batchPredictions/fromExisting/)."
)


Progress = Callable[[dict[str, Any]], None]


def public_job(doc: dict[str, Any]) -> dict[str, Any]:
    """The job resource without the engine's private fields, with ``elapsedTimeSec`` now."""
    out = {k: v for k, v in doc.items() if not k.startswith("_")}
    started = doc.get("_startedTs") or doc.get("_createdTs") or time.time()
    ended = doc.get("_finishedTs") or time.time()
    out["elapsedTimeSec"] = max(0, int(ended - started))
    return out


class BatchEngine(ScheduledRuns):
    """Runs batch prediction jobs of one registry.

    Args:
        registry: the deployments scored.
        store: jobs and catalog records (default: SQLite in ``<registry>/.batch``).
        workers: jobs run at once (``tsengine serve --batch-workers``).
        folder: working folders of jobs and dataset snapshots.
        max_queued: jobs waiting to run before new ones get 429.
        retention_hours: finished jobs' data (upload, result) is deleted after this.
        monitor: the prediction log that jobs feed (unless ``skipDriftTracking``).
    """

    def __init__(
        self,
        registry: Registry,
        *,
        store: BatchStore | None = None,
        workers: int = 1,
        folder: Path | None = None,
        max_queued: int = DEFAULT_MAX_QUEUED,
        retention_hours: float = DEFAULT_RETENTION_HOURS,
        monitor: Monitor | None = None,
    ) -> None:
        self.registry = registry
        self.monitor = monitor
        self.folder = folder if folder is not None else registry.path / ".batch"
        self.store = store if store is not None else BatchStore.in_folder(self.folder)
        self.workers = max(1, workers)
        self.max_queued = max_queued
        self.retention = retention_hours * 3600
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._queued: set[str] = set()  # ids in the queue (recovery re-offers waiting jobs)
        self._running: set[str] = set()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._deployments: dict[tuple[str, str | None], Any] = {}
        self._listeners: dict[str, list[Progress]] = {}

    # ------------------------------------------------------------------ lifecycle

    def start(self, *, housekeeping: bool = True) -> BatchEngine:
        """Recover jobs of dead processes, then start the workers (and the scheduler)."""
        self.recover()
        for n in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"tsengine-batch-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)
        if housekeeping:
            thread = threading.Thread(target=self._housekeep, name="tsengine-batch-house", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking jobs; running ones finish their current chunk and are left for recovery."""
        self._stop.set()
        for _ in range(self.workers):
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def job_folder(self, job_id: str) -> Path:
        """The job's working folder (upload, chunks, result)."""
        return self.folder / "jobs" / job_id

    # -------------------------------------------------------------------- create

    def create_job(
        self,
        spec: JobSpec,
        *,
        source: str = "api",
        definition: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Check references, pin the model (and dataset) version, and store a new job.

        Raises:
            NotFoundError: unknown deployment, credential, data store or dataset.
            TooManyRequestsError: the queue is full.
        """
        version = self.registry.live_version(spec.deployment_id)
        if version is None:
            msg = f"deployment {spec.deployment_id!r} not found; check the deployment id"
            raise NotFoundError(msg)
        self._check_references(spec)
        waiting = self.store.jobs(statuses=ACTIVE, limit=1)[1]
        if waiting >= self.max_queued:
            msg = (
                f"{waiting} batch jobs are already waiting or running (limit {self.max_queued}); "
                "retry when some have finished"
            )
            raise TooManyRequestsError(msg)
        spec = spec.with_version(spec.deployment_version or version)
        if spec.intake.type == "dataset" and spec.intake.get("datasetVersionId") is None:
            pinned = {
                **spec.intake.settings,
                "datasetVersionId": latest_version(self.store, spec.intake.get("datasetId")),
            }
            spec = replace(spec, intake=replace(spec.intake, settings=pinned))
        job_id = new_id()
        uploads = spec.intake.type == "localFile"
        doc: dict[str, Any] = {
            "id": job_id,
            "status": "INITIALIZING",
            "statusDetails": WAITING_UPLOAD if uploads else "Queued",
            "percentageCompleted": 0.0,
            "created": utc_now(),
            "createdBy": {"fullName": "tsengine", "userId": "tsengine", "username": "tsengine"},
            "jobSpec": spec.to_api(),
            "scoredRows": 0,
            "failedRows": 0,
            "skippedRows": 0,
            "jobIntakeSize": None,
            "jobOutputSize": None,
            "logs": [f"{utc_now()} Job created by {source}"],
            "queued": not uploads,
            "hidden": False,
            "source": source,
            "resultsDeleted": False,
            "monitoringBatchId": None,
            "_upload": "none" if uploads else "done",
            "_ready": not uploads,
            "_createdTs": time.time(),
        }
        if spec.intake.type == "dataset":
            doc["intakeDatasetDisplayName"] = self.store.dataset(spec.intake.get("datasetId"))["name"]
        if definition is not None:
            doc["batchPredictionJobDefinition"] = {
                "id": definition["id"],
                "name": definition["name"],
                "createdBy": definition.get("createdBy", {}).get("username", "tsengine"),
            }
        self.job_folder(job_id).mkdir(parents=True, exist_ok=True)
        self.store.create_job(doc, definition_id=definition["id"] if definition else None)
        if not uploads:
            self._enqueue(job_id)
        return self.store.job(job_id)

    def _check_references(self, spec: JobSpec) -> None:
        for name, adapter in (("intakeSettings", spec.intake), ("outputSettings", spec.output)):
            try:
                if adapter.get("credentialId") is not None:
                    self.store.credential(adapter.get("credentialId"))
                if adapter.get("dataStoreId") is not None:
                    self.store.data_store(adapter.get("dataStoreId"))
                if adapter.get("datasetId") is not None:
                    self.store.dataset(adapter.get("datasetId"))
            except NotFoundError as exc:
                msg = f"{name}: {exc.message}"
                raise ParameterError(msg) from exc

    # -------------------------------------------------------------------- upload

    def begin_upload(self, job_id: str, *, multipart: bool = False) -> Path:
        """Claim the job's upload; returns where the body goes.

        Raises:
            NotFoundError: unknown job, or one that reads its own data.
            ConflictError: an upload already happened (or a multipart one is in progress).
        """
        doc = self.store.job(job_id)
        if doc["jobSpec"]["intakeSettings"]["type"] != "localFile":
            msg = f"job {job_id!r} reads its data from {doc['jobSpec']['intakeSettings']['type']}; it takes no upload"
            raise NotFoundError(msg)
        state = doc.get("_upload")
        if doc["status"] != "INITIALIZING":
            msg = f"job {job_id!r} is {doc['status']} ({doc.get('statusDetails')}); it takes no more data"
            raise ConflictError(msg)
        if state in {"receiving", "done"} or (state == "multipart" and not multipart):
            msg = f"job {job_id!r}: the dataset upload has already begun"
            raise ConflictError(msg)
        self.store.update_job(job_id, _upload="multipart" if multipart else "receiving", _uploader=self.owner)
        folder = self.job_folder(job_id)
        folder.mkdir(parents=True, exist_ok=True)
        return folder / UPLOAD_NAME

    def part_path(self, job_id: str, part: int) -> Path:
        """Where multipart part ``part`` goes (parts may be re-sent: the last one wins)."""
        self.begin_upload(job_id, multipart=True)
        folder = self.job_folder(job_id) / "parts"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"part-{part:06d}.csv"

    def finish_upload(self, job_id: str, size: int) -> dict[str, Any]:
        """The whole body arrived: queue the job."""
        doc = self.store.update_job(
            job_id,
            _upload="done",
            _ready=True,
            queued=True,
            jobIntakeSize=size,
            statusDetails="Queued",
        )
        self._enqueue(job_id)
        return doc

    def finalize_multipart(self, job_id: str) -> dict[str, Any]:
        """Join the uploaded parts (each repeats the header) into one input and queue the job.

        Raises:
            ConflictError: the job is not a multipart upload.
            ParameterError: no part was uploaded (DataRobot: 422 "No data was uploaded").
        """
        doc = self.store.job(job_id)
        if doc.get("_upload") != "multipart":
            msg = f"job {job_id!r}: only multipart jobs can be finalized"
            raise ConflictError(msg)
        parts = sorted((self.job_folder(job_id) / "parts").glob("part-*.csv"))
        if not parts:
            msg = f"job {job_id!r}: no data was uploaded"
            raise ParameterError(msg)
        target = self.job_folder(job_id) / UPLOAD_NAME
        size = 0
        with target.open("wb") as out:
            for n, part in enumerate(parts):
                with part.open("rb") as fh:
                    if n:
                        fh.readline()  # each part repeats the header line
                    while block := fh.read(1 << 20):
                        if not block.endswith((b"\n", b"\r")) and len(block) < (1 << 20):
                            block += b"\n"
                        out.write(block)
                        size += len(block)
        for part in parts:
            part.unlink()
        return self.finish_upload(job_id, size)

    def fail(self, job_id: str, message: str, *, status: str = "FAILED") -> dict[str, Any]:
        """End a job with a reason (e.g. a rejected upload), removing its data."""
        doc = self.store.update_job(
            job_id,
            status=status,
            statusDetails=message,
            queued=False,
            _finishedTs=time.time(),
            logs=[*self.store.job(job_id).get("logs", []), f"{utc_now()} {status}: {message}"],
        )
        self._after_finish(doc)
        return doc

    # -------------------------------------------------------------------- cancel

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Abort a waiting or running job; a finished job's data is deleted instead.

        Returns the job document (DataRobot answers 202 in every case).
        """
        doc = self.store.job(job_id)
        if doc["status"] in TERMINAL:
            remove_folder(self.job_folder(job_id))
            return self.store.update_job(job_id, resultsDeleted=True)
        self.store.request_abort(job_id)
        if doc["status"] == "INITIALIZING" and doc.get("_owner") is None:
            return self.fail(job_id, CANCELLED, status="ABORTED")
        return self.store.job(job_id)

    # ------------------------------------------------------------------- running

    def queue_position(self, job_id: str) -> int:
        """Jobs waiting to start before this one."""
        waiting = [j for j in self.store.unowned_jobs()]
        return waiting.index(job_id) if job_id in waiting else 0

    def listen(self, job_id: str, callback: Progress) -> None:
        """Call ``callback(job document)`` after every chunk of a job run by this engine."""
        self._listeners.setdefault(job_id, []).append(callback)

    def run_now(self, job_id: str) -> dict[str, Any]:
        """Run a queued job in the calling thread (the CLI's foreground job)."""
        if not self.store.claim(job_id, self.owner):
            msg = f"job {job_id!r} is already taken by another process"
            raise ConflictError(msg)
        self._run(job_id)
        return self.store.job(job_id)

    def _enqueue(self, job_id: str) -> None:
        with self._lock:
            if job_id in self._queued:
                return
            self._queued.add(job_id)
        self._queue.put(job_id)

    def _work(self) -> None:
        while not self._stop.is_set():
            job_id = self._queue.get()
            if job_id is None:
                return
            with self._lock:
                self._queued.discard(job_id)
            try:
                doc = self.store.job(job_id)
            except NotFoundError:
                continue
            if (
                doc["status"] not in ACTIVE
                or not doc.get("_ready")
                or not self.store.claim(job_id, self.owner)
            ):
                continue
            try:
                self._run(job_id)
            except Exception:  # the runner records every failure; this guards the thread itself
                logger.exception("batch worker crashed on job %s", job_id)

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
        if ts and not spec.timeseries.is_historical and spec.timeseries.forecast_point is None:
            infer = (deployment.spec.datetime_column, deployment.spec.target, deployment.spec.datetime_format)
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
        return chunks, plan.forecast_point, plan.rows

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
        counts: dict[str, Any] = {"scoredRows": 0, "failedRows": 0, "skippedRows": 0, "errors": []}
        series_done = 0
        columns: pl.Schema | None = None
        held: list[pl.DataFrame] = []  # failed-only chunks before the first scored one
        done_rows = 0
        for chunk, result in self._ordered(spec.num_concurrent, chunks, scorer):
            if self.store.abort_requested(job_id):
                raise _Aborted
            if self._stop.is_set():
                raise _ShutDown
            counts["scoredRows"] += result.scored
            counts["failedRows"] += result.failed
            counts["skippedRows"] += result.skipped
            counts["errors"].extend(result.errors)
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

    def _update(self, job_id: str, **fields: Any) -> dict[str, Any]:
        doc = self.store.update_job(job_id, **fields)
        for callback in self._listeners.get(job_id, []):
            with contextlib.suppress(Exception):
                callback(doc)
        return doc

    def _finish(self, job_id: str, status: str, details: str, **fields: Any) -> None:
        doc = self.store.job(job_id)
        if status != "COMPLETED":  # nothing partial survives, even from a dead process
            output = doc["jobSpec"]["outputSettings"]
            partial = [self.job_folder(job_id) / RESULT_NAME, self.job_folder(job_id) / f"{RESULT_NAME}.part"]
            if output.get("type") == "filesystem":
                partial.append(Path(f"{Path(output['path']).expanduser()}.part"))
            for path in partial:
                path.unlink(missing_ok=True)
        logs = [*doc.get("logs", []), f"{utc_now()} {status}: {details}"]
        final = self._update(
            job_id,
            status=status,
            statusDetails=details,
            queued=False,
            logs=logs,
            _finishedTs=time.time(),
            _downloadReady=status == "COMPLETED" or doc.get("_downloadReady", False),
            **fields,
        )
        self._after_finish(final)

    # ------------------------------------------------------------ housekeeping

    def recover(self) -> list[str]:
        """Fail jobs whose process died mid-run; re-queue jobs that never started.

        Returns the ids of the jobs marked FAILED.
        """
        failed = []
        for doc in self.store.active_jobs():
            owner = doc.get("_owner")
            uploader = doc.get("_uploader") if doc.get("_upload") in {"receiving", "multipart"} else None
            if owner is not None and owner != self.owner and self._dead(owner, doc.get("_heartbeat")):
                failed.append(doc["id"])
                self._finish(
                    doc["id"],
                    "FAILED",
                    "The server stopped while this job was running; its partial output was discarded. "
                    "Run it again (e.g. POST batchPredictions/fromExisting/).",
                )
            elif (
                uploader is not None
                and uploader != self.owner
                and self._dead(uploader, doc.get("_heartbeat"))
            ):
                failed.append(doc["id"])
                self.fail(
                    doc["id"],
                    "The server stopped while the data was being uploaded; upload it again in a new job.",
                )
            elif owner is None and doc.get("_ready") and doc["id"] not in self._running:
                self._enqueue(doc["id"])
        return failed

    def _dead(self, owner: str, heartbeat: float | None) -> bool:
        host, _, rest = owner.partition(":")
        pid_text, _, _token = rest.partition(":")
        if heartbeat is not None and time.time() - heartbeat > STALE_SECONDS:
            return True
        if host != socket.gethostname():
            return False
        pid = int(pid_text) if pid_text.isdigit() else -1
        if pid == os.getpid():
            return True  # our pid, another engine instance's token: a previous life
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def purge_expired(self) -> int:
        """Delete the data of jobs finished more than the retention period ago."""
        cutoff = time.time() - self.retention
        removed = 0
        for doc in self.store.jobs(statuses=TERMINAL, until=cutoff, limit=1_000_000)[0]:
            if not doc.get("resultsDeleted"):
                remove_folder(self.job_folder(doc["id"]))
                self.store.update_job(doc["id"], resultsDeleted=True)
                removed += 1
        return removed

    def _housekeep(self) -> None:
        last = {"recover": 0.0, "purge": 0.0}
        while not self._stop.wait(1.0):
            try:
                with self._lock:
                    running = list(self._running)
                self.store.heartbeat(running)
                self.run_due_definitions()
                now = time.monotonic()
                if now - last["recover"] > HEARTBEAT_SECONDS * 2:
                    last["recover"] = now
                    self.recover()
                if now - last["purge"] > 3600:
                    last["purge"] = now
                    self.purge_expired()
            except Exception:  # keep the housekeeper alive whatever one round hit
                logger.exception("batch housekeeping round failed")


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
