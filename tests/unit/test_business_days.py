"""Business-day grids: data on some weekdays only (trading days) or within daily hours (a call centre).

The grid counts only the weekdays and the hours of the day the training data
has; the step after a Friday is the Monday, the step after the last
five minutes of a session the next open day's first, and a holiday the grid
closes is skipped like a weekend.  The index arithmetic is numpy's ``busday``
functions, which the polars expressions call: both must agree everywhere.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import hypothesis.strategies as st
import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings

from tsengine.errors import TrainingDataError
from tsengine.events import DAYS_SINCE, DAYS_TO, EVENT, EventCalendar, event_columns
from tsengine.season import season_length
from tsengine.spec import default_windows
from tsengine.timestep import TimeStep, _open_days, infer_time_step

D = dt.datetime
TRADING = TimeStep("day", weekmask="1111100")

masks = (
    st.lists(st.booleans(), min_size=7, max_size=7)
    .filter(any)
    .map(lambda b: "".join("1" if x else "0" for x in b))
)
stamps = st.datetimes(min_value=D(1900, 1, 1), max_value=D(2200, 12, 31))


def _infer(times: list[dt.datetime], series: list[str] | None = None) -> TimeStep:
    frame = pl.DataFrame({"t": pl.Series(times, dtype=pl.Datetime("us")), "s": series or ["a"] * len(times)})
    return infer_time_step(frame, ts_col="t", series_col="s")


def _days(start: dt.date, end: dt.date, weekdays: set[int]) -> list[dt.datetime]:
    """Midnights from start to end (inclusive) on ISO ``weekdays``."""
    out, day = [], start
    while day <= end:
        if day.isoweekday() in weekdays:
            out.append(D(day.year, day.month, day.day))
        day += dt.timedelta(days=1)
    return out


# --- the grid --------------------------------------------------------------------


def test_the_step_after_friday_is_monday() -> None:
    friday = TRADING.index_of(D(2024, 1, 5))
    assert friday is not None
    assert TRADING.timestamp_of(friday + 1) == D(2024, 1, 8)
    assert TRADING.timestamp_of(friday - 4) == D(2024, 1, 1)
    assert TRADING.index_of(D(2024, 1, 6)) is None  # a Saturday is off the grid
    assert TRADING.index_of(D(2024, 1, 8, 12)) is None  # so is noon on a business day
    assert TRADING.timestamp_of(TRADING.to_index_floor(D(2024, 1, 7, 9))) == D(2024, 1, 5)


sessions = st.one_of(
    st.builds(
        lambda mask, h: TimeStep("day", phase=h * 3_600_000_000, weekmask=mask), masks, st.integers(0, 23)
    ),
    st.builds(
        lambda mask, minutes, start, steps: TimeStep(
            "minute",
            count=minutes,
            weekmask=mask,
            session_start_us=(start * minutes) % 1440 * 60_000_000,
            session_steps=min(steps, 1440 // minutes - 1),  # may run past midnight
        ),
        st.one_of(st.just(""), masks),
        st.sampled_from([5, 15, 30, 60]),
        st.integers(0, 300),
        st.integers(1, 40),
    ),
    st.builds(  # round the clock on some weekdays
        lambda mask, minutes, k: TimeStep(
            "minute", count=minutes, phase=k % minutes * 60_000_000, weekmask=mask
        ),
        masks,
        st.sampled_from([5, 15, 30, 60, 120]),
        st.integers(0, 119),
    ),
)
# closed days: random dates in the years the stamps span, each step's own
holidays = st.lists(st.integers(-25_000, 84_000), max_size=400).map(lambda d: tuple(sorted(set(d))))


@st.composite
def grids(draw: st.DrawFn) -> TimeStep:
    step = replace(draw(sessions), day_shift=draw(st.sampled_from([0, 0, 1, -1])))
    return replace(step, holidays=draw(holidays)) if draw(st.booleans()) else step


@settings(max_examples=300, deadline=None)
@given(step=grids(), times=st.lists(stamps, min_size=1, max_size=20))
def test_numpy_and_polars_index_arithmetic_agree(step: TimeStep, times: list[dt.datetime]) -> None:
    mask = step.weekmask or "1111111"
    series = pl.Series("t", times, dtype=pl.Datetime("us"))
    idx, on_grid = step.to_index(pl.col("t"))
    by_polars = series.to_frame().select(idx.alias("i"), on_grid.alias("ok"))
    np_idx, np_ok = step.micros_index(series.to_numpy().view(np.int64))
    np.testing.assert_array_equal(by_polars["i"].to_numpy(), np_idx)
    np.testing.assert_array_equal(by_polars["ok"].to_numpy(), np_ok)
    back = pl.DataFrame({"i": np_idx}).select(step.from_index(pl.col("i")).alias("t"))["t"]
    np.testing.assert_array_equal(back.to_numpy().view(np.int64), step.index_micros(np_idx))
    # a grid point maps back to itself, anything else to the latest grid point before it
    for t, i, ok, b in zip(times, np_idx, np_ok, back.to_list(), strict=True):
        assert b <= t
        assert ok == (b == t)
        start = step.session_start_us if step.session_steps else step.phase % 86_400_000_000
        opened = b - dt.timedelta(microseconds=start)  # the grid day it belongs to, in UTC
        local = opened.date() + dt.timedelta(days=step.day_shift)  # the date its weekmask reads
        assert local.isoweekday() in {d + 1 for d, c in enumerate(mask) if c == "1"}
        assert (local - dt.date(1970, 1, 1)).days not in step.holidays
        assert step.timestamp_of(int(i) + 1) > t
        if step.session_steps:  # inside the session, which may run past midnight
            since = (opened - dt.datetime.combine(opened.date(), dt.time())) // dt.timedelta(microseconds=1)
            assert since < step.session_steps * step.micros


@settings(max_examples=200, deadline=None)
@given(mask=masks, closed=holidays, days=st.lists(st.integers(-100_000, 90_000), min_size=1, max_size=50))
def test_open_day_arithmetic_equals_numpys_busday_functions_with_holidays(
    mask: str, closed: tuple[int, ...], days: list[int]
) -> None:
    """The binary searches that take holidays out agree with numpy's own (slow) holiday handling."""
    open_days = _open_days(mask, closed)
    dates = np.array(days, dtype="datetime64[D]")
    numpy_holidays = {"weekmask": mask, "holidays": np.array(closed, dtype="datetime64[D]")}
    before, is_open = open_days.count(dates)
    epoch = np.datetime64("1601-01-01", "D")
    np.testing.assert_array_equal(before, np.busday_count(epoch, dates, **numpy_holidays))
    np.testing.assert_array_equal(is_open, np.is_busday(dates, **numpy_holidays))
    n = np.abs(before)
    np.testing.assert_array_equal(
        open_days.day(n), np.busday_offset(epoch, n, roll="forward", **numpy_holidays)
    )


def _day(d: dt.date) -> int:
    return (d - dt.date(1970, 1, 1)).days


def test_a_closed_holiday_is_skipped_like_a_weekend() -> None:
    closed = replace(TRADING, holidays=(_day(dt.date(2015, 11, 26)), _day(dt.date(2015, 12, 25))))
    wednesday = closed.index_of(D(2015, 11, 25))
    assert wednesday is not None
    assert closed.timestamp_of(wednesday + 1) == D(2015, 11, 27)  # Thanksgiving skipped
    assert closed.index_of(D(2015, 11, 26)) is None
    assert closed.timestamp_of(closed.to_index_floor(D(2015, 11, 26, 12))) == D(2015, 11, 25)
    christmas_eve = closed.index_of(D(2015, 12, 24))
    assert closed.timestamp_of(christmas_eve + 1) == D(2015, 12, 28)  # type: ignore[operator]
    assert closed.describe() == "1 day (Mon, Tue, Wed, Thu, Fri, closed on holidays)"
    assert TimeStep.from_dict(closed.to_dict()) == closed
    assert closed.to_dict()["holidays"] == ["2015-11-26", "2015-12-25"]


def test_round_the_clock_hours_on_weekdays_get_every_hour_of_those_days() -> None:
    weekdays = _days(dt.date(2024, 1, 1), dt.date(2024, 3, 29), {1, 2, 3, 4, 5})
    step = _infer(_session(weekdays, 0, 23))
    assert step == TimeStep("hour", weekmask="1111100")
    friday_last = step.index_of(D(2024, 1, 5, 23))
    assert friday_last is not None
    assert step.timestamp_of(friday_last + 1) == D(2024, 1, 8, 0)
    assert step.timestamp_of(friday_last - 23) == D(2024, 1, 5, 0)
    assert step.index_of(D(2024, 1, 6, 5)) is None


BANK = TimeStep("minute", count=5, weekmask="1111100", session_start_us=7 * 3_600_000_000, session_steps=169)


def test_the_step_after_a_sessions_last_point_is_the_next_open_days_first() -> None:
    friday_close = BANK.index_of(D(2003, 10, 24, 21, 0))
    assert friday_close is not None
    assert BANK.timestamp_of(friday_close + 1) == D(2003, 10, 27, 7, 0)
    assert BANK.timestamp_of(friday_close - 168) == D(2003, 10, 24, 7, 0)
    assert BANK.index_of(D(2003, 10, 27, 6, 55)) is None  # before opening
    assert BANK.index_of(D(2003, 10, 27, 21, 5)) is None  # after closing
    assert BANK.index_of(D(2003, 10, 25, 12, 0)) is None  # a Saturday
    assert BANK.timestamp_of(BANK.to_index_floor(D(2003, 10, 27, 3, 0))) == D(2003, 10, 24, 21, 0)
    assert BANK.describe() == "5 minute (07:00-21:00, Mon, Tue, Wed, Thu, Fri)"
    assert TimeStep.from_dict(BANK.to_dict()) == BANK


def test_a_night_session_runs_past_midnight_and_belongs_to_the_day_it_opened() -> None:
    nights = TimeStep("hour", weekmask="1111100", session_start_us=22 * 3_600_000_000, session_steps=9)
    assert nights.describe() == "1 hour (22:00-06:00, Mon, Tue, Wed, Thu, Fri)"
    friday_night = nights.index_of(D(2024, 1, 6, 3))  # Saturday 03:00: Friday's shift
    assert friday_night is not None
    assert nights.timestamp_of(friday_night + 4) == D(2024, 1, 8, 22)  # then Monday's shift
    assert nights.index_of(D(2024, 1, 6, 22)) is None  # no shift opens on a Saturday
    assert nights.index_of(D(2024, 1, 8, 12)) is None  # nor at noon


def test_business_hours_written_in_utc_far_from_the_local_zone() -> None:
    """07:00-21:00 in New York (UTC-5) is 12:00-02:00 UTC: the session runs past midnight."""
    weekdays = _days(dt.date(2024, 1, 1), dt.date(2024, 2, 29), {1, 2, 3, 4, 5})
    utc = [t + dt.timedelta(hours=5) for t in _session(weekdays, 7, 21)]
    step = _infer(utc)
    assert step.describe() == "1 hour (12:00-02:00, Mon, Tue, Wed, Thu, Fri)"
    assert step.timestamp_of(step.index_of(D(2024, 1, 6, 2)) + 1) == D(2024, 1, 8, 12)  # type: ignore[operator]


def test_a_session_day_is_the_season_and_two_of_them_the_window() -> None:
    assert season_length(BANK, 338) == 169
    assert default_windows(BANK) == ((-338, 0), (1, 12))


def test_a_week_of_business_days_is_the_season() -> None:
    assert season_length(TRADING, 56) == 5
    assert season_length(TimeStep("day", weekmask="1111110"), 56) == 6
    assert season_length(TimeStep("day"), 56) == 7


def test_round_trips_through_its_stored_form_and_describes_its_days() -> None:
    assert TimeStep.from_dict(TRADING.to_dict()) == TRADING
    old = {k: v for k, v in TimeStep("day").to_dict().items() if k != "weekmask"}
    assert TimeStep.from_dict(old) == TimeStep("day")  # stored before business days existed
    assert TRADING.describe() == "1 day (Mon, Tue, Wed, Thu, Fri)"


# --- inference -------------------------------------------------------------------


def test_weekday_only_data_gets_a_business_day_grid_with_holidays_as_gaps() -> None:
    days = _days(dt.date(2024, 1, 1), dt.date(2024, 3, 29), {1, 2, 3, 4, 5})
    days.remove(D(2024, 1, 15))  # an exchange holiday: a gap, not a reason to drop Mondays
    assert _infer(days) == TRADING


def test_weekdays_are_local_for_daily_data_written_east_of_utc() -> None:
    """Sydney's Monday midnight is Sunday 14:00 UTC: the grid still says Monday to Friday."""
    local = _days(dt.date(2024, 1, 1), dt.date(2024, 3, 29), {1, 2, 3, 4, 5})
    utc = [t - dt.timedelta(hours=10) for t in local]
    frame = pl.DataFrame({"t": pl.Series(utc, dtype=pl.Datetime("us")), "s": "a"})
    step = infer_time_step(frame, ts_col="t", series_col="s", utc_offset_minutes=600)
    assert step == TimeStep("day", phase=14 * 3_600_000_000, weekmask="1111100", day_shift=1)
    assert step.describe() == "1 day (Mon, Tue, Wed, Thu, Fri)"
    friday = step.index_of(D(2024, 1, 4, 14))  # Friday 5 January, local midnight
    assert friday is not None
    assert step.timestamp_of(friday + 1) == D(2024, 1, 7, 14)  # Monday 8 January, local midnight
    assert step.index_of(D(2024, 1, 5, 14)) is None  # Saturday, local
    assert TimeStep.from_dict(step.to_dict()) == step


def test_a_shop_closed_on_sundays_gets_monday_to_saturday() -> None:
    days = _days(dt.date(2024, 1, 1), dt.date(2024, 2, 29), {1, 2, 3, 4, 5, 6})
    assert _infer(days).weekmask == "1111110"


def test_every_weekday_present_keeps_the_plain_daily_grid() -> None:
    assert _infer(_days(dt.date(2024, 1, 1), dt.date(2024, 2, 29), set(range(1, 8)))) == TimeStep("day")


def test_three_weeks_are_too_few_to_call_a_weekday_closed() -> None:
    days = _days(dt.date(2024, 1, 1), dt.date(2024, 1, 19), {1, 2, 3, 4, 5})
    assert _infer(days) == TimeStep("day")


def test_two_weeks_of_business_hours_are_enough_to_call_the_weekend_closed() -> None:
    """A closed day of sub-daily data is a whole day's rows missing, not one row."""
    weekdays = _days(dt.date(2024, 1, 1), dt.date(2024, 1, 19), {1, 2, 3, 4, 5})  # three weeks
    assert _infer(_session(weekdays, 7, 21, minutes=5)) == BANK
    two_weeks = weekdays[:11]  # Monday 1 to Monday 15 January
    assert _infer(_session(two_weeks, 0, 23)) == TimeStep("hour", weekmask="1111100")
    assert _infer(_session(two_weeks[:-1], 0, 23)) == TimeStep("hour")  # 11 days: weekends are gaps
    with pytest.raises(TrainingDataError, match="irregular time steps"):
        _infer(_session(weekdays[:5] + weekdays[6:8], 7, 21, minutes=5))  # 9 days: too few


def test_scattered_dates_are_sparse_not_business_days() -> None:
    with pytest.raises(TrainingDataError, match="irregular time steps.*1 day"):
        _infer([D(2020, 1, 1), D(2020, 1, 2), D(2020, 1, 9), D(2020, 1, 16), D(2020, 1, 30)])


def _session(days: list[dt.datetime], first: int, last: int, minutes: int = 60) -> list[dt.datetime]:
    """Each day's times from hour ``first`` to hour ``last`` inclusive, every ``minutes``."""
    n = (last - first) * 60 // minutes + 1
    return [d + dt.timedelta(hours=first, minutes=k * minutes) for d in days for k in range(n)]


def test_business_hours_get_a_session_grid() -> None:
    weekdays = _days(dt.date(2024, 1, 1), dt.date(2024, 2, 29), {1, 2, 3, 4, 5})
    step = _infer(_session(weekdays, 7, 21, minutes=5))
    assert step == TimeStep(
        "minute", count=5, weekmask="1111100", session_start_us=7 * 3_600_000_000, session_steps=169
    )
    every_day = _days(dt.date(2024, 1, 1), dt.date(2024, 1, 10), set(range(1, 8)))
    assert _infer(_session(every_day, 9, 20)).describe() == "1 hour (09:00-20:00)"


def test_round_the_clock_or_few_days_keep_the_plain_step() -> None:
    every_day = _days(dt.date(2024, 1, 1), dt.date(2024, 1, 10), set(range(1, 8)))
    assert _infer(_session(every_day, 0, 23)) == TimeStep("hour")
    with pytest.raises(TrainingDataError, match="irregular time steps"):
        _infer(_session(every_day[:6], 9, 10))  # six days of two hours: not enough to call it a session


def test_series_share_one_business_day_grid() -> None:
    a = _days(dt.date(2024, 1, 1), dt.date(2024, 2, 9), {1, 2, 3, 4, 5})
    b = _days(dt.date(2024, 1, 15), dt.date(2024, 2, 23), {1, 2, 3, 4, 5})
    assert _infer(a + b, ["a"] * len(a) + ["b"] * len(b)) == TRADING


def test_a_weekend_event_is_not_the_fridays() -> None:
    """On a business-day grid a row's event period is its own day, not the days up to the next row."""
    saturday = (dt.date(2024, 1, 6) - dt.date(1970, 1, 1)).days
    cal = EventCalendar(days=(saturday,), names=("Festival",), series=(None,))
    friday, monday = TRADING.index_of(D(2024, 1, 5)), TRADING.index_of(D(2024, 1, 8))
    assert friday is not None
    assert monday is not None
    got = pl.DataFrame(event_columns(cal, TRADING, pl.Series(["a", "a"]), np.array([friday, monday])))
    assert got.get_column(EVENT).to_list() == [0.0, 0.0]
    assert got.get_column(DAYS_TO).to_list()[0] == 1.0  # the Saturday is one day after the Friday
    assert got.get_column(DAYS_SINCE).to_list()[1] == 2.0  # and two before the Monday


def test_weekends_exported_as_empty_rows_still_get_a_business_day_grid() -> None:
    """A calendar-day export with the closed days empty: the grid is the days with a value."""
    import tsengine  # noqa: PLC0415

    days = _days(dt.date(2024, 1, 1), dt.date(2024, 4, 30), set(range(1, 8)))
    values = [float(i % 5) if t.isoweekday() <= 5 else None for i, t in enumerate(days)]
    frame = pl.DataFrame({"date": [t.date().isoformat() for t in days], "y": values})
    deployment = tsengine.train(frame, target="y", datetime_column="date", models=["seasonal_naive"])
    assert deployment.spec.time_step == TRADING
    note = deployment.metadata["training"]["closed_rows_note"]
    assert note.startswith("ignored 34 row(s) without a target on days or hours the 1 day (Mon")
    assert "row 5: '2024-01-06'" in note  # the first Saturday
    result = deployment.predict_result(frame)
    assert {d.isoweekday() for d in result.frame.get_column("timestamp").dt.date().to_list()} <= {
        1,
        2,
        3,
        4,
        5,
    }
    assert any("ignored 34 row(s)" in w and "row 5: '2024-01-06'" in w for w in result.warnings)
