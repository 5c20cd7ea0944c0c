"""Bytes → frame: the one decoder of CSV and JSON rows, shared by the CLI and the server.

``tsengine predict rows.csv`` and ``POST …/predictions`` with the same bytes must
see the same frame, or a file that forecasts on one side fails on the other.  So
both read rows here: the charset is turned into UTF-8 (polars and orjson read
nothing else), CSV is parsed straight from bytes with the deployment's schema
overrides (datetime and series id columns stay strings for the core to
interpret) and JSON is an array of records or Peltarion's ``{"rows": [...]}``.
Every malformed input becomes a :class:`~tsengine.errors.BadRequestError` that
names the problem and the thing to fix; a :class:`Source` says whether that is a
request body or a file.  Transport concerns (multipart, Content-Encoding,
Content-Type) stay with the HTTP layer.
"""

from __future__ import annotations

import codecs
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import orjson
import polars as pl

from tsengine.errors import BadRequestError
from tsengine.small_csv import MAX_ROWS, read_small_csv

__all__ = ["BODY", "CSV_INFER_ROWS", "Format", "Source", "decode", "parse", "prepare", "sniff"]

Format = Literal["csv", "json"]

CSV_INFER_ROWS = MAX_ROWS
"""Rows polars samples to infer column types; inferring from every row cost 9x
the whole parse on a 3 MB body (89 ms vs 9 ms), so that is only the fallback."""

_DUPLICATED = re.compile(r"(?P<name>.*)_duplicated_[0-9]+")
_MAX_DETAIL = 300


@dataclass(frozen=True, slots=True)
class Source:
    """Where the bytes came from, so each message names the thing to fix and how.

    Attributes:
        noun: the bytes in a sentence: ``body`` or ``file 'rows.csv'``.
        whole: the bytes as a whole: ``request body`` or ``file 'rows.csv'``.
        charset_from: where a charset was declared (named when it is unknown).
        charset_hint: how to fix bytes that do not decode in the declared charset.
    """

    noun: str
    whole: str
    charset_from: str
    charset_hint: str

    @classmethod
    def file(cls, path: str | Path) -> Source:
        """A file, named without its folder: the message may reach an HTTP client."""
        name = repr(Path(path).name)
        return cls(f"file {name}", f"file {name}", "the file's encoding", "save it as UTF-8")


BODY = Source(
    noun="body",
    whole="request body",
    charset_from="Content-Type",
    charset_hint="declare the real charset, e.g. Content-Type: text/csv; charset=latin-1",
)
"""An HTTP request body (DataRobot's messages)."""


def decode(
    data: bytes,
    fmt: Format | None = None,
    *,
    schema_overrides: Mapping[str, pl.DataType],
    charset: str | None = None,
    source: Source = BODY,
) -> pl.DataFrame:
    """Rows from CSV or JSON bytes in any charset: :func:`prepare` then :func:`parse`.

    Args:
        data: the raw bytes.
        fmt: ``csv`` or ``json``; None sniffs it (JSON when the bytes start with
            ``[`` or ``{``).
        schema_overrides: the deployment's column types, applied to the columns
            the data actually has.
        charset: the declared charset, None for UTF-8 (a BOM is dropped).
        source: where the bytes came from, for the messages.

    Raises:
        BadRequestError: empty, undecodable or malformed data, or no rows.
    """
    return parse(prepare(data, charset, source=source), fmt, schema_overrides=schema_overrides, source=source)


def prepare(data: bytes, charset: str | None = None, *, source: Source = BODY) -> bytes:
    """UTF-8 bytes holding something: the charset undone, a BOM dropped, emptiness refused.

    The HTTP layer checks the Content-Type between this and :func:`parse`, so
    an empty body is reported as empty whatever type it claims.

    Raises:
        BadRequestError: an unknown charset, bytes that do not decode, or no data.
    """
    utf8 = _to_utf8(data, charset, source)
    if not utf8 or utf8.isspace():  # not strip(): that copies a whole body ending in a newline
        msg = (
            f"The {source.whole} is empty; send the rows as CSV with a header line "
            "or as a JSON array of records"
        )
        raise BadRequestError(msg)
    return utf8


def sniff(data: bytes) -> Format:
    """JSON when the bytes start with ``[`` or ``{`` (after blanks), else CSV."""
    return "json" if data.lstrip()[:1] in {b"[", b"{"} else "csv"


def parse(
    data: bytes,
    fmt: Format | None = None,
    *,
    schema_overrides: Mapping[str, pl.DataType],
    source: Source = BODY,
) -> pl.DataFrame:
    """Parse UTF-8 CSV or JSON (from :func:`prepare`) into a frame, without a Python loop over rows.

    Raises:
        BadRequestError: malformed data, or data without a single row.
    """
    if (fmt or sniff(data)) == "json":
        frame = _json_frame(data, schema_overrides, source)
    else:
        frame = _csv_frame(data, schema_overrides, source)
    if frame.height == 0:
        msg = f"The {source.whole} has a header but no data rows; send at least one row"
        raise BadRequestError(msg)
    return frame


