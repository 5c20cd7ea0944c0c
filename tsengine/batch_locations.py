"""``--intake`` and ``--output`` words as DataRobot adapter settings, and back.

``tsengine batch`` takes a location as one word: a file path,
``s3://bucket/key``, ``dataset:ID`` or a SQLAlchemy URL with ``#[schema.]table``
(``#query:SELECT …`` for an intake).  The job document holds DataRobot's
adapter settings instead, and servers sharing the store list it, so a database
URL becomes a registered external data store and any password in it a stored
basic credential: the document never holds a secret.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tsengine.batch import BatchStore
from tsengine.batch.spec import STATEMENT_TYPES
from tsengine.batch.store import new_id, utc_now
from tsengine.errors import ParameterError

__all__ = ["adapter_from_location", "describe_location"]


def _file_format(name: str) -> str:
    return "parquet" if name.lower().endswith((".parquet", ".pq")) else "csv"


def _database_url(text: str) -> sa.URL:
    try:
        url = sa.make_url(text)
    except sa.exc.ArgumentError:
        msg = f"{text.split('://', 1)[0]}://…: not a database URL (dialect://user@host:port/db#table)"
        raise ParameterError(msg) from None
    if url.drivername in {"postgresql", "postgres"}:
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        # the server resolves paths from its own working directory: store an absolute one
        url = url.set(database=str(Path(url.database).expanduser().resolve()))
    return url


def _without_password(url: sa.URL) -> str:
    """The URL as text with no password (``URL.set(password=None)`` keeps it)."""
    return sa.URL.create(
        url.drivername, url.username, None, url.host, url.port, url.database, url.query
    ).render_as_string(hide_password=False)


def _credential_for(store: BatchStore, url: sa.URL) -> str:
    """The id of a basic credential holding the URL's user and password (reused when identical)."""
    name = f"tsengine batch: {_without_password(url)}"
    secret = {"user": url.username or "", "password": str(url.password)}
    for doc in store.credentials():
        if doc.get("name") == name and store.secret(doc["credentialId"]) == secret:
            return str(doc["credentialId"])
    public = {
        "credentialId": new_id(),
        "name": name,
        "credentialType": "basic",
        "description": "created by tsengine batch from a URL with a password",
        "creationDate": utc_now(),
    }
    store.put_credential(public, secret)
    return str(public["credentialId"])


def _data_store_for(store: BatchStore, url: sa.URL) -> str:
    """The id of the external data store for a URL without password (registered once)."""
    text = _without_password(url)
    for doc in store.data_stores():
        if (doc.get("params") or {}).get("url") == text:
            return str(doc["id"])
    doc = {"id": new_id(), "canonicalName": text, "type": "jdbc", "params": {"url": text}}
    store.put_data_store(doc)
    return str(doc["id"])


def adapter_from_location(
    text: str,
    *,
    output: bool,
    store: BatchStore,
    statement_type: str = "insert",
    where_columns: list[str] | None = None,
    update_columns: list[str] | None = None,
    credential_id: str | None = None,
    endpoint_url: str | None = None,
) -> dict[str, Any]:
    """Turn an ``--intake``/``--output`` word into DataRobot adapter settings.

    A file path, ``s3://bucket/key``, ``dataset:ID`` or a SQLAlchemy URL with
    ``#[schema.]table`` (intake also ``#query:SELECT …``).  A database URL is
    registered as an external data store (reused by URL) so the job document,
    which servers also list, never holds a password: one in the URL becomes a
    basic credential.

    Raises:
        ParameterError: a missing intake file or output folder, a URL without
            a table, or a bad statement type.
    """
    flag = "--output" if output else "--intake"
    if text.startswith("s3://"):
        adapter: dict[str, Any] = {"type": "s3", "url": text, "format": _file_format(text)}
        if endpoint_url:
            adapter["endpointUrl"] = endpoint_url
        if credential_id:
            adapter["credentialId"] = credential_id
        return adapter
    if text.startswith("dataset:"):
        if output:
            msg = f"{flag}: a dataset is an intake only; write to a file, s3:// or a database"
            raise ParameterError(msg)
        return {"type": "dataset", "datasetId": text.removeprefix("dataset:")}
    if re.match(r"^[A-Za-z][\w+.-]*://", text):
        return _jdbc_adapter(text, flag, output, store, statement_type, where_columns, update_columns)
    path = Path(text).expanduser().absolute()
    if not output and not path.is_file():
        msg = f"{flag}: no such file {str(path)!r}"
        raise ParameterError(msg)
    if output and not path.parent.is_dir():
        msg = f"{flag}: folder {str(path.parent)!r} does not exist"
        raise ParameterError(msg)
    return {"type": "filesystem", "path": str(path), "format": _file_format(path.name)}


def _jdbc_adapter(
    text: str,
    flag: str,
    output: bool,
    store: BatchStore,
    statement_type: str,
    where_columns: list[str] | None,
    update_columns: list[str] | None,
) -> dict[str, Any]:
    raw, _, target = text.partition("#")
    if not target.strip():
        msg = f"{flag}: name the table after '#', e.g. postgresql://user@host/db#schema.table"
        raise ParameterError(msg)
    url = _database_url(raw)
    adapter: dict[str, Any] = {"type": "jdbc", "dataStoreId": _data_store_for(store, url)}
    if url.password:
        adapter["credentialId"] = _credential_for(store, url)
    if not output and target.startswith("query:"):
        adapter["query"] = target.removeprefix("query:").strip()
        return adapter
    schema, _, table = target.rpartition(".")
    adapter["table"] = table
    if schema:
        adapter["schema"] = schema
    if output:
        if statement_type not in STATEMENT_TYPES:
            msg = f"--statement-type: must be one of {', '.join(STATEMENT_TYPES)}, got {statement_type!r}"
            raise ParameterError(msg)
        adapter["statementType"] = statement_type
        if statement_type in {"insert", "insert_update"}:
            adapter["createTableIfNotExists"] = True
        if where_columns:
            adapter["whereColumns"] = list(where_columns)
        if update_columns:
            adapter["updateColumns"] = list(update_columns)
    return adapter


def describe_location(adapter: dict[str, Any], store: BatchStore) -> str:
    """Adapter settings as a location word again, for the summary line (no password)."""
    kind = adapter.get("type")
    if kind == "filesystem":
        return str(adapter["path"])
    if kind == "s3":
        return str(adapter["url"])
    if kind == "dataset":
        return f"dataset:{adapter['datasetId']}"
    if kind == "jdbc":
        name = store.data_store(adapter["dataStoreId"])["canonicalName"]
        table = ".".join(p for p in (adapter.get("schema"), adapter.get("table")) if p)
        return f"{name}#{table or 'query'}"
    return str(kind)
