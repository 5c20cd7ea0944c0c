"""Wire → values: request bodies to polars frames, headers to formats.

A DataRobot client may send the same rows as CSV (``text/csv``, ``text/plain``),
a JSON array of records, Peltarion-style ``{"rows": [...]}``, or a multipart
upload (curl ``-F file=@x.csv``), in any charset, gzip- or bz2-compressed.  This
module undoes the transport (size limit, Content-Encoding, multipart, Content-Type)
and hands the bytes to :mod:`tsengine.codec`, the decoder ``tsengine predict``
uses for files too, so the same rows give the same frame on both sides.  Every
malformed input becomes a :class:`~tsengine.errors.TsEngineError` naming what is
wrong, never a 500.  Query strings are :mod:`api.query`'s (re-exported here).
"""

from __future__ import annotations

import base64
import bz2
import io
import zlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import orjson
import polars as pl
from python_multipart.multipart import parse_options_header
from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from api.query import ALLOWED_QUERY_KEYS, parse_options
from tsengine import codec
from tsengine.errors import BadRequestError, PayloadTooLargeError
from tsengine.tabular.images import NPY_PREFIX

_NPY_MAGIC = b"\x93NUMPY"

__all__ = [
    "ALLOWED_QUERY_KEYS",
    "FormFile",
    "Payload",
    "choose_format",
    "decompress",
    "form_row",
    "parse_options",
    "read_form",
    "read_body",
    "to_frame",
    "unwrap_multipart",
]

_CSV_TYPES = frozenset(
    {"text/csv", "text/plain", "application/csv", "text/x-csv", "application/vnd.ms-excel"}
)
_JSON_TYPES = frozenset({"application/json", "text/json"})
# Sniffed (JSON if it starts with [ or {, else CSV): no type, raw bytes, and what
# `curl --data-binary @rows.csv` sends when the caller forgets -H Content-Type.
_SNIFFED_TYPES = frozenset({"", "application/octet-stream", "application/x-www-form-urlencoded"})


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
    # BytesIO grows its one buffer in place and hands it over without a copy, where
    # joining a list of chunks held the body twice at the end.
    buffer = io.BytesIO()
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(_too_large(f"more than {limit} bytes", limit))
        buffer.write(chunk)
    return buffer.getvalue()


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


@dataclass(frozen=True, slots=True)
class FormFile:
    """An uploaded file of a ``multipart/form-data`` body, read whole (the body is capped)."""

    filename: str
    content_type: str | None
    data: bytes


FormItem = tuple[str, "str | FormFile"]


async def read_form(payload: Payload, headers: Headers, *, limit: int) -> list[FormItem]:
    """The parts of a ``multipart/form-data`` body, in order: text fields and files.

    Raises:
        BadRequestError: a malformed multipart body.
    """

    async def once() -> AsyncGenerator[bytes, None]:
        yield payload.data

    parser = MultiPartParser(headers, once(), max_files=16, max_fields=64, max_part_size=limit)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        msg = f"The multipart/form-data body is malformed: {exc.message}"
        raise BadRequestError(msg) from exc
    items: list[FormItem] = []
    try:
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                data = await value.read()
                items.append((name, FormFile(value.filename or "", value.content_type, data)))
            else:
                items.append((name, value))
    finally:
        await form.close()
    return items


async def unwrap_multipart(
    payload: Payload, headers: Headers, *, limit: int, image_columns: Sequence[str] = ()
) -> Payload:
    """The uploaded file of a ``multipart/form-data`` body, whatever the part's name.

    curl's ``-F file=@x.csv`` names the part ``file``, other clients differ, so
    the first part carrying a file name wins, else the first plain field.  The
    part's own ``Content-Type`` (or a ``.json`` file name) says how to read it.
    For a deployment that reads images, a body with a part named after one of
    its image columns is one example instead (``-F photo=@shoe.jpg -F
    brand=acme``; see :func:`form_row`).

    Raises:
        BadRequestError: a malformed multipart body, or one without any part.
    """
    items = await read_form(payload, headers, limit=limit)
    if image_columns and any(name in image_columns for name, _ in items):
        return form_row(items, image_columns)
    upload = next((v for _, v in items if isinstance(v, FormFile)), None)
    if upload is not None:
        part = Payload.from_content_type(upload.data, upload.content_type)
        if part.media_type in _SNIFFED_TYPES and upload.filename.lower().endswith(".json"):
            part = Payload(part.data, "application/json", part.charset)
        return part
    field = next((v for _, v in items if isinstance(v, str)), None)
    if field is not None:
        return Payload(field.encode("utf-8"), "")
    msg = (
        "The multipart/form-data body has no file part; "
        "upload the data as a file, e.g. curl -F file=@data.csv"
    )
    raise BadRequestError(msg)


def form_row(items: Sequence[FormItem], image_columns: Sequence[str]) -> Payload:
    """One example sent as form fields, as a one-row JSON body.

    Text fields are the values; a file for an image column becomes its base64
    text (a ``.npy`` array, Peltarion's other upload, its ``.npy`` data URI),
    which is what a CSV row carries, so an uploaded photo and the same photo
    in a CSV predict the same.  A file for any other column is read as UTF-8
    text (``-F size=@size.txt``).

    Raises:
        BadRequestError: a field given twice, or a non-image file that is not text.
    """
    row: dict[str, str] = {}
    for name, value in items:
        if name in row:
            msg = f"form field {name!r} is given more than once; send one example per request"
            raise BadRequestError(msg)
        if isinstance(value, str):
            row[name] = value
        elif value.data.startswith(_NPY_MAGIC):
            row[name] = f"{NPY_PREFIX};base64,{base64.b64encode(value.data).decode('ascii')}"
        elif name in image_columns:
            row[name] = base64.b64encode(value.data).decode("ascii")
        else:
            try:
                row[name] = value.data.decode("utf-8")
            except UnicodeDecodeError as exc:
                msg = f"form field {name!r} is a binary file ({value.filename!r}) but not an image column"
                raise BadRequestError(msg) from exc
    return Payload(orjson.dumps([row]), "application/json")


def to_frame(payload: Payload, *, schema_overrides: Mapping[str, pl.DataType]) -> pl.DataFrame:
    """Parse a CSV or JSON body into a frame with the core's codec (as the CLI reads files).

    Only the Content-Type is HTTP's business: it picks the format (or leaves it
    to be sniffed); charset, CSV and JSON decoding and their messages are
    :mod:`tsengine.codec`'s, so a body and a file with the same bytes give the
    same frame.

    Args:
        payload: the body (already decompressed and unwrapped from multipart).
        schema_overrides: the deployment's column types (datetime and series id
            columns as strings), applied to columns the body actually has.

    Raises:
        BadRequestError: an empty, undecodable or malformed body, or an
            unsupported media type.
    """
    data = codec.prepare(payload.data, payload.charset, source=codec.BODY)
    return codec.parse(
        data, _format(payload.media_type), schema_overrides=schema_overrides, source=codec.BODY
    )


def _format(media_type: str) -> codec.Format | None:
    """The body's format by its media type; None to sniff it."""
    if media_type in _SNIFFED_TYPES:
        return None
    if media_type in _JSON_TYPES or media_type.endswith("+json"):
        return "json"
    if media_type in _CSV_TYPES:
        return "csv"
    msg = (
        f"Content-Type {media_type!r} is not supported; send text/csv, "
        "text/plain, application/json or multipart/form-data"
    )
    raise BadRequestError(msg)


# ------------------------------------------------------------------------ headers


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
