"""DataRobot's ``/api/v2`` routes for batch prediction jobs, as the ``datarobot`` client calls them.

Parse → call the core's :class:`~tsengine.batch.BatchEngine` → answer with
DataRobot's shapes.  Three wire rules shape this module (see the README's batch
section):

* every link is an **absolute** URL (the client refuses paths starting with
  ``/``) and a job's id is the second-to-last segment of ``Location``;
* ``links.download`` appears once results can be streamed, and the download
  streams the result file *while it grows*, ending only after the job reached
  a final status (the client checks the status right after the last byte);
* a job resource always has a string ``id``, an integer ``elapsedTimeSec``, a
  non-blank ``statusDetails`` and ``jobSpec.numConcurrent``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import IO, Any

import orjson
from fastapi import APIRouter, Depends, FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from api.settings import Settings
from tsengine.batch import BatchEngine, parse_job_spec, public_job
from tsengine.batch import definitions as defs
from tsengine.batch.adapters import RESULT_NAME
from tsengine.batch.catalog import add_dataset, public_dataset
from tsengine.batch.store import TERMINAL, new_id, utc_now
from tsengine.errors import (
    BadRequestError,
    NotFoundError,
    ParameterError,
    PayloadTooLargeError,
    TsEngineError,
)
from tsengine.registry import Registry

__all__ = ["API_VERSION", "BatchRoutes", "add_batch_routes"]

V2 = "/api/v2"
# The ``datarobot`` 3.20 client needs a major version of 2 and warns below 2.49.
API_VERSION = {"major": 2, "minor": 49, "versionString": "2.49.0"}
_CSV_TYPES = {"text/csv", "text/plain", "application/csv", "application/octet-stream"}
_FOLLOW_SECONDS = 0.1
_READ_BLOCK = 1 << 20


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


async def _json_body(request: Request) -> Any:
    data = await request.body()
    if not data.strip():
        return {}
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        msg = f"The body is not valid JSON: {exc}"
        raise BadRequestError(msg) from exc


def _int_param(request: Request, name: str, default: int, *, low: int = 0) -> int:
    value = request.query_params.get(name)
    if value is None:
        return default
    if not value.strip().isdigit() or int(value) < low:
        msg = f"{name} must be a whole number of at least {low}, got {value!r}"
        raise ParameterError(msg)
    return int(value)


def _time_param(request: Request, name: str) -> float | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        msg = f"{name} must be an ISO 8601 datetime, got {value!r}"
        raise ParameterError(msg) from exc
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).timestamp()


class BatchRoutes:
    """Route handlers bound to one engine; links are built from each request's base URL."""

    def __init__(self, engine: BatchEngine, settings: Settings, registry: Registry) -> None:
        self.engine = engine
        self.store = engine.store
        self.settings = settings
        self.registry = registry

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _base(request: Request) -> str:
        return str(request.base_url).rstrip("/") + V2

    def _job(self, request: Request, doc: dict[str, Any]) -> dict[str, Any]:
        out = public_job(doc)
        base = f"{self._base(request)}/batchPredictions/{doc['id']}/"
        spec = doc["jobSpec"]
        links: dict[str, str] = {"self": base}
        if spec["intakeSettings"]["type"] == "localFile":
            links["csvUpload"] = f"{base}csvUpload/"
        downloadable = (
            spec["outputSettings"]["type"] == "localFile"
            and doc.get("_downloadReady")
            and not doc.get("resultsDeleted")
            and doc["status"] not in {"FAILED", "ABORTED"}
        )
        if downloadable:
            links["download"] = f"{base}download/"
        out["links"] = links
        if doc["status"] == "INITIALIZING" and doc.get("queued"):
            out["queuePosition"] = self.engine.queue_position(doc["id"])
        return out

    def _created(self, request: Request, doc: dict[str, Any]) -> Response:
        body = self._job(request, doc)
        return _json(body, 202, {"Location": body["links"]["self"]})

    # ------------------------------------------------------------------- routes

    async def version(self) -> Response:
        """``GET version/``: what the ``datarobot`` client checks on ``Client(...)``."""
        return _json(API_VERSION)

    async def deployment(self, request: Request, deployment_id: str) -> Response:
        """``GET deployments/{id}/``: what ``dr.Deployment.get`` reads."""
        deployment = await run_in_threadpool(self.registry.load, deployment_id)
        return _json(self._deployment_doc(request, deployment))

    def _deployment_doc(self, request: Request, deployment: Any) -> dict[str, Any]:
        tabular = deployment.kind == "tabular"
        target = deployment.target if tabular else deployment.spec.target
        target_type = (
            {"regression": "Regression", "binary": "Binary", "multiclass": "Multiclass"}[deployment.task]
            if tabular
            else "Regression"
        )
        root = str(request.base_url).rstrip("/")
        return {
            "id": deployment.id,
            "label": deployment.id,
            "description": f"tsengine {deployment.kind} deployment",
            "status": "active",
            "importance": "MODERATE",
            "model": {
                "id": deployment.model_id,
                "type": deployment.metadata.get("model_kind")
                or getattr(getattr(deployment, "model", None), "kind", "lightgbm"),
                "targetName": target,
                "targetType": target_type,
                "projectId": None,
                "isTimeSeries": not tabular,
            },
            "defaultPredictionServer": {"id": "tsengine", "url": root, "datarobot-key": ""},
            "capabilities": {"supportsBatchPredictions": True},
            "createdAt": deployment.metadata.get("created"),
        }

    async def deployments(self, request: Request) -> Response:
        """``GET deployments/``: every deployment, loaded from the registry."""
        ids = sorted(await run_in_threadpool(self.registry.list))
        data = [self._deployment_doc(request, await run_in_threadpool(self.registry.load, i)) for i in ids]
        return _json(
            {"count": len(data), "data": data, "next": None, "previous": None, "totalCount": len(data)}
        )

    async def create_job(self, request: Request) -> Response:
        """``POST batchPredictions/``: 202 with ``Location``, before any data arrives."""
        spec = parse_job_spec(await _json_body(request))
        doc = await run_in_threadpool(self.engine.create_job, spec)
        return self._created(request, doc)

    async def from_existing(self, request: Request) -> Response:
        """``POST batchPredictions/fromExisting/``: the same spec again, on the live model."""
        body = await _json_body(request)
        old_id = body.get("predictionJobId") if isinstance(body, dict) else None
        if not isinstance(old_id, str):
            msg = "predictionJobId: required, the id of the job to run again"
            raise ParameterError(msg)
        old = await run_in_threadpool(self.store.job, old_id)
        spec = parse_job_spec({k: v for k, v in old["jobSpec"].items() if k != "deploymentVersion"})
        doc = await run_in_threadpool(self.engine.create_job, spec, source="fromExisting")
        return self._created(request, doc)

    async def from_definition(self, request: Request) -> Response:
        """``POST batchPredictions/fromJobDefinition/``: run a stored definition now."""
        body = await _json_body(request)
        definition_id = body.get("jobDefinitionId") if isinstance(body, dict) else None
        if not isinstance(definition_id, str):
            msg = "jobDefinitionId: required, the id of the job definition to run"
            raise ParameterError(msg)
        doc = await run_in_threadpool(self.engine.run_definition, definition_id)
        return self._created(request, doc)

    async def list_jobs(self, request: Request) -> Response:
        """``GET batchPredictions/``: a page of jobs with ``next``/``previous`` links."""
        statuses = request.query_params.getlist("status")
        unknown = [s for s in statuses if s not in ("INITIALIZING", "RUNNING", *TERMINAL)]
        if unknown:
            msg = f"status {unknown[0]!r} is not a job status; use INITIALIZING, RUNNING, COMPLETED, ABORTED or FAILED"
            raise ParameterError(msg)
        order = request.query_params.get("orderBy", "-created")
        if order not in {"created", "-created", "status", "-status"}:
            msg = f"orderBy must be created, -created, status or -status, got {order!r}"
            raise ParameterError(msg)
        offset = _int_param(request, "offset", 0)
        limit = _int_param(request, "limit", 100, low=1)
        since = _time_param(request, "startDateTime")
        until = _time_param(request, "endDateTime")
        cutoff = request.query_params.get("cutoffHours")
        if cutoff is not None:
            since = max(
                since or 0.0,
                dt.datetime.now(dt.UTC).timestamp() - 3600 * _int_param(request, "cutoffHours", 0),
            )
        docs, total = await run_in_threadpool(
            lambda: self.store.jobs(
                statuses=statuses,
                deployment_id=request.query_params.get("deploymentId"),
                definition_id=request.query_params.get("batchPredictionJobDefinitionId"),
                job_id=request.query_params.get("jobId"),
                since=since,
                until=until,
                order_by=order,
                offset=offset,
                limit=limit,
            )
        )
        data = [self._job(request, d) for d in docs]
        return _json(self._page(request, data, offset, limit, total))

    @staticmethod
    def _page(request: Request, data: list[Any], offset: int, limit: int, total: int) -> dict[str, Any]:
        def link(new_offset: int) -> str:
            return str(request.url.include_query_params(offset=new_offset, limit=limit))

        return {
            "count": len(data),
            "data": data,
            "next": link(offset + limit) if offset + len(data) < total else None,
            "previous": link(max(0, offset - limit)) if offset > 0 else None,
            "totalCount": total,
        }

    async def get_job(self, request: Request, job_id: str) -> Response:
        """``GET batchPredictions/{id}/``: always 200 (the client refuses redirects here)."""
        return _json(self._job(request, await run_in_threadpool(self.store.job, job_id)))

    async def patch_job(self, request: Request, job_id: str) -> Response:
        """``PATCH batchPredictions/{id}/``: hide or show a job."""
        body = await _json_body(request)
        if not isinstance(body, dict) or set(body) - {"hidden"}:
            extra = sorted(set(body) - {"hidden"}) if isinstance(body, dict) else ["<body>"]
            msg = f"{extra[0]}: only 'hidden' can be changed on a batch prediction job"
            raise ParameterError(msg)
        if "hidden" in body and not isinstance(body["hidden"], bool):
            msg = f"hidden must be true or false, got {body['hidden']!r}"
            raise ParameterError(msg)
        await run_in_threadpool(self.store.job, job_id)
        doc = await run_in_threadpool(lambda: self.store.update_job(job_id, **body))
        return _json(self._job(request, doc))

    async def cancel_job(self, request: Request, job_id: str) -> Response:
        """``DELETE batchPredictions/{id}/``: abort (or, when finished, delete the results); 202."""
        doc = await run_in_threadpool(self.engine.cancel, job_id)
        return _json(self._job(request, doc), 202)

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
                block = await run_in_threadpool(fh.read, _READ_BLOCK)
                if block:
                    yield block
                    continue
                doc = await run_in_threadpool(self.store.job, job_id)
                if doc["status"] in TERMINAL:
                    while block := await run_in_threadpool(fh.read, _READ_BLOCK):
                        yield block
                    return
                await asyncio.sleep(_FOLLOW_SECONDS)
        finally:
            fh.close()

    # -------------------------------------------------------------- definitions

    def _definition(self, request: Request, doc: dict[str, Any]) -> dict[str, Any]:
        out = dict(doc)
        out["links"] = {"self": f"{self._base(request)}/batchPredictionJobDefinitions/{doc['id']}/"}
        return out

    async def create_definition(self, request: Request) -> Response:
        """``POST batchPredictionJobDefinitions/``: store a spec (and its schedule)."""
        doc = defs.build_definition(await _json_body(request))
        await run_in_threadpool(self._check_definition, doc)
        await run_in_threadpool(self.engine.save_definition, doc)
        return _json(self._definition(request, doc), 202)

    def _check_definition(self, doc: dict[str, Any]) -> None:
        spec = parse_job_spec(doc["batchPredictionJob"])
        if self.registry.live_version(spec.deployment_id) is None:
            msg = f"deployment {spec.deployment_id!r} not found; check the deployment id"
            raise NotFoundError(msg)

    async def list_definitions(self, request: Request) -> Response:
        """``GET batchPredictionJobDefinitions/``: ``searchName``, ``deploymentId``, paging."""
        docs = await run_in_threadpool(
            lambda: self.store.definitions(
                search_name=request.query_params.get("searchName"),
                deployment_id=request.query_params.get("deploymentId"),
            )
        )
        offset = _int_param(request, "offset", 0)
        limit = _int_param(request, "limit", 100, low=1)
        page = [self._definition(request, d) for d in docs[offset : offset + limit]]
        return _json(self._page(request, page, offset, limit, len(docs)))

    async def get_definition(self, request: Request, definition_id: str) -> Response:
        """``GET batchPredictionJobDefinitions/{id}/``."""
        return _json(self._definition(request, await run_in_threadpool(self.store.definition, definition_id)))

    async def patch_definition(self, request: Request, definition_id: str) -> Response:
        """``PATCH batchPredictionJobDefinitions/{id}`` (the client sends no slash)."""
        body = await _json_body(request)
        old = await run_in_threadpool(self.store.definition, definition_id)
        doc = defs.update_definition(old, body)
        doc["updated"] = utc_now()
        await run_in_threadpool(self._check_definition, doc)
        await run_in_threadpool(self.engine.save_definition, doc)
        return _json(self._definition(request, doc))

    async def delete_definition(self, definition_id: str) -> Response:
        """``DELETE batchPredictionJobDefinitions/{id}/``: 204."""
        await run_in_threadpool(self.store.delete_definition, definition_id)
        return Response(status_code=204)

    # ------------------------------------------- credentials, data stores, datasets

    async def create_credential(self, request: Request) -> Response:
        """``POST credentials/``: the secret is stored, never echoed."""
        body = await _json_body(request)
        public, secret = _credential(body)
        await run_in_threadpool(self.store.put_credential, public, secret)
        return _json(public, 201)

    async def list_credentials(self) -> Response:
        """``GET credentials/``: public views only."""
        data = await run_in_threadpool(self.store.credentials)
        return _json(
            {"count": len(data), "data": data, "next": None, "previous": None, "totalCount": len(data)}
        )

    async def get_credential(self, credential_id: str) -> Response:
        """``GET credentials/{id}/``: the public view."""
        return _json(await run_in_threadpool(self.store.credential, credential_id))

    async def delete_credential(self, credential_id: str) -> Response:
        """``DELETE credentials/{id}/``: 204."""
        await run_in_threadpool(self.store.delete_credential, credential_id)
        return Response(status_code=204)

    async def create_data_store(self, request: Request) -> Response:
        """``POST externalDataStores/``: a database reachable by SQLAlchemy URL (no password in it)."""
        doc = _data_store(await _json_body(request))
        await run_in_threadpool(self.store.put_data_store, doc)
        return _json(doc, 201)

    async def list_data_stores(self) -> Response:
        """``GET externalDataStores/``."""
        data = await run_in_threadpool(self.store.data_stores)
        return _json(
            {"count": len(data), "data": data, "next": None, "previous": None, "totalCount": len(data)}
        )

    async def get_data_store(self, data_store_id: str) -> Response:
        """``GET externalDataStores/{id}/``."""
        return _json(await run_in_threadpool(self.store.data_store, data_store_id))

    async def delete_data_store(self, data_store_id: str) -> Response:
        """``DELETE externalDataStores/{id}/``: 204."""
        await run_in_threadpool(self.store.delete_data_store, data_store_id)
        return Response(status_code=204)

    async def list_datasets(self) -> Response:
        """``GET datasets/``: the catalog."""
        docs = await run_in_threadpool(self.store.datasets)
        data = [public_dataset(d) for d in docs]
        return _json(
            {"count": len(data), "data": data, "next": None, "previous": None, "totalCount": len(data)}
        )

    async def get_dataset(self, dataset_id: str) -> Response:
        """``GET datasets/{id}/``."""
        return _json(public_dataset(await run_in_threadpool(self.store.dataset, dataset_id)))

    async def upload_dataset(self, request: Request) -> Response:
        """``POST datasets/fromFile/``: a multipart ``file`` part, snapshotted into the catalog."""
        form = await request.form(max_part_size=self.settings.batch_max_upload_bytes)
        try:
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                msg = "datasets/fromFile/ needs the file as a multipart part named 'file'"
                raise BadRequestError(msg)
            name = upload.filename or "upload.csv"
            staging = self.engine.folder / "datasets" / f".upload-{new_id()}-{Path(name).name}"
            staging.parent.mkdir(parents=True, exist_ok=True)
            with staging.open("wb") as out:
                while block := await upload.read(_READ_BLOCK):
                    await run_in_threadpool(out.write, block)
            try:
                doc = await run_in_threadpool(
                    lambda: add_dataset(self.store, self.engine.folder / "datasets", staging, name=name)
                )
            finally:
                staging.unlink(missing_ok=True)
        finally:
            await form.close()
        return _json(doc, 202)


