"""Checks on posted (or training) history, turning a raw frame into a canonical one.

The canonical frame has fixed internal column names so the window logic, the
features and the models never see a client's column names:

``__row`` input row index · ``__sid`` series key (string) · ``__t`` naive UTC
timestamp · ``__i`` grid index · ``__orig`` the datetime as the client wrote it ·
``__y`` target (Float64, null on forecast rows) · then the features, by name.

Each failure raises a :mod:`tsengine.errors` class whose message names the
column, series, timestamp and rows (the first few, then a count).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from tsengine.errors import (
    DuplicateRowError,
    MissingColumnError,
    OffGridError,
    ValidationError,
    short_list,
)
from tsengine.timestep import TimeStep, parse_datetimes

__all__ = [
    "ROW",
    "SID",
    "TIME",
    "IDX",
    "ORIG",
    "Y",
    "Canonical",
    "as_number",
    "canonicalize",
    "require_columns",
]

ROW, SID, TIME, IDX, ORIG, Y = "__row", "__sid", "__t", "__i", "__orig", "__y"
SINGLE_SERIES = ""
"""``__sid`` of every row of a single-series deployment."""


@dataclass(frozen=True, slots=True)
class Canonical:
    """A validated frame in canonical columns, with what parsing learned."""

    frame: pl.DataFrame
    datetime_format: str
    utc_offset: str | None


def require_columns(frame: pl.DataFrame, columns: tuple[str, ...], *, what: str) -> None:
    """Raise MissingColumnError naming every absent column and those present."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        msg = (
            f"{what} is missing required column(s) {short_list(missing, limit=10)}; "
            f"it has {short_list(frame.columns, limit=10)}"
        )
        raise MissingColumnError(msg)


def _rows(mask: pl.Series) -> list[int]:
    return np.flatnonzero(mask.to_numpy()).tolist()


_BOOLEAN_TEXT = {"true": "1", "false": "0"}


def as_number(text: pl.Series) -> pl.Series:
    """Text to Float64 (null where not a number); ``true``/``false`` in any case are 1/0.

    Booleans written as text are how R (``TRUE``), spreadsheets and JSON-to-CSV
    tools export flags such as a holiday indicator; a boolean column at training
    must accept them at prediction.
    """
    lowered = text.str.strip_chars().str.to_lowercase()
    return lowered.replace(_BOOLEAN_TEXT).cast(pl.Float64, strict=False)


def _numeric(frame: pl.DataFrame, column: str, alias: str) -> pl.Expr:
    """Cast a column to Float64, failing on values that are present but not numbers."""
    col = frame.get_column(column)
    if col.dtype.is_numeric() or col.dtype == pl.Null:
        return pl.col(column).cast(pl.Float64).alias(alias)
    if col.dtype == pl.Boolean:
        return pl.col(column).cast(pl.Float64).alias(alias)
    text = col.cast(pl.String).str.strip_chars()
    cast = as_number(text)
    bad = cast.is_null() & text.is_not_null() & (text != "")
    if bad.any():
        rows = _rows(bad)
        examples = short_list([f"row {r}: {text[r]!r}" for r in rows], quote=False)
        msg = f"column {column!r} must be numeric, but has non-numeric values ({examples})"
        raise ValidationError(msg)
    return pl.lit(cast).alias(alias)


def _offset_of(values: pl.Series, fmt: str) -> str | None:
    """The UTC offset written in the last value, for formats that carry one."""
    if "%z" not in fmt and "%:z" not in fmt:
        return None
    last = str(values.cast(pl.String).drop_nulls().tail(1).item())
    tail = last[-6:]
    if len(tail) == 6 and tail[0] in "+-" and tail[3] == ":":
        return tail
    tail = last[-5:]
    if len(tail) == 5 and tail[0] in "+-":
        return f"{tail[:3]}:{tail[3:]}"
    return None


def _series_key(sid: pl.Series, column: str, *, integer_ids: bool) -> pl.Expr:
    """The series id as text; integral floats as integers.

    Clients often send integer ids as floats (pandas turns an int column with
    a gap into float64, so ``3`` arrives as ``3.0`` in JSON or CSV); both must
    name the same series, at training and at prediction.  Text is rewritten
    only for deployments trained on integer ids (``integer_ids``), where
    ``"3.0"`` cannot be a different series than ``3``.
    """
    if sid.dtype.is_float() and bool((sid.round(0) == sid).all()) and bool(sid.abs().max() < 2**53):  # type: ignore[operator]
        return pl.col(column).cast(pl.Int64).cast(pl.String).alias(SID)
    if integer_ids and sid.dtype == pl.String:
        return pl.col(column).str.strip_chars().str.replace(r"^(-?\d+)\.0*$", "${1}").alias(SID)
    return pl.col(column).cast(pl.String).alias(SID)


