"""A ``localFile`` job's data: one uploaded body, or numbered parts joined at the end.

DataRobot's client creates the job first and sends the data after: ``PUT
csvUpload/`` with the whole CSV, or ``PUT csvUpload/part/{n}/`` per part and
then ``POST csvUpload/finalizeMultipart/``.  These methods (a mixin of
:class:`~tsengine.batch.engine.BatchEngine`) claim the upload, say where each
body goes and queue the job once its input is complete, so the HTTP layer only
streams bytes to a path and never decides a job's state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tsengine.batch.adapters import UPLOAD_NAME
from tsengine.batch.engine_base import EngineBase
from tsengine.errors import ConflictError, NotFoundError, ParameterError

__all__ = ["Uploads"]


class Uploads(EngineBase):
    """The upload endpoints' side of the engine."""

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
