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

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from tsengine.columns import IDX, ORIG, ROW, SID, TIME, Y
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
    "Placed",
    "as_number",
    "canonicalize",
    "format_iso",
    "locate_on_grid",
    "place_on_grid",
    "require_columns",
    "sid_codes",
]

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


def _numeric(frame: pl.DataFrame, column: str, alias: str) -> pl.Series:
    """A column as Float64, failing on values that are present but not numbers.

    Series-level casts, not expressions: a frame ``select`` plans a query each
    time, which costs more than the cast itself on a one-series request.
    """
    col = frame.get_column(column)
    if col.dtype.is_numeric() or col.dtype in {pl.Null, pl.Boolean}:
        return col.cast(pl.Float64).alias(alias)
    text = col.cast(pl.String).str.strip_chars()
    cast = as_number(text)
    bad = cast.is_null() & text.is_not_null() & (text != "")
    if bad.any():
        rows = _rows(bad)
        examples = short_list([f"row {r}: {text[r]!r}" for r in rows], quote=False)
        msg = f"column {column!r} must be numeric, but has non-numeric values ({examples})"
        raise ValidationError(msg)
    return cast.alias(alias)


# Above this many rows polars' own (parallel) datetime parser beats the numpy path below.
_ISO_FAST_ROWS = 4_096
_ISO_DATE = "%Y-%m-%d"
_DIGITS = np.array([0, 1, 2, 3, 5, 6, 8, 9])
_US_PER_DAY = 86_400_000_000


def _iso_dates(values: pl.Series) -> tuple[pl.Series, bool] | None:
    """``%Y-%m-%d`` text (the usual training format) to naive datetimes, or None to parse it in full.

    :func:`~tsengine.timestep.parse_datetimes` strips every value, blanks empty
    ones and checks a sample before the whole column: on a small request its
    polars queries cost more than the rest of the validation together, and on a
    large one its copies of the column cost several times the column.  When
    every value reads as a date with a four-digit year, its answer is this one.

    Returns:
        The datetimes, and whether every value is exactly ``YYYY-MM-DD`` (no
        surrounding spaces to strip); None when some value needs the full
        parser (blank, out of range, another layout).
    """
    if values.dtype != pl.String or values.null_count():
        return None
    if values.len() > _ISO_FAST_ROWS:
        # chrono's parse of the raw values: leading spaces are skipped as stripping would.
        parsed = values.str.to_datetime(_ISO_DATE, strict=False, exact=True, time_unit="us")
        if parsed.null_count():
            return None
        low, high = parsed.min(), parsed.max()
        if not (isinstance(low, dt.datetime) and isinstance(high, dt.datetime)):
            return None
        if low.year < 1000 or high.year > 9999:  # %Y reads four digits (as parse_datetimes checks)
            return None
        return parsed, False
    text = np.asarray(values.to_list(), dtype=str)
    if text.dtype.itemsize != 10 * 4:  # the longest value is not ten characters
        return None
    # a shorter value is padded with NUL, which fails the digit and dash checks
    chars = text.view(np.uint32).reshape(-1, 10)
    digits = chars[:, _DIGITS]
    if not (
        bool(((digits >= ord("0")) & (digits <= ord("9"))).all())
        and bool((chars[:, [4, 7]] == ord("-")).all())
        and bool((chars[:, 0] != ord("0")).all())
    ):
        return None
    days = _civil_days(chars.astype(np.int64) - ord("0"))
    if days is None:
        return None
    # from integers: polars converts a datetime64 array several times slower
    return pl.Series(values.name, days * _US_PER_DAY, dtype=pl.Datetime("us")), True


_MONTH_DAYS = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


