"""The state every part of the batch engine shares, and the job updates they all make.

:class:`~tsengine.batch.engine.BatchEngine` is put together from parts, each a
mixin in its own module: :mod:`~tsengine.batch.uploads` (the data of a
``localFile`` job), :mod:`~tsengine.batch.runner` (running one job),
:mod:`~tsengine.batch.housekeeping` (restart recovery, expiry, heartbeats) and
:mod:`~tsengine.batch.definitions` (scheduled runs).  They share the store,
the queue and the locks that ``BatchEngine.__init__`` sets, declared here so
each part type-checks on its own; and they all advance and end jobs the same
way (progress listeners told, partial output removed, definitions updated),
so those few methods live here and no part imports another.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tsengine.batch.adapters import RESULT_NAME
from tsengine.batch.definitions import ScheduledRuns
from tsengine.batch.store import BatchStore, utc_now
from tsengine.monitoring.service import Monitor
from tsengine.registry import Registry

__all__ = ["EngineBase", "Progress"]

Progress = Callable[[dict[str, Any]], None]


class EngineBase(ScheduledRuns):
    """What the engine's parts share: its state (set by ``BatchEngine.__init__``) and job updates."""

    registry: Registry
    monitor: Monitor | None
    folder: Path
    store: BatchStore
    retention: float  # seconds
    owner: str  # host:pid:token, stamped on the jobs this engine claims
    _queue: queue.Queue[str | None]
    _queued: set[str]
    _running: set[str]
    _lock: threading.Lock
    _stop: threading.Event
    _deployments: dict[tuple[str, str | None], Any]
    _listeners: dict[str, list[Progress]]
    dask: Any  # tsengine.distributed.DaskScoring, or None: chunks scored in threads

    def job_folder(self, job_id: str) -> Path:
        """The job's working folder (upload, chunks, result)."""
        return self.folder / "jobs" / job_id

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

    def _enqueue(self, job_id: str) -> None:
        with self._lock:
            if job_id in self._queued:
                return
            self._queued.add(job_id)
        self._queue.put(job_id)

    def _update(self, job_id: str, **fields: Any) -> dict[str, Any]:
        doc = self.store.update_job(job_id, **fields)
        for callback in self._listeners.get(job_id, []):
            with contextlib.suppress(Exception):
                callback(doc)
        return doc

    def _finish(
        self, job_id: str, status: str, details: str, *, notes: tuple[str, ...] = (), **fields: Any
    ) -> None:
        """End a job: its status, details and log lines (each of ``notes``, the core's warnings, first)."""
        doc = self.store.job(job_id)
        if status != "COMPLETED":  # nothing partial survives, even from a dead process
            output = doc["jobSpec"]["outputSettings"]
            partial = [self.job_folder(job_id) / RESULT_NAME, self.job_folder(job_id) / f"{RESULT_NAME}.part"]
            if output.get("type") == "filesystem":
                partial.append(Path(f"{Path(output['path']).expanduser()}.part"))
            for path in partial:
                path.unlink(missing_ok=True)
        now = utc_now()
        logs = [
            *doc.get("logs", []),
            *(f"{now} WARNING: {note}" for note in notes),
            f"{now} {status}: {details}",
        ]
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
