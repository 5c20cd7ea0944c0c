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

This module holds the jobs, deployments and job definitions routes and mounts
them all; the upload and download handlers are in :mod:`api.batch_uploads`, the
credentials, data stores and datasets in :mod:`api.batch_catalog`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from api.batch_catalog import CatalogRoutes
from api.batch_uploads import UploadRoutes
from api.batch_wire import json_body, json_response
from api.settings import Settings
from tsengine.batch import BatchEngine, parse_job_spec, public_job
from tsengine.batch import definitions as defs
from tsengine.batch.store import TERMINAL, utc_now
from tsengine.errors import NotFoundError, ParameterError
from tsengine.registry import Registry

__all__ = ["API_VERSION", "BatchRoutes", "add_batch_routes"]

V2 = "/api/v2"
# The ``datarobot`` 3.20 client needs a major version of 2 and warns below 2.49.
API_VERSION = {"major": 2, "minor": 49, "versionString": "2.49.0"}


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


class BatchRoutes(UploadRoutes, CatalogRoutes):
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
        return json_response(body, 202, {"Location": body["links"]["self"]})

    # ------------------------------------------------------------------- routes

    async def version(self) -> Response:
        """``GET version/``: what the ``datarobot`` client checks on ``Client(...)``."""
        return json_response(API_VERSION)

    async def deployment(self, request: Request, deployment_id: str) -> Response:
        """``GET deployments/{id}/``: what ``dr.Deployment.get`` reads."""
        deployment = await run_in_threadpool(self.registry.load, deployment_id)
        return json_response(self._deployment_doc(request, deployment))

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
        return json_response(
            {"count": len(data), "data": data, "next": None, "previous": None, "totalCount": len(data)}
        )

    async def create_job(self, request: Request) -> Response:
        """``POST batchPredictions/``: 202 with ``Location``, before any data arrives."""
        spec = parse_job_spec(await json_body(request))
        doc = await run_in_threadpool(self.engine.create_job, spec)
        return self._created(request, doc)

    async def from_existing(self, request: Request) -> Response:
        """``POST batchPredictions/fromExisting/``: the same spec again, on the live model."""
        body = await json_body(request)
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
        body = await json_body(request)
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
        return json_response(self._page(request, data, offset, limit, total))

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
        return json_response(self._job(request, await run_in_threadpool(self.store.job, job_id)))

    async def patch_job(self, request: Request, job_id: str) -> Response:
        """``PATCH batchPredictions/{id}/``: hide or show a job."""
        body = await json_body(request)
        if not isinstance(body, dict) or set(body) - {"hidden"}:
            extra = sorted(set(body) - {"hidden"}) if isinstance(body, dict) else ["<body>"]
            msg = f"{extra[0]}: only 'hidden' can be changed on a batch prediction job"
            raise ParameterError(msg)
        if "hidden" in body and not isinstance(body["hidden"], bool):
            msg = f"hidden must be true or false, got {body['hidden']!r}"
            raise ParameterError(msg)
        await run_in_threadpool(self.store.job, job_id)
        doc = await run_in_threadpool(lambda: self.store.update_job(job_id, **body))
        return json_response(self._job(request, doc))

    async def cancel_job(self, request: Request, job_id: str) -> Response:
        """``DELETE batchPredictions/{id}/``: abort (or, when finished, delete the results); 202."""
        doc = await run_in_threadpool(self.engine.cancel, job_id)
        return json_response(self._job(request, doc), 202)

    # -------------------------------------------------------------- definitions

    def _definition(self, request: Request, doc: dict[str, Any]) -> dict[str, Any]:
        out = dict(doc)
        out["links"] = {"self": f"{self._base(request)}/batchPredictionJobDefinitions/{doc['id']}/"}
        return out

    async def create_definition(self, request: Request) -> Response:
        """``POST batchPredictionJobDefinitions/``: store a spec (and its schedule)."""
        doc = defs.build_definition(await json_body(request))
        await run_in_threadpool(self._check_definition, doc)
        await run_in_threadpool(self.engine.save_definition, doc)
        return json_response(self._definition(request, doc), 202)

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
        return json_response(self._page(request, page, offset, limit, len(docs)))

    async def get_definition(self, request: Request, definition_id: str) -> Response:
        """``GET batchPredictionJobDefinitions/{id}/``."""
        return json_response(
            self._definition(request, await run_in_threadpool(self.store.definition, definition_id))
        )

    async def patch_definition(self, request: Request, definition_id: str) -> Response:
        """``PATCH batchPredictionJobDefinitions/{id}`` (the client sends no slash)."""
        body = await json_body(request)
        old = await run_in_threadpool(self.store.definition, definition_id)
        doc = defs.update_definition(old, body)
        doc["updated"] = utc_now()
        await run_in_threadpool(self._check_definition, doc)
        await run_in_threadpool(self.engine.save_definition, doc)
        return json_response(self._definition(request, doc))

    async def delete_definition(self, definition_id: str) -> Response:
        """``DELETE batchPredictionJobDefinitions/{id}/``: 204."""
        await run_in_threadpool(self.store.delete_definition, definition_id)
        return Response(status_code=204)


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
