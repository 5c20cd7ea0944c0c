"""Cutting a job's input into chunks that never split a series.

A time series forecast needs each series' whole posted history, and an input
file may hold a series' rows anywhere, so chunks cannot be byte ranges of the
file.  The input is parsed **once**, in blocks, with memory bounded by one
block plus one row per series:

1. **plan** (:func:`plan_chunks`): the CSV is cut at record boundaries into
   blocks of :data:`BLOCK_BYTES` (quote-aware, so a quoted newline never splits
   a row), each parsed by polars and spooled as an Arrow IPC file.  Meanwhile
   each series' first row and row count are tallied, every block's column
   types are merged into one schema for the whole file (a column that is
   integer early and decimal later is decimal everywhere), and, in forecast
   mode without a forecast point, the timestamps that carry a target are
   collected: the forecast point is decided once for the job, as one request
   over the whole file would decide it.  Series are laid out in order of first
   appearance and cut into chunks of about ``chunk_size`` bytes.
2. **partition** (:func:`partition`): the spooled blocks, cast to the merged
   schema, are dealt row by row into one Arrow IPC file per chunk (exact types,
   no re-parsing).

Chunk ``k`` then holds whole series, in input order, and the chunks in order
reproduce the series order of one request over the whole input, so the job's
output is that request's output.  Tabular deployments have no series: chunks
are consecutive row ranges.  The CSV is read with plain file reads, not a
memory map, so the resident size of a job does not grow with the file.
"""

from __future__ import annotations

import codecs
import datetime as dt
import io
import math
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from tsengine.batch.adapters import Source
from tsengine.datetimes import parse_datetimes
from tsengine.errors import BadRequestError, DatetimeParseError, ValidationError

__all__ = [
    "BLOCK_BYTES",
    "ROW",
    "Chunk",
    "Plan",
    "normalise_source",
    "partition",
    "plan_chunks",
    "read_chunk",
]

