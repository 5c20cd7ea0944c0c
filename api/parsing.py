"""Wire → values: request bodies to polars frames, query strings to PredictOptions.

A DataRobot client may send the same rows as CSV (``text/csv``, ``text/plain``),
a JSON array of records, Peltarion-style ``{"rows": [...]}``, or a multipart
upload (curl ``-F file=@x.csv``), in any charset, gzip- or bz2-compressed.  This
module turns all of them into one polars frame, parsed straight from bytes with
the deployment's schema overrides so that datetime and series id columns stay
strings for the core to interpret.  Every malformed input becomes a
:class:`~tsengine.errors.TsEngineError` naming what is wrong, never a 500.
"""

from __future__ import annotations

import bz2
import codecs
import datetime as dt
import io
import math
import re
import zlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

import orjson
import polars as pl
from python_multipart.multipart import parse_options_header
from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from tsengine.errors import (
    BadRequestError,
    ParameterError,
    PayloadTooLargeError,
    TsEngineError,
)
from tsengine.options import PredictOptions
from tsengine.timestep import parse_timestamp

__all__ = [
    "ALLOWED_QUERY_KEYS",
    "Payload",
    "choose_format",
    "decompress",
    "parse_options",
    "read_body",
    "to_frame",
    "unwrap_multipart",
]

ALLOWED_QUERY_KEYS = frozenset(
    {
        "forecastPoint",
        "predictionsStartDate",
        "predictionsEndDate",
        "relaxKnownInAdvanceFeaturesCheck",
        "passthroughColumns",
        "passthroughColumnsSet",
        "maxExplanations",
        "thresholdLow",
        "thresholdHigh",
        "explanationAlgorithm",
        "maxNgramExplanations",
        "maxCodes",
        "excludeAdjustedPredictions",
    }
)
_REPEATABLE_KEYS = frozenset({"passthroughColumns"})
_TRUE = frozenset({"true", "True", "1"})
_FALSE = frozenset({"false", "False", "0"})
# At most 18 digits: fits an int64, and stays below int()'s 4300-digit guard.
_INT = re.compile(r"[+-]?[0-9]{1,18}")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_LOST_PLUS = re.compile(
    r"(?P<time>T?[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?) (?P<offset>[0-9]{2}:?[0-9]{2})$"
)
_EXPLANATION_ALGORITHMS = frozenset({"shap"})

_CSV_TYPES = frozenset(
    {"text/csv", "text/plain", "application/csv", "text/x-csv", "application/vnd.ms-excel"}
)
_JSON_TYPES = frozenset({"application/json", "text/json"})
# Sniffed (JSON if it starts with [ or {, else CSV): no type, raw bytes, and what
# `curl --data-binary @rows.csv` sends when the caller forgets -H Content-Type.
_SNIFFED_TYPES = frozenset({"", "application/octet-stream", "application/x-www-form-urlencoded"})
_DUPLICATED = re.compile(r"(?P<name>.*)_duplicated_[0-9]+")
_MAX_DETAIL = 300


@dataclass(frozen=True, slots=True)
class Payload:
    """A request body and how to read it.

    Attributes:
        data: the (decompressed) bytes.
        media_type: the lower-cased media type without parameters ('' when absent).
        charset: the declared charset, or None for UTF-8.
    """

    data: bytes
    media_type: str
    charset: str | None = None

    @classmethod
    def from_content_type(cls, data: bytes, content_type: str | None) -> Payload:
        """Split a ``Content-Type`` header into media type and charset."""
        media, params = parse_options_header(content_type or "")
        raw_charset = params.get(b"charset")
        charset = raw_charset.decode("latin-1").strip() if raw_charset else None
        return cls(data, media.decode("latin-1").strip().lower(), charset or None)


# --------------------------------------------------------------------------- body


