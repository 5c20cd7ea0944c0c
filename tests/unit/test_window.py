"""What a request predicts: forecast points, autoexpansion, KIA checks, historical ranges."""

from __future__ import annotations

import dataclasses
import datetime as dt

import polars as pl
import pytest

from tsengine.errors import InsufficientHistoryError, KnownInAdvanceError, OffGridError, ValidationError
from tsengine.features import FP, D
from tsengine.spec import TimeSeriesSpec
from tsengine.timestep import TimeStep
from tsengine.validate import IDX, ORIG, ROW, SID, Y, canonicalize, place_on_grid
from tsengine.window import forecast_window, historical_window, series_order

DAY = TimeStep("day")
SPEC = TimeSeriesSpec(
    datetime_column="date",
    target="sales",
    series_id_column="store",
    time_step=DAY,
    feature_derivation_window=(-6, 0),
    forecast_window=(1, 3),
    known_in_advance=("promo",),
    min_history=3,
    kia_fill={"promo": 0.5},
)
NO_KIA = TimeSeriesSpec(
    datetime_column="date",
    target="sales",
    series_id_column="store",
    time_step=DAY,
    feature_derivation_window=(-6, 0),
    forecast_window=(1, 3),
    min_history=3,
)


def _day(d: int) -> dt.datetime:
    return dt.datetime(2018, 1, d)


def _idx(d: int) -> int:
    index = DAY.index_of(_day(d))
    assert index is not None
    return index


def _rows(store: str, days: range, *, promo: float | None = 1.0, sales: float | None = 1.0) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "store": [store] * len(days),
            "date": [f"2018-01-{d:02d}" for d in days],
            "sales": [sales] * len(days),
            "promo": [promo] * len(days),
        },
        schema={"store": pl.String, "date": pl.String, "sales": pl.Float64, "promo": pl.Float64},
    )


def _canon(frame: pl.DataFrame, spec: TimeSeriesSpec = SPEC) -> pl.DataFrame:
    canonical = canonicalize(
        frame,
        datetime_column="date",
        target="sales",
        series_id_column="store",
        numeric_features=spec.known_in_advance,
    )
    return place_on_grid(canonical.frame, DAY, datetime_column="date", series_label="store")


def _forecast(
    frame: pl.DataFrame,
    *,
    spec: TimeSeriesSpec = SPEC,
    forecast_point: dt.datetime | None = None,
    relax: bool = False,
):  # type: ignore[no-untyped-def]
    return forecast_window(
        _canon(frame, spec),
        spec,
        forecast_point=forecast_point,
        relax_known_in_advance=relax,
        datetime_format="%Y-%m-%d",
        utc_offset=None,
    )


def _historical(frame: pl.DataFrame, start: dt.datetime, end: dt.datetime, spec: TimeSeriesSpec = NO_KIA):  # type: ignore[no-untyped-def]
    return historical_window(_canon(frame, spec), spec, start=start, end=end, relax_known_in_advance=False)


# --- forecast point ----------------------------------------------------------------


def test_forecast_point_is_the_latest_timestamp_with_a_target_across_series() -> None:
    frame = pl.concat(
        [_rows("a", range(1, 11)), _rows("b", range(1, 9)), _rows("a", range(11, 14), sales=None)]
    )
    window = _forecast(frame, relax=True)
    assert window.query[FP].unique().to_list() == [_idx(10)]


def test_forecast_point_without_any_target_cannot_be_inferred() -> None:
    with pytest.raises(InsufficientHistoryError, match="no row has a value in target column 'sales'"):
        _forecast(_rows("a", range(1, 5), sales=None), spec=NO_KIA)


def test_given_forecast_point_off_the_grid_is_named_with_a_suggestion() -> None:
    with pytest.raises(OffGridError) as info:
        _forecast(_rows("a", range(1, 11)), forecast_point=dt.datetime(2018, 1, 8, 12))
    assert "forecastPoint 2018-01-08T12:00:00 is not on the deployment's 1 day grid" in info.value.message
    assert "2018-01-08T00:00:00" in info.value.message


def test_forecast_point_after_the_last_row_is_allowed_when_history_suffices() -> None:
    window = _forecast(_rows("a", range(1, 11)), forecast_point=_day(12), relax=True)
    assert window.query[FP].unique().to_list() == [_idx(12)]
    assert window.query[IDX].to_list() == [_idx(13), _idx(14), _idx(15)]


def test_forecast_point_too_far_after_the_history_names_series_and_counts() -> None:
    frame = pl.concat([_rows("a", range(1, 11)), _rows("b", range(1, 16))])
    with pytest.raises(InsufficientHistoryError) as info:
        _forecast(frame, forecast_point=_day(15), relax=True)
    message = info.value.message
    assert "forecast point 2018-01-15T00:00:00" in message
    assert "series 'a' has 1" in message
    assert "'b'" not in message
    assert "6-step feature derivation window, the model needs 3" in message


