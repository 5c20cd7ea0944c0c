"""The ``/api/v2`` catalog handlers: credentials, external data stores and datasets.

Jobs name these by id (``credentialId``, ``dataStoreId``, ``datasetId``), so
they are stored before any job uses them.  A credential's secret is stored and
never echoed; a data store's URL may not hold a password (it goes into a basic
credential instead), so no listing ever shows one.  A mixin of
:class:`api.batch.BatchRoutes`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from api.batch_wire import READ_BLOCK, json_body, json_response
from api.settings import Settings
from tsengine.batch import BatchEngine, BatchStore
from tsengine.batch.catalog import add_dataset, public_dataset
from tsengine.batch.store import new_id, utc_now
from tsengine.errors import BadRequestError, ParameterError

__all__ = ["CatalogRoutes"]


class CatalogRoutes:
    """Credential, data store and dataset handlers; :class:`api.batch.BatchRoutes` sets the attributes."""

    engine: BatchEngine
    store: BatchStore
    settings: Settings

    async def create_credential(self, request: Request) -> Response:
        """``POST credentials/``: the secret is stored, never echoed."""
        body = await json_body(request)
        public, secret = _credential(body)
        await run_in_threadpool(self.store.put_credential, public, secret)
        return json_response(public, 201)

    async def list_credentials(self) -> Response:
        """``GET credentials/``: public views only."""
        data = await run_in_threadpool(self.store.credentials)
        return json_response(
            {"count": len(data), "data": data, "next": None, "previous": None, "totalCount": len(data)}
        )

    async def get_credential(self, credential_id: str) -> Response:
        """``GET credentials/{id}/``: the public view."""
        return json_response(await run_in_threadpool(self.store.credential, credential_id))

    async def delete_credential(self, credential_id: str) -> Response:
        """``DELETE credentials/{id}/``: 204."""
        await run_in_threadpool(self.store.delete_credential, credential_id)
        return Response(status_code=204)

    async def create_data_store(self, request: Request) -> Response:
        """``POST externalDataStores/``: a database reachable by SQLAlchemy URL (no password in it)."""
        doc = _data_store(await json_body(request))
        await run_in_threadpool(self.store.put_data_store, doc)
        return json_response(doc, 201)

    async def list_data_stores(self) -> Response:
        """``GET externalDataStores/``."""
        data = await run_in_threadpool(self.store.data_stores)
        return json_response(
            {"count": len(data), "data": data, "next": None, "previous": None, "totalCount": len(data)}
        )

    async def get_data_store(self, data_store_id: str) -> Response:
        """``GET externalDataStores/{id}/``."""
        return json_response(await run_in_threadpool(self.store.data_store, data_store_id))

    async def delete_data_store(self, data_store_id: str) -> Response:
        """``DELETE externalDataStores/{id}/``: 204."""
        await run_in_threadpool(self.store.delete_data_store, data_store_id)
        return Response(status_code=204)

    async def list_datasets(self) -> Response:
        """``GET datasets/``: the catalog."""
        docs = await run_in_threadpool(self.store.datasets)
        data = [public_dataset(d) for d in docs]
        return json_response(
            {"count": len(data), "data": data, "next": None, "previous": None, "totalCount": len(data)}
        )

    async def get_dataset(self, dataset_id: str) -> Response:
        """``GET datasets/{id}/``."""
        return json_response(public_dataset(await run_in_threadpool(self.store.dataset, dataset_id)))

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
                while block := await upload.read(READ_BLOCK):
                    await run_in_threadpool(out.write, block)
            try:
                doc = await run_in_threadpool(
                    lambda: add_dataset(self.store, self.engine.folder / "datasets", staging, name=name)
                )
            finally:
                staging.unlink(missing_ok=True)
        finally:
            await form.close()
        return json_response(doc, 202)


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
