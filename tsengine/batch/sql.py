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
"""

from __future__ import annotations

import contextlib
import urllib.parse
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import orjson
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, CursorResult, Engine

from tsengine.batch.adapters import AdapterContext, Source
from tsengine.batch.spec import STATEMENT_TYPES, AdapterSettings, CsvSettings
from tsengine.errors import ParameterError, ValidationError

__all__ = [
    "DEFAULT_FETCH_SIZE",
    "SqlSink",
    "polars_to_sqlalchemy",
    "sql_intake",
    "sql_sink",
    "sqlalchemy_url",
]

DEFAULT_FETCH_SIZE = 50_000
_CONNECT_TIMEOUT = 10
# JDBC subprotocol -> SQLAlchemy dialect+driver.
_JDBC_DIALECTS = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
}
# PostgreSQL type names (from the cursor description) -> polars, for columns
# whose first batch is all NULL, so later batches keep their real type.
_PG_TYPES: dict[str, pl.DataType] = {
    "int2": pl.Int64(),
    "int4": pl.Int64(),
    "int8": pl.Int64(),
    "oid": pl.Int64(),
    "float4": pl.Float64(),
    "float8": pl.Float64(),
    "numeric": pl.Float64(),
    "money": pl.Float64(),
    "bool": pl.Boolean(),
    "date": pl.Date(),
    "timestamp": pl.Datetime("us"),
    "timestamptz": pl.Datetime("us", "UTC"),
    "time": pl.Time(),
    "interval": pl.Duration("us"),
    "text": pl.String(),
    "varchar": pl.String(),
    "bpchar": pl.String(),
    "uuid": pl.String(),
    "json": pl.String(),
    "jsonb": pl.String(),
}
_Result = TypeVar("_Result")


# ----------------------------------------------------------------- connection


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


class _Database:
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
        msg = f"cannot {action} {what} in {self.label}: {self.reason(exc)}"
        return ValidationError(msg)

    def run(self, action: str, what: str, fn: Callable[[], _Result]) -> _Result:
        """Call ``fn``, turning database errors into a :class:`ValidationError`."""
        try:
            return fn()
        except sa.exc.SQLAlchemyError as exc:
            raise self.error(action, what, exc) from None


def _qualified(table: str, schema: str | None) -> str:
    return f"{schema}.{table}" if schema else table


def _reflect(conn: Connection, table: str, schema: str | None) -> sa.Table:
    with warnings.catch_warnings():
        # An unknown column type (e.g. a PostGIS geometry) reflects as NullType with a warning.
        warnings.simplefilter("ignore", sa.exc.SAWarning)
        return sa.Table(table, sa.MetaData(), schema=schema, autoload_with=conn)


# --------------------------------------------------------------------- intake


def sql_intake(settings: AdapterSettings, _csv: CsvSettings, ctx: AdapterContext) -> Source:
    """Stream a table or query into ``intake.parquet`` in the job's folder.

    Rows arrive in ``fetchSize`` batches (a server-side cursor on PostgreSQL);
    each batch becomes a polars frame and a Parquet row group of the first
    batch's schema.  A column that is NULL throughout the first batch takes its
    type from the table's reflected columns or the cursor description, else
    string.  NUMERIC/DECIMAL becomes Float64 (the engine forecasts floats).

    Raises:
        ParameterError: neither ``table`` nor ``query``, or a bad ``fetchSize``.
        ValidationError: the database or table cannot be read, or a column's
            values change type between batches.
    """
    table_name, query = settings.get("table"), settings.get("query")
    schema = settings.get("schema") or None
    if not table_name and not query:
        msg = "intakeSettings: a jdbc intake needs 'table' or 'query'"
        raise ParameterError(msg)
    fetch_size = int(settings.get("fetchSize") or DEFAULT_FETCH_SIZE)
    if fetch_size < 1:
        msg = f"intakeSettings.fetchSize: must be a positive row count, got {fetch_size}"
        raise ParameterError(msg)
    db = _Database(settings, ctx)
    what = f"query {_short(str(query))!r}" if query else f"table {_qualified(str(table_name), schema)!r}"
    path = ctx.folder / "intake.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        db.run(
            "read",
            what,
            lambda: _stream_to_parquet(db, str(table_name or ""), schema, query, fetch_size, path),
        )
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    finally:
        db.engine.dispose()
    return Source(path, "parquet")


def _short(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= 80 else flat[:77] + "..."


def _stream_to_parquet(
    db: _Database, table_name: str, schema: str | None, query: Any, fetch_size: int, path: Path
) -> None:
    with db.engine.connect() as conn:
        hints: dict[str, pl.DataType] = {}
        if query:
            statement: sa.Executable = sa.text(str(query))
        else:
            table = _reflect(conn, table_name, schema)
            statement = sa.select(table)
            hints = {c.name: t for c in table.columns if (t := _polars_type(c.type)) is not None}
        streaming = conn.execution_options(stream_results=True, yield_per=fetch_size)
        result = streaming.execute(statement)
        writer: pq.ParquetWriter | None = None
        arrow_schema: pa.Schema | None = None
        try:
            names = list(result.keys())
            if len(set(names)) != len(names):
                dupes = sorted({n for n in names if names.count(n) > 1})
                msg = f"the query returns several columns named {', '.join(map(repr, dupes))}; alias them"
                raise ValidationError(msg)
            hints = {**_description_hints(result), **hints}
            for rows in result.partitions(fetch_size):
                frame = _batch_frame(names, [tuple(r) for r in rows])
                if arrow_schema is None:
                    frame = _fill_null_types(frame, hints)
                    arrow_schema = frame.to_arrow().schema
                    writer = pq.ParquetWriter(path, arrow_schema)
                assert writer is not None
                writer.write_table(_cast(frame.to_arrow(), arrow_schema))
            if writer is None:  # no rows: an empty file that still has the columns
                empty = _fill_null_types(pl.DataFrame(schema=dict.fromkeys(names, pl.Null())), hints)
                writer = pq.ParquetWriter(path, empty.to_arrow().schema)
                writer.write_table(empty.to_arrow())
        finally:
            result.close()  # a server-side cursor left open on an error would warn when collected
            if writer is not None:
                writer.close()


def _batch_frame(names: list[str], rows: list[tuple[Any, ...]]) -> pl.DataFrame:
    """One batch of rows as a frame.

    Decimals become floats (the engine forecasts floats).  JSON objects,
    arrays and values polars has no type for (UUIDs, ranges) become strings
    (JSON text for objects and arrays, from the driver's values): a CSV output
    cannot hold nested values, and every batch keeps the same column types
    whatever keys a JSON value has.
    """
    frame = pl.DataFrame(rows, schema=names, orient="row", infer_schema_length=None, strict=False)
    fixes: list[pl.Expr | pl.Series] = []
    for index, (name, dtype) in enumerate(frame.schema.items()):
        if isinstance(dtype, pl.Decimal):
            fixes.append(pl.col(name).cast(pl.Float64))
        elif isinstance(dtype, pl.Struct | pl.List | pl.Array) or dtype == pl.Object:
            fixes.append(pl.Series(name, [_text(row[index]) for row in rows], dtype=pl.String))
    return frame.with_columns(fixes) if fixes else frame


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict | list | tuple):
        return orjson.dumps(value, default=str).decode()
    return str(value)


def _fill_null_types(frame: pl.DataFrame, hints: Mapping[str, pl.DataType]) -> pl.DataFrame:
    fixes = [
        pl.col(name).cast(hints.get(name, pl.String()))
        for name, dtype in frame.schema.items()
        if dtype == pl.Null
    ]
    return frame.with_columns(fixes) if fixes else frame


def _cast(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """A later batch in the first batch's schema; a lossy cast is an error naming the column."""
    if table.schema.equals(schema):
        return table
    columns = []
    for field in schema:
        column = table.column(field.name)
        try:
            columns.append(pc.cast(column, field.type, safe=True))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            msg = (
                f"column {field.name!r} changes type between rows ({field.type} first, then {column.type}): "
                f"{str(exc).splitlines()[0]}; cast it in the query"
            )
            raise ValidationError(msg) from None
    return pa.Table.from_arrays(columns, schema=schema)


def _polars_type(sa_type: Any) -> pl.DataType | None:
    """A reflected column type as a polars type, or None when unknown."""
    try:
        python_type = sa_type.python_type
    except (NotImplementedError, AttributeError):
        return None
    import datetime as dt
    import decimal

    if python_type is bool:
        return pl.Boolean()
    if python_type is int:
        return pl.Int64()
    if python_type in (float, decimal.Decimal):
        return pl.Float64()
    if python_type is dt.datetime:
        return pl.Datetime("us", "UTC" if getattr(sa_type, "timezone", False) else None)
    if python_type is dt.date:
        return pl.Date()
    if python_type is dt.time:
        return pl.Time()
    if python_type is str:
        return pl.String()
    return None


def _description_hints(result: CursorResult[Any]) -> dict[str, pl.DataType]:
    """Column types from a PostgreSQL cursor description (OIDs); empty elsewhere."""
    try:
        description = result.cursor.description or []
        import psycopg.postgres

        hints = {}
        for column in description:
            code: Any = column[1]  # an OID for psycopg
            info = psycopg.postgres.types.get(int(code))
            # The registry also answers an array's OID with its element type.
            if info is not None and info.oid == int(code) and info.name in _PG_TYPES:
                hints[str(column[0])] = _PG_TYPES[info.name]
        return hints
    except Exception:  # noqa: BLE001 - hints are optional (SQLite has no types, another driver other codes)
        return {}


# --------------------------------------------------------------------- output


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
        self.what = f"table {_qualified(self.table_name, self.schema)!r}"
        self._db = _Database(settings, ctx)
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
                self._table = _reflect(conn, self.table_name, self.schema)

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
        return _reflect(conn, self.table_name, self.schema)

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
