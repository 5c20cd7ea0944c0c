"""One way to open the SQL databases tsengine keeps state in (batch jobs, monitoring).

SQLite files get WAL mode, so readers (job status, reports) never wait for the
one writer, and a 30 s busy timeout; other databases get connection checks
before use and a short connect timeout, so an unreachable server fails fast
instead of holding a request.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

__all__ = ["CONNECT_TIMEOUT_SECONDS", "open_engine"]

CONNECT_TIMEOUT_SECONDS = 3


def open_engine(url: str) -> Engine:
    """A SQLAlchemy engine for ``url`` with the settings above (no connection is made yet)."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    connect_args = {"connect_timeout": CONNECT_TIMEOUT_SECONDS} if url.startswith("postgresql") else {}
    return sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args)
