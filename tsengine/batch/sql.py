"""Database intake and output (DataRobot's ``jdbc`` adapter) through SQLAlchemy Core.

DataRobot names a database by a registered data store (``dataStoreId``) whose
params hold a JDBC URL; tsengine stores a SQLAlchemy URL instead (and converts
``jdbc:postgresql://…`` / ``jdbc:mysql://…`` / ``jdbc:sqlite:…``).  PostgreSQL
through psycopg 3 is the tested target; SQLite works too; any SQLAlchemy
dialect whose driver is installed may.

The intake streams the table or query in ``fetchSize``-row batches into one
local Parquet file, so a large table never sits in memory and its column types
(dates, timestamps, floats) survive without a round trip through CSV text.

The output writes each scored chunk in its own transaction: a failure or a
cancel never leaves part of a chunk behind, but chunks committed before it stay
(the table holds whole chunks only), as DataRobot's ``commitInterval`` commits do.
User-given names (tables, schemas, columns such as ``delayed (actual)_PREDICTION``)
are always quoted by SQLAlchemy, never formatted into SQL text.

Failures become a :class:`~tsengine.errors.ValidationError` naming the data
store (its URL with the password hidden) and the table; passwords are never
part of a message.

This module holds the output; the connection is in
:mod:`~tsengine.batch.sql_connection` and the intake in
:mod:`~tsengine.batch.sql_intake`, both re-exported here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tsengine.batch.adapters import AdapterContext
from tsengine.batch.spec import STATEMENT_TYPES, AdapterSettings, CsvSettings
from tsengine.batch.sql_connection import Database, qualified_name, reflect_table, sqlalchemy_url
from tsengine.batch.sql_intake import DEFAULT_FETCH_SIZE, sql_intake
from tsengine.errors import ParameterError, ValidationError

__all__ = [
    "DEFAULT_FETCH_SIZE",
    "SqlSink",
    "polars_to_sqlalchemy",
    "sql_intake",
    "sql_sink",
    "sqlalchemy_url",
]


def polars_to_sqlalchemy(dtype: pl.DataType) -> sa.types.TypeEngine[Any]:
    """The column type ``create_table`` gives a polars dtype."""
    if dtype.is_integer():
        return sa.BigInteger()
    if dtype.is_float():
        return sa.Double()
    if dtype == pl.Boolean:
        return sa.Boolean()
    if isinstance(dtype, pl.Datetime):
        return sa.DateTime(timezone=dtype.time_zone is not None)
    if dtype == pl.Date:
        return sa.Date()
    if dtype == pl.Time:
        return sa.Time()
    if isinstance(dtype, pl.Decimal):
        return sa.Numeric()
    return sa.Text()


def sql_sink(settings: AdapterSettings, _csv: CsvSettings, ctx: AdapterContext) -> SqlSink:
    """Open the database output (connects and checks the table before anything is scored)."""
    return SqlSink(settings, ctx)


class SqlSink:
    """Scored chunks written to a table, one transaction per chunk.

    ``statementType``:

    * ``insert``: plain inserts into an existing table (created from the first
      chunk when ``createTableIfNotExists`` is true);
    * ``create_table``: create the table from the first chunk's columns
      (an error if it exists), then insert;
    * ``update``: ``UPDATE … SET <updateColumns, or every column not in
      whereColumns> WHERE <whereColumns> = <row's values>`` per row;
    * ``insert_update``: an upsert done the same way on every database: per
      chunk, the ``update`` above, then ``INSERT … SELECT … WHERE NOT EXISTS``
      for each row whose key is not in the table.  When a chunk repeats a key
      its last row wins.

    Each chunk is one transaction, so the table holds whole chunks only: a
    failing chunk leaves nothing, the chunks before it stay.  NULL key values
    never match (SQL equality), so such rows are inserted by ``insert_update``
    and skipped by ``update``.
    """

    def __init__(self, settings: AdapterSettings, ctx: AdapterContext) -> None:
        """Read the settings, connect and check the table against ``statementType``.

        Raises:
            ParameterError: an unknown statement type or missing ``whereColumns``.
            ValidationError: the database is unreachable, or the table is missing
                (or exists, for ``create_table``).
        """
        self.statement = str(settings.get("statementType"))
        if self.statement not in STATEMENT_TYPES:
            msg = f"outputSettings.statementType: expected one of {', '.join(STATEMENT_TYPES)}, got {self.statement!r}"
            raise ParameterError(msg)
        self.table_name = str(settings.get("table"))
        self.schema: str | None = settings.get("schema") or None
        self.where_columns: list[str] = list(settings.get("whereColumns") or [])
        self.update_columns: list[str] = list(settings.get("updateColumns") or [])
        self.create_if_missing = bool(settings.get("createTableIfNotExists", False))
        if self.statement in ("update", "insert_update") and not self.where_columns:
            msg = f"outputSettings.whereColumns: required for statementType {self.statement!r}"
            raise ParameterError(msg)
        self.what = f"table {qualified_name(self.table_name, self.schema)!r}"
        self._db = Database(settings, ctx)
        self._bytes = 0
        self._table: sa.Table | None = None
        try:
            self._db.run("open", self.what, self._check)
        except BaseException:
            self._db.engine.dispose()
            raise

    def _check(self) -> None:
        with self._db.engine.connect() as conn:
            exists = sa.inspect(conn).has_table(self.table_name, schema=self.schema)
            if exists and self.statement == "create_table":
                msg = f"{self.what} already exists in {self._db.label}; use statementType insert"
                raise ValidationError(msg)
            can_create = self.statement == "create_table" or (
                self.create_if_missing and self.statement in ("insert", "insert_update")
            )
            if not exists and not can_create:
                msg = f"{self.what} does not exist in {self._db.label}"
                if self.statement == "insert":
                    msg += "; set createTableIfNotExists or use statementType create_table"
                raise ValidationError(msg)
            if exists:
                self._table = reflect_table(conn, self.table_name, self.schema)

    @property
    def bytes_written(self) -> int:
        """Approximate bytes written (polars' in-memory size of the chunks)."""
        return self._bytes

    def write(self, frame: pl.DataFrame) -> None:
        """Write one chunk in one transaction.

        Raises:
            ValidationError: the chunk does not fit the table or the database refused it
                (nothing of the chunk remains).
        """
        self._db.run("write to", self.what, lambda: self._write(frame))
        self._bytes += int(frame.estimated_size())

    def _write(self, frame: pl.DataFrame) -> None:
        with self._db.engine.begin() as conn:
            table = self._table
            if table is None:
                table = self._create(conn, frame)
            missing = [c for c in frame.columns if c not in table.c]
            if missing:
                msg = f"{self.what} in {self._db.label} has no column {', '.join(map(repr, missing))}"
                raise ValidationError(msg)
            if frame.height == 0:
                self._table = table
                return
            if self.statement in ("insert", "create_table"):
                self._insert(conn, table, frame)
            else:
                keys = [c for c in self.where_columns if c not in frame.columns]
                if keys:
                    msg = (
                        f"outputSettings.whereColumns: {', '.join(map(repr, keys))} not in the output columns"
                    )
                    raise ValidationError(msg)
                if self.statement == "insert_update":
                    frame = frame.unique(subset=self.where_columns, keep="last", maintain_order=True)
                self._update(conn, table, frame)
                if self.statement == "insert_update":
                    self._insert_missing(conn, table, frame)
        self._table = table

    def _create(self, conn: Connection, frame: pl.DataFrame) -> sa.Table:
        columns = [sa.Column(name, polars_to_sqlalchemy(dtype)) for name, dtype in frame.schema.items()]
        table = sa.Table(self.table_name, sa.MetaData(), *columns, schema=self.schema)
        # create_table must not reuse a table that appeared since open; the others may.
        table.create(conn, checkfirst=self.statement != "create_table")
        return reflect_table(conn, self.table_name, self.schema)

    def _insert(self, conn: Connection, table: sa.Table, frame: pl.DataFrame) -> None:
        names = frame.columns
        statement = table.insert().values(
            {table.c[n]: sa.bindparam(f"p{i}", type_=table.c[n].type) for i, n in enumerate(names)}
        )
        conn.execute(statement, _params(frame, names, "p"))

    def _set_columns(self, frame: pl.DataFrame) -> list[str]:
        columns = self.update_columns or [c for c in frame.columns if c not in self.where_columns]
        unknown = [c for c in columns if c not in frame.columns]
        if unknown:
            msg = f"outputSettings.updateColumns: {', '.join(map(repr, unknown))} not in the output columns"
            raise ValidationError(msg)
        return columns

    def _key_match(self, table: sa.Table, target: sa.FromClause) -> list[sa.ColumnElement[bool]]:
        return [
            target.c[w] == sa.bindparam(f"w{i}", type_=table.c[w].type)
            for i, w in enumerate(self.where_columns)
        ]

    def _update(self, conn: Connection, table: sa.Table, frame: pl.DataFrame) -> None:
        columns = self._set_columns(frame)
        if not columns:
            return
        statement = (
            table.update()
            .where(*self._key_match(table, table))
            .values({table.c[c]: sa.bindparam(f"s{i}", type_=table.c[c].type) for i, c in enumerate(columns)})
        )
        rows = [
            {**w, **s}
            for w, s in zip(
                _params(frame, self.where_columns, "w"), _params(frame, columns, "s"), strict=True
            )
        ]
        conn.execute(statement, rows)

    def _insert_missing(self, conn: Connection, table: sa.Table, frame: pl.DataFrame) -> None:
        names = frame.columns
        postgres = conn.dialect.name == "postgresql"

        def value(i: int, name: str) -> sa.ColumnElement[Any]:
            param = sa.bindparam(f"p{i}", type_=table.c[name].type)
            # PostgreSQL cannot infer a type for a bare parameter in a SELECT list.
            return sa.cast(param, table.c[name].type) if postgres else param

        other = table.alias("existing")
        select = sa.select(*(value(i, n) for i, n in enumerate(names))).where(
            ~sa.exists().where(*self._key_match(table, other))
        )
        statement = table.insert().from_select([table.c[n] for n in names], select)
        rows = [
            {**p, **w}
            for p, w in zip(_params(frame, names, "p"), _params(frame, self.where_columns, "w"), strict=True)
        ]
        conn.execute(statement, rows)

    def commit(self) -> None:
        """Every chunk is already committed; release the connections."""
        self._db.engine.dispose()

    def abort(self) -> None:
        """Release the connections (committed chunks stay, see the class docstring)."""
        with contextlib.suppress(Exception):  # abort never raises
            self._db.engine.dispose()


def _params(frame: pl.DataFrame, names: Sequence[str], prefix: str) -> list[dict[str, Any]]:
    """Rows as bind parameters ``{prefix}{i}`` (user column names never become parameter names)."""
    keys = [f"{prefix}{i}" for i in range(len(names))]
    return [dict(zip(keys, row, strict=True)) for row in frame.select(names).iter_rows()]