def _civil_days(digits: np.ndarray) -> np.ndarray | None:
    """Days since 1970-01-01 of ``YYYY-MM-DD`` digit rows (dashes at 4 and 7), or None for an impossible date.

    Integer arithmetic on the digits (Howard Hinnant's ``days_from_civil``),
    several times faster than numpy's parse of the strings; equal to it on
    every date from 1000-01-01 to 9999-12-31, and like it (and chrono) it
    rejects a month 13 or a February 30.
    """
    year = digits[:, 0] * 1000 + digits[:, 1] * 100 + digits[:, 2] * 10 + digits[:, 3]
    month = digits[:, 5] * 10 + digits[:, 6]
    day = digits[:, 8] * 10 + digits[:, 9]
    if not bool(((month >= 1) & (month <= 12)).all()):
        return None
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    if not bool(((day >= 1) & (day <= _MONTH_DAYS[month - 1] + (leap & (month == 2)))).all()):
        return None
    march = year - (month <= 2)  # years counted from March, so February's leap day ends them
    era = march // 400
    of_era = march - era * 400
    of_year = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    return np.asarray(era * 146_097 + of_era * 365 + of_era // 4 - of_era // 100 + of_year - 719_468)


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


def _series_key(sid: pl.Series, *, integer_ids: bool) -> pl.Series:
    """The series id as text; integral floats as integers.

    Clients often send integer ids as floats (pandas turns an int column with
    a gap into float64, so ``3`` arrives as ``3.0`` in JSON or CSV); both must
    name the same series, at training and at prediction.  Text is rewritten
    only for deployments trained on integer ids (``integer_ids``), where
    ``"3.0"`` cannot be a different series than ``3``.
    """
    if sid.dtype.is_float() and bool((sid.round(0) == sid).all()) and bool(sid.abs().max() < 2**53):  # type: ignore[operator]
        return sid.cast(pl.Int64).cast(pl.String).alias(SID)
    if integer_ids and sid.dtype == pl.String:
        return sid.str.strip_chars().str.replace(r"^(-?\d+)\.0*$", "${1}").alias(SID)
    return sid.cast(pl.String).alias(SID)


# ISO layouts numpy writes exactly as chrono's strftime does, for years 1000-9999:
# format -> (numpy unit, separator between date and time, suffix).
_ISO_LAYOUTS: dict[str, tuple[str, str, str]] = {
    "%Y-%m-%d": ("D", "T", ""),
    "%Y-%m-%dT%H:%M:%S": ("s", "T", ""),
    "%Y-%m-%d %H:%M:%S": ("s", " ", ""),
    "%Y-%m-%dT%H:%M:%SZ": ("s", "T", "Z"),
    "%Y-%m-%dT%H:%M:%S%.6fZ": ("us", "T", "Z"),
}
_UNIT_US = {"D": _US_PER_DAY, "s": 1_000_000, "us": 1}
_YEAR_1000_US = -30_610_224_000_000_000  # 1000-01-01T00:00:00
_YEAR_10000_US = 253_402_300_800_000_000  # 10000-01-01T00:00:00


def format_iso(micros: np.ndarray, fmt: str) -> np.ndarray | None:
    """Naive UTC microseconds written in ``fmt`` by numpy, or None when numpy cannot match chrono.

    For the ISO layouts of :data:`_ISO_LAYOUTS`, on values that are whole units
    of the layout (days, seconds) in years 1000-9999, numpy's text equals
    polars' ``dt.strftime(fmt)``; without a polars query, which on a request's
    few rows costs more than the formatting.  Other formats and values: None.
    """
    layout = _ISO_LAYOUTS.get(fmt)
    if layout is None or micros.size == 0:
        return None
    unit, sep, suffix = layout
    if bool((micros % _UNIT_US[unit]).any()):
        return None
    if int(micros.min()) < _YEAR_1000_US or int(micros.max()) >= _YEAR_10000_US:
        return None
    stamps: np.ndarray = micros.astype("datetime64[us]")
    text = np.datetime_as_string(stamps, unit=unit)  # type: ignore[call-overload]
    if sep != "T":
        text = np.char.replace(text, "T", sep)
    if suffix:
        text = np.char.add(text, suffix)
    return np.asarray(text)


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
    iso = _iso_dates(raw_time) if preferred_format == _ISO_DATE else None
    exact = False  # every value is exactly YYYY-MM-DD: nothing to strip
    if iso is not None:
        (parsed, exact), fmt = iso, _ISO_DATE
    else:
        parsed, fmt = parse_datetimes(raw_time, column=datetime_column, preferred_format=preferred_format)
    if series_id_column:
        sid = frame.get_column(series_id_column)
        if sid.null_count():
            msg = (
                f"column {series_id_column!r} (series id) is empty in rows {short_list(_rows(sid.is_null()))}"
            )
            raise ValidationError(msg)
        sid_values = _series_key(sid, integer_ids=integer_ids)
    else:
        sid_values = pl.Series(SID, [SINGLE_SERIES], dtype=pl.String).new_from_index(0, frame.height)
    if raw_time.dtype != pl.String:
        orig = parsed.dt.strftime(fmt)
    elif exact or not bool(raw_time.str.contains(r"^\s|\s$").any()):
        orig = raw_time  # nothing to strip: no copy of the column
    else:
        orig = raw_time.str.strip_chars()
    # One frame from ready columns: no query to plan (see _numeric).
    out = pl.DataFrame(
        [
            pl.Series(ROW, np.arange(frame.height, dtype=np.int64)),
            sid_values,
            parsed.alias(TIME),
            _numeric(frame, target, Y),
            *(_numeric(frame, c, c) for c in numeric_features),
            *(frame.get_column(c).cast(pl.String) for c in string_features),
            orig.alias(ORIG),
        ]
    )
    return Canonical(out, fmt, _offset_of(raw_time, fmt))


# A time of day followed by a written UTC offset: 00:00Z, 00:00:00+02:00, 12:00-0500, 12:00 +02.
_UTC_OFFSET = r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)$"


