"""Holiday closures: the calendar's events the training data was closed on come off the grid.

Trading days are the real case (``fixtures/sp500_trading_days.csv``: the S&P
500's closes, 2014-2015, which skip NYSE holidays); the other cases are built
so that each rule of :mod:`tsengine.closures` decides them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import polars as pl
import pytest

import tsengine
from tsengine.closures import close_holidays
from tsengine.columns import TIME, Y
from tsengine.errors import OffGridError, ParameterError, TrainingDataError
from tsengine.events import EventCalendar
from tsengine.timestep import TimeStep, infer_time_step

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "sp500_trading_days.csv"
TRADING = TimeStep("day", weekmask="1111100")
D = dt.datetime


def _day(d: dt.date) -> int:
    return (d - dt.date(1970, 1, 1)).days


def _rows(times: list[dt.datetime]) -> pl.DataFrame:
    """Training rows at ``times``, each with a target."""
    return pl.DataFrame({TIME: pl.Series(times, dtype=pl.Datetime("us")), Y: 1.0})


def _weekdays(start: dt.date, end: dt.date, skip: frozenset[dt.date] = frozenset()) -> list[dt.datetime]:
    out, day = [], start
    while day <= end:
        if day.weekday() < 5 and day not in skip:
            out.append(D(day.year, day.month, day.day))
        day += dt.timedelta(days=1)
    return out


@pytest.fixture(scope="module")
def sp500() -> pl.DataFrame:
    return pl.read_csv(FIXTURE, schema_overrides={"date": pl.String})


def _closed(
    calendar: EventCalendar | None, step: TimeStep, times: list[dt.datetime], offset: str | None = None
) -> tuple[TimeStep, EventCalendar | None]:
    return close_holidays(calendar, step, _rows(times), offset)


# --- the rule --------------------------------------------------------------------


def test_an_exchange_calendar_closes_every_trading_holiday(sp500: pl.DataFrame) -> None:
    times = [D.fromisoformat(t) for t in sp500["date"]]
    step, calendar = _closed(EventCalendar(holidays="NYSE"), TRADING, times)
    assert calendar is not None
    assert {"Thanksgiving Day", "Good Friday", "Christmas Day", "Labor Day"} <= set(calendar.closures)
    assert step.index_of(D(2015, 11, 26)) is None
    wednesday = step.index_of(D(2015, 11, 25))
    assert step.timestamp_of(wednesday + 1) == D(2015, 11, 27)  # type: ignore[operator]
    # years after the training data too: Thanksgiving 2030 is 28 November
    assert step.index_of(D(2030, 11, 28)) is None
    assert step.index_of(D(2030, 11, 27)) is not None
    # and every closed day is a weekday without data
    closed = {dt.date(1970, 1, 1) + dt.timedelta(days=d) for d in step.holidays}
    assert not closed & {t.date() for t in times}
    assert all(d.weekday() < 5 for d in closed)


def test_public_holidays_close_only_the_ones_the_data_has_no_rows_on(sp500: pl.DataFrame) -> None:
    times = [D.fromisoformat(t) for t in sp500["date"]]
    _, calendar = _closed(EventCalendar(holidays="US"), TRADING, times)
    assert calendar is not None
    assert "Thanksgiving Day" in calendar.closures
    assert "Columbus Day" not in calendar.closures  # NYSE trades on it
    assert "Veterans Day" not in calendar.closures


def test_one_missing_holiday_is_chance_in_data_missing_a_fifth_of_its_days() -> None:
    christmas = EventCalendar.build(pl.DataFrame({"date": ["2023-12-25", "2024-12-25"], "event": "Xmas"}))
    assert christmas is not None
    days = _weekdays(dt.date(2024, 1, 1), dt.date(2024, 12, 31), frozenset({dt.date(2024, 12, 25)}))
    step, calendar = _closed(christmas, TRADING, days)
    assert step.holidays == (_day(dt.date(2023, 12, 25)), _day(dt.date(2024, 12, 25)))
    assert calendar is not None
    assert calendar.closures == ("Xmas",)
    sparse = [t for i, t in enumerate(days) if i % 5]  # a fifth of the days missing: p = 0.2 > 0.05
    step, calendar = _closed(christmas, TRADING, sparse)
    assert step == TRADING
    assert calendar is not None
    assert calendar.closures == ()


def test_an_event_with_a_row_on_any_of_its_days_stays_open() -> None:
    sale = EventCalendar.build(pl.DataFrame({"date": ["2024-03-01", "2024-06-03"], "event": "sale"}))
    assert sale is not None
    days = _weekdays(dt.date(2024, 1, 1), dt.date(2024, 12, 31), frozenset({dt.date(2024, 3, 1)}))
    step, _ = _closed(sale, TRADING, days)
    assert step == TRADING


def test_one_series_events_never_close_the_shared_grid() -> None:
    own = EventCalendar.build(
        pl.DataFrame({"date": ["2024-12-25"], "event": ["closed"], "store": ["a"]}), series_id_column="store"
    )
    assert own is not None
    days = _weekdays(dt.date(2024, 1, 1), dt.date(2024, 12, 31), frozenset({dt.date(2024, 12, 25)}))
    step, _ = _closed(own, TRADING, days)
    assert step == TRADING


def test_every_day_data_closed_on_christmas_gets_a_daily_grid_without_it() -> None:
    every = [D(2023, 1, 1) + dt.timedelta(days=k) for k in range(730)]
    every = [t for t in every if (t.month, t.day) != (12, 25)]
    step, _ = _closed(EventCalendar(holidays="GB"), TimeStep("day"), every)
    assert step.weekmask == ""
    assert step.describe() == "1 day (closed on holidays)"
    eve = step.index_of(D(2024, 12, 24))
    assert step.timestamp_of(eve + 1) == D(2024, 12, 26)  # type: ignore[operator]
    assert step.index_of(D(2024, 12, 26)) is not None  # Boxing Day: the data has it


@pytest.mark.parametrize("numbered_locally", [True, False])
def test_closures_are_local_dates_for_data_written_with_an_offset(numbered_locally: bool) -> None:
    """Sydney midnights are 14:00 UTC the day before: a closed 25 December is the UTC day of the 24th.

    Steps number their days by local date (``day_shift`` 1); a step numbered
    by UTC date (``day_shift`` 0, as stored before) must close the same day.
    """
    local = _weekdays(dt.date(2024, 1, 1), dt.date(2024, 12, 31), frozenset({dt.date(2024, 12, 25)}))
    utc = [t - dt.timedelta(hours=10) for t in local]
    offset = 600 if numbered_locally else 0
    step = infer_time_step(
        _rows(utc).with_columns(s=pl.lit("a")), ts_col=TIME, series_col="s", utc_offset_minutes=offset
    )
    assert step.day_shift == (1 if numbered_locally else 0)
    closed, _ = _closed(EventCalendar.build(pl.DataFrame({"date": ["2024-12-25"]})), step, utc, "+10:00")
    assert closed.index_of(D(2024, 12, 24, 14)) is None  # 25 December, local midnight
    assert closed.index_of(D(2024, 12, 23, 14)) is not None
    assert closed.index_of(D(2024, 12, 25, 14)) is not None


def test_a_session_grid_closes_the_whole_day() -> None:
    session = TimeStep("hour", weekmask="1111100", session_start_us=9 * 3_600_000_000, session_steps=8)
    days = _weekdays(dt.date(2024, 9, 2), dt.date(2024, 12, 20), frozenset({dt.date(2024, 11, 28)}))
    hours = [t + dt.timedelta(hours=9 + h) for t in days for h in range(8)]
    step, _ = _closed(EventCalendar(holidays="US"), session, hours)
    last = step.index_of(D(2024, 11, 27, 16))
    assert step.timestamp_of(last + 1) == D(2024, 11, 29, 9)  # type: ignore[operator]


def test_stored_calendars_and_steps_round_trip_and_old_ones_load() -> None:
    calendar = EventCalendar(holidays="NYSE", closures=("Good Friday",))
    assert EventCalendar.from_dict(calendar.to_dict()) == calendar
    old = {k: v for k, v in calendar.to_dict().items() if k != "closures"}
    assert EventCalendar.from_dict(old) == dataclasses.replace(calendar, closures=())
    assert calendar.describe()["closures"] == ["Good Friday"]


# --- trained deployments ---------------------------------------------------------


def _train_nyse(data: pl.DataFrame) -> tsengine.Deployment:
    """A quick deployment of S&P 500 closes with the NYSE calendar (ETS and seasonal naive)."""
    return tsengine.train(
        data,
        target="close",
        datetime_column="date",
        holidays="NYSE",
        models=["ets", "seasonal_naive"],
        forecast_window=[1, 10],
    )


@pytest.fixture(scope="module")
def nyse(sp500: pl.DataFrame) -> tsengine.Deployment:
    return _train_nyse(sp500)


def test_training_with_an_exchange_calendar_forecasts_trading_days(
    nyse: tsengine.Deployment, sp500: pl.DataFrame, tmp_path: Path
) -> None:
    assert nyse.spec.time_step.describe() == "1 day (Mon, Tue, Wed, Thu, Fri, closed on holidays)"
    out = nyse.predict(sp500.filter(pl.col("date") <= "2015-12-18"))
    stamps = out.get_column("timestamp").dt.date().to_list()
    assert dt.date(2015, 12, 25) not in stamps
    assert dt.date(2016, 1, 1) not in stamps
    assert stamps[-1] == dt.date(2016, 1, 5)  # ten trading days after Friday 18 December
    registry = tsengine.Registry(tmp_path)
    registry.save(nyse)
    loaded = registry.load(nyse.id)
    assert loaded.spec.time_step == nyse.spec.time_step
    assert loaded.spec.calendar == nyse.spec.calendar


def test_a_posted_row_on_a_closed_holiday_is_refused_naming_it(
    nyse: tsengine.Deployment, sp500: pl.DataFrame
) -> None:
    history = sp500.filter(pl.col("date") <= "2015-11-25")
    thanksgiving = pl.DataFrame({"date": ["2015-11-26"], "close": [2090.0], "volume": [1]})
    with pytest.raises(OffGridError, match=r"2015-11-26.*holiday the grid is closed on"):
        nyse.predict(pl.concat([history, thanksgiving]))


# --- modes -----------------------------------------------------------------------


def test_all_closes_a_holiday_the_training_span_never_had() -> None:
    """March to May: no US holiday on a weekday yet, so auto closes nothing and all closes Memorial Day."""
    days = _weekdays(dt.date(2024, 3, 4), dt.date(2024, 5, 24))
    auto, _ = _closed(EventCalendar(holidays="US"), TRADING, days)
    assert auto == TRADING
    step, calendar = close_holidays(EventCalendar(holidays="US"), TRADING, _rows(days), None, "all")
    assert calendar is not None
    assert "Memorial Day" in calendar.closures
    friday = step.index_of(D(2024, 5, 24))
    assert step.timestamp_of(friday + 1) == D(2024, 5, 28)  # type: ignore[operator]


def test_all_refuses_training_rows_on_an_event_naming_them() -> None:
    days = _weekdays(dt.date(2024, 9, 2), dt.date(2024, 10, 31))  # Labor Day and Columbus Day have rows
    frame = _rows(days).with_columns(
        pl.int_range(pl.len()).alias("__row"), pl.col(TIME).dt.strftime("%Y-%m-%d").alias("__orig")
    )
    with pytest.raises(TrainingDataError, match=r"row 0: '2024-09-02' \(Labor Day\).*closures 'auto'"):
        close_holidays(EventCalendar(holidays="US"), TRADING, frame, None, "all")


def test_none_keeps_every_event_on_the_grid(sp500: pl.DataFrame) -> None:
    times = [D.fromisoformat(t) for t in sp500["date"]]
    step, calendar = close_holidays(EventCalendar(holidays="NYSE"), TRADING, _rows(times), None, "none")
    assert step == TRADING
    assert calendar is not None
    assert calendar.closures == ()


def test_bad_modes_are_parameter_errors_before_any_data_work(sp500: pl.DataFrame) -> None:
    with pytest.raises(ParameterError, match="closures must be one of auto, all, none, got 'some'"):
        tsengine.train(sp500, target="close", datetime_column="date", holidays="NYSE", closures="some")
    with pytest.raises(ParameterError, match="closures 'all' needs an event calendar"):
        close_holidays(None, TRADING, _rows([D(2024, 1, 1)]), None, "all")
    with pytest.raises(ParameterError, match="needs daily or sub-daily data"):
        close_holidays(EventCalendar(holidays="US"), TimeStep("month"), _rows([D(2024, 1, 1)]), None, "all")


# --- holidays kept as empty rows (per-business-day exports such as FRED's) -------------


@pytest.fixture(scope="module")
def with_blank_holidays(sp500: pl.DataFrame) -> pl.DataFrame:
    """The S&P 500 with an empty row on every NYSE holiday that falls on a weekday, as FRED exports it."""
    import holidays as holidays_lib  # noqa: PLC0415

    closed = sorted(d for d in holidays_lib.financial_holidays("NYSE", years=[2014, 2015]) if d.weekday() < 5)
    blanks = pl.DataFrame(
        {
            "date": [d.isoformat() for d in closed],
            "close": [None] * len(closed),
            "volume": [None] * len(closed),
        },
        schema=sp500.schema,
    )
    return pl.concat([sp500, blanks]).sort("date")


def test_empty_holiday_rows_count_as_closed_and_are_named_not_refused(
    with_blank_holidays: pl.DataFrame, nyse: tsengine.Deployment
) -> None:
    deployment = _train_nyse(with_blank_holidays)
    assert deployment.spec.time_step == nyse.spec.time_step
    note = deployment.metadata["training"]["closed_rows_note"]
    blanks = with_blank_holidays.get_column("close").null_count()
    assert blanks == 18  # nine NYSE holidays on weekdays a year
    assert note.startswith(f"ignored {blanks} row(s) without a target on days or hours the 1 day (Mon")
    assert "'2014-01-01'" in note
    history = with_blank_holidays.filter(pl.col("date") <= "2015-12-31").tail(90)
    result = deployment.predict_result(history)
    assert any("'2015-12-25'" in w for w in result.warnings)
    assert result.frame.height == 10
    assert dt.date(2016, 1, 1) not in result.frame.get_column("timestamp").dt.date().to_list()