ROW = "__batch_row"
_CHUNK = "__batch_chunk"
_KEY = "__batch_key"
# Open files while partitioning: one per chunk.  More chunks than this are merged.
MAX_CHUNKS = 512
# CSV bytes parsed at once: large enough for polars' parallel parser, small
# enough that a block and its frame stay far below the job's memory budget.
BLOCK_BYTES = 32 * 1024 * 1024
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
        chunks: number of chunks.
        forecast_point: the latest timestamp with a target (forecast mode only).
        schema: column types, merged over every block and fixed for every chunk.
        blocks: the spooled, parsed blocks (deleted by :func:`partition`).
    """

    rows: int
    series: int
    chunk_of_key: pl.DataFrame | None
    rows_per_chunk: int
    chunks: int
    forecast_point: dt.datetime | None
    schema: pl.Schema
    blocks: tuple[Path, ...] = field(default=())


def normalise_source(source: Source, folder: Path) -> Source:
    """The intake as UTF-8 in its real dialect: transcoded once, comma-separated when it is.

    The ``datarobot`` client uploads a DataFrame as comma-separated CSV whatever
    ``csvSettings.delimiter`` says (its ``to_csv`` takes no separator), so a
    header without the declared delimiter but with commas is read with commas;
    the output keeps the declared dialect.

    Raises:
        BadRequestError: bytes that do not decode, with their offset.
    """
    if source.format != "csv":
        return source
    if codecs.lookup(source.csv.encoding).name != "utf-8":
        source = _transcode(source, folder)
    return _comma_if_written_so(source)


def _comma_if_written_so(source: Source) -> Source:
    delimiter = source.csv.delimiter
    if delimiter == ",":
        return source
    with source.path.open("rb") as fh:
        header = fh.readline()
    if delimiter.encode() not in header and b"," in header:
        return Source(source.path, "csv", replace(source.csv, delimiter=","), owned=source.owned)
    return source


def _transcode(source: Source, folder: Path) -> Source:
    """A non-UTF-8 CSV transcoded to UTF-8 once (polars reads UTF-8 only)."""
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
    return Source(target, "csv", replace(source.csv, encoding="utf-8"), owned=True)


def _last_record_end(data: bytes, quote: bytes) -> int:
    """Offset of the last newline outside a quoted field, or -1.

    ``data`` starts at a record boundary, so a newline ends a record exactly
    when an even number of quote characters precedes it (an escaped quote is
    two of them).  Counting is done by ``bytes.count`` in C.
    """
    pos = data.rfind(b"\n")
    if pos < 0 or data.find(quote) < 0:
        return pos
    odd = data.count(quote, 0, pos) % 2
    while pos >= 0 and odd:
        previous = data.rfind(b"\n", 0, pos)
        odd ^= data.count(quote, previous + 1, pos) % 2
        pos = previous
    return pos


def _csv_blocks(source: Source) -> Iterator[tuple[bytes, bytes]]:
    """``(header line, block of whole records)`` pairs covering the file."""
    quote = source.csv.quotechar.encode()
    with source.path.open("rb") as fh:
        header = fh.readline()
        if not header.strip():
            msg = "the input is empty: send a CSV with a header line and at least one row"
            raise BadRequestError(msg)
        if not header.endswith(b"\n"):
            header += b"\n"
        rest = b""
        while data := fh.read(BLOCK_BYTES):
            buffer = rest + data
            cut = _last_record_end(buffer, quote)
            if cut < 0:
                rest = buffer
                continue
            yield header, buffer[: cut + 1]
            rest = buffer[cut + 1 :]
        if rest.strip():
            yield header, rest


def _short(exc: BaseException) -> str:
    return str(exc).strip().split("\n\n", 1)[0].replace("\n", " ")[:300]


def _frames(source: Source, overrides: dict[str, pl.DataType]) -> Iterator[pl.DataFrame]:
    """The input as parsed frames, block by block (CSV) or batch by batch (Parquet)."""
    if source.format == "parquet":
        lazy = pl.scan_parquet(source.path)
        present = lazy.collect_schema()
        # ids become text; datetimes stay datetimes (the engine parses them)
        casts = [
            pl.col(c).cast(t)
            for c, t in overrides.items()
            if c in present and present[c] != t and not present[c].is_temporal()
        ]
        try:
            yield from lazy.with_columns(casts).collect_batches(engine="streaming")
        except pl.exceptions.PolarsError as exc:
            msg = f"the input cannot be read: {_short(exc)}"
            raise BadRequestError(msg) from exc
        return
    columns: list[str] | None = None
    offset = 0
    for header, block in _csv_blocks(source):
        if columns is None:
            columns = _header_columns(header, source)
        data = header + block
        given = {c: t for c, t in overrides.items() if c in columns}
        try:
            try:
                frame = _read_block(data, source, given, INFER_ROWS)
                if _late_values(frame, given):
                    frame = _read_block(data, source, given, None)
            except pl.exceptions.ComputeError:
                # a value past the sampled rows does not fit the inferred type: infer from all
                frame = _read_block(data, source, given, None)
        except pl.exceptions.PolarsError as exc:
            msg = f"the input cannot be read as CSV (at or after byte {offset}): {_short(exc)}"
            raise BadRequestError(msg) from exc
        offset += len(block)
        # a column with no value in this block says nothing of its type: let other blocks decide
        yield frame.with_columns(
            pl.col(c).cast(pl.Null)
            for c, t in frame.schema.items()
            if c not in given and frame[c].null_count() == frame.height
        )


INFER_ROWS = 10_000
"""Rows polars samples per block to infer types: inferring from the whole block cost
17x the parse of a 32 MiB block (0.505 s vs 0.029 s), so that is only the fallback."""


def _read_block(
    data: bytes, source: Source, given: dict[str, pl.DataType], infer: int | None
) -> pl.DataFrame:
    return pl.read_csv(
        io.BytesIO(data),
        separator=source.csv.delimiter,
        quote_char=source.csv.quotechar,
        schema_overrides=given,
        infer_schema_length=infer,
        try_parse_dates=False,
    )


def _late_values(frame: pl.DataFrame, given: dict[str, pl.DataType]) -> bool:
    """Whether a column was empty in the sampled rows but not after (its type was guessed)."""
    if frame.height <= INFER_ROWS:
        return False
    head = frame.head(INFER_ROWS)
    return any(
        dtype == pl.String
        and c not in given
        and head[c].null_count() == INFER_ROWS
        and frame[c].null_count() < frame.height
        for c, dtype in frame.schema.items()
    )


def _header_columns(header: bytes, source: Source) -> list[str]:
    names = pl.read_csv(
        io.BytesIO(header),
        has_header=True,
        separator=source.csv.delimiter,
        quote_char=source.csv.quotechar,
        n_rows=0,
    ).columns
    if len(set(names)) != len(names) or "" in names:
        msg = f"the input's header must name every column once; it has {names[:12]}"
        raise BadRequestError(msg)
    return names


def _merge(left: pl.DataType, right: pl.DataType) -> pl.DataType:
    """The type that holds both: equal stays, null yields, numbers widen, else text."""
    if left == right or right == pl.Null:
        return left
    if left == pl.Null:
        return right
    if (left.is_numeric() or left == pl.Boolean) and (right.is_numeric() or right == pl.Boolean):
        return pl.Float64() if left.is_float() or right.is_float() else pl.Int64()
    return pl.String()


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
    folder: Path | None = None,
) -> Plan:
    """The planning pass, which also parses and spools the input (see the module docstring).

    Args:
        source: the materialised input.
        overrides: the deployment's input column types.
        chunk_bytes: target chunk size in input bytes.
        series_column: the series id column of a multiseries deployment.
        integer_ids: the deployment's ids are integers (``3.0`` is ``3``).
        single_series: a time series deployment without series ids: one chunk.
        infer_forecast_point: ``(datetime column, target, training format)`` to
            find the latest timestamp with a target.
        folder: where the parsed blocks are spooled (default: beside the source).

    Raises:
        BadRequestError: an empty or unreadable input.
        ValidationError: a missing series id column.
    """
    spool = folder if folder is not None else source.path.parent / f".{source.path.name}.blocks"
    if spool.exists():
        shutil.rmtree(spool)
    spool.mkdir(parents=True)
    schema: dict[str, pl.DataType] = {}
    stats: list[pl.DataFrame] = []
    stamps: list[pl.Series] = []
    blocks: list[Path] = []
    rows = in_memory = 0
    for frame in _frames(source, overrides):
        if series_column is not None and series_column not in frame.columns:
            msg = f"the input has no series id column {series_column!r}; its columns are {frame.columns[:12]}"
            raise ValidationError(msg)
        frame = frame.with_columns(pl.int_range(rows, rows + frame.height, dtype=pl.Int64).alias(ROW))
        for name, dtype in frame.schema.items():
            schema[name] = _merge(schema[name], dtype) if name in schema else dtype
        if series_column is not None:
            stats.append(
                frame.group_by(series_key(series_column, integer_ids=integer_ids)).agg(
                    pl.col(ROW).min().alias("first"), pl.len().alias("n")
                )
            )
        if infer_forecast_point is not None:
            stamps.append(_stamps_with_target(frame, *infer_forecast_point[:2]))
        path = spool / f"block-{len(blocks):06d}.arrow"
        frame.write_ipc(path, compression="uncompressed")
        blocks.append(path)
        rows += frame.height
        in_memory += int(frame.estimated_size())
    if rows == 0:
        msg = "the input has a header but no data rows"
        raise BadRequestError(msg)
    # chunk sizes are CSV bytes: a Parquet file is compressed, so count its rows' size in memory
    size = source.path.stat().st_size if source.format == "csv" else in_memory
    rows_per_chunk = max(1, math.ceil(rows * chunk_bytes / max(size, 1)), math.ceil(rows / MAX_CHUNKS))
    chunk_of_key: pl.DataFrame | None = None
    series = 0
    chunks = math.ceil(rows / rows_per_chunk)
    if series_column is not None:
        tally = pl.concat(stats).group_by(_KEY).agg(pl.col("first").min(), pl.col("n").sum()).sort("first")
        counts = tally.get_column("n").to_numpy()
        before = np.cumsum(counts) - counts
        bucket = before // rows_per_chunk  # a series starts in a bucket and stays whole
        chunk = np.unique(bucket, return_inverse=True)[1].astype(np.int64)
        chunk_of_key = tally.select(_KEY).with_columns(pl.Series(_CHUNK, chunk))
        series = tally.height
        chunks = int(chunk.max()) + 1
    elif single_series:
        rows_per_chunk, chunks = rows, 1
    forecast_point = None
    if infer_forecast_point is not None:
        forecast_point = _latest(stamps, infer_forecast_point[0], infer_forecast_point[2])
    return Plan(
        rows, series, chunk_of_key, rows_per_chunk, chunks, forecast_point, pl.Schema(schema), tuple(blocks)
    )


def _stamps_with_target(frame: pl.DataFrame, datetime_column: str, target: str) -> pl.Series:
    """A block's distinct timestamps (as posted) whose target is a number."""
    if datetime_column not in frame.columns or target not in frame.columns:
        return pl.Series(datetime_column, [], dtype=pl.String)  # the chunk's validation names it
    value = pl.col(target)
    if frame.schema[target] == pl.String:
        value = value.str.strip_chars().cast(pl.Float64, strict=False)
    return frame.filter(value.is_not_null()).get_column(datetime_column).unique()