def test_insufficient_history_names_every_short_series_and_its_count() -> None:
    frame = pl.concat([_rows("a", range(9, 11)), _rows("b", range(1, 11)), _rows("c", range(10, 11))])
    with pytest.raises(InsufficientHistoryError) as info:
        _forecast(frame, relax=True)
    message = info.value.message
    assert "series 'a' has 2" in message
    assert "series 'c' has 1" in message
    assert "'b'" not in message
    assert message.endswith("(or leave these series out of the request)")  # 'b' could be forecast
    with pytest.raises(InsufficientHistoryError) as info:
        _forecast(_rows("a", range(9, 11)), relax=True)
    assert "leave" not in info.value.message  # nothing would be left to forecast


def test_missing_targets_inside_the_window_do_not_count_as_history() -> None:
    frame = pl.concat([_rows("a", range(1, 8), sales=None), _rows("a", range(8, 11))])
    assert _forecast(frame, relax=True).query.height == 3
    frame = pl.concat([_rows("a", range(1, 9), sales=None), _rows("a", range(9, 11))])
    with pytest.raises(InsufficientHistoryError, match="has 2"):
        _forecast(frame, relax=True)


def test_history_left_edge_of_the_fdw_is_exclusive() -> None:
    # FDW 6 at FP Jan 10: rows in (Jan 4, Jan 10]; Jan 4 itself does not count.
    frame = pl.concat([_rows("a", range(2, 5)), _rows("a", range(5, 11), sales=None)])
    with pytest.raises(InsufficientHistoryError, match="has 0"):
        _forecast(frame, forecast_point=_day(10), relax=True)
    frame = pl.concat([_rows("a", range(2, 6)), _rows("a", range(6, 11), sales=None)])
    with pytest.raises(InsufficientHistoryError, match="has 1"):
        _forecast(frame, forecast_point=_day(10), relax=True)


# --- forecast rows -----------------------------------------------------------------


def test_autoexpanded_rows_get_ids_after_the_last_input_row_and_formatted_times() -> None:
    frame = pl.concat([_rows("a", range(1, 11)), _rows("b", range(1, 11))])
    window = _forecast(frame, relax=True)
    q = window.query
    assert q[ROW].to_list() == list(range(20, 26))
    assert q[ORIG].to_list() == ["2018-01-11", "2018-01-12", "2018-01-13"] * 2


def test_posted_forecast_rows_keep_their_row_ids_and_missing_ones_are_appended() -> None:
    frame = pl.concat([_rows("a", range(1, 11)), _rows("a", range(12, 13), sales=None)])
    q = _forecast(frame, relax=True).query
    assert q[ROW].to_list() == [11, 10, 12]
    assert q[ORIG].to_list() == ["2018-01-11", "2018-01-12", "2018-01-13"]


def test_output_is_ordered_by_first_appearance_then_distance() -> None:
    frame = pl.concat([_rows("z", range(1, 11)), _rows("a", range(1, 11)), _rows("m", range(1, 11))])
    frame = frame.sort("date", maintain_order=True)  # interleaved; z still first
    q = _forecast(frame, relax=True).query
    assert q[SID].to_list() == ["z"] * 3 + ["a"] * 3 + ["m"] * 3
    assert q[D].to_list() == [1, 2, 3] * 3


def test_series_order_ranks_by_first_row() -> None:
    canon = _canon(pl.concat([_rows("b", range(1, 3)), _rows("a", range(1, 3)), _rows("b", range(3, 4))]))
    assert series_order(canon)[SID].to_list() == ["b", "a"]


def test_history_excludes_rows_after_the_forecast_point() -> None:
    frame = pl.concat([_rows("a", range(1, 14))])
    window = _forecast(frame, forecast_point=_day(10))
    assert window.history[IDX].max() == _idx(10)
    assert window.history.filter(pl.col(Y).is_not_null()).height == 10


# --- known in advance --------------------------------------------------------------


def test_missing_kia_value_names_feature_series_and_timestamps() -> None:
    frame = pl.concat([_rows("a", range(1, 11)), _rows("a", range(11, 14), sales=None, promo=None)])
    frame = pl.concat([frame, _rows("b", range(1, 11)), _rows("b", range(11, 14), sales=None)])
    with pytest.raises(KnownInAdvanceError) as info:
        _forecast(frame)
    message = info.value.message
    assert "known-in-advance feature(s) 'promo' missing on forecast rows" in message
    assert "series 'a' at '2018-01-11', '2018-01-12', '2018-01-13'" in message
    assert "series 'b'" not in message
    assert "relaxKnownInAdvanceFeaturesCheck=true" in message