async def read_body(chunks: AsyncIterator[bytes], *, limit: int, content_length: str | None) -> bytes:
    """Read a request body, refusing it as soon as it passes ``limit`` bytes.

    The declared ``Content-Length`` is checked first, so an honest oversized
    upload is refused before a byte of it is read; a chunked (or lying) one is
    refused at the first chunk past the limit instead of being buffered whole.

    Raises:
        PayloadTooLargeError: when the body (declared or read) exceeds ``limit``.
    """
    if content_length is not None and content_length.strip().isdigit():
        declared = int(content_length)
        if declared > limit:
            raise PayloadTooLargeError(_too_large(f"{declared} bytes", limit))
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(_too_large(f"more than {limit} bytes", limit))
        parts.append(chunk)
    return b"".join(parts)


def _too_large(size: str, limit: int) -> str:
    return (
        f"The request body is {size}, over the {limit}-byte limit "
        f"({limit / 1024 / 1024:g} MB); split the rows over several requests"
    )


class _Decompressor(Protocol):
    @property
    def eof(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...

    def decompress(self, data: bytes, max_length: int = ..., /) -> bytes: ...


def _gunzip() -> _Decompressor:
    return zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)


_ENCODINGS = {"gzip": "gzip", "x-gzip": "gzip", "bz2": "bz2", "bzip2": "bz2", "x-bzip2": "bz2"}
_DECOMPRESSORS: dict[str, tuple[Callable[[], _Decompressor], tuple[type[Exception], ...]]] = {
    "gzip": (_gunzip, (zlib.error,)),
    "bz2": (bz2.BZ2Decompressor, (OSError, ValueError)),
}


def decompress(data: bytes, encoding: str | None, *, limit: int) -> bytes:
    """Undo ``Content-Encoding: gzip`` or ``bz2``, capped at ``limit`` output bytes.

    The cap applies to the decompressed size too, so a small compressed bomb
    cannot expand into gigabytes of memory.  Concatenated members (``cat a.gz
    b.gz``) are all read, as ``gzip -d`` would.

    Raises:
        BadRequestError: unknown encoding, or data that does not decompress.
        PayloadTooLargeError: the decompressed body exceeds ``limit``.
    """
    name = (encoding or "identity").strip().lower()
    if name in {"", "identity"}:
        return data
    label = _ENCODINGS.get(name)
    if label is None:
        msg = f"Content-Encoding {encoding!r} is not supported; use gzip or bz2, or send it raw"
        raise BadRequestError(msg)
    make, errors = _DECOMPRESSORS[label]
    out = bytearray()
    rest = data
    while True:
        member = make()
        try:
            out += member.decompress(rest, limit + 1 - len(out))
        except errors as exc:
            msg = f"The body is not valid {label} data (Content-Encoding: {encoding}): {exc}"
            raise BadRequestError(msg) from exc
        if len(out) > limit:
            raise PayloadTooLargeError(_too_large("more than that once decompressed", limit))
        if not member.eof:
            msg = f"The {label} body is truncated: the compressed stream ends early"
            raise BadRequestError(msg)
        rest = member.unused_data
        if not rest.strip(b"\0"):
            return bytes(out)


async def unwrap_multipart(payload: Payload, headers: Headers, *, limit: int) -> Payload:
    """The uploaded file of a ``multipart/form-data`` body, whatever the part's name.

    curl's ``-F file=@x.csv`` names the part ``file``, other clients differ, so
    the first part carrying a file name wins, else the first plain field.  The
    part's own ``Content-Type`` (or a ``.json`` file name) says how to read it.

    Raises:
        BadRequestError: a malformed multipart body, or one without any part.
    """

    async def once() -> AsyncGenerator[bytes, None]:
        yield payload.data

    parser = MultiPartParser(headers, once(), max_files=16, max_fields=64, max_part_size=limit)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        msg = f"The multipart/form-data body is malformed: {exc.message}"
        raise BadRequestError(msg) from exc
    try:
        items = form.multi_items()
        upload = next((v for _, v in items if isinstance(v, UploadFile)), None)
        if upload is not None:
            data = await upload.read()
            part = Payload.from_content_type(data, upload.content_type)
            named_json = (upload.filename or "").lower().endswith(".json")
            if part.media_type in _SNIFFED_TYPES and named_json:
                part = Payload(part.data, "application/json", part.charset)
            return part
        field = next((v for _, v in items if isinstance(v, str)), None)
        if field is not None:
            return Payload(field.encode("utf-8"), "")
    finally:
        await form.close()
    msg = (
        "The multipart/form-data body has no file part; "
        "upload the data as a file, e.g. curl -F file=@data.csv"
    )
    raise BadRequestError(msg)


