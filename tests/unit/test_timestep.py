"""Time steps: inference, the integer grid, datetime parsing and formatting."""

from __future__ import annotations

import calendar
import datetime as dt

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tsengine.errors import DatetimeParseError, ParameterError, TrainingDataError
from tsengine.timestep import (
    MONTH_END,
    TimeStep,
    format_datetimes,
    infer_time_step,
    parse_datetimes,
    parse_timestamp,
)

D = dt.datetime


def _infer(stamps: list[dt.datetime], series: list[str] | None = None) -> TimeStep:
    frame = pl.DataFrame(
        {"t": pl.Series(stamps, dtype=pl.Datetime("us")), "s": series or ["a"] * len(stamps)}
    )
    return infer_time_step(frame, ts_col="t", series_col="s")


def _month_ends(year: int, months: range) -> list[dt.datetime]:
    return [D(year, m, calendar.monthrange(year, m)[1]) for m in months]


# --- inference ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stamps", "unit", "count"),
    [
        ([D(2020, 1, 1, 0, 0, s) for s in range(0, 30, 5)], "second", 5),
        ([D(2020, 1, 1, 0, 0, s) for s in range(10)], "second", 1),
        ([D(2020, 1, 1, 0, m) for m in range(0, 60, 15)], "minute", 15),
        ([D(2020, 1, 1, h) for h in range(10)], "hour", 1),
        ([D(2020, 1, 1, h) for h in range(0, 24, 6)], "hour", 6),
        ([D(2020, 1, d) for d in range(1, 10)], "day", 1),
        ([D(2020, 1, d) for d in range(1, 30, 2)], "day", 2),
        ([D(2020, 1, 6) + dt.timedelta(weeks=k) for k in range(8)], "week", 1),
        ([D(2020, 1, 6) + dt.timedelta(weeks=2 * k) for k in range(8)], "week", 2),
        ([D(2020, m, 1) for m in range(1, 13)], "month", 1),
        ([D(2020, m, 1) for m in range(1, 13, 2)], "month", 2),
        ([D(2020, m, 1) for m in (1, 4, 7, 10)], "quarter", 1),
        ([D(y, 1, 1) for y in range(2000, 2006)], "year", 1),
        ([D(y, 1, 1) for y in range(2000, 2020, 5)], "year", 5),
    ],
)
def test_infers_unit_and_count(stamps: list[dt.datetime], unit: str, count: int) -> None:
    step = _infer(stamps)
    assert (step.unit, step.count) == (unit, count)


def test_month_end_dates_infer_a_month_end_anchor() -> None:
    step = _infer(_month_ends(2020, range(1, 13)))
    assert (step.unit, step.anchor_day) == ("month", MONTH_END)


def test_month_end_anchor_steps_from_january_31_to_february_28() -> None:
    step = TimeStep("month", anchor_day=MONTH_END)
    idx = step.index_of(D(2018, 1, 31))
    assert idx is not None
    assert step.timestamp_of(idx + 1) == D(2018, 2, 28)
    assert step.timestamp_of(idx + 13) == D(2019, 2, 28)
    assert step.index_of(D(2020, 2, 29)) is not None
    assert step.index_of(D(2020, 2, 28)) is None


def test_quarter_end_dates_infer_quarter_with_month_end_anchor() -> None:
    step = _infer([D(2019, 3, 31), D(2019, 6, 30), D(2019, 9, 30), D(2019, 12, 31)])
    assert (step.unit, step.count, step.anchor_day) == ("quarter", 1, MONTH_END)
    assert step.timestamp_of(step.to_index_floor(D(2019, 12, 31)) + 1) == D(2020, 3, 31)


def test_mid_month_day_is_the_anchor() -> None:
    step = _infer([D(2020, m, 15) for m in range(1, 7)])
    assert (step.unit, step.anchor_day) == ("month", 15)


def test_quarters_starting_in_february_keep_their_phase() -> None:
    step = _infer([D(2020, m, 1) for m in (2, 5, 8, 11)])
    assert step.unit == "quarter"
    assert step.index_of(D(2021, 2, 1)) is not None
    assert step.index_of(D(2021, 1, 1)) is None


