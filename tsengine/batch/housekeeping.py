"""Restart recovery and housekeeping: dead processes' jobs, expired data, heartbeats.

Several processes (servers, ``tsengine batch`` commands) may share one store.
A running job carries its owner (``host:pid:token``) and a heartbeat that the
housekeeping thread refreshes, so a job whose process died is recognised
(gone from this host, or silent for :data:`STALE_SECONDS`) and marked FAILED
with a ``statusDetails`` that says so, its partial output never left under the
final name; a job that was queued but not started is resumed.  Finished jobs'
data (upload, result) is deleted after the retention period.  A mixin of
:class:`~tsengine.batch.engine.BatchEngine`.
"""

from __future__ import annotations

import logging
import os
import socket
import time

from tsengine.batch.adapters import remove_folder
from tsengine.batch.engine_base import EngineBase
from tsengine.batch.store import TERMINAL

__all__ = ["HEARTBEAT_SECONDS", "STALE_SECONDS", "Housekeeping"]

logger = logging.getLogger("tsengine.batch")

HEARTBEAT_SECONDS = 5.0
# A running job whose heartbeat is older than this belongs to a dead process.
STALE_SECONDS = 60.0


class Housekeeping(EngineBase):
    """Recovery after a restart, and the periodic round that keeps the store tidy."""

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
