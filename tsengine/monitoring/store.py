"""The monitoring store: the prediction log, actuals, feature samples, request stats, settings.

SQLite in the registry folder by default (``<registry>/.monitoring/monitoring.sqlite3``),
PostgreSQL by URL (``TSENGINE_MONITORING_URL``), through one SQLAlchemy Core
schema.  SQLite was chosen over DuckDB for the embedded default because the
log is written in many small appends from a writer thread while readers
aggregate a deployment's window, and SQLite's WAL mode serves that without a
second dependency; the aggregates themselves run in polars on the rows of one
deployment and period.

Times are POSIX seconds (``created``, ``timestamp``) so windows are integer
comparisons in both databases.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from tsengine.database import open_engine
from tsengine.errors import MonitoringStoreError

__all__ = ["MonitoringStore"]

_META = sa.MetaData()
PREDICTIONS = sa.Table(
    "mon_predictions",
    _META,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("deployment_id", sa.String(128), nullable=False),
    sa.Column("version", sa.String(32)),
    sa.Column("model_id", sa.String(64)),
    sa.Column("request_id", sa.String(64)),
    sa.Column("source", sa.String(16)),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("association_id", sa.String(256)),
    sa.Column("series_id", sa.String(256)),
    sa.Column("forecast_point", sa.Float),
    sa.Column("timestamp", sa.Float),
    sa.Column("distance", sa.Integer),
    sa.Column("prediction", sa.Float),
    sa.Column("low", sa.Float),
    sa.Column("high", sa.Float),
    sa.Column("label", sa.String(256)),
    sa.Index("ix_mon_predictions_dep_created", "deployment_id", "created"),
    sa.Index("ix_mon_predictions_dep_assoc", "deployment_id", "association_id"),
)
# The bounds of every further percentile a deployment serves (``--interval-percentile 80,50,95``),
# one row per logged forecast and percentile; the deployment's own interval stays in
# mon_predictions.low/high.  A table of its own rather than new columns of mon_predictions:
# create_all adds a missing table to a store written by an older tsengine, but never a column.
INTERVALS = sa.Table(
    "mon_intervals",
    _META,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("deployment_id", sa.String(128), nullable=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("association_id", sa.String(256)),
    sa.Column("forecast_point", sa.Float),
    sa.Column("percentile", sa.Integer, nullable=False),
    sa.Column("low", sa.Float),
    sa.Column("high", sa.Float),
    sa.Index("ix_mon_intervals_dep_created", "deployment_id", "created"),
)
# The logged forecast an interval row belongs to.
_FORECAST_KEY = ["association_id", "created", "forecast_point"]
ACTUALS = sa.Table(
    "mon_actuals",
    _META,
    sa.Column("deployment_id", sa.String(128), primary_key=True),
    sa.Column("association_id", sa.String(256), primary_key=True),
    sa.Column("actual", sa.Float),
    sa.Column("actual_label", sa.String(256)),
    sa.Column("timestamp", sa.Float),
    sa.Column("was_acted_on", sa.Boolean),
    sa.Column("received", sa.Float, nullable=False),
)
SAMPLES = sa.Table(
    "mon_feature_samples",
    _META,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("deployment_id", sa.String(128), nullable=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("rows", sa.Text, nullable=False),
    sa.Index("ix_mon_samples_dep_created", "deployment_id", "created"),
)
REQUESTS = sa.Table(
    "mon_requests",
    _META,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("deployment_id", sa.String(128), nullable=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("route", sa.String(64)),
    sa.Column("status", sa.Integer),
    sa.Column("latency_ms", sa.Float),
    sa.Column("rows", sa.Integer),
    sa.Column("cache_hit", sa.Boolean),
    sa.Index("ix_mon_requests_dep_created", "deployment_id", "created"),
)
SETTINGS = sa.Table(
    "mon_settings",
    _META,
    sa.Column("deployment_id", sa.String(128), primary_key=True),
    sa.Column("doc", sa.Text, nullable=False),
)

DEFAULT_SETTINGS: dict[str, Any] = {
    "associationId": {"columnNames": [], "requiredInPredictionRequests": False},
    "targetDrift": {"enabled": True},
    "featureDrift": {"enabled": True},
    "predictionsDataCollection": {"enabled": True},
}


# Rows turned into Python tuples at a time for the driver's executemany: a 28,000-row
# forecast as one list of tuples held ~13 MB of Python objects in the writer at once.
_ROWS_AT_ONCE = 2_048


class MonitoringStore:
    """Reads and writes monitoring records; safe to share between threads."""

    def __init__(self, url: str) -> None:
        """Open (and create) the store at a SQLAlchemy URL."""
        self.url = url
        self.engine: Engine = open_engine(url)
        self._lock = threading.Lock()
        self._ready = False
        with contextlib.suppress(MonitoringStoreError):
            self._ensure()  # an unreachable store is retried on first use; serving starts anyway

    def _ensure(self) -> None:
        """Create the tables once the database answers.

        Raises:
            MonitoringStoreError: the database cannot be reached, naming it (never its password).
        """
        if self._ready:
            return
        try:
            _META.create_all(self.engine)
        except sa.exc.SQLAlchemyError as exc:
            raise self._unreachable(exc) from exc
        self._ready = True

    def _unreachable(self, exc: Exception) -> MonitoringStoreError:
        where = self.engine.url.render_as_string(hide_password=True)
        reason = (
            str(getattr(exc, "orig", exc)).strip().splitlines()[0][:200] if str(exc) else type(exc).__name__
        )
        return MonitoringStoreError(f"the monitoring store {where} cannot be reached: {reason}")

    @classmethod
    def in_folder(cls, folder: Path) -> MonitoringStore:
        """The default store: ``monitoring.sqlite3`` in a folder."""
        folder.mkdir(parents=True, exist_ok=True)
        return cls(f"sqlite:///{folder / 'monitoring.sqlite3'}")

    def __repr__(self) -> str:
        return f"MonitoringStore({self.engine.url.render_as_string(hide_password=True)!r})"

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        self._ensure()
        try:
            with self._lock, self.engine.begin() as conn:
                yield conn
        except sa.exc.OperationalError as exc:
            raise self._unreachable(exc) from exc

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        self._ensure()
        try:
            with self.engine.connect() as conn:
                yield conn
        except sa.exc.OperationalError as exc:
            raise self._unreachable(exc) from exc

    # ------------------------------------------------------------------ writes

    def insert(self, table: str, rows: Sequence[dict[str, Any]]) -> None:
        """Append rows to one of the log tables in one transaction."""
        if rows:
            with self._tx() as conn:
                conn.execute(_META.tables[table].insert(), list(rows))

    def insert_rows(self, table: str, frame: pl.DataFrame) -> None:
        """Append a frame's rows (columns named as the table's): :meth:`insert_frames` of one table."""
        self.insert_frames({table: frame})

    def insert_frames(self, frames: dict[str, pl.DataFrame]) -> None:
        """Append each frame's rows to its table, all in one transaction, with the driver's executemany.

        One transaction: a forecast's further intervals are never stored
        without the forecast, nor the forecast without them.  Tuples through
        the DBAPI cursor cost ~1 µs a row, against ~7.6 µs for SQLAlchemy's
        per-row dict parameters; both databases get the same rows.  The
        tuples are made as the driver consumes them, a few thousand at a time.
        """
        frames = {table: frame for table, frame in frames.items() if frame.height}
        if not frames:
            return
        marks = {"qmark": "?", "format": "%s", "pyformat": "%s", "numeric": None, "named": None}
        mark = marks.get(self.engine.dialect.paramstyle)
        quote = self.engine.dialect.identifier_preparer.quote
        with self._tx() as conn:
            for table, frame in frames.items():
                if mark is None:
                    conn.execute(_META.tables[table].insert(), frame.to_dicts())
                    continue
                sql = (
                    f"INSERT INTO {quote(table)} ({', '.join(quote(c) for c in frame.columns)}) "
                    f"VALUES ({', '.join([mark] * frame.width)})"
                )
                cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
                try:
                    # sqlite3 and psycopg take any iterable of rows (SQLAlchemy's stub says Sequence)
                    rows = frame.iter_rows(buffer_size=_ROWS_AT_ONCE)
                    cursor.executemany(sql, rows)  # type: ignore[arg-type]
                finally:
                    cursor.close()

    def upsert_actuals(self, deployment_id: str, rows: Iterable[dict[str, Any]]) -> tuple[int, int]:
        """Store actuals; an association id already stored keeps its first value.

        Returns:
            ``(inserted, duplicates)``.
        """
        rows = list(rows)
        if not rows:
            return 0, 0
        ids = [r["association_id"] for r in rows]
        with self._tx() as conn:
            known: set[str] = set()
            for start in range(0, len(ids), 5000):
                part = ids[start : start + 5000]
                known.update(
                    conn.execute(
                        sa.select(ACTUALS.c.association_id).where(
                            ACTUALS.c.deployment_id == deployment_id, ACTUALS.c.association_id.in_(part)
                        )
                    ).scalars()
                )
            fresh: dict[str, dict[str, Any]] = {}
            for row in rows:
                if row["association_id"] not in known and row["association_id"] not in fresh:
                    fresh[row["association_id"]] = {"deployment_id": deployment_id, **row}
            if fresh:
                conn.execute(ACTUALS.insert(), list(fresh.values()))
        return len(fresh), len(rows) - len(fresh)

    def settings(self, deployment_id: str) -> dict[str, Any]:
        """A deployment's monitoring settings (DataRobot's defaults when never set)."""
        with self._read() as conn:
            doc = conn.execute(
                sa.select(SETTINGS.c.doc).where(SETTINGS.c.deployment_id == deployment_id)
            ).scalar()
        stored: dict[str, Any] = orjson.loads(doc) if doc else {}
        return {key: {**value, **stored.get(key, {})} for key, value in DEFAULT_SETTINGS.items()}

    def put_settings(self, deployment_id: str, doc: dict[str, Any]) -> None:
        """Replace a deployment's settings."""
        with self._tx() as conn:
            conn.execute(SETTINGS.delete().where(SETTINGS.c.deployment_id == deployment_id))
            conn.execute(
                SETTINGS.insert().values(deployment_id=deployment_id, doc=orjson.dumps(doc).decode())
            )

    def has_predictions(self, deployment_id: str) -> bool:
        """Whether any prediction of the deployment was logged."""
        with self._read() as conn:
            return (
                conn.execute(
                    sa.select(PREDICTIONS.c.id).where(PREDICTIONS.c.deployment_id == deployment_id).limit(1)
                ).first()
                is not None
            )

    def last_prediction(self, deployment_id: str) -> float | None:
        """When the deployment last predicted (POSIX seconds), None if never (one index lookup)."""
        with self._read() as conn:
            value = conn.execute(
                sa.select(sa.func.max(PREDICTIONS.c.created)).where(
                    PREDICTIONS.c.deployment_id == deployment_id
                )
            ).scalar_one_or_none()
        return None if value is None else float(value)

    # ------------------------------------------------------------------- reads

    def frame(
        self,
        table: str,
        deployment_id: str,
        *,
        start: float | None = None,
        end: float | None = None,
        column: str = "created",
    ) -> pl.DataFrame:
        """One deployment's rows of a table in ``[start, end)`` of ``column``, as a frame."""
        target = _META.tables[table]
        query = sa.select(target).where(target.c.deployment_id == deployment_id)
        if start is not None:
            query = query.where(target.c[column] >= start)
        if end is not None:
            query = query.where(target.c[column] < end)
        with self._read() as conn:
            result = conn.execute(query)
            names = list(result.keys())
            rows = result.all()
        schema = {c.name: _DTYPES.get(type(c.type), pl.String()) for c in target.columns}
        return pl.DataFrame([tuple(r) for r in rows], schema=schema, orient="row").select(names)

    def joined(
        self, deployment_id: str, *, start: float | None = None, end: float | None = None
    ) -> pl.DataFrame:
        """Predictions of a period (by prediction time) with their actuals: the accuracy table.

        A forecast logged with further percentiles' intervals has them as
        ``low_<p>`` and ``high_<p>`` columns (null where it was logged without).
        """
        predictions = self._with_intervals(
            self.frame("mon_predictions", deployment_id, start=start, end=end),
            self.frame("mon_intervals", deployment_id, start=start, end=end),
        )
        actuals = self.frame("mon_actuals", deployment_id)
        return predictions.join(
            actuals.select(
                "association_id",
                "actual",
                "actual_label",
                pl.col("timestamp").alias("actual_timestamp"),
            ),
            on="association_id",
            how="inner",
        )

    @staticmethod
    def _with_intervals(predictions: pl.DataFrame, intervals: pl.DataFrame) -> pl.DataFrame:
        """``predictions`` with a ``low_<p>``, ``high_<p>`` pair per percentile of ``intervals``."""
        for p in sorted(intervals.get_column("percentile").unique().to_list()):
            bounds = (
                intervals.filter(pl.col("percentile") == p)
                .unique(_FORECAST_KEY, keep="first", maintain_order=True)
                .select(*_FORECAST_KEY, pl.col("low").alias(f"low_{p}"), pl.col("high").alias(f"high_{p}"))
            )
            predictions = predictions.join(bounds, on=_FORECAST_KEY, how="left", maintain_order="left")
        return predictions

    def samples(
        self, deployment_id: str, *, start: float | None = None, end: float | None = None
    ) -> pl.DataFrame:
        """The feature samples logged in a period, as one frame."""
        frame = self.frame("mon_feature_samples", deployment_id, start=start, end=end)
        parts = [pl.DataFrame(orjson.loads(text)) for text in frame.get_column("rows").to_list()]
        parts = [p for p in parts if p.height]
        return pl.concat(parts, how="diagonal_relaxed") if parts else pl.DataFrame()

    def now(self) -> float:
        """The store's clock (tests move it by patching)."""
        return time.time()


_DTYPES: dict[type, pl.DataType] = {
    sa.Integer: pl.Int64(),
    sa.Float: pl.Float64(),
    sa.Boolean: pl.Boolean(),
    sa.String: pl.String(),
    sa.Text: pl.String(),
}
