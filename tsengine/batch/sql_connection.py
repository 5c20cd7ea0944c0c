"""Connecting to a ``jdbc`` adapter's database: its URL, its engine, its error messages.

DataRobot names a database by a registered data store (``dataStoreId``) whose
params hold a JDBC URL; tsengine stores a SQLAlchemy URL instead (and converts
``jdbc:postgresql://…`` / ``jdbc:mysql://…`` / ``jdbc:sqlite:…``).  The intake
(:mod:`~tsengine.batch.sql_intake`) and the output (:mod:`~tsengine.batch.sql`)
both connect through :class:`Database`, so both name the data store the same
way in their errors, with the password hidden: it is never part of a message.
"""

from __future__ import annotations

import urllib.parse
import warnings
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine

from tsengine.batch.adapters import AdapterContext
from tsengine.batch.spec import AdapterSettings
from tsengine.errors import ParameterError, ValidationError

__all__ = ["Database", "qualified_name", "reflect_table", "sqlalchemy_url"]

_CONNECT_TIMEOUT = 10
# JDBC subprotocol -> SQLAlchemy dialect+driver.
_JDBC_DIALECTS = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
}
_Result = TypeVar("_Result")


def sqlalchemy_url(params: Mapping[str, Any]) -> URL:
    """The SQLAlchemy URL of a data store's ``params`` (``url``, or a ``jdbcUrl`` converted).

    JDBC's ``?user=…&password=…`` query parameters become the URL's user and
    password, since SQLAlchemy drivers do not read them from the query.

    Raises:
        ParameterError: neither key, an unsupported JDBC subprotocol, or an unparseable URL
            (not echoed: it may hold a password).
    """
    raw = params.get("url") or params.get("jdbcUrl")
    if not raw:
        msg = "data store params: expected 'url' (a SQLAlchemy URL) or 'jdbcUrl'"
        raise ParameterError(msg)
    text = str(raw)
    if text.startswith("jdbc:"):
        return _from_jdbc(text)
    try:
        return sa.make_url(text)
    except sa.exc.ArgumentError:
        msg = "data store params.url is not a SQLAlchemy URL (dialect+driver://user@host:port/database)"
        raise ParameterError(msg) from None


def _from_jdbc(text: str) -> URL:
    rest = text.removeprefix("jdbc:")
    protocol, _, tail = rest.partition(":")
    if protocol == "sqlite":
        return sa.make_url(f"sqlite:///{tail}")
    dialect = _JDBC_DIALECTS.get(protocol.lower())
    if dialect is None or not tail.startswith("//"):
        msg = f"data store params.jdbcUrl: unsupported JDBC URL 'jdbc:{protocol}:…' (supported: postgresql, mysql, sqlite)"
        raise ParameterError(msg)
    parts = urllib.parse.urlsplit(f"x:{tail}")
    query = dict(urllib.parse.parse_qsl(parts.query))
    user, password = query.pop("user", None), query.pop("password", None)
    try:
        port = parts.port
    except ValueError:
        msg = "data store params.jdbcUrl: the port is not a number"
        raise ParameterError(msg) from None
    return URL.create(
        dialect,
        username=user or parts.username,
        password=password or parts.password,
        host=parts.hostname,
        port=port,
        database=parts.path.lstrip("/") or None,
        query=query,
    )


class Database:
    """An engine for one adapter's data store, and how to name it in messages."""

    def __init__(self, settings: AdapterSettings, ctx: AdapterContext) -> None:
        doc = ctx.store.data_store(str(settings.get("dataStoreId")))
        url = sqlalchemy_url(doc.get("params") or {})
        secret = ctx.secret(settings.get("credentialId"))
        if secret:
            url = url.set(
                username=secret.get("user") or secret.get("username") or url.username,
                password=secret.get("password") or url.password,
            )
        self.hidden = [str(url.password)] if url.password else []
        name = doc.get("canonicalName") or doc.get("id")
        self.label = f"data store {name!r} ({url.render_as_string(hide_password=True)})"
        connect_args: dict[str, Any] = {}
        if url.get_backend_name() == "postgresql":
            connect_args["connect_timeout"] = _CONNECT_TIMEOUT
        self.engine: Engine = sa.create_engine(url, connect_args=connect_args, pool_pre_ping=True)

    def reason(self, exc: BaseException) -> str:
        """One line on what went wrong: the driver's message, without SQL, parameters or password."""
        orig = getattr(exc, "orig", None)
        text = str(orig if orig is not None else exc).strip()
        text = text.splitlines()[0] if text else type(exc).__name__
        for value in self.hidden:
            text = text.replace(value, "***")
        return text[:300]

    def error(self, action: str, what: str, exc: BaseException) -> ValidationError:
        """The error to raise when ``action`` on ``what`` failed (see :meth:`reason`)."""
        msg = f"cannot {action} {what} in {self.label}: {self.reason(exc)}"
        return ValidationError(msg)

    def run(self, action: str, what: str, fn: Callable[[], _Result]) -> _Result:
        """Call ``fn``, turning database errors into a :class:`ValidationError`."""
        try:
            return fn()
        except sa.exc.SQLAlchemyError as exc:
            raise self.error(action, what, exc) from None


def qualified_name(table: str, schema: str | None) -> str:
    """``schema.table``, or the table alone: how messages name a table."""
    return f"{schema}.{table}" if schema else table


def reflect_table(conn: Connection, table: str, schema: str | None) -> sa.Table:
    """The table as the database describes it (columns and their types)."""
    with warnings.catch_warnings():
        # An unknown column type (e.g. a PostGIS geometry) reflects as NullType with a warning.
        warnings.simplefilter("ignore", sa.exc.SAWarning)
        return sa.Table(table, sa.MetaData(), schema=schema, autoload_with=conn)
