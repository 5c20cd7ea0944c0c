"""The ``/api/v2`` handlers that move a job's bytes: the uploaded input, the result download.

The input arrives after the job exists (``PUT csvUpload/``, or numbered parts
and ``finalizeMultipart/``) and is streamed to disk as fast as the disk takes
it, under ``TSENGINE_BATCH_MAX_UPLOAD_BYTES``; a rejected upload ends the job
with the reason.  The download streams the result file *while it grows*,
ending only after the job reached a final status: the ``datarobot`` client
checks the status right after the last byte.  A mixin of
:class:`api.batch.BatchRoutes`; the engine decides where bytes go and when a
job is queued.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from api.batch_wire import READ_BLOCK
from api.settings import Settings
from tsengine.batch import BatchEngine, BatchStore
from tsengine.batch.adapters import RESULT_NAME
from tsengine.batch.store import TERMINAL
from tsengine.errors import NotFoundError, ParameterError, PayloadTooLargeError, TsEngineError

__all__ = ["UploadRoutes"]

_CSV_TYPES = {"text/csv", "text/plain", "application/csv", "application/octet-stream"}
_FOLLOW_SECONDS = 0.1


class _NotAcceptableError(TsEngineError):
    status = 406


class _UnprocessableUploadError(TsEngineError):
    status = 422


class UploadRoutes:
    """Upload and download handlers; :class:`api.batch.BatchRoutes` sets the attributes."""

    engine: BatchEngine
    store: BatchStore
    settings: Settings

    async def upload(self, request: Request, job_id: str) -> Response:
        """``PUT …/csvUpload/``: the whole input, with Content-Length or chunked."""
        target = await run_in_threadpool(self._upload_target, request, job_id, None)
        size = await self._receive(request, job_id, target)
        await run_in_threadpool(self.engine.finish_upload, job_id, size)
        return Response(status_code=202)

    async def upload_part(self, request: Request, job_id: str, part: int) -> Response:
        """``PUT …/csvUpload/part/{n}/``: one part of a multipart upload."""
        target = await run_in_threadpool(self._upload_target, request, job_id, part)
        await self._receive(request, job_id, target, fail_job=False)
        total = await run_in_threadpool(
            lambda: sum(p.stat().st_size for p in target.parent.glob("part-*.csv"))
        )
        limit = self.settings.batch_max_upload_bytes
        if total > limit:  # the parts together are one upload: the same limit applies
            msg = f"The uploaded parts add up to {total} bytes, over the {limit}-byte limit (TSENGINE_BATCH_MAX_UPLOAD_BYTES)"
            await run_in_threadpool(self._fail_quietly, job_id, msg)
            raise PayloadTooLargeError(msg)
        return Response(status_code=202)

    async def finalize(self, job_id: str) -> Response:
        """``POST …/csvUpload/finalizeMultipart/``: the parts are complete; queue the job."""
        await run_in_threadpool(self.engine.finalize_multipart, job_id)
        return Response(status_code=202)

    def _upload_target(self, request: Request, job_id: str, part: int | None) -> Path:
        media = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
        if media not in _CSV_TYPES:
            msg = f"Not acceptable MIME type {media or '(none)'!r}: send the data with Content-Type: text/csv"
            self._fail_quietly(job_id, msg)
            raise _NotAcceptableError(msg)
        if part is not None:
            if part < 0:
                msg = f"part number must be 0 or more, got {part}"
                raise ParameterError(msg)
            return self.engine.part_path(job_id, part)
        return self.engine.begin_upload(job_id)

    def _fail_quietly(self, job_id: str, message: str) -> None:
        try:
            doc = self.store.job(job_id)
        except NotFoundError:
            return
        if doc["status"] == "INITIALIZING":
            self.engine.fail(job_id, f"The upload was rejected: {message}", status="ABORTED")

    async def _receive(self, request: Request, job_id: str, target: Path, *, fail_job: bool = True) -> int:
        """Stream the body to disk: the socket is read only as fast as the disk takes it."""
        limit = self.settings.batch_max_upload_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            msg = f"The upload is {int(declared)} bytes, over the {limit}-byte limit (TSENGINE_BATCH_MAX_UPLOAD_BYTES)"
            if fail_job:
                await run_in_threadpool(self._fail_quietly, job_id, msg)
            raise PayloadTooLargeError(msg)
        size = 0
        fh: IO[bytes] = await run_in_threadpool(target.open, "wb")
        try:
            async for block in request.stream():
                size += len(block)
                if size > limit:
                    msg = f"The upload exceeds the {limit}-byte limit (TSENGINE_BATCH_MAX_UPLOAD_BYTES)"
                    if fail_job:
                        await run_in_threadpool(self._fail_quietly, job_id, msg)
                    raise PayloadTooLargeError(msg)
                if block:
                    await run_in_threadpool(fh.write, block)
        except TsEngineError:
            raise
        except Exception as exc:  # a client that hangs up mid-body
            if fail_job:
                await run_in_threadpool(
                    self._fail_quietly, job_id, f"the upload was interrupted ({type(exc).__name__})"
                )
            raise
        finally:
            await run_in_threadpool(fh.close)
        if size == 0:
            msg = "The uploaded file is empty: send a CSV with a header line and at least one row"
            if fail_job:
                await run_in_threadpool(self._fail_quietly, job_id, msg)
            raise _UnprocessableUploadError(msg)
        return size

    async def download(self, job_id: str) -> Response:
        """``GET …/download/``: the result CSV, streamed while the job still scores."""
        doc = await run_in_threadpool(self.store.job, job_id)
        if doc["jobSpec"]["outputSettings"]["type"] != "localFile":
            msg = f"job {job_id!r} writes to {doc['jobSpec']['outputSettings']['type']}; it has nothing to download"
            raise NotFoundError(msg)
        if doc["status"] in {"FAILED", "ABORTED"}:
            msg = f"Job was {doc['status']}: {doc.get('statusDetails')}"
            raise _UnprocessableUploadError(msg)
        if doc.get("resultsDeleted"):
            msg = f"job {job_id!r}: its results were deleted"
            raise NotFoundError(msg)
        if not doc.get("_downloadReady"):
            msg = f"job {job_id!r} is not running yet ({doc.get('statusDetails')}); results are not available"
            raise NotFoundError(msg)
        headers = {"Content-Disposition": f"attachment;filename=result-{job_id}.csv"}
        return StreamingResponse(self._follow(job_id), media_type="text/csv", headers=headers)

    async def _follow(self, job_id: str) -> AsyncIterator[bytes]:
        folder = self.engine.job_folder(job_id)
        candidates = (folder / RESULT_NAME, folder / f"{RESULT_NAME}.part")
        fh: IO[bytes] | None = None
        while fh is None:
            for path in candidates:
                try:
                    fh = path.open("rb")
                    break
                except FileNotFoundError:
                    continue
            if fh is None:
                doc = await run_in_threadpool(self.store.job, job_id)
                if doc["status"] in TERMINAL and not (folder / RESULT_NAME).exists():
                    return
                await asyncio.sleep(_FOLLOW_SECONDS)
        try:
            while True:
                block = await run_in_threadpool(fh.read, READ_BLOCK)
                if block:
                    yield block
                    continue
                doc = await run_in_threadpool(self.store.job, job_id)
                if doc["status"] in TERMINAL:
                    while block := await run_in_threadpool(fh.read, READ_BLOCK):
                        yield block
                    return
                await asyncio.sleep(_FOLLOW_SECONDS)
        finally:
            fh.close()