def test_autoexpanded_rows_lack_kia_values_and_fail_the_strict_check() -> None:
    with pytest.raises(KnownInAdvanceError, match=r"series 'a' at '2018-01-11'"):
        _forecast(_rows("a", range(1, 11)))


def test_relaxed_check_imputes_the_series_last_known_value_and_warns() -> None:
    frame = pl.concat([_rows("a", range(1, 10), promo=2.0), _rows("a", range(10, 11), promo=7.0)])
    window = _forecast(frame, relax=True)
    assert window.query["promo"].to_list() == [7.0, 7.0, 7.0]
    assert len(window.warnings) == 1
    assert "imputed missing known-in-advance values (promo: 3)" in window.warnings[0]


def test_relaxed_check_falls_back_to_the_training_fill() -> None:
    window = _forecast(_rows("a", range(1, 11), promo=None), relax=True)
    assert window.query["promo"].to_list() == [0.5, 0.5, 0.5]


def test_relaxed_check_keeps_posted_kia_values_and_carries_the_latest_forward() -> None:
    frame = pl.concat(
        [
            _rows("a", range(1, 11), promo=1.0),
            _rows("a", range(11, 12), sales=None, promo=9.0),
            _rows("a", range(12, 13), sales=None, promo=None),
            _rows("a", range(13, 14), sales=None, promo=4.0),
        ]
    )
    window = _forecast(frame, relax=True)
    assert window.query["promo"].to_list() == [9.0, 4.0, 4.0]


EVENTS = dataclasses.replace(
    SPEC, known_in_advance=("event",), kia_fill={"event": None}, kia_blank=("event",), categorical=("event",)
)


def _event_forecast(frame: pl.DataFrame, *, relax: bool = False):  # type: ignore[no-untyped-def]
    canonical = canonicalize(
        frame, datetime_column="date", target="sales", series_id_column="store", string_features=("event",)
    )
    canon = place_on_grid(canonical.frame, DAY, datetime_column="date", series_label="store")
    return forecast_window(
        canon,
        EVENTS,
        forecast_point=None,
        relax_known_in_advance=relax,
        datetime_format="%Y-%m-%d",
        utc_offset=None,
    )


def _event_rows(days: range, events: list[str | None], *, sales: float | None = 1.0) -> pl.DataFrame:
    return pl.DataFrame(
        {"store": "a", "date": [f"2018-01-{d:02d}" for d in days], "sales": sales, "event": events},
        schema={"store": pl.String, "date": pl.String, "sales": pl.Float64, "event": pl.String},
    )


def test_a_posted_blank_of_an_event_name_is_no_event() -> None:
    """An event name blank on ordinary days in training: a posted blank is that level, not a gap."""
    history = _event_rows(range(1, 11), [None] * 9 + ["Sale"])
    future = _event_rows(range(11, 14), [None, "Holiday", None], sales=None)
    window = _event_forecast(pl.concat([history, future]))
    assert window.query["event"].to_list() == [None, "Holiday", None]
    assert window.warnings == ()


def test_an_autoexpanded_row_still_misses_a_blank_level_feature() -> None:
    history = _event_rows(range(1, 11), [None] * 9 + ["Sale"])
    partial = pl.concat([history, _event_rows(range(11, 12), [None], sales=None)])
    with pytest.raises(
        KnownInAdvanceError, match=r"'event' missing on forecast rows: series 'a' at '2018-01-12'"
    ):
        _event_forecast(partial)
    window = _event_forecast(partial, relax=True)
    # the training mode (blank: no event), not the series' last event carried forward
    assert window.query["event"].to_list() == [None, None, None]
    assert "event: 2" in window.warnings[0]


def test_complete_kia_values_give_no_warning() -> None:
    frame = pl.concat([_rows("a", range(1, 11)), _rows("a", range(11, 14), sales=None)])
    assert _forecast(frame).warnings == ()


def test_a_series_without_a_target_at_the_forecast_origin_is_named_in_a_warning() -> None:
    # Store b's export stopped three days before store a's: forecast, but said so.
    frame = pl.concat([_rows("a", range(1, 11)), _rows("b", range(1, 8)), _rows("c", range(1, 10))])
    window = _forecast(frame, spec=NO_KIA)
    assert window.query.get_column(SID).unique(maintain_order=True).to_list() == ["a", "b", "c"]
    (warning,) = window.warnings
    assert warning.startswith("no target at the forecast origin 2018-01-10T00:00:00 for ")
    assert "series 'b' (last target 2018-01-07T00:00:00, 3 steps before)" in warning
    assert "series 'c' (last target 2018-01-09T00:00:00, 1 step before)" in warning
    assert "series 'a'" not in warning
    assert warning.index("series 'b'") < warning.index("series 'c'")


