"""Validation of posted data: each rule fails with its error type, naming the culprit."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from tsengine.errors import (
    DatetimeParseError,
    DuplicateRowError,
    MissingColumnError,
    OffGridError,
    ValidationError,
)
from tsengine.timestep import TimeStep
from tsengine.validate import IDX, ORIG, ROW, SID, TIME, Y, canonicalize, place_on_grid, require_columns

DAY = TimeStep("day")


def _frame(**overrides: list[object]) -> pl.DataFrame:
    data: dict[str, list[object]] = {
        "store": ["a", "a", "b", "b"],
        "date": ["2018-01-09", "2018-01-10", "2018-01-09", "2018-01-10"],
        "sales": [1.0, 2.0, 3.0, None],
        "promo": [0, 1, 0, 1],
    }
    data.update(overrides)
    return pl.DataFrame(data, strict=False)


def _canon(frame: pl.DataFrame, **kwargs: object) -> pl.DataFrame:
    options: dict[str, object] = {
        "datetime_column": "date",
        "target": "sales",
        "series_id_column": "store",
        "numeric_features": ("promo",),
    }
    options.update(kwargs)
    return canonicalize(frame, **options).frame  # type: ignore[arg-type]


def _grid(frame: pl.DataFrame, step: TimeStep = DAY) -> pl.DataFrame:
    return place_on_grid(_canon(frame), step, datetime_column="date", series_label="store")


def test_canonical_frame_has_fixed_columns_and_types() -> None:
    out = _grid(_frame())
    assert out.columns[:6] == [ROW, SID, TIME, Y, "promo", ORIG]
    assert out.schema[Y] == pl.Float64
    assert out.schema[TIME] == pl.Datetime("us")
    assert out[ROW].to_list() == [0, 1, 2, 3]
    assert out[ORIG].to_list() == ["2018-01-09", "2018-01-10", "2018-01-09", "2018-01-10"]
    assert out[IDX].to_list() == [DAY.index_of(dt.datetime(2018, 1, d)) for d in (9, 10, 9, 10)]


def test_canonicalize_reports_the_inferred_format_and_offset() -> None:
    frame = _frame(date=["2018-01-09T10:00:00+02:00"] * 2 + ["2018-01-10T10:00:00+02:00"] * 2)
    canonical = canonicalize(frame, datetime_column="date", target="sales", series_id_column="store")
    assert canonical.datetime_format == "%Y-%m-%dT%H:%M:%S%:z"
    assert canonical.utc_offset == "+02:00"
    assert canonical.frame[TIME][0] == dt.datetime(2018, 1, 9, 8)


def test_integer_series_ids_become_string_keys() -> None:
    out = _canon(_frame(store=[7, 7, 8, 8]))
    assert out[SID].to_list() == ["7", "7", "8", "8"]


def test_integral_float_series_ids_name_the_same_series_as_integers() -> None:
    assert _canon(_frame(store=[7.0, 7.0, 8.0, 8.0]))[SID].to_list() == ["7", "7", "8", "8"]
    assert _canon(_frame(store=[7.5, 7.5, 8.0, 8.0]))[SID].to_list() == ["7.5", "7.5", "8.0", "8.0"]


def test_boolean_text_in_a_numeric_column_reads_as_one_and_zero() -> None:
    out = _canon(_frame(promo=["TRUE", "false", " True ", ""]))
    assert out["promo"].to_list() == [1.0, 0.0, 1.0, None]


def test_single_series_has_one_constant_key() -> None:
    out = _canon(_frame().drop("store"), series_id_column=None)
    assert out[SID].unique().to_list() == [""]


@pytest.mark.parametrize("missing", ["date", "store", "sales", "promo"])
def test_missing_required_column_is_named(missing: str) -> None:
    with pytest.raises(MissingColumnError, match=rf"missing required column\(s\) '{missing}'"):
        _canon(_frame().drop(missing))


def test_all_missing_columns_are_named_with_those_present() -> None:
    with pytest.raises(MissingColumnError) as info:
        _canon(_frame().drop("promo", "sales"))
    assert "'sales', 'promo'" in info.value.message
    assert "it has 'store', 'date'" in info.value.message


def test_require_columns_names_what_is_checked() -> None:
    with pytest.raises(MissingColumnError, match="the training data is missing"):
        require_columns(pl.DataFrame({"a": [1]}), ("b",), what="the training data")


def test_empty_dataset_is_rejected() -> None:
    with pytest.raises(ValidationError, match="the prediction dataset has no rows"):
        _canon(_frame().clear())


def test_unparseable_datetime_names_its_row() -> None:
    frame = _frame(date=["2018-01-09", "2018-01-10", "2018-01-09", "10th of Jan"])
    with pytest.raises(DatetimeParseError, match=r"column 'date'.*row 3: '10th of Jan'"):
        _canon(frame)


def test_empty_datetime_names_its_row() -> None:
    with pytest.raises(DatetimeParseError, match="column 'date' has empty datetime values in rows 2"):
        _canon(_frame(date=["2018-01-09", "2018-01-10", None, "2018-01-10"]))


def test_duplicate_series_timestamp_names_series_timestamp_and_rows() -> None:
    frame = _frame(date=["2018-01-09", "2018-01-10", "2018-01-10", "2018-01-10"])
    with pytest.raises(DuplicateRowError, match=r"store 'b' at '2018-01-10' \(rows 2, 3\)"):
        _grid(frame)


def test_same_timestamp_in_different_series_is_not_a_duplicate() -> None:
    assert _grid(_frame()).height == 4


def test_duplicate_in_single_series_names_timestamp_and_rows() -> None:
    frame = _frame(date=["2018-01-09", "2018-01-10", "2018-01-11", "2018-01-10"]).drop("store")
    canon = _canon(frame, series_id_column=None)
    with pytest.raises(DuplicateRowError, match=r"'2018-01-10' \(rows 1, 3\)"):
        place_on_grid(canon, DAY, datetime_column="date", series_label="")


@pytest.mark.parametrize(
    ("times", "hint"),
    [
        (["2013-11-03 00:00:00", "2013-11-03 01:00:00", "2013-11-03 01:00:00", "2013-11-03 02:00:00"], True),
        (["2013-11-03 13:00:00", "2013-11-03 14:00:00", "2013-11-03 14:00:00", "2013-11-03 15:00:00"], False),
        (
            ["2013-11-03T00:00:00Z", "2013-11-03T01:00:00Z", "2013-11-03T01:00:00Z", "2013-11-03T02:00:00Z"],
            False,
        ),
    ],
    ids=["local fall-back hour", "afternoon", "UTC"],
)
def test_duplicate_hours_at_a_clock_change_suggest_utc(times: list[str], hint: bool) -> None:
    """An hourly export in local clock time repeats 01:00 each autumn: the message says why."""
    frame = _frame(store=["a"] * 4, date=times)
    with pytest.raises(DuplicateRowError, match=r"rows 1, 2") as caught:
        _grid(frame, TimeStep("hour"))
    assert ("daylight saving" in str(caught.value)) is hint


def test_many_duplicates_are_counted() -> None:
    n = 8
    frame = pl.DataFrame(
        {
            "store": ["a"] * (2 * n),
            "date": [f"2018-01-{d:02d}" for d in range(1, n + 1)] * 2,
            "sales": [1.0] * (2 * n),
            "promo": [0] * (2 * n),
        }
    )
    with pytest.raises(DuplicateRowError, match=f"{n} duplicated timestamps in all"):
        _grid(frame)


def test_off_grid_timestamp_names_rows_values_and_step() -> None:
    frame = _frame(date=["2018-01-09", "2018-01-10", "2018-01-09 12:00", "2018-01-10 12:00"])
    with pytest.raises(OffGridError) as info:
        _grid(frame)
    message = info.value.message
    assert "1 day grid" in message
    assert "row 2: '2018-01-09 12:00'" in message
    assert "row 3: '2018-01-10 12:00'" in message
    assert "row 0" not in message


def test_off_grid_timestamps_with_an_offset_show_their_utc_reading() -> None:
    frame = _frame(
        date=["2018-01-09T00:00:00+02:00", "2018-01-10T00:00:00+02:00", "2018-01-11", "2018-01-12"]
    )
    with pytest.raises(OffGridError) as info:
        _grid(frame)
    message = info.value.message
    assert "row 0: '2018-01-09T00:00:00+02:00' is 2018-01-08T22:00:00 UTC" in message
    assert "the offset the training data had" in message


def test_off_grid_dates_without_an_offset_get_no_utc_note() -> None:
    frame = _frame(date=["2018-01-01", "2018-02-01", "2018-01-01", "2018-02-09"])
    with pytest.raises(OffGridError) as info:
        _grid(frame, TimeStep("month"))
    assert "UTC" not in info.value.message  # '-09' ends the date; it is not an offset


def test_month_grid_rejects_other_days_of_the_month() -> None:
    frame = _frame(date=["2018-01-01", "2018-02-01", "2018-01-01", "2018-02-02"])
    with pytest.raises(OffGridError, match=r"1 month grid.*row 3: '2018-02-02'"):
        _grid(frame, TimeStep("month"))


def test_non_numeric_target_names_column_rows_and_values() -> None:
    frame = _frame(sales=["1.5", "n/a", "3", "lots"])
    with pytest.raises(ValidationError, match=r"column 'sales' must be numeric.*row 1: 'n/a'.*row 3: 'lots'"):
        _canon(frame)


def test_numeric_strings_and_blanks_are_accepted_as_target() -> None:
    out = _canon(_frame(sales=["1.5", " 2 ", "", None]))
    assert out[Y].to_list() == [1.5, 2.0, None, None]


def test_non_numeric_feature_is_named() -> None:
    with pytest.raises(ValidationError, match=r"column 'promo' must be numeric.*row 0: 'yes'"):
        _canon(_frame(promo=["yes", "1", "0", "1"]))


def test_boolean_feature_is_numeric() -> None:
    out = _canon(_frame(promo=[True, False, True, None]))
    assert out["promo"].to_list() == [1.0, 0.0, 1.0, None]


def test_empty_series_id_names_its_rows() -> None:
    with pytest.raises(ValidationError, match=r"column 'store' \(series id\) is empty in rows 1, 3"):
        _canon(_frame(store=["a", None, "b", None]))


def test_string_features_stay_strings() -> None:
    frame = _frame(promo=["x", "y", "x", None])
    out = _canon(frame, numeric_features=(), string_features=("promo",))
    assert out.schema["promo"] == pl.String
