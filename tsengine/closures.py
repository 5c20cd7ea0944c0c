"""Holiday closures: calendar events the training data was closed on, taken off the grid.

An exchange trades on weekdays except its holidays; a shop open every day may
close on Christmas.  On a grid that keeps those days, each is a missing point:
the engine forecasts a day nobody will report, the lag before the day after
Thanksgiving is a Thursday without data, and a five-day window spans four
trading days.  So when a deployment has an event calendar (``--holidays NYSE``,
``--holidays US``, ``--calendar FILE``) and the training data has no target on
any open day one of its events fell on, that event is a *closure*: its days come
off the grid (:attr:`tsengine.timestep.TimeStep.holidays`), as the weekend
does, and the step after the Wednesday before Thanksgiving is the Friday.

The rule is per event name, so one calendar serves data that closes on some
of its events and not others: with US public holidays, NYSE data closes on
Thanksgiving but trades on Columbus Day, and only Thanksgiving comes off.  A
name is a closure when every one of its ``k`` days on open weekdays of the
training span has no target in any series (no row, or rows with an empty
target, as per-business-day exports keep their holidays), and chance would
explain that at most :data:`MAX_CLOSURE_CHANCE` of the time: ``p ** k``, with
``p`` the share of the span's other open days without a target.  Events of one series only never
close the grid, which all series share.

Future and past days of a closure come from the same calendar: the file's
dates, or the ``holidays`` package's for :data:`CLOSURE_YEARS` years either
side of the training data.

That is the ``auto`` mode (:data:`CLOSURE_MODES`).  ``all`` closes the grid on
every global event of the calendar, for data whose training span has not yet
seen a holiday the business is known to close on, and refuses training rows
on those days; ``none`` keeps every event a grid point, as before closures.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl

from tsengine.columns import ORIG, ROW, TIME, Y
from tsengine.datetimes import utc_offset_minutes
from tsengine.errors import ParameterError, TrainingDataError, short_list
from tsengine.events import HOLIDAY_YEARS, EventCalendar
from tsengine.timestep import TimeStep

__all__ = ["CLOSURE_MODES", "CLOSURE_YEARS", "MAX_CLOSURE_CHANCE", "check_mode", "close_holidays"]

CLOSURE_MODES = ("auto", "all", "none")

# [ours] The chance that an open event's days all lack data by accident, at most:
# one missing Thanksgiving in data with a few random gaps is a closure, but not
# in data missing a fifth of its days.
MAX_CLOSURE_CHANCE = 0.05
# [ours] Years either side of the training data whose package holidays are closed
# on the grid: history posted at prediction and forecasts within them skip
# closures; outside them (a forecast 30 years out) the closure days are open.
CLOSURE_YEARS = 30
_DAY_US = 86_400_000_000


def close_holidays(
    calendar: EventCalendar | None,
    step: TimeStep,
    canon: pl.DataFrame,
    utc_offset: str | None,
    mode: str = "auto",
) -> tuple[TimeStep, EventCalendar | None]:
    """The step without the calendar's closure days, and the calendar naming its closures.

    Args:
        calendar: the deployment's events; None returns the inputs.
        step: the inferred step, a day or a fraction of one (others are returned).
        canon: the training rows with their naive UTC timestamps (``__t``).
        utc_offset: the training data's written offset: events are local dates.
        mode: ``auto`` (closures inferred, see the module docstring), ``all``
            (every global event closes the grid) or ``none``.

    Raises:
        ParameterError: an unknown mode, or ``all`` without a calendar or on
            a step longer than a day.
        TrainingDataError: ``all`` with training rows on an event's day.
    """
    check_mode(mode)
    if mode == "all" and (calendar is None or not step.divides_day):
        msg = (
            "closures 'all' needs an event calendar (--calendar or --holidays)"
            if calendar is None
            else f"closures 'all' needs daily or sub-daily data; the time step is {step.describe()}"
        )
        raise ParameterError(msg)
    if mode == "none" or calendar is None or not step.divides_day or canon.height == 0:
        return step, calendar
    # a local date d is grid day d - shift: the grid day whose first point falls on it locally
    # (0 when the step numbers its days by local date already, see TimeStep.day_shift)
    shift = (step.day_start_us + utc_offset_minutes(utc_offset) * 60_000_000) // _DAY_US - step.day_shift
    # a day with data is one with a target: per-business-day exports keep holidays as empty rows
    observed = canon.filter(pl.col(Y).is_not_null())
    if observed.height == 0:
        return step, calendar
    row_days = step.grid_days(observed.get_column(TIME).dt.epoch("us").to_numpy())
    data_days = np.unique(row_days)
    first, last = int(data_days[0]), int(data_days[-1])
    lo = _year_start(first, -CLOSURE_YEARS) + shift
    hi = _year_start(last, CLOSURE_YEARS + 1) + shift
    shared = calendar.rows(lo, hi).filter(pl.col("sid").is_null())
    if mode == "all":
        closed = tuple(sorted(shared.get_column("name").unique().to_list()))
        _refuse_rows_on(shared.with_columns(pl.col("day") - shift), observed, row_days)
    else:
        closed = _closed_names(shared.with_columns(pl.col("day") - shift), step, data_days)
    if not closed:
        return step, calendar
    days = shared.filter(pl.col("name").is_in(closed)).get_column("day").to_numpy() - shift
    days = np.unique(days[step.is_open(days)])
    closed_step = dataclasses.replace(step, holidays=tuple(int(d) for d in days))
    return closed_step, dataclasses.replace(calendar, closures=closed)


def check_mode(mode: str) -> None:
    """Raise a ParameterError unless ``mode`` is one of :data:`CLOSURE_MODES` (before any data work)."""
    if mode not in CLOSURE_MODES:
        msg = f"closures must be one of {', '.join(CLOSURE_MODES)}, got {mode!r}"
        raise ParameterError(msg)


def _closed_names(events: pl.DataFrame, step: TimeStep, data_days: np.ndarray) -> tuple[str, ...]:
    """The event names (``events``: ``name``, grid ``day``) the data was closed on, by the ``p ** k`` rule."""
    first, last = int(data_days[0]), int(data_days[-1])
    span = np.arange(first, last + 1)
    open_days = span[step.is_open(span)]
    inside = (
        events.select(pl.col("name"), pl.col("day").alias("g"))
        .filter(pl.col("g").is_in(open_days.tolist()))
        .unique()
    )
    if inside.height == 0:
        return ()
    ordinary = np.setdiff1d(open_days, inside.get_column("g").to_numpy())
    p = 1.0 - np.isin(ordinary, data_days).mean() if ordinary.size else 1.0
    per_name = inside.group_by("name").agg(
        pl.len().alias("k"), pl.col("g").is_in(data_days.tolist()).any().alias("seen")
    )
    return tuple(
        sorted(name for name, k, seen in per_name.iter_rows() if not seen and p**k <= MAX_CLOSURE_CHANCE)
    )


def _refuse_rows_on(events: pl.DataFrame, canon: pl.DataFrame, row_days: np.ndarray) -> None:
    """Raise naming the training rows with a target on an event's day, which ``all`` takes off the grid."""
    on = np.isin(row_days, events.get_column("day").to_numpy())
    if not on.any():
        return
    names = dict(events.select("day", "name").unique(subset="day", keep="first").iter_rows())
    rows = canon.filter(pl.Series(on)).with_columns(pl.Series("__day", row_days[on]))
    examples = short_list(
        [f"row {r}: {o!r} ({names[d]})" for r, o, d in rows.select(ROW, ORIG, "__day").iter_rows()],
        quote=False,
    )
    msg = (
        f"closures 'all' takes every calendar event's day off the grid, but the training data has "
        f"rows on {rows.height} of them ({examples}); use closures 'auto' to keep the events "
        "with data on the grid"
    )
    raise TrainingDataError(msg)


def _year_start(day: int, years: int) -> int:
    """Days since 1970 of January 1st ``years`` after ``day``'s year, within the holiday tables' years."""
    year = int(np.datetime64(day, "D").astype("datetime64[Y]").astype(np.int64)) + 1970 + years
    year = min(max(year, HOLIDAY_YEARS[0]), HOLIDAY_YEARS[1] + 1)
    return int(np.datetime64(f"{year:04d}-01-01", "D").astype(np.int64))