def test_monthly_time_of_day_is_part_of_the_grid() -> None:
    step = _infer([D(2020, m, 1, 6) for m in range(1, 6)])
    assert step.time_of_day_us == 6 * 3_600_000_000
    assert step.index_of(D(2020, 7, 1, 6)) is not None
    assert step.index_of(D(2020, 7, 1)) is None


@pytest.mark.parametrize("weekday_start", [D(2020, 1, 6), D(2020, 1, 8), D(2020, 1, 12)])
def test_weekly_phase_keeps_the_weekday(weekday_start: dt.datetime) -> None:
    step = _infer([weekday_start + dt.timedelta(weeks=k) for k in range(6)])
    assert step.unit == "week"
    later = weekday_start + dt.timedelta(weeks=100)
    assert step.index_of(later) is not None
    assert step.index_of(later + dt.timedelta(days=1)) is None
    assert step.timestamp_of(step.to_index_floor(later)) == later


def test_gaps_within_the_missing_share_keep_the_step() -> None:
    days = [D(2020, 1, d) for d in (1, 2, 3, 5, 6, 8, 9, 10)]
    assert _infer(days).describe() == "1 day"


def test_step_is_shared_across_series() -> None:
    stamps = [D(2020, 1, d) for d in range(1, 6)] * 2
    assert _infer(stamps, ["a"] * 5 + ["b"] * 5).describe() == "1 day"


def test_irregular_timestamps_are_rejected_naming_the_column_and_counts() -> None:
    with pytest.raises(TrainingDataError, match=r"column 't' has irregular time steps.*1 day.*25 of 30"):
        _infer([D(2020, 1, 1), D(2020, 1, 2), D(2020, 1, 5), D(2020, 1, 9), D(2020, 1, 30)])


def test_messages_use_the_clients_column_name_when_given() -> None:
    frame = pl.DataFrame({"__t": [D(2020, 1, 1), D(2020, 1, 2), D(2020, 1, 30)], "s": ["a"] * 3})
    with pytest.raises(TrainingDataError, match="column 'order_date' has irregular"):
        infer_time_step(frame, ts_col="__t", series_col="s", column="order_date")


def test_sub_second_steps_are_rejected() -> None:
    with pytest.raises(TrainingDataError, match="column 't' has sub-second"):
        _infer([D(2020, 1, 1), D(2020, 1, 1, 0, 0, 0, 500_000), D(2020, 1, 1, 0, 0, 1)])


def test_a_single_timestamp_cannot_give_a_step() -> None:
    with pytest.raises(TrainingDataError, match="at least two distinct timestamps"):
        _infer([D(2020, 1, 1), D(2020, 1, 1)], ["a", "b"])


def test_two_timestamps_in_one_month_are_not_a_monthly_grid() -> None:
    step = _infer([D(2020, 1, 1), D(2020, 1, 15), D(2020, 1, 29)])
    assert step.describe() == "2 week"


# --- the grid ----------------------------------------------------------------------

GRIDS = [
    TimeStep("second", count=5),
    TimeStep("minute", count=15, phase=5 * 60_000_000),
    TimeStep("hour"),
    TimeStep("day"),
    TimeStep("week", phase=3 * 86_400_000_000),
    TimeStep("month"),
    TimeStep("month", anchor_day=MONTH_END),
    TimeStep("month", anchor_day=31 - 3),
    TimeStep("quarter", phase=1),
    TimeStep("year", count=2, phase=1),
    TimeStep("month", time_of_day_us=3_600_000_000),
]


@pytest.mark.parametrize("step", GRIDS, ids=lambda s: s.describe())
def test_from_index_then_to_index_is_the_identity(step: TimeStep) -> None:
    base = step.to_index_floor(D(2018, 6, 10))
    idx = pl.Series("i", [base + k for k in range(-30, 30)] + [base + 500, base + 2_000], dtype=pl.Int64)
    frame = pl.DataFrame({"i": idx}).with_columns(step.from_index(pl.col("i")).alias("t"))
    back, ok = step.to_index(pl.col("t"))
    out = frame.select(back.alias("b"), ok.alias("ok"))
    assert out["b"].to_list() == idx.to_list()
    assert out["ok"].all()


