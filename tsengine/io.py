"""Reading tables from files and from whatever frame a caller holds.

polars everywhere inside; pandas is accepted at the edge because planners'
notebooks hold pandas frames.  CSV and JSON files are decoded by
:mod:`tsengine.codec`, the server's decoder of request bodies.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl

from tsengine.codec import Format, Source, decode
from tsengine.errors import BadRequestError, ParameterError

__all__ = ["read_table", "to_polars"]


def to_polars(frame: Any) -> pl.DataFrame:
    """A polars DataFrame from polars, pandas, or a list of records.

    Raises:
        ParameterError: anything else.
    """
    if isinstance(frame, pl.DataFrame):
        return frame
    if isinstance(frame, pl.LazyFrame):
        return frame.collect()
    module = type(frame).__module__
    if module.startswith("pandas"):
        converted: pl.DataFrame = pl.from_pandas(frame, include_index=False)
        return converted
    if isinstance(frame, list):
        return pl.DataFrame(frame)
    msg = f"expected a polars or pandas DataFrame, got {type(frame).__name__}"
    raise ParameterError(msg)


_PARQUET = frozenset({".parquet", ".pq"})
_FORMATS: dict[str, Format] = {".csv": "csv", ".txt": "csv", ".json": "json"}


def read_table(
    path: str | Path, *, schema_overrides: Mapping[str, pl.DataType] | None = None
) -> pl.DataFrame:
    """Read Parquet, an image ZIP, or CSV or JSON rows exactly as the HTTP server reads a body.

    CSV and JSON go through :func:`tsengine.codec.decode`, the decoder of
    ``POST …/predictions``, so a file that forecasts with ``tsengine predict``
    forecasts when posted, and fails with the same message when it does not.
    The extension picks the format (``.csv``/``.txt``, ``.json``; any other is
    sniffed like an untyped body); a ``.zip`` is DataRobot's image format
    (:mod:`tsengine.images.archive`).  Columns named in ``schema_overrides`` (the
    datetime and series id columns) stay strings, so the original datetime
    format survives.

    Raises:
        BadRequestError: the file is missing, unreadable, empty or malformed, naming it.
    """
    path = Path(path)
    if not path.is_file():
        msg = f"no such file: {str(path)!r}"
        raise BadRequestError(msg)
    suffix = path.suffix.lower()
    if suffix == ".zip":
        from tsengine.images.archive import read_image_archive  # images only: loaded on use

        return read_image_archive(path, schema_overrides=schema_overrides)
    try:
        if suffix in _PARQUET:
            return pl.read_parquet(path)
        data = path.read_bytes()
    except (pl.exceptions.PolarsError, OSError) as exc:
        msg = f"cannot read {str(path)!r} as {'Parquet' if suffix in _PARQUET else 'CSV or JSON'}: {exc}"
        raise BadRequestError(msg) from exc
    return decode(
        data, _FORMATS.get(suffix), schema_overrides=schema_overrides or {}, source=Source.file(path)
    )