def _latest(parts: list[pl.Series], datetime_column: str, fmt: str | None) -> dt.datetime | None:
    """The latest timestamp with a target over the whole input: the job's forecast point."""
    if not parts:
        return None
    stamps = (
        pl.concat([p.cast(pl.String) if p.dtype != parts[0].dtype else p for p in parts])
        .unique()
        .drop_nulls()
    )
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
    plan: Plan,
    folder: Path,
    *,
    series_column: str | None,
    integer_ids: bool = False,
) -> list[Chunk]:
    """The partitioning pass: the spooled blocks dealt into one Arrow IPC file per chunk.

    Rows keep input order within a chunk and their input row number in
    :data:`ROW` (for messages and failed-row reports).  Each block file is
    deleted once dealt, so the spool never holds the input twice.
    """
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    writers: dict[int, pa.RecordBatchStreamWriter] = {}
    sinks: dict[int, pa.OSFile] = {}
    counts: dict[int, int] = {}
    arrow_schema: pa.Schema | None = None
    try:
        for path in plan.blocks:
            with pa.OSFile(str(path), "rb") as fh:  # read, not memory-mapped
                loaded = pl.from_arrow(pa.ipc.open_file(fh).read_all())
            assert isinstance(loaded, pl.DataFrame)
            block = loaded
            block = block.cast({c: t for c, t in plan.schema.items() if block.schema.get(c) != t})
            if plan.chunk_of_key is not None and series_column is not None:
                keyed = block.with_columns(series_key(series_column, integer_ids=integer_ids))
                keyed = keyed.join(
                    plan.chunk_of_key, on=_KEY, how="left", maintain_order="left", nulls_equal=True
                )
                block = keyed.drop(_KEY)
            else:
                block = block.with_columns((pl.col(ROW) // plan.rows_per_chunk).cast(pl.Int64).alias(_CHUNK))
            for (index,), part in block.partition_by(_CHUNK, as_dict=True, maintain_order=True).items():
                table = part.drop(_CHUNK).to_arrow()
                if arrow_schema is None:
                    arrow_schema = table.schema
                k = int(index) if index is not None else 0
                if k not in writers:
                    sinks[k] = pa.OSFile(str(folder / f"chunk-{k:06d}.arrows"), "wb")
                    writers[k] = pa.ipc.new_stream(sinks[k], arrow_schema)
                writers[k].write_table(table.cast(arrow_schema))
                counts[k] = counts.get(k, 0) + part.height
            path.unlink()
    finally:
        for writer in writers.values():
            writer.close()
        for sink in sinks.values():
            sink.close()
    if plan.blocks:
        shutil.rmtree(plan.blocks[0].parent, ignore_errors=True)
    return [Chunk(k, folder / f"chunk-{k:06d}.arrows", counts[k]) for k in sorted(counts)]


def read_chunk(chunk: Chunk) -> pl.DataFrame:
    """A chunk's rows, as typed as the whole input."""
    with pa.OSFile(str(chunk.path), "rb") as fh:
        table = pa.ipc.open_stream(fh).read_all()
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame
