"""Database intake: a table or query streamed into one local Parquet file.

The rows arrive in ``fetchSize``-row batches, so a large table never sits in
memory, and land in Parquet rather than CSV so their column types (dates,
timestamps, floats) survive without a round trip through text.  A column that
is NULL throughout the first batch takes its type from the table or the
cursor description, so later batches keep their real type.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlalchemy as sa
from sqlalchemy.engine import CursorResult

from tsengine.batch.adapters import AdapterContext, Source
from tsengine.batch.spec import AdapterSettings, CsvSettings
from tsengine.batch.sql_connection import Database, qualified_name, reflect_table
from tsengine.errors import ParameterError, ValidationError

__all__ = ["DEFAULT_FETCH_SIZE", "sql_intake"]

DEFAULT_FETCH_SIZE = 50_000
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
    db = Database(settings, ctx)
    what = f"query {_short(str(query))!r}" if query else f"table {qualified_name(str(table_name), schema)!r}"
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
    db: Database, table_name: str, schema: str | None, query: Any, fetch_size: int, path: Path
) -> None:
    with db.engine.connect() as conn:
        hints: dict[str, pl.DataType] = {}
        if query:
            statement: sa.Executable = sa.text(str(query))
        else:
            table = reflect_table(conn, table_name, schema)
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