@dataclass(frozen=True, slots=True)
class Placed:
    """A canonical frame with its grid index, and an integer code per row for its series.

    The codes (dense, any consistent order) let the window and the features
    group rows by series with numpy instead of hashing the id strings again.
    """

    frame: pl.DataFrame
    codes: np.ndarray
    note: str | None = None  # rows left out (see _closed_blanks), named


def _closed_blanks(frame: pl.DataFrame, step: TimeStep, on_grid: np.ndarray) -> tuple[np.ndarray, str | None]:
    """Rows without a target where a business grid is closed: which to keep, and a note naming the others.

    Data exported per calendar day or per business day often keeps the days
    it is closed as rows with an empty value: weekends, or holidays (FRED's
    daily series do).  On a grid that skips those days (or hours) such a row
    says nothing a model could read, so it is left out and named rather than
    refused.  A row with a value there, or at a time the plain step does not
    have, stays off the grid and is refused.
    """
    _, on_plain = step.plain.micros_index(frame.get_column(TIME).dt.epoch("us").to_numpy())
    blank = ~on_grid & on_plain & frame.get_column(Y).is_null().to_numpy()
    if not blank.any():
        return ~blank, None
    dropped = frame.filter(pl.Series(blank))
    examples = short_list([f"row {r}: {o!r}" for r, o in dropped.select(ROW, ORIG).iter_rows()], quote=False)
    note = (
        f"ignored {dropped.height} row(s) without a target on days or hours the "
        f"{step.describe()} grid is closed on ({examples})"
    )
    return ~blank, note


def place_on_grid(
    frame: pl.DataFrame, step: TimeStep, *, datetime_column: str, series_label: str
) -> pl.DataFrame:
    """Add the grid index ``__i``; reject off-grid timestamps and duplicates.

    Rows without a target where a business grid is closed are left out; use
    :func:`locate_on_grid` for the note that names them.

    Raises:
        OffGridError: naming the rows and timestamps and the step.
        DuplicateRowError: naming the series, timestamps and rows.
    """
    return locate_on_grid(frame, step, datetime_column=datetime_column, series_label=series_label).frame


def _grid_index(times: pl.Series, step: TimeStep) -> tuple[np.ndarray, np.ndarray]:
    """:meth:`TimeStep.to_index` of naive UTC microseconds: integer arithmetic for fixed steps."""
    if not step.is_calendar:
        return step.micros_index(times.to_numpy().view(np.int64))
    index, on_grid = step.to_index(pl.col(TIME))
    flags = times.to_frame(TIME).select(index.alias(IDX), on_grid.alias("__ok"))
    return flags.get_column(IDX).to_numpy(), flags.get_column("__ok").to_numpy()


# Below this many rows a dict over the strings beats a polars rank (which pays
# a fixed ~150 us); above it, polars' parallel sort wins.
_SMALL_KEYS = 4_096


def sid_codes(sid: pl.Series) -> np.ndarray:
    """A dense integer code per row for its series id.

    Small inputs number the ids in order of first appearance with one dict
    (sorting Python strings for ``np.unique`` cost more).  Large ones, usually
    posted series by series, number the runs of equal ids when there are as
    many runs as ids (then also in order of first appearance); otherwise
    polars' dense rank (sort order), which costs a sort of the strings.
    Runs are numbered by polars' ``rle_id`` (one pass, no copy of the strings:
    comparing two shifted slices of 100,000 ids cost 0.9 ms and ~3 MB, this
    0.6 ms and ~2 MB).
    Callers rely only on equal ids sharing a code and codes being ``0..k-1``.
    """
    n = sid.len()
    if n <= _SMALL_KEYS:
        seen: dict[object, int] = {}
        return np.fromiter((seen.setdefault(s, len(seen)) for s in sid.to_list()), np.int64, n)
    codes = sid.rle_id().to_numpy().astype(np.int64)  # runs of equal ids, numbered from 0
    starts = np.empty(n, dtype=bool)
    starts[0] = True
    np.not_equal(codes[1:], codes[:-1], out=starts[1:])
    first = sid.gather(np.flatnonzero(starts))  # each run's id: all distinct when runs are series
    if first.n_unique() == first.len():
        return codes
    codes = sid.rank("dense").to_numpy().astype(np.int64)
    codes -= 1
    return codes


def _sorted_unique(codes: np.ndarray, idx: np.ndarray) -> bool:
    """Whether rows come series by series with rising timestamps (then no pair repeats).

    The usual layout of a posted history; an O(n) check that spares hashing
    every ``(series, timestamp)`` pair.
    """
    if codes.size < 2:
        return True
    same = codes[1:] == codes[:-1]
    runs = codes.size - int(np.count_nonzero(same))
    return runs == int(codes.max()) + 1 and bool((idx[1:] > idx[:-1])[same].all())


def _clock_change_repeats(dup: pl.DataFrame, step: TimeStep) -> bool:
    """Whether duplicated rows look like a daylight-saving fall-back in local clock times.

    Sub-daily times written without an offset, every duplicate between 00:00
    and 03:59 (clocks go back at 01:00 to 03:00 local nearly everywhere): the
    usual cause of duplicates in an hourly export, and one the plain message
    does not explain.
    """
    return (
        step.unit in ("second", "minute", "hour")
        and not dup.get_column(ORIG).str.contains(_UTC_OFFSET).any()
        and bool((dup.get_column(TIME).dt.hour() < 4).all())
    )


def locate_on_grid(frame: pl.DataFrame, step: TimeStep, *, datetime_column: str, series_label: str) -> Placed:
    """:func:`place_on_grid`, also returning each row's series code and the note on rows left out.

    Raises:
        OffGridError: naming the rows and timestamps and the step.
        DuplicateRowError: naming the series, timestamps and rows.
    """
    idx, ok = _grid_index(frame.get_column(TIME), step)
    note = None
    if step.is_business and not bool(ok.all()):
        keep, note = _closed_blanks(frame, step, ok)
        if note is not None:
            frame, idx, ok = frame.filter(pl.Series(keep)), idx[keep], ok[keep]
    out = frame.hstack([pl.Series(IDX, idx, dtype=pl.Int64)])
    if not bool(ok.all()):
        off = out.filter(pl.Series(~ok))
        examples = short_list([f"row {r}: {o!r}" for r, o in off.select(ROW, ORIG).iter_rows()], quote=False)
        msg = (
            f"column {datetime_column!r} has timestamps off the deployment's {step.describe()} "
            f"grid ({examples}); every timestamp must fall on the time step seen at training"
        )
        if step.holidays:  # a closed holiday looks like any business day to the client: say which
            days = step.grid_days(off.get_column(TIME).dt.epoch("us").to_numpy())
            closed = off.filter(pl.Series(np.isin(days, step.holidays)))
            if closed.height:
                row, orig = closed.select(ROW, ORIG).row(0)
                msg += (
                    f"; row {row}: {orig!r} falls on a holiday the grid is closed on "
                    "(a calendar event the deployment skips: post it without a target, or not at all)"
                )
        zoned = off.filter(pl.col(ORIG).str.contains(_UTC_OFFSET))
        if zoned.height:  # midnight at +02:00 is 22:00 UTC: say so, or the client sees no fault
            row, orig, utc = zoned.select(ROW, ORIG, pl.col(TIME).dt.strftime("%Y-%m-%dT%H:%M:%S")).row(0)
            msg += (
                f"; timestamps with a UTC offset are read in UTC (row {row}: {orig!r} is {utc} UTC): "
                "post them with the offset the training data had, or without one"
            )
        raise OffGridError(msg)
    sid = out.get_column(SID)
    codes = sid_codes(sid)
    if not _sorted_unique(codes, idx) and out.select(pl.struct(SID, IDX).is_duplicated().any()).item():
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
        if _clock_change_repeats(dup, step):
            msg += (
                "; if these are local clock times, the hour repeats when clocks go back for daylight "
                "saving time: post sub-daily times in UTC or with their UTC offset (2013-11-03T01:00:00-04:00)"
            )
        raise DuplicateRowError(msg)
    return Placed(out, codes, note)
