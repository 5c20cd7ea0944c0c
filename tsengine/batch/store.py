"""The batch job store: jobs, job definitions, credentials, data stores and datasets.

One SQLAlchemy Core schema serves both backends: an embedded SQLite file in the
registry folder by default (nothing to run), or PostgreSQL by URL
(``TSENGINE_BATCH_STORE_URL=postgresql+psycopg://…``) when several servers share
jobs.  Each record is a JSON document plus the few columns that are filtered or
updated on their own (status, owner, heartbeat, the abort flag), so a cancel
from another process never races the runner's progress updates.

Secrets (credentials) live in their own table and are only read by
:meth:`BatchStore.secret`; every public view of a credential leaves them out.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from tsengine.database import open_engine
from tsengine.errors import NotFoundError, ParameterError

__all__ = ["BatchStore", "new_id", "utc_now"]

_META = sa.MetaData()
JOBS = sa.Table(
    "batch_jobs",
    _META,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("created", sa.Float, nullable=False, index=True),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("deployment_id", sa.String(128), nullable=False),
    sa.Column("definition_id", sa.String(64)),
    sa.Column("owner", sa.String(200)),
    sa.Column("heartbeat", sa.Float),
    sa.Column("abort_requested", sa.Boolean, nullable=False, default=False),
    sa.Column("doc", sa.Text, nullable=False),
)
DEFINITIONS = sa.Table(
    "batch_job_definitions",
    _META,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("next_run", sa.Float),
    sa.Column("doc", sa.Text, nullable=False),
)
CREDENTIALS = sa.Table(
    "credentials",
    _META,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("doc", sa.Text, nullable=False),
    sa.Column("secret", sa.Text, nullable=False),
)
DATA_STORES = sa.Table(
    "external_data_stores",
    _META,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("doc", sa.Text, nullable=False),
)
DATASETS = sa.Table(
    "datasets",
    _META,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("doc", sa.Text, nullable=False),
)

TERMINAL = ("COMPLETED", "ABORTED", "FAILED")
ACTIVE = ("INITIALIZING", "RUNNING")


def new_id() -> str:
    """A 24-hex-digit id, the length DataRobot's ObjectIds have."""
    return uuid.uuid4().hex[:24]


