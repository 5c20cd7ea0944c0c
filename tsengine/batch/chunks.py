"""Cutting a job's input into chunks that never split a series.

A time series forecast needs each series' whole posted history, and an input
file may hold a series' rows anywhere, so chunks cannot be byte ranges of the
file.  Two streaming passes over the source keep memory bounded by one read
batch plus one row per series:

1. **plan**: per series, its first row and row count (a polars streaming
   ``group_by``), plus, in forecast mode without a forecast point, the latest
   timestamp with a target: the forecast point is decided once for the job,
   as one request over the whole file would decide it.  Series are laid out in
   order of first appearance and cut into chunks of about ``chunk_size`` bytes.
2. **partition**: the rows, batch by batch, are appended to one Arrow IPC file
   per chunk (exact types, no re-parsing).

Chunk ``k`` then holds whole series, in input order, and the chunks in order
reproduce the series order of one request over the whole input, so the job's
output is that request's output.  Tabular deployments have no series: chunks
are consecutive row ranges.
"""

from __future__ import annotations

import codecs
import datetime as dt
import math
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from tsengine.batch.adapters import Source
from tsengine.errors import BadRequestError, DatetimeParseError, ValidationError
from tsengine.timestep import parse_datetimes

__all__ = ["ROW", "Chunk", "Plan", "normalise_source", "partition", "plan_chunks"]

ROW = "__batch_row"
_CHUNK = "__batch_chunk"
_KEY = "__batch_key"
# Open files while partitioning: one per chunk.  More chunks than this are merged.
MAX_CHUNKS = 512
_TRANSCODE_BLOCK = 1 << 20


@dataclass(frozen=True, slots=True)
class Chunk:
    """One chunk file and how many input rows it holds."""

    index: int
    path: Path
    rows: int


@dataclass(frozen=True, slots=True)
class Plan:
    """What the planning pass learned about the whole input.

    Attributes:
        rows: input rows.
        series: number of series (0 for tabular deployments).
        chunk_of_key: per series key, its chunk (None: consecutive row ranges).
        rows_per_chunk: target rows per chunk.
        forecast_point: the latest timestamp with a target (forecast mode only).
        schema: column types, fixed for every chunk.
    """

    rows: int
    series: int
    chunk_of_key: pl.DataFrame | None
    rows_per_chunk: int
    chunks: int
    forecast_point: dt.datetime | None
    schema: pl.Schema


def normalise_source(source: Source, folder: Path) -> Source:
    """A CSV in a non-UTF-8 encoding, transcoded to UTF-8 once (polars reads UTF-8 only).

    Raises:
        BadRequestError: bytes that do not decode, with their offset.
    """
    if source.format != "csv" or codecs.lookup(source.csv.encoding).name == "utf-8":
        return source
    target = folder / "intake.utf8.csv"
    decoder = codecs.getincrementaldecoder(source.csv.encoding)()
    offset = 0
    with source.path.open("rb") as raw, target.open("w", encoding="utf-8", newline="") as out:
        while block := raw.read(_TRANSCODE_BLOCK):
            try:
                out.write(decoder.decode(block))
            except UnicodeDecodeError as exc:
                msg = (
                    f"the input is not valid {source.csv.encoding}: byte 0x{block[exc.start]:02x} at "
                    f"offset {offset + exc.start} does not decode; set csvSettings.encoding"
                )
                raise BadRequestError(msg) from exc
            offset += len(block)
        out.write(decoder.decode(b"", final=True))
    csv = source.csv.__class__(source.csv.delimiter, source.csv.quotechar, "utf-8")
    return Source(target, "csv", csv, owned=True)


def _header(source: Source) -> list[str]:
    with source.path.open("rb") as fh:
        line = fh.readline()
    if not line.strip():
        msg = "the input is empty: send a CSV with a header line and at least one row"
        raise BadRequestError(msg)
    return pl.read_csv(
        line, has_header=True, separator=source.csv.delimiter, quote_char=source.csv.quotechar, n_rows=0
    ).columns