@pytest.mark.parametrize("step", GRIDS, ids=lambda s: s.describe())
def test_to_index_floors_off_grid_timestamps(step: TimeStep) -> None:
    idx = step.to_index_floor(D(2018, 6, 10)) + 7
    on = step.timestamp_of(idx)
    off = on + dt.timedelta(seconds=1)
    assert step.index_of(on) == idx
    assert step.index_of(off) is None
    assert step.to_index_floor(off) == idx


def test_calendar_grids_step_by_calendar_months() -> None:
    step = TimeStep("month")
    start = step.to_index_floor(D(2019, 11, 1))
    assert [step.timestamp_of(start + k) for k in range(4)] == [
        D(2019, 11, 1),
        D(2019, 12, 1),
        D(2020, 1, 1),
        D(2020, 2, 1),
    ]


def test_time_step_dict_round_trip() -> None:
    for step in GRIDS:
        assert TimeStep.from_dict(step.to_dict()) == step


def test_seconds_approx_of_calendar_and_fixed_steps() -> None:
    assert TimeStep("day").seconds_approx == 86_400
    assert TimeStep("quarter").seconds_approx == pytest.approx(3 * 30.436875 * 86_400)


# --- parse_datetimes ---------------------------------------------------------------

FORMAT_CASES = [
    ("%Y-%m-%d", ["2018-01-09", "2018-01-10"], D(2018, 1, 9)),
    ("%Y-%m-%d %H:%M:%S", ["2018-01-09 13:00:00"], D(2018, 1, 9, 13)),
    ("%Y-%m-%dT%H:%M:%S", ["2018-01-09T13:00:00"], D(2018, 1, 9, 13)),
    ("%Y-%m-%d %H:%M", ["2018-01-09 13:05"], D(2018, 1, 9, 13, 5)),
    ("%Y-%m-%dT%H:%M", ["2018-01-09T13:05"], D(2018, 1, 9, 13, 5)),
    ("%Y-%m-%d %H:%M:%S%.f", ["2018-01-09 13:00:00.123456"], D(2018, 1, 9, 13, 0, 0, 123456)),
    ("%Y-%m-%dT%H:%M:%S%.f", ["2018-01-09T13:00:00.5"], D(2018, 1, 9, 13, 0, 0, 500_000)),
    ("%Y-%m-%dT%H:%M:%SZ", ["2018-01-09T13:00:00Z"], D(2018, 1, 9, 13)),
    ("%Y-%m-%dT%H:%M:%S%.fZ", ["2018-01-09T13:00:00.250000Z"], D(2018, 1, 9, 13, 0, 0, 250_000)),
    ("%Y-%m-%dT%H:%MZ", ["2018-01-09T13:05Z"], D(2018, 1, 9, 13, 5)),
    ("%Y-%m-%dT%H:%M:%S%:z", ["2018-01-09T13:00:00+02:00"], D(2018, 1, 9, 11)),
    ("%Y-%m-%dT%H:%M:%S%.f%:z", ["2018-01-09T13:00:00.5-05:00"], D(2018, 1, 9, 18, 0, 0, 500_000)),
    ("%Y-%m-%d %H:%M:%S%:z", ["2018-01-09 13:00:00+02:00"], D(2018, 1, 9, 11)),
    ("%Y-%m-%dT%H:%M:%S%z", ["2018-01-09T13:00:00+0200"], D(2018, 1, 9, 11)),
    ("%Y-%m-%d %H:%M:%S%z", ["2018-01-09 13:00:00-0130"], D(2018, 1, 9, 14, 30)),
    ("%Y/%m/%d", ["2018/01/09"], D(2018, 1, 9)),
    ("%Y/%m/%d %H:%M:%S", ["2018/01/09 13:00:00"], D(2018, 1, 9, 13)),
    ("%Y/%m/%d %H:%M", ["2018/01/09 13:05"], D(2018, 1, 9, 13, 5)),
    ("%m/%d/%Y", ["01/09/2018", "01/10/2018"], D(2018, 1, 9)),
    ("%d/%m/%Y", ["13/01/2018", "01/02/2018"], D(2018, 1, 13)),
    ("%m/%d/%Y %H:%M", ["01/09/2018 13:05"], D(2018, 1, 9, 13, 5)),
    ("%d/%m/%Y %H:%M", ["13/01/2018 13:05"], D(2018, 1, 13, 13, 5)),
    ("%m/%d/%Y %H:%M:%S", ["01/09/2018 13:05:01"], D(2018, 1, 9, 13, 5, 1)),
    ("%d/%m/%Y %H:%M:%S", ["13/01/2018 13:05:01"], D(2018, 1, 13, 13, 5, 1)),
    ("%m/%d/%Y %I:%M %p", ["01/09/2018 01:05 PM"], D(2018, 1, 9, 13, 5)),
    ("%m/%d/%Y %I:%M:%S %p", ["01/09/2018 01:05:00 AM"], D(2018, 1, 9, 1, 5)),
    ("%m/%d/%y", ["01/09/18"], D(2018, 1, 9)),
    ("%d/%m/%y", ["13/01/18"], D(2018, 1, 13)),
    ("%d.%m.%Y", ["09.01.2018"], D(2018, 1, 9)),
    ("%d.%m.%Y %H:%M", ["09.01.2018 13:05"], D(2018, 1, 9, 13, 5)),
    ("%d.%m.%Y %H:%M:%S", ["09.01.2018 13:05:01"], D(2018, 1, 9, 13, 5, 1)),
    ("%m-%d-%Y", ["01-09-2018"], D(2018, 1, 9)),
    ("%d-%m-%Y", ["13-01-2018"], D(2018, 1, 13)),
    ("%d %b %Y", ["09 Jan 2018"], D(2018, 1, 9)),
    ("%b %d %Y", ["Jan 09 2018"], D(2018, 1, 9)),
    ("%d-%b-%Y", ["09-Jan-2018"], D(2018, 1, 9)),
    ("%Y%m%d", ["20180109"], D(2018, 1, 9)),
    ("%Y-%m", ["2018-01", "2018-02"], D(2018, 1, 1)),
    ("%Y/%m", ["2018/01"], D(2018, 1, 1)),
    ("%Y %b", ["1939 Jan", "1939 Feb"], D(1939, 1, 1)),
    ("%b %Y", ["Jan 1939", "Dec 1940"], D(1939, 1, 1)),
    ("%Y %B", ["1939 January"], D(1939, 1, 1)),
    ("%B %Y", ["September 2020"], D(2020, 9, 1)),
    ("%b-%Y", ["Mar-2020"], D(2020, 3, 1)),
    ("%Y-%b", ["2020-Mar"], D(2020, 3, 1)),
    ("%Y Q%q", ["1960 Q1", "1960 Q2", "1961 Q4"], D(1960, 1, 1)),
    ("%YQ%q", ["1960Q3"], D(1960, 7, 1)),
    ("%Y-Q%q", ["2020-Q4"], D(2020, 10, 1)),
    ("Q%q %Y", ["Q2 1999"], D(1999, 4, 1)),
    ("%G-W%V", ["2024-W05", "2024-W06"], D(2024, 1, 29)),
    ("%G W%V", ["1991 W06", "2020 W53", "2021 W01"], D(1991, 2, 4)),
    ("%GW%V", ["2009W01"], D(2008, 12, 29)),
    ("%Y", ["2018", "2019"], D(2018, 1, 1)),
]


