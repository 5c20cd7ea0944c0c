"""Time steps, the integer grid, and datetimes in their original format.

Every timestamp of a deployment lies on a regular grid fixed at training.  The
core converts timestamps to integer grid indices once (``to_index``) and does all
window arithmetic on integers, converting back only to write the output
(``from_index``).  That makes calendar steps (months, quarters, years) exactly as
cheap and exactly as correct as fixed ones: ``2018-01-31 + 1 month`` is the grid
point after January, which a month-end grid anchors to ``2018-02-28``.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from functools import reduce
from typing import Literal

import numpy as np
import polars as pl
from dateutil import parser as _dateutil_parser

from tsengine.errors import DatetimeParseError, ParameterError, TrainingDataError, short_list

__all__ = [
    "TimeStep",
    "format_datetimes",
    "infer_time_step",
    "parse_datetimes",
    "parse_timestamp",
]

Unit = Literal["second", "minute", "hour", "day", "week", "month", "quarter", "year"]

_FIXED_SECONDS: dict[str, int] = {
    "week": 604_800,
    "day": 86_400,
    "hour": 3_600,
    "minute": 60,
    "second": 1,
}
_FIXED_UNITS: tuple[tuple[Unit, int], ...] = (
    ("week", 604_800),
    ("day", 86_400),
    ("hour", 3_600),
    ("minute", 60),
    ("second", 1),
)
_CALENDAR_MONTHS: dict[str, int] = {"year": 12, "quarter": 3, "month": 1}
_US = 1_000_000
MONTH_END = -1
"""``TimeStep.anchor_day`` for grids on the last day of each month."""

# A series may miss at most this share of its grid points before the data is
# called irregular rather than gappy [ours]: a gcd step that leaves most grid
# points empty means the step was not regular to begin with.
MAX_MISSING_SHARE = 0.5


@dataclass(frozen=True, slots=True)
class TimeStep:
    """A regular step: ``count`` units, anchored by a phase.

    Attributes:
        unit: one of second, minute, hour, day, week, month, quarter, year.
        count: how many units one step spans.
        phase: fixed units: microseconds since the epoch modulo the step (e.g. the
            weekday of a weekly grid); calendar units: month number modulo the
            step in months (e.g. quarters starting in February).
        anchor_day: calendar units only: the day of month of every grid point,
            or ``MONTH_END`` (-1).
        time_of_day_us: calendar units only: the time of day of every grid point.
    """

    unit: Unit
    count: int = 1
    phase: int = 0
    anchor_day: int = 1
    time_of_day_us: int = 0

    @property
    def is_calendar(self) -> bool:
        """Whether the step counts calendar months rather than fixed seconds."""
        return self.unit in _CALENDAR_MONTHS

    @property
    def months(self) -> int:
        """Months in one calendar step."""
        return _CALENDAR_MONTHS[self.unit] * self.count

    @property
    def micros(self) -> int:
        """Microseconds in one fixed step."""
        return _FIXED_SECONDS[self.unit] * self.count * _US

    @property
    def seconds_approx(self) -> float:
        """Length of one step in seconds (a calendar month counts 30.44 days)."""
        if self.is_calendar:
            return self.months * 30.436875 * 86_400
        return self.micros / _US

    def describe(self) -> str:
        """Human text such as ``1 day`` or ``3 month``."""
        return f"{self.count} {self.unit}"

    def to_index(self, ts: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
        """Grid index of each timestamp and whether it lies exactly on the grid.

        Args:
            ts: a naive UTC ``Datetime('us')`` expression.

        Returns:
            ``(index, on_grid)``: Int64 floor index and a Boolean flag.
        """
        if not self.is_calendar:
            rel = ts.dt.epoch("us") - self.phase
            return rel // self.micros, (rel % self.micros) == 0
        months = ts.dt.year().cast(pl.Int64) * 12 + ts.dt.month().cast(pl.Int64) - 1 - self.phase
        if self.anchor_day == MONTH_END:
            day_ok = ts.dt.day() == ts.dt.month_end().dt.day()
        else:
            last = ts.dt.month_end().dt.day().cast(pl.Int32)
            day_ok = ts.dt.day().cast(pl.Int32) == pl.min_horizontal(pl.lit(self.anchor_day), last)
        tod = (ts - ts.dt.truncate("1d")).dt.total_microseconds() == self.time_of_day_us
        return months // self.months, ((months % self.months) == 0) & day_ok & tod

    def from_index(self, idx: pl.Expr) -> pl.Expr:
        """Timestamp (naive UTC, microseconds) of each grid index."""
        if not self.is_calendar:
            return pl.from_epoch(idx * self.micros + self.phase, time_unit="us")
        months = idx * self.months + self.phase
        first = pl.date(months // 12, months % 12 + 1, 1).cast(pl.Datetime("us"))
        if self.anchor_day == MONTH_END:
            day = first.dt.month_end()
        elif self.anchor_day == 1:
            day = first
        else:
            last = first.dt.month_end().dt.day().cast(pl.Int64)
            offset = pl.min_horizontal(pl.lit(self.anchor_day, pl.Int64), last) - 1
            day = first + pl.duration(days=offset)
        return day + pl.duration(microseconds=self.time_of_day_us)

    def index_of(self, ts: dt.datetime) -> int | None:
        """Grid index of one timestamp, or None when it is off the grid."""
        frame = pl.select(pl.lit(ts, pl.Datetime("us")).alias("t"))
        idx, ok = self.to_index(pl.col("t"))
        row = frame.select(idx.alias("i"), ok.alias("ok")).row(0)
        return int(row[0]) if row[1] else None

    def to_index_floor(self, ts: dt.datetime) -> int:
        """Index of the last grid point at or before ``ts`` (for suggestions)."""
        frame = pl.select(pl.lit(ts, pl.Datetime("us")).alias("t"))
        return int(frame.select(self.to_index(pl.col("t"))[0]).item())

    def timestamp_of(self, idx: int) -> dt.datetime:
        """Timestamp of one grid index."""
        value = pl.select(self.from_index(pl.lit(idx, pl.Int64))).item()
        assert isinstance(value, dt.datetime)
        return value

    def to_dict(self) -> dict[str, object]:
        """JSON form stored with a deployment."""
        return {
            "unit": self.unit,
            "count": self.count,
            "phase": self.phase,
            "anchor_day": self.anchor_day,
            "time_of_day_us": self.time_of_day_us,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> TimeStep:
        """Inverse of :meth:`to_dict`."""
        unit = str(data["unit"])
        if unit not in _FIXED_SECONDS and unit not in _CALENDAR_MONTHS:
            msg = f"unknown time step unit {unit!r}"
            raise ValueError(msg)
        return cls(
            unit=unit,  # type: ignore[arg-type]
            count=int(data["count"]),  # type: ignore[call-overload]
            phase=int(data["phase"]),  # type: ignore[call-overload]
            anchor_day=int(data["anchor_day"]),  # type: ignore[call-overload]
            time_of_day_us=int(data["time_of_day_us"]),  # type: ignore[call-overload]
        )


def _gcd(values: np.ndarray) -> int:
    nonzero = values[values != 0]
    if nonzero.size == 0:
        return 0
    return int(reduce(math.gcd, np.unique(np.abs(nonzero)).tolist()))


def infer_time_step(
    frame: pl.DataFrame, *, ts_col: str, series_col: str, column: str | None = None
) -> TimeStep:
    """Infer the regular time step of training data.

    Calendar steps are tried first: when every timestamp sits on the same day of
    the month (or every one on a month end) at the same time of day, the step is
    the gcd of the month numbers, named year, quarter or month.  Otherwise it is
    the gcd of the timestamps in seconds, named after the largest unit it is a
    multiple of.  Either way the step must leave at most half of each series'
    grid points empty, or the data is irregular.

    Args:
        frame: rows with a naive UTC datetime column and a series column.
        ts_col: the datetime column.
        series_col: the series column (a constant for single series).
        column: the name messages use for the datetime column (the client's,
            when ``ts_col`` is an internal name); default ``ts_col``.

    Raises:
        TrainingDataError: too few distinct timestamps, sub-second or irregular steps.
    """
    label = column or ts_col
    ts = frame.get_column(ts_col)
    if ts.n_unique() < 2:
        msg = f"column {label!r} needs at least two distinct timestamps to infer a time step"
        raise TrainingDataError(msg)
    step = _calendar_step(ts) or _fixed_step(ts, label)
    idx, _ = step.to_index(pl.col(ts_col))
    spans = (
        frame.select(pl.col(series_col), idx.alias("__i"))
        .group_by(series_col)
        .agg(
            (pl.col("__i").max() - pl.col("__i").min() + 1).alias("grid"),
            pl.col("__i").n_unique().alias("seen"),
        )
    )
    grid, seen = int(spans["grid"].sum()), int(spans["seen"].sum())
    if grid - seen > MAX_MISSING_SHARE * grid:
        msg = (
            f"column {label!r} has irregular time steps: the common step is {step.describe()} "
            f"but {grid - seen} of {grid} grid points have no row; "
            "resample the data to a regular step (e.g. aggregate to days) before training"
        )
        raise TrainingDataError(msg)
    return step


def _calendar_step(ts: pl.Series) -> TimeStep | None:
    frame = ts.to_frame("t").unique()
    stats = frame.select(
        tod=(pl.col("t") - pl.col("t").dt.truncate("1d")).dt.total_microseconds(),
        day=pl.col("t").dt.day(),
        is_end=pl.col("t").dt.day() == pl.col("t").dt.month_end().dt.day(),
        months=pl.col("t").dt.year().cast(pl.Int64) * 12 + pl.col("t").dt.month() - 1,
    )
    if stats["tod"].n_unique() != 1 or stats["months"].n_unique() < 2:
        return None
    if stats["day"].n_unique() == 1 and int(stats["day"][0]) <= 28:
        anchor = int(stats["day"][0])
    elif bool(stats["is_end"].all()):
        anchor = MONTH_END
    else:
        return None
    months = stats["months"].to_numpy()
    if stats["months"].n_unique() != len(months):
        return None  # two timestamps in one month: not a monthly grid
    gap = _gcd(months - months.min())
    unit: Unit = "year" if gap % 12 == 0 else "quarter" if gap % 3 == 0 else "month"
    return TimeStep(
        unit=unit,
        count=gap // _CALENDAR_MONTHS[unit],
        phase=int(months.min() % gap),
        anchor_day=anchor,
        time_of_day_us=int(stats["tod"][0]),
    )


def _fixed_step(ts: pl.Series, ts_col: str) -> TimeStep:
    micros = ts.unique().dt.epoch("us").to_numpy()
    gap = _gcd(micros - micros.min())
    if gap % _US:
        msg = f"column {ts_col!r} has sub-second or jittered time steps; round timestamps to a regular step"
        raise TrainingDataError(msg)
    seconds = gap // _US
    unit: Unit = next(u for u, s in _FIXED_UNITS if seconds % s == 0)
    return TimeStep(unit=unit, count=seconds // _FIXED_SECONDS[unit], phase=int(micros.min() % gap))


# --- datetimes and their original format -------------------------------------------

# Candidate formats, most specific first within a family.  Month-first precedes
# day-first so that an all-ambiguous column stays month-first [ours, spec §2];
# a value with a first field above 12 fails month-first and so selects day-first.
_FORMATS: tuple[str, ...] = (
    "%Y-%m-%d",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%SZ",
    "%Y-%m-%dT%H:%M:%S%.fZ",
    "%Y-%m-%dT%H:%MZ",
    "%Y-%m-%dT%H:%M:%S%:z",
    "%Y-%m-%dT%H:%M:%S%.f%:z",
    "%Y-%m-%d %H:%M:%S%:z",
    "%Y-%m-%dT%H:%M:%S%z",
    "%Y-%m-%d %H:%M:%S%z",
    "%Y/%m/%d",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%m/%d/%Y",
    "%d/%m/%Y",
    "%m/%d/%Y %H:%M",
    "%d/%m/%Y %H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M:%S",
    "%m/%d/%Y %I:%M %p",
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%y",
    "%d/%m/%y",
    "%d.%m.%Y",
    "%d.%m.%Y %H:%M",
    "%d.%m.%Y %H:%M:%S",
    "%m-%d-%Y",
    "%d-%m-%Y",
    "%d %b %Y",
    "%b %d %Y",
    "%d-%b-%Y",
    "%Y%m%d",
    "%Y-%m",
    "%Y/%m",
    "%Y %b",
    "%b %Y",
    "%Y %B",
    "%B %Y",
    "%b-%Y",
    "%Y-%b",
    "%Y Q%q",
    "%YQ%q",
    "%Y-Q%q",
    "Q%q %Y",
    "%Y",
)
_FALLBACK_FORMAT = "%Y-%m-%dT%H:%M:%S%.f"
_SAMPLE = 512


def _has_zone(fmt: str) -> bool:
    return "%z" in fmt or "%:z" in fmt


def _quarter_regex(fmt: str) -> str:
    """A regex with groups (year, quarter) for a quarter-label format such as ``%Y Q%q``."""
    body = re.escape(fmt).replace("%Y", r"(?P<y>\d{4})").replace("%q", r"(?P<q>[1-4])")
    return f"^{body}$"


def _parse_quarters(values: pl.Series, fmt: str) -> pl.Series:
    """Quarter labels (``1960 Q1``: R's yearquarter, pandas' Period) to each quarter's first day.

    ``%q`` is ours, not strftime's: chrono has no quarter directive.
    """
    parts = values.str.extract_groups(_quarter_regex(fmt)).struct.unnest()
    return (
        parts.select(
            pl.date(pl.col("y").cast(pl.Int32), pl.col("q").cast(pl.Int8) * 3 - 2, 1).cast(pl.Datetime("us"))
        )
        .to_series()
        .alias(values.name)
    )


def _parse_format(values: pl.Series, fmt: str) -> pl.Series | None:
    """Parse with one format; values that do not fit become null (None: unusable format)."""
    if "%q" in fmt:
        return _parse_quarters(values, fmt)
    try:
        if "%d" in fmt or "%H" in fmt:
            parsed = values.str.to_datetime(fmt, strict=False, time_unit="us", exact=True)
        else:  # month- or year-only formats: chrono needs a day, to_date supplies it
            parsed = values.str.to_date(fmt, strict=False, exact=True).cast(pl.Datetime("us"))
    except pl.exceptions.PolarsError:
        return None
    # chrono's %Y takes any number of digits, so ``%Y/%m/%d`` would read the
    # two-digit-year ``01/09/18`` as year 1; a four-digit field is what %Y means.
    if "%Y" in fmt:
        parsed = (
            parsed.to_frame("t")
            .select(pl.when(pl.col("t").dt.year().is_between(1000, 9999)).then(pl.col("t")))
            .to_series()
        )
    return parsed


def _try_format(values: pl.Series, fmt: str) -> pl.Series | None:
    """Parse with one format, or None when any non-null value does not fit."""
    parsed = _parse_format(values, fmt)
    if parsed is None or parsed.null_count() != values.null_count():
        return None
    if _has_zone(fmt) or getattr(parsed.dtype, "time_zone", None) is not None:
        parsed = parsed.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    return parsed.alias(values.name)


def _closest_format_misses(text: pl.Series, candidates: tuple[str, ...]) -> list[int]:
    """Rows that fail the format most values fit: the likely culprits of a bad column."""
    best: list[int] | None = None
    for fmt in candidates:
        parsed = _parse_format(text, fmt)
        if parsed is None:
            continue
        misses = np.flatnonzero(parsed.is_null().to_numpy()).tolist()
        if best is None or len(misses) < len(best):
            best = misses
    return best or []


def parse_datetimes(
    values: pl.Series, *, column: str, preferred_format: str | None = None
) -> tuple[pl.Series, str]:
    """Parse a datetime column to naive UTC microseconds and infer its format.

    The format is inferred once for the whole column from all its values (a
    sample first, to keep the search cheap); at prediction time the format seen
    at training is tried first, because a short posted history is often
    ambiguous (``01/02/2018``) where the training data was not.

    Args:
        values: the column as posted (strings, dates, datetimes or integers).
        column: its name, for messages.
        preferred_format: the training format, tried first.

    Returns:
        ``(timestamps, format)``; the format is a strftime pattern.

    Raises:
        DatetimeParseError: naming the first unparseable rows.
    """
    if values.dtype == pl.Date:
        return values.cast(pl.Datetime("us")), "%Y-%m-%d"
    if isinstance(values.dtype, pl.Datetime):
        out = values
        if values.dtype.time_zone is not None:
            out = out.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        out = out.cast(pl.Datetime("us"))
        midnight = bool((out.dt.truncate("1d") == out).all())
        return out, "%Y-%m-%d" if midnight else "%Y-%m-%d %H:%M:%S"
    text = values.cast(pl.String).str.strip_chars()
    text = (
        text.to_frame("v").select(pl.when(pl.col("v") != "").then(pl.col("v"))).to_series().alias(values.name)
    )
    if text.null_count():
        rows = np.flatnonzero(text.is_null().to_numpy()).tolist()
        msg = f"column {column!r} has empty datetime values in rows {short_list(rows)}"
        raise DatetimeParseError(msg)
    sample = text.head(_SAMPLE)
    candidates = ((preferred_format,) if preferred_format else ()) + _FORMATS
    for fmt in candidates:
        on_sample = _try_format(sample, fmt)
        if on_sample is None:
            continue
        parsed = on_sample if sample.len() == text.len() else _try_format(text, fmt)
        if parsed is not None:
            return parsed, _offset_style(text, fmt)
    return _parse_with_dateutil(text, column, candidates), _FALLBACK_FORMAT


def _offset_style(text: pl.Series, fmt: str) -> str:
    """``%z`` rather than ``%:z`` when the values write offsets as ``+0200``.

    chrono reads both spellings with either directive, so the search cannot tell
    them apart; the original format must write generated rows as the client did.
    """
    if "%:z" in fmt and _NO_COLON_OFFSET.search(str(text[0])):
        return fmt.replace("%:z", "%z")
    return fmt


_NO_COLON_OFFSET = re.compile(r"[+-]\d{4}$")


_DEFAULT_A, _DEFAULT_B = dt.datetime(2001, 1, 1), dt.datetime(2002, 2, 2)


def _parse_with_dateutil(text: pl.Series, column: str, candidates: tuple[str, ...]) -> pl.Series:
    """Last resort for formats outside the table: dateutil, value by value.

    Slow (a Python loop), but reached only for exotic formats; the output then
    writes ISO timestamps as the original format.  dateutil fills a missing
    year, month or day from a default date (today, unless told), so each value
    is parsed with two defaults: a value that lacks part of its date reads
    differently under each and is rejected rather than silently dated today.
    """
    out: list[dt.datetime | None] = []
    bad: list[int] = []
    for i, value in enumerate(text.to_list()):
        try:
            parsed = _dateutil_parser.parse(value, default=_DEFAULT_A)
            if parsed != _dateutil_parser.parse(value, default=_DEFAULT_B):
                raise ValueError(value)  # incomplete date: handled as unparseable
        except (ValueError, OverflowError, TypeError):
            bad.append(i)
            out.append(None)
            continue
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
        out.append(parsed)
    if bad:
        # One typo in a column of a known format: name that row, not every value
        # dateutil also dislikes.
        closest = _closest_format_misses(text, candidates)
        if closest and len(closest) < len(bad):
            bad = closest
        examples = short_list([f"row {i}: {text[i]!r}" for i in bad], quote=False)
        msg = (
            f"column {column!r} has values that are not datetimes ({examples}); "
            "use a format such as 2018-01-09 or 2018-01-09T13:00:00Z"
        )
        raise DatetimeParseError(msg)
    return pl.Series(text.name, out, dtype=pl.Datetime("us"))


def format_datetimes(ts: pl.Expr, fmt: str, *, utc_offset: str | None = None) -> pl.Expr:
    """Write naive UTC timestamps in a strftime format.

    Args:
        ts: naive UTC datetimes.
        fmt: the column's original format.
        utc_offset: for formats with a zone, the offset to write (``+02:00``):
            the one the client used, so generated rows read like posted ones.
    """
    # chrono's %.f writes nothing for a zero fraction; clients that write
    # fractions write them on every value, so generated rows keep six digits.
    fmt = fmt.replace("%.f", "%.6f")
    if "%q" in fmt:
        quarter = ts.dt.quarter().cast(pl.String)
        return ts.dt.strftime(fmt.replace("%q", "{q}")).str.replace("{q}", quarter, literal=True)
    if fmt.endswith("Z") or not _has_zone(fmt):
        return ts.dt.strftime(fmt)
    # Shift and write the offset as text: polars' time zones reject fixed offsets
    # that are not whole hours (India's +05:30), which clients do send.
    zone = utc_offset or "+00:00"
    sign = -1 if zone.startswith("-") else 1
    minutes = sign * (int(zone[1:3]) * 60 + int(zone[4:6]))
    pattern = fmt.replace("%:z", zone).replace("%z", zone.replace(":", ""))
    return (ts + pl.duration(minutes=minutes)).dt.strftime(pattern)


def parse_timestamp(value: str | dt.datetime | dt.date, *, name: str) -> dt.datetime:
    """Parse one forecast point or range bound to naive UTC.

    Accepts what clients send: naive ISO, ``Z``, offsets, microseconds (and
    nanoseconds, truncated), date-only, and the client default
    ``2262-04-11T23:47:16.854775+00:00``.

    Raises:
        ParameterError: naming the parameter and the value.
    """
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, dt.date):
        parsed = dt.datetime(value.year, value.month, value.day)
    else:
        text = value.strip()
        try:
            parsed = dt.datetime.fromisoformat(text.replace(" ", "T", 1) if len(text) > 10 else text)
        except ValueError:
            try:
                parsed = _dateutil_parser.isoparse(text)
            except (ValueError, OverflowError) as exc:
                msg = (
                    f"{name}: {value!r} is not a datetime; "
                    "use ISO 8601 such as 2018-01-09 or 2018-01-09T00:00:00Z"
                )
                raise ParameterError(msg) from exc
    if parsed.tzinfo is not None:
        try:
            parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
        except OverflowError as exc:  # 9999-12-31T23:59-01:00 is past datetime.max in UTC
            msg = f"{name}: {value!r} is out of the supported datetime range"
            raise ParameterError(msg) from exc
    return parsed