def to_frame(payload: Payload, *, schema_overrides: Mapping[str, pl.DataType]) -> pl.DataFrame:
    """Parse a CSV or JSON body into a frame, without a Python loop over rows.

    Args:
        payload: the body (already decompressed and unwrapped from multipart).
        schema_overrides: the deployment's column types (datetime and series id
            columns as strings), applied to columns the body actually has.

    Raises:
        BadRequestError: an empty, undecodable or malformed body, or an
            unsupported media type.
    """
    data = _to_utf8(payload.data, payload.charset)
    if not data.strip():
        msg = (
            "The request body is empty; send the rows as CSV with a header line or as a JSON array of records"
        )
        raise BadRequestError(msg)
    media_type = payload.media_type
    if media_type in _SNIFFED_TYPES:
        media_type = "application/json" if data.lstrip()[:1] in {b"[", b"{"} else "text/csv"
    if media_type in _JSON_TYPES or media_type.endswith("+json"):
        frame = _json_frame(data, schema_overrides)
    elif media_type in _CSV_TYPES:
        frame = _csv_frame(data, schema_overrides)
    else:
        msg = (
            f"Content-Type {payload.media_type!r} is not supported; send text/csv, "
            "text/plain, application/json or multipart/form-data"
        )
        raise BadRequestError(msg)
    if frame.height == 0:
        msg = "The request body has a header but no data rows; send at least one row"
        raise BadRequestError(msg)
    return frame


def _to_utf8(data: bytes, charset: str | None) -> bytes:
    """Re-encode a body to UTF-8 (polars and orjson read UTF-8 only)."""
    try:
        codec = codecs.lookup(charset or "utf-8").name
    except LookupError as exc:
        msg = f"Unknown charset {charset!r} in Content-Type; use e.g. utf-8 or latin-1"
        raise BadRequestError(msg) from exc
    if codec == "utf-8":
        # The common case stays zero-copy; bad bytes are diagnosed when a parser fails.
        return data[3:] if data.startswith(codecs.BOM_UTF8) else data
    try:
        return data.decode(codec).encode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequestError(_undecodable(exc, charset or codec)) from exc


def _undecodable(exc: UnicodeDecodeError, charset: str) -> str:
    return (
        f"The body is not valid {charset}: byte 0x{exc.object[exc.start]:02x} at offset "
        f"{exc.start} does not decode; declare the real charset, "
        "e.g. Content-Type: text/csv; charset=latin-1"
    )


def _check_utf8(data: bytes) -> None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequestError(_undecodable(exc, "UTF-8")) from exc


def _short(exc: BaseException) -> str:
    """The first paragraph of a parser's message, without its tuning hints."""
    text = str(exc).strip().split("\n\n", 1)[0].replace("\n", " ")
    return text if len(text) <= _MAX_DETAIL else text[:_MAX_DETAIL] + "..."


CSV_INFER_ROWS = 1_000
"""Rows polars samples to infer column types; inferring from every row cost 9x
the whole parse on a 3 MB body (89 ms vs 9 ms), so that is only the fallback."""


def _read_csv(data: bytes, schema_overrides: Mapping[str, pl.DataType], infer: int | None) -> pl.DataFrame:
    return pl.read_csv(
        io.BytesIO(data),
        schema_overrides=dict(schema_overrides),
        infer_schema_length=infer,
        try_parse_dates=False,
    )