@pytest.mark.parametrize(("fmt", "values", "first"), FORMAT_CASES, ids=[c[0] for c in FORMAT_CASES])
def test_parse_datetimes_infers_each_supported_format(
    fmt: str, values: list[str], first: dt.datetime
) -> None:
    parsed, got = parse_datetimes(pl.Series(values), column="d")
    assert got == fmt
    assert parsed.dtype == pl.Datetime("us")
    assert parsed[0] == first


@pytest.mark.parametrize(("fmt", "values", "first"), FORMAT_CASES, ids=[c[0] for c in FORMAT_CASES])
def test_format_datetimes_writes_values_that_parse_back(
    fmt: str, values: list[str], first: dt.datetime
) -> None:
    parsed, got = parse_datetimes(pl.Series(values), column="d")
    offset = values[0][-6:] if "%:z" in got else None
    written = pl.select(format_datetimes(pl.lit(parsed), got, utc_offset=offset)).to_series()
    again, _ = parse_datetimes(written, column="d", preferred_format=got)
    assert again.to_list() == parsed.to_list()


def test_quarter_labels_are_written_for_generated_rows() -> None:
    written = pl.select(
        format_datetimes(pl.lit(pl.Series([D(2016, 7, 1), D(2016, 10, 1)])), "%Y Q%q")
    ).to_series()
    assert written.to_list() == ["2016 Q3", "2016 Q4"]