def canonicalize(
    frame: pl.DataFrame,
    *,
    datetime_column: str,
    target: str,
    series_id_column: str | None,
    numeric_features: tuple[str, ...] = (),
    string_features: tuple[str, ...] = (),
    preferred_format: str | None = None,
    integer_ids: bool = False,
    what: str = "the prediction dataset",
) -> Canonical:
    """Validate columns, parse datetimes and cast types into the canonical frame.

    Grid and duplicate checks need the time step and live in :func:`place_on_grid`.

    Raises:
        MissingColumnError, DatetimeParseError, ValidationError.
    """
    ids = (series_id_column,) if series_id_column else ()
    require_columns(
        frame,
        (datetime_column, *ids, target, *numeric_features, *string_features),
        what=what,
    )
    if frame.height == 0:
        msg = f"{what} has no rows"
        raise ValidationError(msg)
    raw_time = frame.get_column(datetime_column)
    parsed, fmt = parse_datetimes(raw_time, column=datetime_column, preferred_format=preferred_format)
    if series_id_column:
        sid = frame.get_column(series_id_column)
        if sid.null_count():
            msg = (
                f"column {series_id_column!r} (series id) is empty in rows {short_list(_rows(sid.is_null()))}"
            )
            raise ValidationError(msg)
        sid_expr = _series_key(sid, series_id_column, integer_ids=integer_ids)
    else:
        sid_expr = pl.lit(SINGLE_SERIES).alias(SID)
    orig = raw_time.cast(pl.String) if raw_time.dtype == pl.String else None
    out = frame.select(
        pl.int_range(pl.len(), dtype=pl.Int64).alias(ROW),
        sid_expr,
        pl.lit(parsed).alias(TIME),
        _numeric(frame, target, Y),
        *(_numeric(frame, c, c) for c in numeric_features),
        *(pl.col(c).cast(pl.String) for c in string_features),
    )
    if orig is not None:
        out = out.with_columns(pl.lit(orig.str.strip_chars()).alias(ORIG))
    else:
        out = out.with_columns(pl.col(TIME).dt.strftime(fmt).alias(ORIG))
    return Canonical(out, fmt, _offset_of(raw_time, fmt))


# A time of day followed by a written UTC offset: 00:00Z, 00:00:00+02:00, 12:00-0500, 12:00 +02.
_UTC_OFFSET = r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)$"


def place_on_grid(
    frame: pl.DataFrame, step: TimeStep, *, datetime_column: str, series_label: str
) -> pl.DataFrame:
    """Add the grid index ``__i``; reject off-grid timestamps and duplicates.

    Raises:
        OffGridError: naming the rows and timestamps and the step.
        DuplicateRowError: naming the series, timestamps and rows.
    """
    idx, on_grid = step.to_index(pl.col(TIME))
    flags = frame.select(idx.alias(IDX), on_grid.alias("__ok"))
    out = frame.with_columns(flags.get_column(IDX))
    if not flags.get_column("__ok").all():
        off = out.filter(~flags.get_column("__ok"))
        examples = short_list([f"row {r}: {o!r}" for r, o in off.select(ROW, ORIG).iter_rows()], quote=False)
        msg = (
            f"column {datetime_column!r} has timestamps off the deployment's {step.describe()} "
            f"grid ({examples}); every timestamp must fall on the time step seen at training"
        )
        zoned = off.filter(pl.col(ORIG).str.contains(_UTC_OFFSET))
        if zoned.height:  # midnight at +02:00 is 22:00 UTC: say so, or the client sees no fault
            row, orig, utc = zoned.select(ROW, ORIG, pl.col(TIME).dt.strftime("%Y-%m-%dT%H:%M:%S")).row(0)
            msg += (
                f"; timestamps with a UTC offset are read in UTC (row {row}: {orig!r} is {utc} UTC): "
                "post them with the offset the training data had, or without one"
            )
        raise OffGridError(msg)
    if out.select(pl.struct(SID, IDX).is_duplicated().any()).item():
        dup = out.filter(pl.len().over(SID, IDX) > 1)
        groups = dup.group_by(SID, IDX, maintain_order=True).agg(pl.col(ORIG).first(), pl.col(ROW)).head(6)
        described = [
            (
                f"{series_label} {s!r} at {o!r} (rows {', '.join(map(str, rows))})"
                if series_label
                else f"{o!r} (rows {', '.join(map(str, rows))})"
            )
            for s, _, o, rows in groups.iter_rows()
        ]
        n = dup.select(pl.struct(SID, IDX).n_unique()).item()
        msg = (
            f"duplicate timestamps: {short_list(described, limit=5, quote=False)}"
            + (f" ({n} duplicated timestamps in all)" if n > 5 else "")
            + "; each series may have one row per timestamp"
        )
        raise DuplicateRowError(msg)
    return out