def scan(source: Source, overrides: dict[str, pl.DataType]) -> pl.LazyFrame:
    """The source as a lazy frame with types inferred from every row.

    ``overrides`` (the deployment's datetime and id columns as text) apply to
    the columns the input has; inference reads the whole file once, so a value
    late in the file cannot break a chunk that guessed from its first rows.
    """
    if source.format == "parquet":
        lazy = pl.scan_parquet(source.path)
        present = lazy.collect_schema()
        casts = [pl.col(c).cast(t) for c, t in overrides.items() if c in present and present[c] != t]
        if casts:
            # datetimes stay datetimes (the engine parses them); only ids become text
            casts = [
                pl.col(c).cast(t)
                for c, t in overrides.items()
                if c in present and present[c] != t and not present[c].is_temporal()
            ]
        return lazy.with_columns(casts) if casts else lazy
    columns = _header(source)
    return pl.scan_csv(
        source.path,
        separator=source.csv.delimiter,
        quote_char=source.csv.quotechar,
        schema_overrides={c: t for c, t in overrides.items() if c in columns},
        infer_schema_length=None,
        try_parse_dates=False,
    )


def _collect(frame: pl.LazyFrame) -> pl.DataFrame:
    try:
        return frame.collect(engine="streaming")
    except pl.exceptions.PolarsError as exc:
        text = str(exc).strip().split("\n\n", 1)[0].replace("\n", " ")[:300]
        msg = f"the input cannot be read: {text}"
        raise BadRequestError(msg) from exc


def series_key(column: str, *, integer_ids: bool) -> pl.Expr:
    """The key that groups a series' rows: ``3`` and ``3.0`` are one integer id."""
    key = pl.col(column).cast(pl.String).str.strip_chars()
    if integer_ids:
        key = key.str.replace(r"\.0+$", "")
    return key.alias(_KEY)


def plan_chunks(
    source: Source,
    *,
    overrides: dict[str, pl.DataType],
    chunk_bytes: int,
    series_column: str | None,
    integer_ids: bool = False,
    single_series: bool = False,
    infer_forecast_point: tuple[str, str, str | None] | None = None,
) -> Plan:
    """The planning pass (see the module docstring).

    Args:
        source: the materialised input.
        overrides: the deployment's input column types.
        chunk_bytes: target chunk size in input bytes.
        series_column: the series id column of a multiseries deployment.
        integer_ids: the deployment's ids are integers (``3.0`` is ``3``).
        single_series: a time series deployment without series ids: one chunk.
        infer_forecast_point: ``(datetime column, target, training format)`` to
            find the latest timestamp with a target.

    Raises:
        BadRequestError: an empty or unreadable input.
        ValidationError: a missing series id column.
    """
    lazy = scan(source, overrides)
    schema = lazy.collect_schema()
    rows = int(_collect(lazy.select(pl.len())).item())
    if rows == 0:
        msg = "the input has a header but no data rows"
        raise BadRequestError(msg)
    size = source.path.stat().st_size
    rows_per_chunk = max(1, math.ceil(rows * chunk_bytes / max(size, 1)), math.ceil(rows / MAX_CHUNKS))
    chunk_of_key: pl.DataFrame | None = None
    series = 0
    chunks = math.ceil(rows / rows_per_chunk)
    if series_column is not None:
        if series_column not in schema:
            msg = f"the input has no series id column {series_column!r}; its columns are {list(schema)[:10]}"
            raise ValidationError(msg)
        stats = _collect(
            lazy.select(series_key(series_column, integer_ids=integer_ids))
            .with_row_index(ROW)
            .group_by(_KEY)
            .agg(pl.col(ROW).min().alias("first"), pl.len().alias("n"))
        ).sort("first")
        counts = stats.get_column("n").to_numpy()
        before = np.cumsum(counts) - counts
        bucket = before // rows_per_chunk  # a series starts in a bucket and stays whole
        chunk = np.unique(bucket, return_inverse=True)[1].astype(np.int64) if bucket.size else bucket
        chunk_of_key = stats.select(_KEY).with_columns(pl.Series(_CHUNK, chunk))
        series = stats.height
        chunks = int(chunk.max()) + 1 if chunk.size else 0
    elif single_series:
        rows_per_chunk, chunks = rows, 1
    forecast_point = None
    if infer_forecast_point is not None:
        forecast_point = _latest_with_target(lazy, *infer_forecast_point)
    return Plan(rows, series, chunk_of_key, rows_per_chunk, chunks, forecast_point, schema)