class _NotAcceptableError(TsEngineError):
    status = 406


class _UnprocessableUploadError(TsEngineError):
    status = 422


_CREDENTIAL_SECRETS = {
    "s3": ("awsAccessKeyId", "awsSecretAccessKey", "awsSessionToken"),
    "basic": ("user", "password"),
}


def _credential(body: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    if not isinstance(body, dict):
        msg = "the credential must be a JSON object"
        raise ParameterError(msg)
    kind = body.get("credentialType")
    if kind not in _CREDENTIAL_SECRETS:
        msg = f"credentialType: must be s3 or basic, got {kind!r}"
        raise ParameterError(msg)
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        msg = "name: required, a non-empty string"
        raise ParameterError(msg)
    keys = _CREDENTIAL_SECRETS[kind]
    unknown = [k for k in body if k not in {"name", "credentialType", "description", *keys}]
    if unknown:
        msg = f"{unknown[0]}: not a field of a {kind} credential; it takes {', '.join(keys)}"
        raise ParameterError(msg)
    required = keys[:2]
    missing = [k for k in required if not isinstance(body.get(k), str) or not body[k]]
    if missing:
        msg = f"{missing[0]}: required for a {kind} credential"
        raise ParameterError(msg)
    public = {
        "credentialId": new_id(),
        "name": name,
        "credentialType": kind,
        "description": body.get("description"),
        "creationDate": utc_now(),
    }
    secret = {k: body[k] for k in keys if body.get(k) is not None}
    return public, secret


def _data_store(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        msg = "the data store must be a JSON object"
        raise ParameterError(msg)
    name = body.get("canonicalName")
    if not isinstance(name, str) or not name.strip():
        msg = "canonicalName: required, a non-empty string"
        raise ParameterError(msg)
    params = body.get("params")
    if not isinstance(params, dict) or not (params.get("url") or params.get("jdbcUrl")):
        msg = 'params: required, {"url": "postgresql+psycopg://host:5432/db"} (or a jdbcUrl)'
        raise ParameterError(msg)
    url = str(params.get("url") or params.get("jdbcUrl"))
    if "@" in url.split("//", 1)[-1].split("/", 1)[0] and ":" in url.split("//", 1)[-1].split("@", 1)[0]:
        msg = "params.url: do not put a password in the URL; store it as a basic credential and pass credentialId"
        raise ParameterError(msg)
    kind = body.get("type", "jdbc")
    if kind not in {"jdbc", "sqlalchemy"}:
        msg = f"type: must be jdbc (a SQLAlchemy URL), got {kind!r}"
        raise ParameterError(msg)
    return {
        "id": new_id(),
        "canonicalName": name,
        "type": kind,
        "params": {k: v for k, v in params.items() if k in {"url", "jdbcUrl", "driverId"}},
        "creator": "tsengine",
        "updated": utc_now(),
    }


def add_batch_routes(
    app: FastAPI, engine: BatchEngine, settings: Settings, registry: Registry, auth: Callable[..., Any]
) -> BatchRoutes:
    """Mount the ``/api/v2`` routes (behind the same API-key check as predApi); the pages reuse their handlers."""
    routes = BatchRoutes(engine, settings, registry)
    router = APIRouter(prefix=V2, dependencies=[Depends(auth)], tags=["batch"])
    jobs = "/batchPredictions"
    definitions = "/batchPredictionJobDefinitions"
    add = router.add_api_route
    add("/version/", routes.version, methods=["GET"])
    add("/deployments/", routes.deployments, methods=["GET"])
    add("/deployments/{deployment_id}/", routes.deployment, methods=["GET"])
    add(f"{jobs}/", routes.create_job, methods=["POST"], status_code=202)
    add(f"{jobs}/", routes.list_jobs, methods=["GET"])
    add(f"{jobs}/fromExisting/", routes.from_existing, methods=["POST"], status_code=202)
    add(f"{jobs}/fromJobDefinition/", routes.from_definition, methods=["POST"], status_code=202)
    add(f"{jobs}/{{job_id}}/", routes.get_job, methods=["GET"])
    add(f"{jobs}/{{job_id}}/", routes.patch_job, methods=["PATCH"])
    add(f"{jobs}/{{job_id}}/", routes.cancel_job, methods=["DELETE"], status_code=202)
    add(f"{jobs}/{{job_id}}/csvUpload/", routes.upload, methods=["PUT"], status_code=202)
    add(f"{jobs}/{{job_id}}/csvUpload/part/{{part}}/", routes.upload_part, methods=["PUT"], status_code=202)
    add(f"{jobs}/{{job_id}}/csvUpload/finalizeMultipart/", routes.finalize, methods=["POST"], status_code=202)
    add(f"{jobs}/{{job_id}}/download/", routes.download, methods=["GET"])
    add(f"{definitions}/", routes.create_definition, methods=["POST"], status_code=202)
    add(f"{definitions}/", routes.list_definitions, methods=["GET"])
    add(f"{definitions}/{{definition_id}}/", routes.get_definition, methods=["GET"])
    add(f"{definitions}/{{definition_id}}/", routes.patch_definition, methods=["PATCH"])
    add(
        f"{definitions}/{{definition_id}}",
        routes.patch_definition,
        methods=["PATCH"],
        include_in_schema=False,
    )
    add(f"{definitions}/{{definition_id}}/", routes.delete_definition, methods=["DELETE"], status_code=204)
    add("/credentials/", routes.create_credential, methods=["POST"], status_code=201)
    add("/credentials/", routes.list_credentials, methods=["GET"])
    add("/credentials/{credential_id}/", routes.get_credential, methods=["GET"])
    add("/credentials/{credential_id}/", routes.delete_credential, methods=["DELETE"], status_code=204)
    add("/externalDataStores/", routes.create_data_store, methods=["POST"], status_code=201)
    add("/externalDataStores/", routes.list_data_stores, methods=["GET"])
    add("/externalDataStores/{data_store_id}/", routes.get_data_store, methods=["GET"])
    add("/externalDataStores/{data_store_id}/", routes.delete_data_store, methods=["DELETE"], status_code=204)
    add("/datasets/", routes.list_datasets, methods=["GET"])
    add("/datasets/fromFile/", routes.upload_dataset, methods=["POST"], status_code=202)
    add("/datasets/{dataset_id}/", routes.get_dataset, methods=["GET"])
    app.include_router(router)
    return routes