def test_a_warning_names_five_series_without_a_target_and_counts_the_rest() -> None:
    frame = pl.concat([_rows("a", range(1, 11)), *(_rows(f"s{k}", range(1, 9)) for k in range(7))])
    (warning,) = _forecast(frame, spec=NO_KIA).warnings
    assert "series 's4' (last target" in warning
    assert "series 's5'" not in warning
    assert " and 2 more series: " in warning


def test_a_target_missing_only_inside_the_window_is_no_stale_series() -> None:
    frame = pl.concat([_rows("a", range(1, 11)), _rows("b", range(1, 5)), _rows("b", range(6, 11))])
    assert _forecast(frame, spec=NO_KIA).warnings == ()


# --- historical mode ---------------------------------------------------------------


def test_historical_range_includes_start_and_excludes_end() -> None:
    window = _historical(_rows("a", range(1, 21)), _day(10), _day(13))
    q = window.query
    assert sorted(set(q[IDX].to_list())) == [_idx(10), _idx(11), _idx(12)]
    assert (q[FP] + q[D] == q[IDX]).all()


def test_historical_rows_are_emitted_at_every_distance_with_enough_history() -> None:
    q = _historical(_rows("a", range(1, 21)), _day(10), _day(11)).query
    assert q[D].to_list() == [1, 2, 3]
    assert q[FP].to_list() == [_idx(9), _idx(8), _idx(7)]
    assert q[ROW].unique().to_list() == [9]


def test_historical_distances_without_enough_history_are_skipped() -> None:
    # Jan 5 at distance 3 has FP Jan 2: only 2 targets in the window < 3 needed.
    q = _historical(_rows("a", range(1, 21)), _day(5), _day(6)).query
    assert q[D].to_list() == [1, 2]


def test_historical_rows_no_distance_can_predict_are_named_in_a_warning() -> None:
    # 'b' starts on Jan 8: its rows of Jan 8..10 have fewer than 3 targets before any forecast point.
    frame = pl.concat([_rows("a", range(1, 21)), _rows("b", range(8, 21))])
    window = _historical(frame, _day(6), _day(12))
    assert set(window.query[SID].to_list()) == {"a", "b"}  # 'b' on Jan 11 at distance 1
    (warning,) = window.warnings
    assert warning.startswith("3 posted row(s) in the range have too little history")
    assert "series 'b' (3 from 2018-01-08 to 2018-01-10)" in warning
    assert "'a'" not in warning
    assert _historical(frame, _day(12), _day(15)).warnings == ()


def test_extreme_client_default_range_means_the_whole_dataset() -> None:
    start = dt.datetime(1900, 1, 1)
    end = dt.datetime(2262, 4, 11, 23, 47, 16, 854775)
    frame = pl.concat([_rows("a", range(1, 21)), _rows("b", range(5, 15))])
    q = _historical(frame, start, end).query
    every = _historical(frame, _day(1), _day(21)).query
    assert q.equals(every)
    assert q.filter(pl.col(SID) == "a")[IDX].max() == _idx(20)
    assert q.filter(pl.col(SID) == "b")[IDX].min() == _idx(8)


def test_historical_output_is_ordered_by_series_then_time_then_distance() -> None:
    frame = pl.concat([_rows("b", range(1, 21)), _rows("a", range(1, 21))]).sort("date", maintain_order=True)
    q = _historical(frame, _day(10), _day(12)).query
    assert q[SID].to_list() == ["b"] * 6 + ["a"] * 6
    assert q[D].to_list() == [1, 2, 3] * 4


def test_no_row_in_range_names_the_range() -> None:
    with pytest.raises(ValidationError, match=r"no rows in \[2018-02-01T00:00:00, 2018-03-01T00:00:00\)"):
        _historical(_rows("a", range(1, 21)), dt.datetime(2018, 2, 1), dt.datetime(2018, 3, 1))


def test_range_end_is_exclusive_even_for_a_single_row() -> None:
    with pytest.raises(ValidationError, match="no rows in"):
        _historical(_rows("a", range(1, 21)), _day(21), _day(22))
    with pytest.raises(ValidationError, match="no rows in"):
        _historical(_rows("a", range(10, 21)), _day(5), _day(10))


def test_range_without_enough_history_is_rejected() -> None:
    with pytest.raises(InsufficientHistoryError, match="has enough history"):
        _historical(_rows("a", range(1, 21)), _day(1), _day(3))


def test_historical_kia_check_names_the_predicted_rows() -> None:
    frame = pl.concat([_rows("a", range(1, 11)), _rows("a", range(11, 12), promo=None)])
    with pytest.raises(KnownInAdvanceError, match=r"missing on predicted rows: series 'a' at '2018-01-11'"):
        _historical(frame, _day(11), _day(12), spec=SPEC)