def _latest_with_target(
    lazy: pl.LazyFrame, datetime_column: str, target: str, fmt: str | None
) -> dt.datetime | None:
    """The latest timestamp whose target is a number: the job's forecast point."""
    schema = lazy.collect_schema()
    if datetime_column not in schema or target not in schema:
        return None  # the chunk's own validation names the missing column
    value = pl.col(target)
    if schema[target] == pl.String:
        value = value.str.strip_chars().cast(pl.Float64, strict=False)
    stamps = _collect(lazy.filter(value.is_not_null()).select(pl.col(datetime_column)).unique()).to_series()
    stamps = stamps.drop_nulls()
    if stamps.len() == 0:
        return None
    try:
        parsed, _ = parse_datetimes(stamps, column=datetime_column, preferred_format=fmt)
    except DatetimeParseError:
        # Some values do not parse: the chunk holding them reports them (per series
        # with abortOnError=false); the forecast point comes from the values that do.
        parsed = _parse_each(stamps.cast(pl.String), datetime_column, fmt)
    latest = parsed.max()
    return latest if isinstance(latest, dt.datetime) else None


def _parse_each(stamps: pl.Series, column: str, fmt: str | None) -> pl.Series:
    good = []
    for value in stamps.to_list():
        try:
            good.append(parse_datetimes(pl.Series([value]), column=column, preferred_format=fmt)[0][0])
        except DatetimeParseError:
            continue
    return pl.Series(good, dtype=pl.Datetime("us"))


def partition(
    source: Source,
    plan: Plan,
    folder: Path,
    *,
    overrides: dict[str, pl.DataType],
    series_column: str | None,
    integer_ids: bool = False,
) -> list[Chunk]:
    """The partitioning pass: one Arrow IPC stream file per chunk, rows in input order.

    Each chunk file keeps the input's row number in :data:`ROW` (for messages
    and failed-row reports).
    """
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    lazy = scan(source, overrides).with_row_index(ROW)
    writers: dict[int, pa.RecordBatchStreamWriter] = {}
    schemas: dict[int, pa.Schema] = {}
    sinks: dict[int, pa.OSFile] = {}
    counts: dict[int, int] = {}
    try:
        for batch in _batches(lazy):
            if plan.chunk_of_key is not None and series_column is not None:
                keyed = batch.with_columns(series_key(series_column, integer_ids=integer_ids))
                keyed = keyed.join(
                    plan.chunk_of_key, on=_KEY, how="left", maintain_order="left", nulls_equal=True
                )
                batch = keyed.drop(_KEY)
            else:
                batch = batch.with_columns((pl.col(ROW) // plan.rows_per_chunk).cast(pl.Int64).alias(_CHUNK))
            for (index,), part in batch.partition_by(_CHUNK, as_dict=True, maintain_order=True).items():
                table = part.drop(_CHUNK).to_arrow()
                k = int(index) if index is not None else 0
                if k not in writers:
                    sinks[k] = pa.OSFile(str(folder / f"chunk-{k:06d}.arrows"), "wb")
                    schemas[k] = table.schema
                    writers[k] = pa.ipc.new_stream(sinks[k], table.schema)
                writers[k].write_table(table.cast(schemas[k]))
                counts[k] = counts.get(k, 0) + part.height
    finally:
        for writer in writers.values():
            writer.close()
        for sink in sinks.values():
            sink.close()
    return [Chunk(k, folder / f"chunk-{k:06d}.arrows", counts[k]) for k in sorted(counts)]


def _batches(lazy: pl.LazyFrame) -> Iterator[pl.DataFrame]:
    try:
        yield from lazy.collect_batches(engine="streaming")
    except pl.exceptions.PolarsError as exc:
        text = str(exc).strip().split("\n\n", 1)[0].replace("\n", " ")[:300]
        msg = f"the input cannot be read: {text}"
        raise BadRequestError(msg) from exc


def read_chunk(chunk: Chunk) -> pl.DataFrame:
    """A chunk's rows, as typed as the whole input."""
    with pa.OSFile(str(chunk.path), "rb") as fh:
        table = pa.ipc.open_stream(fh).read_all()
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame
