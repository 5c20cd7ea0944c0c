"""Business-day grids: daily data on some weekdays only (trading days, a shop closed on Sundays).

The grid counts only the weekdays the training data has; the step after a
Friday is the Monday.  Its index arithmetic has two implementations, numpy's
``busday`` functions on the hot paths and polars' business-day expressions
elsewhere, which must agree everywhere.
"""

from __future__ import annotations

import datetime as dt

import hypothesis.strategies as st
import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings

from tsengine.errors import TrainingDataError
from tsengine.events import DAYS_SINCE, DAYS_TO, EVENT, EventCalendar, event_columns
from tsengine.season import season_length
from tsengine.timestep import TimeStep, infer_time_step

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


@settings(max_examples=300, deadline=None)
@given(mask=masks, times=st.lists(stamps, min_size=1, max_size=20), phase_h=st.integers(0, 23))
def test_numpy_and_polars_index_arithmetic_agree(mask: str, times: list[dt.datetime], phase_h: int) -> None:
    step = TimeStep("day", phase=phase_h * 3_600_000_000, weekmask=mask)
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
        assert b.isoweekday() in {d + 1 for d, c in enumerate(mask) if c == "1"}
        assert step.timestamp_of(int(i) + 1) > t


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


def test_a_shop_closed_on_sundays_gets_monday_to_saturday() -> None:
    days = _days(dt.date(2024, 1, 1), dt.date(2024, 2, 29), {1, 2, 3, 4, 5, 6})
    assert _infer(days).weekmask == "1111110"


def test_every_weekday_present_keeps_the_plain_daily_grid() -> None:
    assert _infer(_days(dt.date(2024, 1, 1), dt.date(2024, 2, 29), set(range(1, 8)))) == TimeStep("day")


def test_three_weeks_are_too_few_to_call_a_weekday_closed() -> None:
    days = _days(dt.date(2024, 1, 1), dt.date(2024, 1, 19), {1, 2, 3, 4, 5})
    assert _infer(days) == TimeStep("day")


def test_scattered_dates_are_sparse_not_business_days() -> None:
    with pytest.raises(TrainingDataError, match="irregular time steps.*1 day"):
        _infer([D(2020, 1, 1), D(2020, 1, 2), D(2020, 1, 9), D(2020, 1, 16), D(2020, 1, 30)])


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