@pytest.mark.parametrize("values", [["1960 Q5"], ["1960 Q1", "1960 Q"], ["60 Q1"]])
def test_malformed_quarter_labels_are_named(values: list[str]) -> None:
    with pytest.raises(DatetimeParseError, match="not datetimes"):
        parse_datetimes(pl.Series(values), column="d")


@given(st.dates(min_value=dt.date(1000, 1, 4), max_value=dt.date(9998, 12, 28)))
def test_iso_week_labels_read_as_their_monday_and_write_back(day: dt.date) -> None:
    """Against the standard library's ISO calendar, on any date (the weeks 53, the years' edges)."""
    year, week, _ = day.isocalendar()
    label = f"{year} W{week:02d}"
    parsed, fmt = parse_datetimes(pl.Series([label]), column="week")
    assert fmt == "%G W%V"
    assert parsed[0] == dt.datetime.combine(dt.date.fromisocalendar(year, week, 1), dt.time())
    assert pl.select(format_datetimes(pl.lit(parsed), fmt)).item() == label


@pytest.mark.parametrize("values", [["2021 W53"], ["2024 W00"], ["2024 W54"], ["2024-W05", "2024-W5x"]])
def test_weeks_a_year_does_not_have_are_named(values: list[str]) -> None:
    with pytest.raises(DatetimeParseError, match="not datetimes"):
        parse_datetimes(pl.Series(values), column="d")


def test_offsets_are_written_back_in_the_client_offset() -> None:
    parsed, fmt = parse_datetimes(pl.Series(["2018-01-09T13:00:00+02:00"]), column="d")
    written = pl.select(format_datetimes(pl.lit(parsed), fmt, utc_offset="+02:00")).item()
    assert written == "2018-01-09T13:00:00+02:00"


def test_offsets_without_colon_are_written_without_colon() -> None:
    parsed, fmt = parse_datetimes(pl.Series(["2018-01-09T13:00:00+0200"]), column="d")
    written = pl.select(format_datetimes(pl.lit(parsed), fmt, utc_offset="+02:00")).item()
    assert written == "2018-01-09T13:00:00+0200"


def test_format_datetimes_of_naive_format_writes_utc() -> None:
    ts = pl.lit(D(2018, 1, 9, 11), pl.Datetime("us"))
    assert pl.select(format_datetimes(ts, "%Y-%m-%d %H:%M")).item() == "2018-01-09 11:00"
    assert pl.select(format_datetimes(ts, "%Y-%m-%dT%H:%M:%SZ")).item() == "2018-01-09T11:00:00Z"


def test_all_ambiguous_slash_dates_stay_month_first() -> None:
    parsed, fmt = parse_datetimes(pl.Series(["01/02/2018", "01/03/2018"]), column="d")
    assert fmt == "%m/%d/%Y"
    assert parsed[0] == D(2018, 1, 2)


def test_first_field_above_twelve_anywhere_means_day_first() -> None:
    values = ["01/02/2018"] * 600 + ["13/02/2018"]  # beyond the sample the search starts with
    parsed, fmt = parse_datetimes(pl.Series(values), column="d")
    assert fmt == "%d/%m/%Y"
    assert parsed[0] == D(2018, 2, 1)


def test_second_field_above_twelve_means_month_first() -> None:
    _, fmt = parse_datetimes(pl.Series(["01/13/2018", "02/01/2018"]), column="d")
    assert fmt == "%m/%d/%Y"


def test_training_format_wins_when_posted_values_fit_it() -> None:
    parsed, fmt = parse_datetimes(
        pl.Series(["01/02/2018", "02/02/2018"]), column="d", preferred_format="%d/%m/%Y"
    )
    assert fmt == "%d/%m/%Y"
    assert parsed.to_list() == [D(2018, 2, 1), D(2018, 2, 2)]


