"""Database intake and output against a real PostgreSQL server (and SQLite)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from polars.testing import assert_frame_equal
from services import free_port, unique_name

from tsengine.batch.adapters import AdapterContext, intake_source, open_sink
from tsengine.batch.spec import AdapterSettings, CsvSettings
from tsengine.batch.sql import SqlSink, sql_intake, sql_sink, sqlalchemy_url
from tsengine.batch.store import BatchStore
from tsengine.errors import ParameterError, ValidationError

SECRET = "SUPERSECRET"
PRED = "delayed (actual)_PREDICTION"


@pytest.fixture
def engine(postgres_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(postgres_url)
    yield engine
    engine.dispose()


@pytest.fixture
def ctx(tmp_path: Path, postgres_url: str) -> AdapterContext:
    store = BatchStore.in_folder(tmp_path / "store")
    store.put_data_store(
        {"id": "ds1", "canonicalName": "pg", "type": "jdbc", "params": {"url": postgres_url}}
    )
    store.put_credential(
        {"credentialId": "c1", "name": "n", "credentialType": "basic"}, {"user": "postgres", "password": ""}
    )
    return AdapterContext(job_id="j", folder=tmp_path / "job", store=store)


@pytest.fixture
def sqlite_ctx(tmp_path: Path) -> AdapterContext:
    store = BatchStore.in_folder(tmp_path / "store")
    store.put_data_store(
        {
            "id": "lite",
            "canonicalName": "lite",
            "type": "jdbc",
            "params": {"jdbcUrl": f"jdbc:sqlite:{tmp_path / 'data.db'}"},
        }
    )
    return AdapterContext(job_id="j", folder=tmp_path / "job", store=store)


def _rows(engine: sa.Engine, sql: str) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql))]


def _output(table: str, statement: str, **extra: Any) -> AdapterSettings:
    return AdapterSettings(
        "jdbc", {"dataStoreId": "ds1", "table": table, "statementType": statement, **extra}
    )


# ------------------------------------------------------------------ data store URL


def test_sqlalchemy_url_accepts_sqlalchemy_and_jdbc_urls() -> None:
    assert str(sqlalchemy_url({"url": "postgresql+psycopg://u@h:5/db"})) == "postgresql+psycopg://u@h:5/db"
    url = sqlalchemy_url(
        {"jdbcUrl": "jdbc:postgresql://db.example:5432/sales?user=ann&password=pw&sslmode=require"}
    )
    assert url.drivername == "postgresql+psycopg"
    assert (url.host, url.port, url.database, url.username, url.password) == (
        "db.example",
        5432,
        "sales",
        "ann",
        "pw",
    )
    assert dict(url.query) == {"sslmode": "require"}
    assert sqlalchemy_url({"jdbcUrl": "jdbc:postgresql://h/db"}).port is None
    assert str(sqlalchemy_url({"jdbcUrl": "jdbc:sqlite:/tmp/x.db"})) == "sqlite:////tmp/x.db"
    with pytest.raises(ParameterError, match="unsupported JDBC URL"):
        sqlalchemy_url({"jdbcUrl": "jdbc:oracle:thin:@h:1521:x"})
    with pytest.raises(ParameterError, match="url"):
        sqlalchemy_url({})


# ------------------------------------------------------------------------ intake


@pytest.fixture
def pg_table(engine: sa.Engine) -> str:
    name = unique_name("intake")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE SCHEMA IF NOT EXISTS sales"))
        conn.execute(
            sa.text(
                f'CREATE TABLE sales."{name}" (series text, "date" date, ts timestamp, y double precision, '
                f'"late (n)" numeric(10, 2), n bigint, flag boolean)'
            )
        )
        rows = [
            {"s": f"s{i % 2}", "d": dt.date(2024, 1, 1) + dt.timedelta(days=i), "ts": dt.datetime(2024, 1, 1, 6, 30) + dt.timedelta(hours=i),
             "y": None if i == 3 else i * 1.25, "late": None if i < 5 else i + 0.5, "n": None if i < 5 else i, "flag": i % 2 == 0}
            for i in range(10)
        ]  # fmt: skip
        conn.execute(
            sa.text(f'INSERT INTO sales."{name}" VALUES (:s, :d, :ts, :y, :late, :n, :flag)'),
            rows,
        )
    return name


def _expected_intake() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "series": [f"s{i % 2}" for i in range(10)],
            "date": [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(10)],
            "ts": [dt.datetime(2024, 1, 1, 6, 30) + dt.timedelta(hours=i) for i in range(10)],
            "y": [None if i == 3 else i * 1.25 for i in range(10)],
            "late (n)": [None if i < 5 else i + 0.5 for i in range(10)],
            "n": [None if i < 5 else i for i in range(10)],
            "flag": [i % 2 == 0 for i in range(10)],
        },
        schema_overrides={"ts": pl.Datetime("us"), "n": pl.Int64},
    )


def test_table_intake_streams_batches_and_keeps_types(pg_table: str, ctx: AdapterContext) -> None:
    # fetchSize 3: the first batch has 'late (n)' and 'n' all NULL; their types come from the table.
    settings = AdapterSettings(
        "jdbc",
        {"dataStoreId": "ds1", "schema": "sales", "table": pg_table, "fetchSize": 3, "credentialId": "c1"},
    )
    source = intake_source(settings, CsvSettings(), ctx)
    assert (source.path, source.format) == (ctx.folder / "intake.parquet", "parquet")
    got = pl.read_parquet(source.path)
    assert_frame_equal(got, _expected_intake())
    assert pq.ParquetFile(source.path).num_row_groups == 4


def test_query_intake_uses_the_cursor_types_for_null_batches(pg_table: str, ctx: AdapterContext) -> None:
    query = f'SELECT series, "date", n, "late (n)" AS late FROM sales."{pg_table}" WHERE y IS NOT NULL ORDER BY ts'
    settings = AdapterSettings("jdbc", {"dataStoreId": "ds1", "query": query, "fetchSize": 2})
    got = pl.read_parquet(sql_intake(settings, CsvSettings(), ctx).path)
    expected = (
        _expected_intake()
        .filter(pl.col("y").is_not_null())
        .select("series", "date", "n", pl.col("late (n)").alias("late"))
    )
    assert_frame_equal(got, expected)


def test_empty_query_result_keeps_the_columns(pg_table: str, ctx: AdapterContext) -> None:
    query = f'SELECT "date", y, series FROM sales."{pg_table}" WHERE false'
    got = pl.read_parquet(
        sql_intake(AdapterSettings("jdbc", {"dataStoreId": "ds1", "query": query}), CsvSettings(), ctx).path
    )
    assert got.schema == pl.Schema({"date": pl.Date, "y": pl.Float64, "series": pl.String})
    assert got.height == 0


def test_intake_needs_table_or_query(ctx: AdapterContext) -> None:
    with pytest.raises(ParameterError, match="'table' or 'query'"):
        sql_intake(AdapterSettings("jdbc", {"dataStoreId": "ds1"}), CsvSettings(), ctx)


def test_missing_table_names_table_and_store(ctx: AdapterContext, postgres_url: str) -> None:
    settings = AdapterSettings("jdbc", {"dataStoreId": "ds1", "table": "no_such_table"})
    with pytest.raises(ValidationError, match="cannot read table 'no_such_table' in data store 'pg'") as info:
        sql_intake(settings, CsvSettings(), ctx)
    assert postgres_url.split("@")[1] in info.value.message
    assert not (ctx.folder / "intake.parquet").exists()


def test_unreachable_database_hides_the_password(tmp_path: Path) -> None:
    port = free_port()
    store = BatchStore.in_folder(tmp_path / "store")
    store.put_data_store(
        {
            "id": "ds1",
            "canonicalName": "gone",
            "type": "jdbc",
            "params": {"jdbcUrl": f"jdbc:postgresql://127.0.0.1:{port}/db?user=u&password={SECRET}"},
        }
    )
    store.put_data_store(
        {
            "id": "ds2",
            "canonicalName": "gone2",
            "type": "jdbc",
            "params": {"url": f"postgresql+psycopg://127.0.0.1:{port}/db"},
        }
    )
    store.put_credential(
        {"credentialId": "c1", "name": "n", "credentialType": "basic"}, {"user": "bob", "password": SECRET}
    )
    ctx = AdapterContext(job_id="j", folder=tmp_path / "job", store=store)
    for extra in ({"dataStoreId": "ds1"}, {"dataStoreId": "ds2", "credentialId": "c1"}):
        with pytest.raises(ValidationError) as info:
            sql_intake(AdapterSettings("jdbc", {**extra, "table": "t"}), CsvSettings(), ctx)
        message = info.value.message
        assert f"127.0.0.1:{port}" in message
        assert "table 't'" in message
        assert SECRET not in message
        with pytest.raises(ValidationError) as info:
            sql_sink(
                AdapterSettings("jdbc", {**extra, "table": "t", "statementType": "insert"}),
                CsvSettings(),
                ctx,
            )
        assert f"127.0.0.1:{port}" in info.value.message
        assert SECRET not in info.value.message


def test_sqlite_table_and_query_intake(sqlite_ctx: AdapterContext, tmp_path: Path) -> None:
    lite = sa.create_engine(f"sqlite:///{tmp_path / 'data.db'}")
    with lite.begin() as conn:
        conn.execute(sa.text('CREATE TABLE "my table" (d DATE, y REAL, n INTEGER, s TEXT)'))
        conn.execute(
            sa.text('INSERT INTO "my table" VALUES (:d, :y, :n, :s)'),
            [{"d": f"2024-01-0{i + 1}", "y": i / 2, "n": None if i < 2 else i, "s": None} for i in range(5)],
        )
    lite.dispose()
    table = pl.read_parquet(
        sql_intake(
            AdapterSettings("jdbc", {"dataStoreId": "lite", "table": "my table", "fetchSize": 2}),
            CsvSettings(),
            sqlite_ctx,
        ).path
    )
    assert table.schema == pl.Schema({"d": pl.Date, "y": pl.Float64, "n": pl.Int64, "s": pl.String})
    assert table["n"].to_list() == [None, None, 2, 3, 4]
    assert table["d"].to_list()[-1] == dt.date(2024, 1, 5)
    query = pl.read_parquet(
        sql_intake(
            AdapterSettings(
                "jdbc", {"dataStoreId": "lite", "query": 'SELECT n, y FROM "my table"', "fetchSize": 2}
            ),
            CsvSettings(),
            sqlite_ctx,
        ).path
    )
    # SQLite reports no types: a first batch of NULLs falls back to string.
    assert query.schema == pl.Schema({"n": pl.String, "y": pl.Float64})
    assert query["n"].to_list() == [None, None, "2", "3", "4"]


# ------------------------------------------------------------------------ output


def _scored(keys: range, value: float = 1.0) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "series": [f"s{k % 2}" for k in keys],
            "date": [dt.date(2024, 1, 1) + dt.timedelta(days=k) for k in keys],
            "ts": [dt.datetime(2024, 1, 1, 12) + dt.timedelta(days=k) for k in keys],
            "k": list(keys),
            PRED: [k * value for k in keys],
            "ok": [k % 3 == 0 for k in keys],
        }
    )


def test_create_table_creates_typed_columns_and_inserts(engine: sa.Engine, ctx: AdapterContext) -> None:
    table = unique_name("out")
    sink = open_sink(_output(table, "create_table"), CsvSettings(), ctx)
    sink.write(_scored(range(5)))
    sink.write(_scored(range(5, 8)))
    sink.commit()
    assert sink.bytes_written > 0
    columns = {c["name"]: c["type"] for c in sa.inspect(engine).get_columns(table)}
    assert isinstance(columns["k"], sa.BigInteger)
    assert isinstance(columns[PRED], sa.Double | sa.Float)
    assert isinstance(columns["date"], sa.Date)
    assert isinstance(columns["ts"], sa.DateTime)
    assert isinstance(columns["ok"], sa.Boolean)
    with engine.connect() as conn:
        got = pl.read_database(f'SELECT * FROM "{table}" ORDER BY k', conn)
    assert_frame_equal(got, _scored(range(8)), check_dtypes=False)
    with pytest.raises(ValidationError, match=f"table '{table}' already exists in data store 'pg'"):
        sql_sink(_output(table, "create_table"), CsvSettings(), ctx)


def test_insert_into_existing_table_with_quoted_names(engine: sa.Engine, ctx: AdapterContext) -> None:
    table = unique_name("Out Table")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE SCHEMA IF NOT EXISTS preds"))
        conn.execute(
            sa.text(
                f'CREATE TABLE preds."{table}" (id serial, series text, k bigint, "{PRED}" double precision, extra text)'
            )
        )
    sink = open_sink(_output(table, "insert", schema="preds"), CsvSettings(), ctx)
    sink.write(_scored(range(3)).select("series", "k", PRED))
    sink.commit()
    assert _rows(engine, f'SELECT id, series, k, "{PRED}", extra FROM preds."{table}" ORDER BY k') == [
        (1, "s0", 0, 0.0, None),
        (2, "s1", 1, 1.0, None),
        (3, "s0", 2, 2.0, None),
    ]


def test_insert_needs_the_table_unless_asked_to_create_it(engine: sa.Engine, ctx: AdapterContext) -> None:
    table = unique_name("out")
    with pytest.raises(
        ValidationError, match=f"table '{table}' does not exist in data store 'pg'.*createTableIfNotExists"
    ):
        sql_sink(_output(table, "insert"), CsvSettings(), ctx)
    sink = sql_sink(_output(table, "insert", createTableIfNotExists=True), CsvSettings(), ctx)
    sink.write(_scored(range(2)))
    sink.write(_scored(range(2, 4)))
    sink.commit()
    assert _rows(engine, f'SELECT k FROM "{table}" ORDER BY k') == [(0,), (1,), (2,), (3,)]


def test_output_column_missing_from_table_is_an_error(engine: sa.Engine, ctx: AdapterContext) -> None:
    table = unique_name("out")
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE TABLE "{table}" (k bigint)'))
    sink = sql_sink(_output(table, "insert"), CsvSettings(), ctx)
    with pytest.raises(ValidationError, match=re.escape(f"has no column '{PRED}'")):
        sink.write(_scored(range(2)).select("k", PRED))
    sink.abort()
    assert _rows(engine, f'SELECT count(*) FROM "{table}"') == [(0,)]


@pytest.fixture
def keyed_table(engine: sa.Engine) -> str:
    table = unique_name("keyed")
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                f'CREATE TABLE "{table}" (series text, "date" date, "{PRED}" double precision, note text)'
            )
        )
        conn.execute(
            sa.text(f'INSERT INTO "{table}" VALUES (:s, :d, :p, :n)'),
            [
                {"s": "a", "d": dt.date(2024, 1, 1), "p": 1.0, "n": "keep"},
                {"s": "a", "d": dt.date(2024, 1, 2), "p": 2.0, "n": "keep"},
                {"s": "b", "d": dt.date(2024, 1, 1), "p": 3.0, "n": "keep"},
            ],
        )
    return table


def _update_frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "series": ["a", "b", "c"],
            "date": [dt.date(2024, 1, 2), dt.date(2024, 1, 1), dt.date(2024, 1, 1)],
            PRED: [20.0, 30.0, 40.0],
            "note": ["new", "new", "new"],
        }
    )


def test_update_sets_columns_of_matching_rows(
    engine: sa.Engine, ctx: AdapterContext, keyed_table: str
) -> None:
    sink = sql_sink(
        _output(keyed_table, "update", whereColumns=["series", "date"], updateColumns=[PRED]),
        CsvSettings(),
        ctx,
    )
    sink.write(_update_frame())
    sink.commit()
    assert _rows(engine, f'SELECT series, "date", "{PRED}", note FROM "{keyed_table}" ORDER BY 1, 2') == [
        ("a", dt.date(2024, 1, 1), 1.0, "keep"),
        ("a", dt.date(2024, 1, 2), 20.0, "keep"),
        ("b", dt.date(2024, 1, 1), 30.0, "keep"),
    ]  # 'c' has no row to update


def test_update_without_update_columns_sets_every_other_column(
    engine: sa.Engine, ctx: AdapterContext, keyed_table: str
) -> None:
    sink = sql_sink(_output(keyed_table, "update", whereColumns=["series", "date"]), CsvSettings(), ctx)
    sink.write(_update_frame())
    sink.commit()
    assert _rows(engine, f'SELECT note FROM "{keyed_table}" ORDER BY series, "date"') == [
        ("keep",),
        ("new",),
        ("new",),
    ]


def test_insert_update_upserts_and_the_last_duplicate_wins(
    engine: sa.Engine, ctx: AdapterContext, keyed_table: str
) -> None:
    sink = sql_sink(
        _output(keyed_table, "insert_update", whereColumns=["series", "date"]), CsvSettings(), ctx
    )
    sink.write(_update_frame())
    sink.write(
        pl.DataFrame(
            {
                "series": ["d", "d", "a"],
                "date": [dt.date(2024, 2, 1)] * 2 + [dt.date(2024, 1, 1)],
                PRED: [5.0, 6.0, 10.0],
                "note": ["x", "y", "z"],
            }
        )
    )
    sink.commit()
    assert _rows(engine, f'SELECT series, "date", "{PRED}", note FROM "{keyed_table}" ORDER BY 1, 2') == [
        ("a", dt.date(2024, 1, 1), 10.0, "z"),
        ("a", dt.date(2024, 1, 2), 20.0, "new"),
        ("b", dt.date(2024, 1, 1), 30.0, "new"),
        ("c", dt.date(2024, 1, 1), 40.0, "new"),
        ("d", dt.date(2024, 2, 1), 6.0, "y"),
    ]


def test_update_and_upsert_need_where_columns(ctx: AdapterContext, keyed_table: str) -> None:
    for statement in ("update", "insert_update"):
        with pytest.raises(ParameterError, match="outputSettings.whereColumns"):
            sql_sink(_output(keyed_table, statement), CsvSettings(), ctx)
    with pytest.raises(ParameterError, match="statementType"):
        sql_sink(_output(keyed_table, "upsert"), CsvSettings(), ctx)


@pytest.mark.parametrize("statement", ["insert", "insert_update"])
def test_a_failing_chunk_leaves_the_committed_chunks_only(
    engine: sa.Engine, ctx: AdapterContext, statement: str
) -> None:
    table = unique_name("strict")
    with engine.begin() as conn:
        conn.execute(
            sa.text(f'CREATE TABLE "{table}" (k bigint PRIMARY KEY, "{PRED}" double precision NOT NULL)')
        )
    sink = sql_sink(_output(table, statement, whereColumns=["k"]), CsvSettings(), ctx)
    sink.write(pl.DataFrame({"k": [1, 2], PRED: [1.0, 2.0]}))
    bad = pl.DataFrame({"k": [3, 4, 5], PRED: [3.0, None, 5.0]})  # row 4 violates NOT NULL
    with pytest.raises(
        ValidationError, match=f"cannot write to table '{table}' in data store 'pg'.*not-null"
    ) as info:
        sink.write(bad)
    assert "\n" not in info.value.message  # the driver's first line, no SQL or parameters
    assert "INSERT" not in info.value.message
    sink.abort()
    assert _rows(engine, f'SELECT k FROM "{table}" ORDER BY k') == [(1,), (2,)]


def test_sqlite_output_every_statement(sqlite_ctx: AdapterContext, tmp_path: Path) -> None:
    def settings(statement: str, **extra: Any) -> AdapterSettings:
        return AdapterSettings(
            "jdbc", {"dataStoreId": "lite", "table": "preds out", "statementType": statement, **extra}
        )

    sink = open_sink(settings("create_table"), CsvSettings(), sqlite_ctx)
    sink.write(_scored(range(3)))
    sink.commit()
    sink = open_sink(settings("insert"), CsvSettings(), sqlite_ctx)
    sink.write(_scored(range(3, 4)))
    sink.commit()
    sink = open_sink(settings("update", whereColumns=["ts"], updateColumns=[PRED]), CsvSettings(), sqlite_ctx)
    sink.write(_scored(range(1), value=9.0).with_columns(pl.lit(99.0).alias(PRED)))
    sink.commit()
    sink = open_sink(settings("insert_update", whereColumns=["series", "date"]), CsvSettings(), sqlite_ctx)
    sink.write(_scored(range(3, 5), value=2.0))
    sink.commit()
    lite = sa.create_engine(f"sqlite:///{tmp_path / 'data.db'}")
    with lite.connect() as conn:
        got = [tuple(r) for r in conn.execute(sa.text(f'SELECT k, "{PRED}", ts FROM "preds out" ORDER BY k'))]
    lite.dispose()
    assert [(k, p) for k, p, _ in got] == [(0, 99.0), (1, 1.0), (2, 2.0), (3, 6.0), (4, 8.0)]
    assert got[0][2].startswith("2024-01-01 12:00:00")


def test_sink_type_is_sql_sink(ctx: AdapterContext, keyed_table: str) -> None:
    sink = open_sink(_output(keyed_table, "insert"), CsvSettings(), ctx)
    assert isinstance(sink, SqlSink)
    sink.write(_update_frame().head(0))  # an empty chunk is fine
    sink.abort()
    sink.abort()


@pytest.mark.parametrize("source", ["table", "query"])
def test_intake_of_types_polars_lacks_stays_consistent(
    engine: sa.Engine, ctx: AdapterContext, source: str
) -> None:
    table = unique_name("odd")
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                f'CREATE TABLE "{table}" (i int, u uuid, j jsonb, tz timestamptz, a int[], iv interval, x numeric)'
            )
        )
        conn.execute(
            sa.text(
                f"""INSERT INTO "{table}" VALUES (1, NULL, NULL, NULL, NULL, NULL, NULL),
                (2, '00000000-0000-0000-0000-000000000001', '{{"a": 1}}', '2024-01-01 00:00+00', ARRAY[1, 2],
                 '1 day', 1.5),
                (3, NULL, '{{"b": "x"}}', NULL, NULL, NULL, 2)"""
            )
        )
    extra = {"table": table} if source == "table" else {"query": f'SELECT * FROM "{table}" ORDER BY i'}
    settings = AdapterSettings("jdbc", {"dataStoreId": "ds1", "fetchSize": 1, **extra})
    got = pl.read_parquet(sql_intake(settings, CsvSettings(), ctx).path).sort("i")
    assert got["u"].to_list() == [None, "00000000-0000-0000-0000-000000000001", None]
    assert got["j"].to_list() == [None, '{"a":1}', '{"b":"x"}']  # JSON text, keys as stored
    assert got["tz"].to_list()[1] == dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    assert got["a"].to_list() == [None, "[1,2]", None]
    assert got["iv"].to_list() == [None, dt.timedelta(days=1), None]
    assert got["x"].to_list() == [None, 1.5, 2.0]
