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

import logging
import os
import queue
import socket
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from tsengine.batch.adapters import remove_folder
from tsengine.batch.catalog import latest_version
from tsengine.batch.engine_base import Progress
from tsengine.batch.housekeeping import Housekeeping
from tsengine.batch.runner import CANCELLED, JobRunner
from tsengine.batch.spec import JobSpec
from tsengine.batch.store import ACTIVE, TERMINAL, BatchStore, new_id, utc_now
from tsengine.batch.uploads import Uploads
from tsengine.errors import ConflictError, NotFoundError, ParameterError, TooManyRequestsError
from tsengine.monitoring.service import Monitor
from tsengine.registry import Registry

__all__ = [
    "CANCELLED",
    "DEFAULT_MAX_QUEUED",
    "DEFAULT_RETENTION_HOURS",
    "BatchEngine",
    "Progress",
    "public_job",
]

logger = logging.getLogger("tsengine.batch")

DEFAULT_MAX_QUEUED = 100
# DataRobot: "stored data retention for local file adapter: 48 hours".
DEFAULT_RETENTION_HOURS = 48.0
WAITING_UPLOAD = "Waiting for the data upload (PUT csvUpload/)"


def public_job(doc: dict[str, Any]) -> dict[str, Any]:
    """The job resource without the engine's private fields, with ``elapsedTimeSec`` now."""
    out = {k: v for k, v in doc.items() if not k.startswith("_")}
    started = doc.get("_startedTs") or doc.get("_createdTs") or time.time()
    ended = doc.get("_finishedTs") or time.time()
    out["elapsedTimeSec"] = max(0, int(ended - started))
    return out


class BatchEngine(Uploads, JobRunner, Housekeeping):
    """Runs batch prediction jobs of one registry.

    This class holds the queue, the workers and a job's lifecycle; its other
    parts are mixins in sibling modules (see :mod:`~tsengine.batch.engine_base`).

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
        dask: Any = None,
    ) -> None:
        self.registry = registry
        self.dask = dask
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