def test_training_format_yields_when_posted_values_do_not_fit_it() -> None:
    parsed, fmt = parse_datetimes(pl.Series(["2018-02-01"]), column="d", preferred_format="%d/%m/%Y")
    assert fmt == "%Y-%m-%d"
    assert parsed[0] == D(2018, 2, 1)


def test_two_digit_years_are_not_read_as_four_digit_years() -> None:
    parsed, fmt = parse_datetimes(pl.Series(["01/09/18", "01/10/18"]), column="d")
    assert fmt == "%m/%d/%y"
    assert parsed[0] == D(2018, 1, 9)


def test_date_and_datetime_columns_pass_through() -> None:
    dates = pl.Series([dt.date(2018, 1, 9)])
    parsed, fmt = parse_datetimes(dates, column="d")
    assert (parsed[0], fmt) == (D(2018, 1, 9), "%Y-%m-%d")
    stamps = pl.Series([D(2018, 1, 9, 13)]).dt.replace_time_zone("Europe/Berlin")
    parsed, fmt = parse_datetimes(stamps, column="d")
    assert (parsed[0], fmt) == (D(2018, 1, 9, 12), "%Y-%m-%d %H:%M:%S")


def test_whitespace_around_values_is_ignored() -> None:
    parsed, fmt = parse_datetimes(pl.Series([" 2018-01-09 ", "2018-01-10"]), column="d")
    assert (fmt, parsed[0]) == ("%Y-%m-%d", D(2018, 1, 9))


def test_exotic_formats_fall_back_to_dateutil() -> None:
    parsed, fmt = parse_datetimes(pl.Series(["January 9, 2018", "January 10, 2018"]), column="d")
    assert parsed[1] == D(2018, 1, 10)
    assert fmt == "%Y-%m-%dT%H:%M:%S%.f"


def test_unparseable_value_names_column_row_and_value() -> None:
    values = ["2018-01-09", "2018-01-10", "not a date", "2018-01-12"]
    with pytest.raises(DatetimeParseError, match=r"column 'date'.*row 2: 'not a date'"):
        parse_datetimes(pl.Series(values), column="date")


def test_empty_datetime_values_name_their_rows() -> None:
    with pytest.raises(DatetimeParseError, match=r"column 'date' has empty datetime values in rows 1, 3"):
        parse_datetimes(pl.Series(["2018-01-09", "", "2018-01-11", None]), column="date")


def test_many_unparseable_values_are_counted_not_listed() -> None:
    with pytest.raises(DatetimeParseError, match="and 15 more") as info:
        parse_datetimes(pl.Series([f"bad{i}" for i in range(20)]), column="d")
    assert "bad19" not in info.value.message


# --- parse_timestamp ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2018-01-09", D(2018, 1, 9)),
        ("2018-01-09T13:00:00", D(2018, 1, 9, 13)),
        ("2018-01-09 13:00:00", D(2018, 1, 9, 13)),
        ("2018-01-09T13:00:00Z", D(2018, 1, 9, 13)),
        ("2018-01-09T13:00:00+02:00", D(2018, 1, 9, 11)),
        ("2018-01-09T13:00:00-0500", D(2018, 1, 9, 18)),
        ("2018-01-09T13:00:00.123456", D(2018, 1, 9, 13, 0, 0, 123456)),
        ("2018-01-09T13:00:00.123456Z", D(2018, 1, 9, 13, 0, 0, 123456)),
        ("2018-01-09T13:00:00.123456789Z", D(2018, 1, 9, 13, 0, 0, 123456)),
        ("1900-01-01T00:00:00.000000Z", D(1900, 1, 1)),
        ("2262-04-11T23:47:16.854775+00:00", D(2262, 4, 11, 23, 47, 16, 854775)),
        ("  2018-01-09  ", D(2018, 1, 9)),
    ],
)
def test_parse_timestamp_accepts_what_clients_send(text: str, expected: dt.datetime) -> None:
    parsed = parse_timestamp(text, name="forecastPoint")
    assert parsed == expected
    assert parsed.tzinfo is None


