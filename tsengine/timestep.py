"""Time steps and the integer grid: timestamps to indices and back, and step inference.

Every timestamp of a deployment lies on a regular grid fixed at training.  The
core converts timestamps to integer grid indices once (``to_index``) and does all
window arithmetic on integers, converting back only to write the output
(``from_index``).  That makes calendar steps (months, quarters, years) exactly as
cheap and exactly as correct as fixed ones: ``2018-01-31 + 1 month`` is the grid
point after January, which a month-end grid anchors to ``2018-02-28``.

Datetimes in their original format (parsing a column or a parameter, writing
generated rows) live in :mod:`tsengine.datetimes`, independent of the grid;
their names are re-exported here, where callers have always imported them from.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from dataclasses import dataclass, replace
from functools import reduce
from typing import Literal

import numpy as np
import polars as pl

from tsengine.datetimes import format_datetimes as format_datetimes
from tsengine.datetimes import parse_datetimes as parse_datetimes
from tsengine.datetimes import parse_timestamp as parse_timestamp
from tsengine.errors import TrainingDataError

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
_DAY_US = 86_400 * _US
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
# Business-day grids count the business days since this date, a Monday: early, because
# numpy counts the days between a later start and an earlier end as (end, start],
# not [end, start), so indices before it would be one off.
_BUSINESS_EPOCH = np.datetime64("1601-01-01", "D")
# Daily data is on a business-day grid when some weekday never occurs in it over
# at least this many days [ours]: four weeks of every other weekday rule out chance.
MIN_BUSINESS_SPAN_DAYS = 28
# ... sub-daily data over at least this many [ours]: there a day is many rows, and the
# same weekdays without a single one of them two weeks running are closed, not gaps
# (three weeks of five-minute call-centre data were refused as irregular with 28).
MIN_SUBDAILY_BUSINESS_SPAN_DAYS = 14
# ... and the business-day grid leaves at most this share of its points empty
# (trading days miss their public holidays, about 4 %).
MAX_BUSINESS_MISSING_SHARE = 0.25
# Sub-daily data is on a session grid (business hours) when some hours of the day
# never occur on at least this many days [ours].
MIN_SESSION_DAYS = 7
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
        weekmask: steps of a day or less: the weekdays on the grid, seven
            ``0``/``1`` from Monday to Sunday (numpy's busday convention,
            ``1111100`` for trading days), or ``""`` for every day.  A
            business-day grid counts only those days: the step after a Friday
            is the Monday.
        session_start_us: sub-daily steps with a session: the time of day of
            each day's first grid point.
        session_steps: sub-daily steps: grid points per day from
            ``session_start_us`` (business hours: 07:00 to 21:00 in 5-minute
            steps is 169), the step after the last being the next grid day's
            first; 0 for the whole day.
        holidays: steps of a day or less: grid days that are closed although
            their weekday is open (an exchange's holidays), as days since
            1970-01-01 (local dates, as the weekmask), sorted; the step after
            the Wednesday before Thanksgiving is the Friday.
        day_shift: days from a grid day's date in UTC to its local date, in
            which the weekmask and holidays are written: 1 for daily data
            written at local midnight east of UTC (Sydney's midnight is 14:00
            UTC the day before), else 0.
    """

    unit: Unit
    count: int = 1
    phase: int = 0
    anchor_day: int = 1
    time_of_day_us: int = 0
    weekmask: str = ""
    session_start_us: int = 0
    session_steps: int = 0
    holidays: tuple[int, ...] = ()
    day_shift: int = 0

    @property
    def is_calendar(self) -> bool:
        """Whether the step counts calendar months rather than fixed seconds."""
        return self.unit in _CALENDAR_MONTHS

    @property
    def is_business(self) -> bool:
        """Whether the grid skips times a plain step holds: some weekdays, or the hours outside a session."""
        return bool(self.weekmask) or self.session_steps > 0 or bool(self.holidays)

    @property
    def plain(self) -> TimeStep:
        """The step without its business days, hours and holidays: every step of every day."""
        return replace(self, weekmask="", session_start_us=0, session_steps=0, holidays=(), day_shift=0)

    @property
    def divides_day(self) -> bool:
        """Whether the step is a day or a whole fraction of one (the steps a business grid can have)."""
        return not self.is_calendar and self.micros <= _DAY_US and _DAY_US % self.micros == 0

    @property
    def business_days(self) -> int:
        """Grid days in a week: 7 unless the grid skips weekdays."""
        return self.weekmask.count("1") if self.weekmask else 7

    @property
    def steps_per_day(self) -> float:
        """Grid points in one (grid) day: the session's, else a day over the step."""
        return self.session_steps or _DAY_US / self.micros

    @property
    def _mask(self) -> str:
        return self.weekmask or "1111111"

    @property
    def _per_day(self) -> int:
        """Grid points in one grid day: the session's, else the whole day's."""
        return self.session_steps or _DAY_US // self.micros

    @property
    def _busdays(self) -> _OpenDays:
        return _open_days(self._mask, self.holidays)

    @property
    def day_start_us(self) -> int:
        """Time of day of each grid day's first point (a daily step's phase is its time of day)."""
        return self.session_start_us if self.session_steps else self.phase

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
        """Human text such as ``1 day``, ``3 month`` or ``1 day (Mon-Fri)``."""
        parts = []
        if self.session_steps:
            first = dt.datetime.min + dt.timedelta(microseconds=self.session_start_us)
            last = first + dt.timedelta(microseconds=(self.session_steps - 1) * self.micros)
            parts.append(f"{first:%H:%M}-{last:%H:%M}")
        if self.weekmask:
            parts += [d for d, on in zip(_WEEKDAYS, self.weekmask, strict=True) if on == "1"]
        if self.holidays:
            parts.append("closed on holidays")
        return f"{self.count} {self.unit}" + (f" ({', '.join(parts)})" if parts else "")

    def grid_days(self, us: np.ndarray) -> np.ndarray:
        """The grid day (local date, days since 1970-01-01) of naive UTC microseconds: the day their session opened."""
        return (np.asarray(us, dtype=np.int64) - self.day_start_us) // _DAY_US + self.day_shift

    def is_open(self, days: np.ndarray) -> np.ndarray:
        """Whether grid days (days since 1970-01-01) are on the grid: an open weekday, not a closed holiday."""
        return self._busdays.count(np.asarray(days, dtype="datetime64[D]"))[1]

    def index_micros(self, idx: np.ndarray) -> np.ndarray:
        """Naive UTC microseconds of grid indices, in numpy (fixed and business-day steps)."""
        idx = np.asarray(idx, dtype=np.int64)
        if not self.is_business:
            return idx * self.micros + self.phase
        day, slot = np.divmod(idx, self._per_day)
        days = self._busdays.day(day)
        utc_days = days.astype(np.int64) - self.day_shift
        return np.asarray(utc_days * _DAY_US + self.day_start_us + slot * self.micros)

    def micros_index(self, us: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`to_index` of naive UTC microseconds in numpy: floor index and whether on the grid."""
        rel = np.asarray(us, dtype=np.int64)
        if not self.is_business:
            if self.phase:
                rel = rel - self.phase
            idx = rel // self.micros
            off = idx * self.micros  # on the grid where idx * step lands back on the time
            np.subtract(off, rel, out=off)
            return idx, off == 0
        # a grid day starts at its first point: a session past midnight belongs to the day it opened
        day, since = np.divmod(rel - self.day_start_us, _DAY_US)
        days = (day + self.day_shift if self.day_shift else day).astype("datetime64[D]")
        per_day = self._per_day
        before, open_day = self._busdays.count(days)
        first = before * per_day
        slot = since // self.micros  # a daily step's micros is a day: slot 0
        idx = np.where(open_day, first + np.minimum(slot, per_day - 1), first - 1)
        return idx, open_day & (since % self.micros == 0) & (slot < per_day)

    def to_index(self, ts: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
        """Grid index of each timestamp and whether it lies exactly on the grid.

        Args:
            ts: a naive UTC ``Datetime('us')`` expression.

        Returns:
            ``(index, on_grid)``: Int64 floor index and a Boolean flag.
        """
        if self.is_business:  # numpy's busday arithmetic: one implementation, micros_index
            us = ts.dt.epoch("us")
            return (
                us.map_batches(lambda s: self.micros_index(s.to_numpy())[0], pl.Int64, is_elementwise=True),
                us.map_batches(lambda s: self.micros_index(s.to_numpy())[1], pl.Boolean, is_elementwise=True),
            )
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
        if self.is_business:  # as index_micros
            us = idx.map_batches(lambda s: self.index_micros(s.to_numpy()), pl.Int64, is_elementwise=True)
            return pl.from_epoch(us, time_unit="us")
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
            "weekmask": self.weekmask,
            "session_start_us": self.session_start_us,
            "session_steps": self.session_steps,
            "holidays": [_day_text(d) for d in self.holidays],
            "day_shift": self.day_shift,
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
            weekmask=str(data.get("weekmask", "")),
            session_start_us=int(data.get("session_start_us", 0)),  # type: ignore[call-overload]
            session_steps=int(data.get("session_steps", 0)),  # type: ignore[call-overload]
            holidays=tuple(_day_number(d) for d in data.get("holidays", ())),  # type: ignore[attr-defined]
            day_shift=int(data.get("day_shift", 0)),  # type: ignore[call-overload]
        )


@dataclass(frozen=True, slots=True, eq=False)
class _OpenDays:
    """The open days of a weekmask less closed holidays, numbered from the business epoch.

    numpy's busday functions take holidays too, but scan the list for every
    element (2 µs each with NYSE's 500 holidays of 60 years: 2 ms for a
    thousand rows); here numpy counts the weekmask's days and two binary
    searches take the holidays out.
    """

    weekdays: np.busdaycalendar
    closed: np.ndarray  # the holidays' weekday numbers (weekmask days before them), sorted
    pushed: np.ndarray  # closed[i] - i: the open-day number from which the i-th holiday shifts days on

    def count(self, days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Open days before each day (``datetime64[D]``) since the epoch, and whether the day is open."""
        weekday_n = np.busday_count(_BUSINESS_EPOCH, days, busdaycal=self.weekdays).astype(np.int64)
        on_mask = np.is_busday(days, busdaycal=self.weekdays)
        if not self.closed.size:
            return weekday_n, on_mask
        holidays_before = np.searchsorted(self.closed, weekday_n, side="left")
        at = self.closed[np.minimum(holidays_before, self.closed.size - 1)]
        return weekday_n - holidays_before, on_mask & (at != weekday_n)

    def day(self, n: np.ndarray) -> np.ndarray:
        """The ``n``-th open day since the epoch (``datetime64[D]``)."""
        weekday_n = n + np.searchsorted(self.pushed, n, side="right") if self.closed.size else n
        return np.busday_offset(_BUSINESS_EPOCH, weekday_n, roll="forward", busdaycal=self.weekdays)


@functools.lru_cache(maxsize=64)
def _open_days(weekmask: str, holidays: tuple[int, ...]) -> _OpenDays:
    """The grid's open days, built once per grid."""
    weekdays = np.busdaycalendar(weekmask=weekmask)
    dates = np.array(holidays, dtype="datetime64[D]")
    closed = np.unique(
        np.busday_count(_BUSINESS_EPOCH, dates[np.is_busday(dates, busdaycal=weekdays)], busdaycal=weekdays)
    ).astype(np.int64)
    return _OpenDays(weekdays, closed, closed - np.arange(closed.size))


def _day_text(day: int) -> str:
    return str(np.datetime64(day, "D"))


def _day_number(text: str) -> int:
    return int(np.datetime64(text, "D").astype(np.int64))


def _gcd(values: np.ndarray) -> int:
    nonzero = values[values != 0]
    if nonzero.size == 0:
        return 0
    return int(reduce(math.gcd, np.unique(np.abs(nonzero)).tolist()))


def infer_time_step(
    frame: pl.DataFrame,
    *,
    ts_col: str,
    series_col: str,
    column: str | None = None,
    utc_offset_minutes: int = 0,
    target_col: str | None = None,
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
        utc_offset_minutes: the offset the data was written in: business days
            are the local weekdays.
        target_col: the target column, when ``frame`` has one: business days
            and hours are those with a target (an export that keeps weekends
            as empty rows is still on weekdays).

    Raises:
        TrainingDataError: too few distinct timestamps, sub-second or irregular steps.
    """
    label = column or ts_col
    ts = frame.get_column(ts_col)
    if ts.n_unique() < 2:
        msg = f"column {label!r} needs at least two distinct timestamps to infer a time step"
        raise TrainingDataError(msg)
    step = _calendar_step(ts) or _fixed_step(ts, label)
    observed = frame if target_col is None else frame.filter(pl.col(target_col).is_not_null())
    if observed.get_column(ts_col).n_unique() < 2:
        observed = frame
    business = _business_days(observed.get_column(ts_col), step, utc_offset_minutes * 60 * _US)
    if business is not None:
        grid, seen = _grid_points(observed, business, ts_col, series_col)
        if grid - seen <= MAX_BUSINESS_MISSING_SHARE * grid:
            return business
    grid, seen = _grid_points(frame, step, ts_col, series_col)
    if grid - seen > MAX_MISSING_SHARE * grid:
        msg = (
            f"column {label!r} has irregular time steps: the common step is {step.describe()} "
            f"but {grid - seen} of {grid} grid points have no row; "
            "resample the data to a regular step (e.g. aggregate to days) before training"
        )
        raise TrainingDataError(msg)
    return step


def _grid_points(frame: pl.DataFrame, step: TimeStep, ts_col: str, series_col: str) -> tuple[int, int]:
    """Grid points spanned by the series (first to last row of each) and how many hold a row."""
    idx, _ = step.to_index(pl.col(ts_col))
    spans = (
        frame.select(pl.col(series_col), idx.alias("__i"))
        .group_by(series_col)
        .agg(
            (pl.col("__i").max() - pl.col("__i").min() + 1).alias("grid"),
            pl.col("__i").n_unique().alias("seen"),
        )
    )
    return int(spans["grid"].sum()), int(spans["seen"].sum())


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


def _business_days(ts: pl.Series, step: TimeStep, offset_us: int) -> TimeStep | None:
    """The step on the weekdays and within the daily hours the data has, when it skips some.

    Trading days, a shop closed on Sundays or a call centre open 07:00 to
    21:00 are regular on their own days and hours: on a grid of every step
    each night and weekend would be missing history and, worse, forecast rows
    nobody asked for, and the lag before a Monday would be a Sunday that never
    comes.  A weekday absent from at least :data:`MIN_BUSINESS_SPAN_DAYS` days
    of daily data (:data:`MIN_SUBDAILY_BUSINESS_SPAN_DAYS` of sub-daily data),
    or hours absent on every one of at least :data:`MIN_SESSION_DAYS` days, are
    not chance, as long as the remaining grid is nearly full (the
    caller checks :data:`MAX_BUSINESS_MISSING_SHARE`): a few scattered times
    are sparse, not business hours.  None when the step is longer than a day
    or the data skips nothing.
    """
    if not step.divides_day:
        return None
    start, steps = step.phase if step.unit == "day" else 0, 0  # a daily step's phase is its time of day
    days = ts.dt.epoch("d")
    if step.micros < _DAY_US and days.n_unique() >= MIN_SESSION_DAYS:
        start, steps = _session(ts, step.micros)
    # local weekdays of the grid days, which start at the session's first point
    day_start = start if steps else step.phase
    day_shift = (day_start + offset_us) // _DAY_US
    shifted = ts - dt.timedelta(microseconds=start)
    grid_days = shifted.dt.epoch("d")
    span = int(grid_days.max()) - int(grid_days.min())  # type: ignore[arg-type]
    weekmask = ""
    seen = set((shifted + dt.timedelta(days=day_shift)).dt.weekday().unique().to_list())  # ISO: Monday 1
    min_span = MIN_SUBDAILY_BUSINESS_SPAN_DAYS if step.micros < _DAY_US else MIN_BUSINESS_SPAN_DAYS
    if span >= min_span and len(seen) < 7:
        weekmask = "".join("1" if d in seen else "0" for d in range(1, 8))
    if not weekmask and not steps:
        return None
    return replace(
        step,
        weekmask=weekmask,
        session_start_us=start if steps else 0,
        session_steps=steps,
        day_shift=day_shift,
    )


def _session(ts: pl.Series, micros: int) -> tuple[int, int]:
    """The daily session of sub-daily times: its first time of day and its steps, or ``(0, 0)`` for all day.

    The session starts after the longest stretch of the day without data,
    which may span midnight (a night shift, or opening hours written in UTC
    far from the local zone) or not (07:00 to 21:00).
    """
    tod = np.unique(ts.dt.epoch("us").to_numpy() % _DAY_US)
    gaps = np.append(np.diff(tod), tod[0] + _DAY_US - tod[-1])  # gaps[k]: from tod[k] to the next time
    k = int(np.argmax(gaps))
    first = int(tod[(k + 1) % tod.size])
    steps = (_DAY_US - int(gaps[k])) // micros + 1
    return (first, steps) if steps < _DAY_US // micros else (0, 0)


def _fixed_step(ts: pl.Series, ts_col: str) -> TimeStep:
    micros = ts.unique().dt.epoch("us").to_numpy()
    gap = _gcd(micros - micros.min())
    if gap % _US:
        msg = f"column {ts_col!r} has sub-second or jittered time steps; round timestamps to a regular step"
        raise TrainingDataError(msg)
    seconds = gap // _US
    unit: Unit = next(u for u, s in _FIXED_UNITS if seconds % s == 0)
    return TimeStep(unit=unit, count=seconds // _FIXED_SECONDS[unit], phase=int(micros.min() % gap))