def utc_now() -> str:
    """The current time as DataRobot writes it: ISO 8601 UTC with ``Z``."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _dumps(doc: Any) -> str:
    return orjson.dumps(doc).decode()


def _loads(text: str) -> dict[str, Any]:
    value: dict[str, Any] = orjson.loads(text)
    return value


class BatchStore:
    """Persistent records of the batch engine; safe to share between threads and processes."""

    def __init__(self, url: str) -> None:
        """Open (and create) the store at a SQLAlchemy URL."""
        self.url = url
        self.engine: Engine = _engine(url)
        _META.create_all(self.engine)
        self._lock = threading.Lock()

    @classmethod
    def in_folder(cls, folder: Path) -> BatchStore:
        """The default store: ``batch.sqlite3`` in a (registry) folder."""
        folder.mkdir(parents=True, exist_ok=True)
        return cls(f"sqlite:///{folder / 'batch.sqlite3'}")

    def __repr__(self) -> str:
        return f"BatchStore({self.engine.url.render_as_string(hide_password=True)!r})"

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        # SQLite allows one writer: serialising our own writers avoids "database is locked".
        with self._lock, self.engine.begin() as conn:
            yield conn

    # ------------------------------------------------------------------------ jobs

    def create_job(self, doc: dict[str, Any], *, definition_id: str | None = None) -> None:
        """Insert a new job document (``id``, ``status``, ``jobSpec.deploymentId``)."""
        with self._tx() as conn:
            conn.execute(
                JOBS.insert().values(
                    id=doc["id"],
                    created=time.time(),
                    status=doc["status"],
                    deployment_id=doc["jobSpec"]["deploymentId"],
                    definition_id=definition_id,
                    abort_requested=False,
                    doc=_dumps(doc),
                )
            )

    def job(self, job_id: str) -> dict[str, Any]:
        """A job document with its live status and abort flag.

        Raises:
            NotFoundError: unknown id.
        """
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(JOBS).where(JOBS.c.id == job_id)).first()
        if row is None:
            msg = f"batch prediction job {job_id!r} not found"
            raise NotFoundError(msg)
        return self._job_doc(row)

    @staticmethod
    def _job_doc(row: Any) -> dict[str, Any]:
        doc = _loads(row.doc)
        doc["status"] = row.status
        doc["_abortRequested"] = bool(row.abort_requested)
        doc["_owner"] = row.owner
        doc["_heartbeat"] = row.heartbeat
        doc["_createdTs"] = row.created
        return doc

    def update_job(self, job_id: str, *, status: str | None = None, **fields: Any) -> dict[str, Any]:
        """Merge fields into a job's document (and its status column); returns the new document.

        A terminal status is final: updates after it only merge fields that do not
        change the status (e.g. the download being ready).
        """
        with self._tx() as conn:
            row = conn.execute(sa.select(JOBS).where(JOBS.c.id == job_id)).first()
            if row is None:
                msg = f"batch prediction job {job_id!r} not found"
                raise NotFoundError(msg)
            doc = _loads(row.doc)
            doc.update(fields)
            new_status = row.status if (status is None or row.status in TERMINAL) else status
            doc["status"] = new_status
            conn.execute(
                JOBS.update()
                .where(JOBS.c.id == job_id)
                .values(status=new_status, doc=_dumps(doc), heartbeat=time.time())
            )
        doc["_abortRequested"] = bool(row.abort_requested)
        return doc

    def claim(self, job_id: str, owner: str) -> bool:
        """Take a queued job for this process; False if another process has it."""
        with self._tx() as conn:
            result = conn.execute(
                JOBS.update()
                .where(JOBS.c.id == job_id, JOBS.c.owner.is_(None), JOBS.c.status.in_(ACTIVE))
                .values(owner=owner, heartbeat=time.time())
            )
        return bool(result.rowcount)

    def heartbeat(self, job_ids: Sequence[str]) -> None:
        """Mark running jobs as alive (a restart tells stale jobs by their heartbeat)."""
        if not job_ids:
            return
        with self._tx() as conn:
            conn.execute(JOBS.update().where(JOBS.c.id.in_(list(job_ids))).values(heartbeat=time.time()))

    def request_abort(self, job_id: str) -> dict[str, Any]:
        """Flag a job for abortion; the runner (in whichever process) stops at the next chunk."""
        with self._tx() as conn:
            result = conn.execute(JOBS.update().where(JOBS.c.id == job_id).values(abort_requested=True))
        if not result.rowcount:
            msg = f"batch prediction job {job_id!r} not found"
            raise NotFoundError(msg)
        return self.job(job_id)

    def abort_requested(self, job_id: str) -> bool:
        """Whether someone asked the job to stop."""
        with self.engine.connect() as conn:
            value = conn.execute(sa.select(JOBS.c.abort_requested).where(JOBS.c.id == job_id)).scalar()
        return bool(value)

    def jobs(
        self,
        *,
        statuses: Sequence[str] = (),
        deployment_id: str | None = None,
        definition_id: str | None = None,
        job_id: str | None = None,
        since: float | None = None,
        until: float | None = None,
        order_by: str = "-created",
        offset: int = 0,
        limit: int = 100,
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of job documents and the total count matching the filters."""
        query = sa.select(JOBS)
        if statuses:
            query = query.where(JOBS.c.status.in_(list(statuses)))
        if deployment_id:
            query = query.where(JOBS.c.deployment_id == deployment_id)
        if definition_id:
            query = query.where(JOBS.c.definition_id == definition_id)
        if job_id:
            query = query.where(JOBS.c.id == job_id)
        if since is not None:
            query = query.where(JOBS.c.created >= since)
        if until is not None:
            query = query.where(JOBS.c.created <= until)
        column = JOBS.c.status if order_by.lstrip("-") == "status" else JOBS.c.created
        query = query.order_by(column.desc() if order_by.startswith("-") else column.asc(), JOBS.c.id)
        with self.engine.connect() as conn:
            total = conn.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one()
            rows = conn.execute(query.offset(offset).limit(limit)).all()
        return [self._job_doc(row) for row in rows], int(total)

    def unowned_jobs(self) -> list[str]:
        """Queued jobs no process has claimed yet, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(JOBS.c.id)
                .where(JOBS.c.owner.is_(None), JOBS.c.status.in_(ACTIVE))
                .order_by(JOBS.c.created)
            ).all()
        return [row.id for row in rows]

    def active_jobs(self) -> list[dict[str, Any]]:
        """Every job not yet in a terminal status."""
        return self.jobs(statuses=ACTIVE, order_by="created", limit=1_000_000)[0]

    def delete_job(self, job_id: str) -> None:
        """Remove a job record."""
        with self._tx() as conn:
            conn.execute(JOBS.delete().where(JOBS.c.id == job_id))

    # ------------------------------------------------------------ job definitions

    def put_definition(
        self, doc: dict[str, Any], *, next_run: float | None, keep_schedule: bool = False
    ) -> None:
        """Insert or replace a job definition (``keep_schedule``: leave its next run as it is).

        Raises:
            ParameterError: another definition already has this name.
        """
        with self._tx() as conn:
            clash = conn.execute(
                sa.select(DEFINITIONS.c.id).where(
                    DEFINITIONS.c.name == doc["name"], DEFINITIONS.c.id != doc["id"]
                )
            ).first()
            if clash is not None:
                msg = f"name: a job definition named {doc['name']!r} already exists (id {clash.id})"
                raise ParameterError(msg)
            values = {
                "name": doc["name"],
                "enabled": bool(doc["enabled"]),
                "next_run": next_run,
                "doc": _dumps(doc),
            }
            if keep_schedule:
                del values["next_run"]
            updated = conn.execute(DEFINITIONS.update().where(DEFINITIONS.c.id == doc["id"]).values(**values))
            if not updated.rowcount:
                conn.execute(
                    DEFINITIONS.insert().values(
                        id=doc["id"], created=time.time(), **{**values, "next_run": next_run}
                    )
                )

    def definition(self, definition_id: str) -> dict[str, Any]:
        """One job definition.

        Raises:
            NotFoundError: unknown id.
        """
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(DEFINITIONS).where(DEFINITIONS.c.id == definition_id)).first()
        if row is None:
            msg = f"batch prediction job definition {definition_id!r} not found"
            raise NotFoundError(msg)
        return _loads(row.doc)

    def definitions(
        self, *, search_name: str | None = None, deployment_id: str | None = None
    ) -> list[dict[str, Any]]:
        """All job definitions, oldest first, optionally filtered."""
        query = sa.select(DEFINITIONS).order_by(DEFINITIONS.c.created, DEFINITIONS.c.id)
        if search_name:
            query = query.where(DEFINITIONS.c.name.contains(search_name, autoescape=True))
        with self.engine.connect() as conn:
            docs = [_loads(row.doc) for row in conn.execute(query).all()]
        if deployment_id:
            docs = [d for d in docs if d["batchPredictionJob"].get("deploymentId") == deployment_id]
        return docs

    def due_definitions(self, now: float) -> list[dict[str, Any]]:
        """Enabled definitions whose next scheduled run is at or before ``now``."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(DEFINITIONS).where(
                    DEFINITIONS.c.enabled.is_(True),
                    DEFINITIONS.c.next_run.is_not(None),
                    DEFINITIONS.c.next_run <= now,
                )
            ).all()
        return [_loads(row.doc) for row in rows]

    def scheduled_run(self, definition_id: str) -> float | None:
        """A definition's next scheduled run (POSIX time), or None."""
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.select(DEFINITIONS.c.next_run).where(DEFINITIONS.c.id == definition_id)
            ).scalar()
        return None if value is None else float(value)

    def advance_schedule(self, definition_id: str, *, expected: float, next_run: float | None) -> bool:
        """Move a definition's next run forward; False if another process already did."""
        with self._tx() as conn:
            result = conn.execute(
                DEFINITIONS.update()
                .where(DEFINITIONS.c.id == definition_id, DEFINITIONS.c.next_run == expected)
                .values(next_run=next_run)
            )
        return bool(result.rowcount)

    def delete_definition(self, definition_id: str) -> None:
        """Remove a job definition.

        Raises:
            NotFoundError: unknown id.
        """
        with self._tx() as conn:
            result = conn.execute(DEFINITIONS.delete().where(DEFINITIONS.c.id == definition_id))
        if not result.rowcount:
            msg = f"batch prediction job definition {definition_id!r} not found"
            raise NotFoundError(msg)

    # --------------------------------------------- credentials, data stores, datasets

    def put_credential(self, doc: dict[str, Any], secret: dict[str, Any]) -> None:
        """Store a credential; ``doc`` is its public view, ``secret`` what adapters need."""
        with self._tx() as conn:
            conn.execute(
                CREDENTIALS.insert().values(
                    id=doc["credentialId"], created=time.time(), doc=_dumps(doc), secret=_dumps(secret)
                )
            )

    def credential(self, credential_id: str) -> dict[str, Any]:
        """A credential's public view (never its secret).

        Raises:
            NotFoundError: unknown id.
        """
        return _loads(self._row(CREDENTIALS, credential_id).doc)

    def secret(self, credential_id: str) -> dict[str, Any]:
        """What an adapter needs to authenticate; never returned over HTTP or logged."""
        return _loads(self._row(CREDENTIALS, credential_id).secret)

    def credentials(self) -> list[dict[str, Any]]:
        """Public views of every credential."""
        return self._docs(CREDENTIALS)

    def delete_credential(self, credential_id: str) -> None:
        """Remove a credential."""
        self._delete(CREDENTIALS, credential_id)

    def put_data_store(self, doc: dict[str, Any]) -> None:
        """Store an external data store (a SQLAlchemy URL without secrets)."""
        with self._tx() as conn:
            conn.execute(DATA_STORES.insert().values(id=doc["id"], created=time.time(), doc=_dumps(doc)))

    def data_store(self, data_store_id: str) -> dict[str, Any]:
        """One external data store.

        Raises:
            NotFoundError: unknown id.
        """
        return _loads(self._row(DATA_STORES, data_store_id).doc)

    def data_stores(self) -> list[dict[str, Any]]:
        """Every external data store."""
        return self._docs(DATA_STORES)

    def delete_data_store(self, data_store_id: str) -> None:
        """Remove an external data store."""
        self._delete(DATA_STORES, data_store_id)

    def put_dataset(self, doc: dict[str, Any]) -> None:
        """Insert or replace a catalog dataset (its versions live in the document)."""
        with self._tx() as conn:
            updated = conn.execute(
                DATASETS.update().where(DATASETS.c.id == doc["id"]).values(doc=_dumps(doc))
            )
            if not updated.rowcount:
                conn.execute(DATASETS.insert().values(id=doc["id"], created=time.time(), doc=_dumps(doc)))

    def dataset(self, dataset_id: str) -> dict[str, Any]:
        """One catalog dataset.

        Raises:
            NotFoundError: unknown id.
        """
        return _loads(self._row(DATASETS, dataset_id).doc)

    def datasets(self) -> list[dict[str, Any]]:
        """Every catalog dataset."""
        return self._docs(DATASETS)

    # One lookup, listing and removal for the catalog tables; the message says how to create one.
    _MISSING: ClassVar[dict[str, str]] = {
        "credentials": "credential {!r} not found; create it with POST /api/v2/credentials/",
        "external_data_stores": (
            "external data store {!r} not found; register it with POST /api/v2/externalDataStores/"
        ),
        "datasets": "dataset {!r} not found; add it with tsengine datasets add FILE",
    }

    def _row(self, table: sa.Table, record_id: str) -> Any:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(table).where(table.c.id == record_id)).first()
        if row is None:
            msg = self._MISSING[table.name].format(record_id)
            raise NotFoundError(msg)
        return row

    def _docs(self, table: sa.Table) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [_loads(r.doc) for r in conn.execute(sa.select(table).order_by(table.c.created))]

    def _delete(self, table: sa.Table, record_id: str) -> None:
        self._row(table, record_id)
        with self._tx() as conn:
            conn.execute(table.delete().where(table.c.id == record_id))


def _engine(url: str) -> Engine:
    try:
        return open_engine(url)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
        safe = sa.engine.make_url(url).render_as_string(hide_password=True) if "://" in url else url
        msg = f"batch store URL {safe!r} is not usable: {exc}"
        raise ParameterError(msg) from exc