def test_parse_timestamp_accepts_python_values() -> None:
    aware = D(2018, 1, 9, 13, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert parse_timestamp(aware, name="x") == D(2018, 1, 9, 12)
    assert parse_timestamp(dt.date(2018, 1, 9), name="x") == D(2018, 1, 9)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2013 Q3", D(2013, 7, 1)),
        ("2013Q3", D(2013, 7, 1)),
        ("Q3 2013", D(2013, 7, 1)),
        ("2005 May", D(2005, 5, 1)),
        ("May 2005", D(2005, 5, 1)),
        ("2005 September", D(2005, 9, 1)),
        ("3 May 2005", D(2005, 5, 3)),
        ("2024-W05", D(2024, 1, 29)),
        ("1991 W06", D(1991, 2, 4)),
        ("2020-W53", D(2020, 12, 28)),
    ],
)
def test_parse_timestamp_reads_the_period_labels_data_is_dated_by(text: str, expected: dt.datetime) -> None:
    # A client posting quarterly rows labelled "2013 Q3" names its forecast point the same way.
    assert parse_timestamp(text, name="forecastPoint") == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("2013 Q5", "names no quarter: quarters are Q1 to Q4"),
        # Python's own ISO parser would roll 2021-W53 into 2022: 2021 has 52 ISO weeks.
        ("2021-W53", "names no week: 2021 has ISO weeks W01 to W52"),
        ("2016 W00", "names no week: 2016 has ISO weeks W01 to W52"),
        ("2005 Mayo", "is not a datetime.*period label"),
        ("Q3", "is not a datetime.*period label"),
    ],
)
def test_parse_timestamp_refuses_labels_of_periods_that_do_not_exist(text: str, why: str) -> None:
    with pytest.raises(ParameterError, match=rf"forecastPoint: {text!r} {why}"):
        parse_timestamp(text, name="forecastPoint")


@pytest.mark.parametrize("text", ["tomorrow", "2018-13-01", "", "09/01/2018x"])
def test_parse_timestamp_rejects_junk_naming_parameter_and_value(text: str) -> None:
    with pytest.raises(ParameterError, match=rf"forecastPoint: {text!r} is not a datetime"):
        parse_timestamp(text, name="forecastPoint")


@pytest.mark.parametrize("values", [["Jan 10", "Jan 11"], ["monday", "tuesday"], ["10th of Jan"]])
def test_values_missing_part_of_the_date_are_rejected_not_dated_today(values: list[str]) -> None:
    with pytest.raises(DatetimeParseError, match="row 0"):
        parse_datetimes(pl.Series(values), column="d")


def test_one_bad_value_in_a_known_format_is_named_alone() -> None:
    with pytest.raises(DatetimeParseError) as info:
        parse_datetimes(pl.Series(["2018-01", "2018-02", "oops", "2018-04"]), column="month")
    assert "row 2: 'oops'" in info.value.message
    assert "row 0" not in info.value.message


@pytest.mark.parametrize(
    ("text", "fmt"),
    [
        ("2018-01-09T13:00:00+05:30", "%Y-%m-%dT%H:%M:%S%:z"),
        ("2018-01-09 13:00:00-0930", "%Y-%m-%d %H:%M:%S%z"),
        ("2018-01-09T13:00:00.250000+05:45", "%Y-%m-%dT%H:%M:%S%.f%:z"),
    ],
)
def test_offsets_that_are_not_whole_hours_are_written_back(text: str, fmt: str) -> None:
    parsed, got = parse_datetimes(pl.Series([text]), column="d")
    assert got == fmt
    offset = text[-6:] if text[-3] == ":" else f"{text[-5:-2]}:{text[-2:]}"
    assert pl.select(format_datetimes(pl.lit(parsed), got, utc_offset=offset)).item() == text


def test_fractions_are_written_with_six_digits_even_when_zero() -> None:
    ts = pl.lit(D(2018, 1, 9, 13), pl.Datetime("us"))
    assert pl.select(format_datetimes(ts, "%Y-%m-%dT%H:%M:%S%.fZ")).item() == "2018-01-09T13:00:00.000000Z"
