"""Reading tables from files and from whatever frame a caller holds.

polars everywhere inside; pandas is accepted at the edge because planners'
notebooks hold pandas frames.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

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


def read_table(path: str | Path, *, schema_overrides: dict[str, pl.DataType] | None = None) -> pl.DataFrame:
    """Read CSV or Parquet by extension, keeping datetime text as written.

    CSV columns named in ``schema_overrides`` (the datetime and series id
    columns) stay strings, so the original datetime format survives.

    Raises:
        BadRequestError: the file is missing or unreadable, naming it.
    """
    path = Path(path)
    if not path.is_file():
        msg = f"no such file: {str(path)!r}"
        raise BadRequestError(msg)
    try:
        if path.suffix.lower() in {".parquet", ".pq"}:
            return pl.read_parquet(path)
        return pl.read_csv(
            path,
            schema_overrides=schema_overrides,
            infer_schema_length=10_000,
            try_parse_dates=False,
        )
    except (pl.exceptions.PolarsError, OSError, UnicodeDecodeError) as exc:
        msg = f"cannot read {str(path)!r} as {'Parquet' if path.suffix.lower() in {'.parquet', '.pq'} else 'CSV'}: {exc}"
        raise BadRequestError(msg) from exc