def _to_utf8(data: bytes, charset: str | None, source: Source) -> bytes:
    """Re-encode to UTF-8 (polars and orjson read UTF-8 only)."""
    try:
        codec = codecs.lookup(charset or "utf-8").name
    except LookupError as exc:
        msg = f"Unknown charset {charset!r} in {source.charset_from}; use e.g. utf-8 or latin-1"
        raise BadRequestError(msg) from exc
    if codec == "utf-8":
        # The common case stays zero-copy; bad bytes are diagnosed when a parser fails.
        return data[3:] if data.startswith(codecs.BOM_UTF8) else data
    try:
        return data.decode(codec).encode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequestError(_undecodable(exc, charset or codec, source)) from exc


def _undecodable(exc: UnicodeDecodeError, charset: str, source: Source) -> str:
    return (
        f"The {source.noun} is not valid {charset}: byte 0x{exc.object[exc.start]:02x} at offset "
        f"{exc.start} does not decode; {source.charset_hint}"
    )


def _check_utf8(data: bytes, source: Source) -> None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequestError(_undecodable(exc, "UTF-8", source)) from exc


def _short(exc: BaseException) -> str:
    """The first paragraph of a parser's message, without its tuning hints."""
    text = str(exc).strip().split("\n\n", 1)[0].replace("\n", " ")
    return text if len(text) <= _MAX_DETAIL else text[:_MAX_DETAIL] + "..."


def _read_csv(data: bytes, schema_overrides: Mapping[str, pl.DataType], infer: int | None) -> pl.DataFrame:
    return pl.read_csv(
        io.BytesIO(data),
        schema_overrides=dict(schema_overrides),
        infer_schema_length=infer,
        try_parse_dates=False,
    )


def _csv_frame(data: bytes, schema_overrides: Mapping[str, pl.DataType], source: Source) -> pl.DataFrame:
    small = read_small_csv(data, schema_overrides)  # the same frame, 10x sooner, when plain
    if small is not None:
        return small
    # polars checks UTF-8 in values but reads header names lossily; check the header here.
    _check_utf8(data[: data.find(b"\n") + 1 or len(data)], source)
    try:
        try:
            frame = _read_csv(data, schema_overrides, CSV_INFER_ROWS)
        except pl.exceptions.ComputeError:
            # a value past the sampled rows does not fit the inferred type: infer from all
            frame = _read_csv(data, schema_overrides, None)
    except pl.exceptions.NoDataError as exc:
        msg = f"The CSV {source.noun} has no header line; the first line must name the columns"
        raise BadRequestError(msg) from exc
    except pl.exceptions.PolarsError as exc:
        _check_utf8(data, source)
        msg = f"The CSV {source.noun} is malformed: {_short(exc)}"
        raise BadRequestError(msg) from exc
    duplicated = [
        m.group("name")
        for c in frame.columns
        if (m := _DUPLICATED.fullmatch(c)) and m.group("name") in frame.columns
    ]
    if duplicated:
        msg = f"Column {duplicated[0]!r} appears more than once in the CSV header; rename it"
        raise BadRequestError(msg)
    if "" in frame.columns:
        msg = "A column in the CSV header has no name; name every column"
        raise BadRequestError(msg)
    return frame


def _json_frame(data: bytes, schema_overrides: Mapping[str, pl.DataType], source: Source) -> pl.DataFrame:
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        _check_utf8(data, source)
        msg = f"The JSON {source.noun} is malformed: {exc}"
        raise BadRequestError(msg) from exc
    records = document.get("rows") if isinstance(document, dict) else document
    if not isinstance(records, list):
        msg = (
            f'The JSON {source.noun} must be an array of records, [{{"column": value, ...}}, ...], '
            'or {"rows": [...]} holding one'
        )
        raise BadRequestError(msg)
    if not records:
        msg = f"The JSON {source.noun} holds no records; send at least one row"
        raise BadRequestError(msg)
    if not all(type(record) is dict for record in records):
        position = next(i for i, r in enumerate(records) if type(r) is not dict)
        msg = (
            f"Record {position} of the JSON {source.noun} is a {type(records[position]).__name__}, "
            'not an object; every record must look like {"column": value, ...}'
        )
        raise BadRequestError(msg)
    try:
        frame = pl.from_dicts(records, infer_schema_length=None)
    except (pl.exceptions.PolarsError, TypeError, ValueError, OverflowError) as exc:
        msg = f"The JSON records cannot form a table: {_short(exc)}"
        raise BadRequestError(msg) from exc
    nested = [name for name, dtype in frame.schema.items() if isinstance(dtype, pl.List | pl.Struct)]
    if nested:
        msg = (
            f"Column {nested[0]!r} holds JSON arrays or objects; "
            "every value must be a string, number, boolean or null"
        )
        raise BadRequestError(msg)
    casts = [
        pl.col(name).cast(dtype, strict=False)
        for name, dtype in schema_overrides.items()
        if name in frame.columns and frame.schema[name] != dtype
    ]
    return frame.with_columns(casts) if casts else frame