def _csv_frame(data: bytes, schema_overrides: Mapping[str, pl.DataType]) -> pl.DataFrame:
    # polars checks UTF-8 in values but reads header names lossily; check the header here.
    _check_utf8(data[: data.find(b"\n") + 1 or len(data)])
    try:
        try:
            frame = _read_csv(data, schema_overrides, CSV_INFER_ROWS)
        except pl.exceptions.ComputeError:
            # a value past the sampled rows does not fit the inferred type: infer from all
            frame = _read_csv(data, schema_overrides, None)
    except pl.exceptions.NoDataError as exc:
        msg = "The CSV body has no header line; the first line must name the columns"
        raise BadRequestError(msg) from exc
    except pl.exceptions.PolarsError as exc:
        _check_utf8(data)
        msg = f"The CSV body is malformed: {_short(exc)}"
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


def _json_frame(data: bytes, schema_overrides: Mapping[str, pl.DataType]) -> pl.DataFrame:
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        _check_utf8(data)
        msg = f"The JSON body is malformed: {exc}"
        raise BadRequestError(msg) from exc
    records = document.get("rows") if isinstance(document, dict) else document
    if not isinstance(records, list):
        msg = (
            'The JSON body must be an array of records, [{"column": value, ...}, ...], '
            'or {"rows": [...]} holding one'
        )
        raise BadRequestError(msg)
    if not records:
        msg = "The JSON body holds no records; send at least one row"
        raise BadRequestError(msg)
    if not all(type(record) is dict for record in records):
        position = next(i for i, r in enumerate(records) if type(r) is not dict)
        msg = (
            f"Record {position} of the JSON body is a {type(records[position]).__name__}, "
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


# -------------------------------------------------------------------------- query


def choose_format(accept: str | None) -> Literal["json", "csv"]:
    """The response format an ``Accept`` header asks for: CSV or (by default) JSON.

    CSV wins when ``text/csv`` has a higher q-value than ``application/json`` (or
    ``*/*``), or the same one and is listed first; no header, ``*/*`` or anything
    else is JSON, DataRobot's default.
    """
    ranks: dict[str, tuple[float, int]] = {}
    for position, item in enumerate((accept or "").split(",")):
        media, params = parse_options_header(item)
        try:
            quality = float(params.get(b"q", b"1"))
        except ValueError:
            quality = 0.0
        name = media.decode("latin-1").strip().lower()
        if quality > ranks.get(name, (0.0, 0))[0]:
            ranks[name] = (quality, -position)
    csv = ranks.get("text/csv", (0.0, 0))
    json = max(ranks.get("application/json", (0.0, 0)), ranks.get("*/*", (0.0, 0)))
    return "csv" if csv[0] > 0 and csv > json else "json"


def parse_options(items: Iterable[tuple[str, str]], *, default_max_explanations: int = 0) -> PredictOptions:
    """Turn query parameters into validated :class:`PredictOptions`.

    Keys are checked strictly (DataRobot answers 422 for an unknown key) and every
    value is typed here, so the core receives only well-formed options.
    ``maxExplanations``, ``maxNgramExplanations``, ``excludeAdjustedPredictions``
    and ``explanationAlgorithm`` are validated even where the core has no use for
    them yet, so a client's typo is reported rather than ignored.

    Args:
        items: the query's (key, value) pairs in order, repeated keys included.
        default_max_explanations: ``maxExplanations`` when not given (DataRobot's
            deprecated ``predictionExplanations`` route defaults to 3).

    Raises:
        ParameterError: an unknown or repeated key, a badly typed value, or a
            combination the core rejects (see :meth:`PredictOptions.validated`).
    """
    single: dict[str, str] = {}
    passthrough: list[str] = []
    for key, value in items:
        if key not in ALLOWED_QUERY_KEYS:
            msg = f"'{key}': {key} is not allowed key"
            raise ParameterError(msg)
        if key in _REPEATABLE_KEYS:
            passthrough.append(value)
        elif key in single and single[key] != value:
            msg = f"{key} was given more than once with different values; give it once"
            raise ParameterError(msg)
        else:
            single[key] = value

    both = "maxCodes" in single and "maxExplanations" in single
    if both and _int(single, "maxCodes") != _int(single, "maxExplanations"):
        msg = "maxCodes is the old name of maxExplanations; give one of them, not both"
        raise ParameterError(msg)
    max_explanations = _int(single, "maxExplanations")
    if max_explanations is None:
        max_explanations = _int(single, "maxCodes")
    _check_unused(single)

    passthrough_all = False
    if "passthroughColumnsSet" in single:
        if single["passthroughColumnsSet"] != "all":
            msg = (
                f"passthroughColumnsSet must be 'all', got {single['passthroughColumnsSet']!r}; "
                "to pass some columns through use passthroughColumns=<name> (repeatable)"
            )
            raise ParameterError(msg)
        passthrough_all = True

    options = PredictOptions(
        forecast_point=_datetime(single, "forecastPoint"),
        start=_datetime(single, "predictionsStartDate"),
        end=_datetime(single, "predictionsEndDate"),
        relax_known_in_advance=_bool(single, "relaxKnownInAdvanceFeaturesCheck") or False,
        passthrough_columns=tuple(passthrough),
        passthrough_all=passthrough_all,
        max_explanations=(default_max_explanations if max_explanations is None else max_explanations),
        threshold_low=_float(single, "thresholdLow"),
        threshold_high=_float(single, "thresholdHigh"),
    )
    return options.validated()


def _check_unused(single: Mapping[str, str]) -> None:
    """Validate the parameters the core does not take (yet), so typos are reported."""
    _bool(single, "excludeAdjustedPredictions")
    ngram = single.get("maxNgramExplanations")
    if ngram is not None and ngram != "all":
        count = _int(single, "maxNgramExplanations")
        if count is not None and count < 0:
            msg = f"maxNgramExplanations must be 0 or more, or 'all', got {ngram!r}"
            raise ParameterError(msg)
    algorithm = single.get("explanationAlgorithm")
    if algorithm is not None and algorithm.lower() not in _EXPLANATION_ALGORITHMS:
        msg = (
            f"explanationAlgorithm {algorithm!r} is not supported; tsengine explains "
            "with 'shap' (per-feature contributions)"
        )
        raise ParameterError(msg)


def _bool(single: Mapping[str, str], key: str) -> bool | None:
    value = single.get(key)
    if value is None:
        return None
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    msg = f"{key} must be true or false (also True/False/1/0), got {value!r}"
    raise ParameterError(msg)


def _int(single: Mapping[str, str], key: str) -> int | None:
    value = single.get(key)
    if value is None:
        return None
    if not _INT.fullmatch(value.strip()):
        msg = f"{key} must be a whole number, got {value!r}"
        raise ParameterError(msg)
    return int(value)


def _float(single: Mapping[str, str], key: str) -> float | None:
    value = single.get(key)
    if value is None:
        return None
    if not _FLOAT.fullmatch(value.strip()) or not math.isfinite(number := float(value)):
        msg = f"{key} must be a finite number, got {value!r}"
        raise ParameterError(msg)
    return number


def _datetime(single: Mapping[str, str], key: str) -> dt.datetime | None:
    value = single.get(key)
    if value is None:
        return None
    # An unencoded "+" in "...T00:00:00+02:00" arrives as a space: restore the offset.
    value = _LOST_PLUS.sub(r"\g<time>+\g<offset>", value)
    try:
        return parse_timestamp(value, name=key)
    except TsEngineError:
        raise
    except (ValueError, OverflowError) as exc:
        # e.g. 9999-12-31T23:59:59-01:00 overflows when converted to UTC.
        msg = f"{key}: {value!r} is not a usable datetime ({exc})"
        raise ParameterError(msg) from exc
