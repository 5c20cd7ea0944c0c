"""Event calendars (tsengine.events): parsing, features against a plain reference, weights, training."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tsengine
from tsengine.backtest import Backtest
from tsengine.columns import IDX, SID, Y
from tsengine.contract import facts
from tsengine.errors import KnownInAdvanceError, ParameterError
from tsengine.events import (
    DAYS_SINCE,
    DAYS_TO,
    EVENT,
    EVENT_COLUMNS,
    EVENT_NAME,
    EventCalendar,
    clip_days,
    event_columns,
    event_flags,
    event_weights,
    model_spec,
    weigh_events,
    with_events,
)
from tsengine.models import MODELS
from tsengine.options import PredictOptions
from tsengine.select import choose, rank
from tsengine.spec import TimeSeriesSpec
from tsengine.timestep import TimeStep

EPOCH = dt.date(1970, 1, 1)


def _day(text: str) -> int:
    return (dt.date.fromisoformat(text) - EPOCH).days


# ---------------------------------------------------------------- parsing


def test_calendar_columns_found_by_name_in_any_order() -> None:
    frame = pl.DataFrame(
        {"store": ["a", None], "Event": ["Sale", "Fair"], "Date": ["2020-03-01", "2020-03-05"]}
    )
    cal = EventCalendar.build(frame, series_id_column="store")
    assert cal is not None
    assert sorted(zip(cal.days, cal.names, cal.series, strict=True), key=str) == sorted(
        [(_day("2020-03-01"), "Sale", "a"), (_day("2020-03-05"), "Fair", None)], key=str
    )


def test_calendar_by_position_and_other_date_formats(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("when,what\n12/25/2020,Christmas\n07/04/2021,Independence\n")
    cal = EventCalendar.build(path)
    assert cal is not None
    assert set(cal.days) == {_day("2020-12-25"), _day("2021-07-04")}
    assert set(cal.series) == {None}


def test_calendar_of_dates_alone_and_of_dates_per_series(tmp_path: Path) -> None:
    path = tmp_path / "dates.csv"
    path.write_text("date\n2020-01-01\n2020-02-01\n")
    cal = EventCalendar.build(path)
    assert cal is not None
    assert cal.names == ("event", "event")
    per_series = pl.DataFrame({"store": ["a", "b"], "date": ["2020-01-01", "2020-01-02"]})
    cal = EventCalendar.build(per_series, series_id_column="store")
    assert cal is not None
    assert set(zip(cal.names, cal.series, strict=True)) == {("event", "a"), ("event", "b")}


def test_calendar_series_ids_written_as_floats_name_integer_series() -> None:
    """pandas writes an id column with blanks as floats: ``3.0`` must still be series ``3``."""
    frame = pl.DataFrame({"date": ["2020-01-01", "2020-01-02"], "event": ["A", "B"], "store": [3.0, None]})
    cal = EventCalendar.build(frame, series_id_column="store")
    assert cal is not None
    assert set(zip(cal.names, cal.series, strict=True)) == {("A", "3"), ("B", None)}


def test_calendar_series_the_training_data_lacks_are_noted(flights: pl.DataFrame) -> None:
    """A misspelt series id in the calendar is named at training, not silently never applied."""
    first = flights.get_column("series").unique().sort()[0]
    calendar = pl.DataFrame(
        {
            "date": ["2013-07-04", "2013-11-28", "2013-12-25"],
            "event": ["Fireworks", "Parade", "Fireworks"],
            "series": [first, "no such airport", "no such airport"],
        }
    )
    deployment = tsengine.train(
        flights,
        target="delayed",
        datetime_column="date",
        series_id_column="series",
        calendar=calendar,
        models=["seasonal_naive"],
    )
    note = deployment.metadata["training"]["calendar_note"]
    assert "'no such airport' (2)" in note
    assert repr(first) not in note
    assert note in facts(deployment.metadata).training.notes  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("csv", "needle"),
    [
        ("date,event\n2020-01-01,A\nnot a date,B\n", "row 2"),
        ("date,event\n2020-01-01,A\n2020-01-02,\n", "row 2"),
        ("date,event\n,A\n", "row 1"),
    ],
)
def test_bad_calendar_rows_are_named(tmp_path: Path, csv: str, needle: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(csv)
    with pytest.raises(ParameterError, match=needle):
        EventCalendar.build(path)


def test_missing_calendar_file_is_a_parameter_error(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="could not be read"):
        EventCalendar.build(tmp_path / "absent.csv")


@pytest.mark.parametrize("spec", ["XX", "US-ZZ"])
def test_unknown_country_or_subdivision(spec: str) -> None:
    with pytest.raises(ParameterError, match="COUNTRY-SUBDIV"):
        EventCalendar.build(holidays=spec)


def test_no_calendar_is_none() -> None:
    assert EventCalendar.build(None) is None


def test_round_trip_through_the_spec() -> None:
    frame = pl.DataFrame({"date": ["2020-01-03", "2020-01-05"], "event": ["A", "B"], "sid": [None, "s2"]})
    cal = EventCalendar.build(frame, holidays="US-CA", series_id_column="sid")
    spec = TimeSeriesSpec(
        datetime_column="date",
        target="y",
        time_step=TimeStep(unit="day", count=1),
        feature_derivation_window=(-14, 0),
        forecast_window=(1, 7),
        calendar=cal,
    )
    again = TimeSeriesSpec.from_dict(spec.to_dict())
    assert again == spec
    assert again.calendar == cal
    models = model_spec(spec)
    assert models.known_in_advance[-4:] == EVENT_COLUMNS
    assert EVENT_NAME in models.categorical
    assert model_spec(TimeSeriesSpec.from_dict({**spec.to_dict(), "calendar": None})).known_in_advance == ()


def test_holidays_generated_for_the_requested_years() -> None:
    cal = EventCalendar.build(holidays="US")
    assert cal is not None
    table = cal.table(_day("2030-01-01"), _day("2030-12-31"))
    assert _day("2030-12-25") in table.get_column("day").to_list()
    assert table.get_column("name").str.contains("Christmas").any()


# ---------------------------------------------------------------- features vs a reference


def _reference(
    events: list[tuple[int, str, str | None]], step: TimeStep, sid: str, idx: int
) -> tuple[float, str | None, float, float]:
    """One row's features the slow, obvious way."""
    from tsengine.grid_calendar import grid_timestamps

    start = (grid_timestamps(step, np.array([idx]))[0].date() - EPOCH).days
    end = max((grid_timestamps(step, np.array([idx + 1]))[0].date() - EPOCH).days, start + 1)
    clip = clip_days(step)
    mine = [(d, n, s) for d, n, s in events if s is None or s == sid]
    inside = sorted((d, n, s is None) for d, n, s in mine if start <= d < end)
    count = float(len(inside))
    name = None
    if inside:
        own = [(d, n) for d, n, shared in inside if not shared]
        pool = own or [(d, n) for d, n, _ in inside]
        first_day = min(d for d, _ in pool)
        name = "; ".join(sorted({n for d, n in pool if d == first_day}))
    to = min([d - start for d, _, _ in mine if d >= start] + [clip])
    since = min([start - d for d, _, _ in mine if d <= start] + [clip])
    return count, name, float(to), float(since)


STEPS = [
    TimeStep(unit="day", count=1),
    TimeStep(unit="hour", count=1),
    TimeStep(unit="week", count=1),
    TimeStep(unit="month", count=1),
]
BASE = {"day": _day("2021-01-01"), "hour": _day("2021-01-01") * 24, "week": _day("2021-01-01") // 7}
BASE["month"] = 2021 * 12


@settings(max_examples=60, deadline=None)
@given(
    step_at=st.integers(0, len(STEPS) - 1),
    events=st.lists(
        st.tuples(
            st.integers(-40, 400), st.sampled_from(["A", "B", "C"]), st.sampled_from([None, None, "s1", "s2"])
        ),
        max_size=12,
        unique=True,
    ),
    rows=st.lists(
        st.tuples(st.sampled_from(["s1", "s2", "s3"]), st.integers(0, 60)), min_size=1, max_size=25
    ),
)
def test_features_equal_the_reference(
    step_at: int, events: list[tuple[int, str, str | None]], rows: list[tuple[str, int]]
) -> None:
    step = STEPS[step_at]
    first = _day("2021-01-01")
    shifted = [(first + d, n, s) for d, n, s in events]
    cal = EventCalendar(
        days=tuple(d for d, _, _ in shifted),
        names=tuple(n for _, n, _ in shifted),
        series=tuple(s for _, _, s in shifted),
    )
    idx = np.array([BASE[step.unit] + i for _, i in rows], dtype=np.int64)
    sids = pl.Series([s for s, _ in rows])
    got = pl.DataFrame(event_columns(cal, step, sids, idx))
    for k, (sid, i) in enumerate(zip(sids.to_list(), idx.tolist(), strict=True)):
        count, name, to, since = _reference(shifted, step, sid, i)
        row = got.row(k, named=True)
        assert row[EVENT] == count, (sid, i)
        assert row[DAYS_TO] == to, (sid, i)
        assert row[DAYS_SINCE] == since, (sid, i)
        if count:
            assert row[EVENT_NAME] is not None
            assert set(row[EVENT_NAME].split("; ")) <= {"A", "B", "C"}
        else:
            assert row[EVENT_NAME] is None


def test_local_dates_of_data_written_with_an_offset() -> None:
    """Hourly data written at +10:00: 2020-12-24 14:00 UTC is Christmas Day, 00:00 local."""
    cal = EventCalendar(days=(_day("2020-12-25"),), names=("Christmas",), series=(None,))
    step = TimeStep(unit="hour", count=1)
    idx = np.array([_day("2020-12-24") * 24 + 13, _day("2020-12-24") * 24 + 14])
    sids = pl.Series(["a", "a"])
    local = pl.DataFrame(event_columns(cal, step, sids, idx, offset_minutes=600))
    assert local.get_column(EVENT).to_list() == [0.0, 1.0]
    utc = pl.DataFrame(event_columns(cal, step, sids, idx))
    assert utc.get_column(EVENT).to_list() == [0.0, 0.0]
    frame = pl.DataFrame({"__sid": sids, "__i": idx})
    assert with_events(frame, cal, step, "+10:00").get_column(EVENT).to_list() == [0.0, 1.0]


def test_series_events_prefer_their_own_name_and_do_not_leak() -> None:
    cal = EventCalendar(
        days=(_day("2021-01-05"), _day("2021-01-05")), names=("Fair", "Sale"), series=(None, "s2")
    )
    step = TimeStep(unit="day", count=1)
    idx = np.array([_day("2021-01-05")] * 3)
    got = pl.DataFrame(event_columns(cal, step, pl.Series(["s1", "s2", "s3"]), idx))
    assert got.get_column(EVENT).to_list() == [1.0, 2.0, 1.0]
    assert got.get_column(EVENT_NAME).to_list() == ["Fair", "Sale", "Fair"]


# ---------------------------------------------------------------- selection weights


def test_event_weights_give_the_share_and_keep_the_total() -> None:
    rows = pl.DataFrame({EVENT: [1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]})
    w = event_weights(rows, share=0.05).to_numpy()
    assert math.isclose(w.sum(), rows.height)
    assert math.isclose(w[[0, 3]].sum() / w.sum(), 0.05)
    assert (event_weights(rows.with_columns(pl.lit(0.0).alias(EVENT)), 0.05).to_numpy() == 1).all()


def _backtest(name: str, errors: np.ndarray, events: np.ndarray) -> Backtest:
    n = errors.size
    return Backtest(
        name,
        pl.DataFrame(
            {
                "__sid": [f"s{k % 10}" for k in range(n)],
                "__fp": [k // 10 for k in range(n)],
                "__d": [1] * n,
                "__i": list(range(n)),
                "y": [10.0] * n,
                "yhat": (10.0 + errors).tolist(),
                "scale": [1.0] * n,
                "mase_scale": [1.0] * n,
                EVENT: events.astype(float).tolist(),
            }
        ),
    )


def test_weighting_stops_a_few_event_days_deciding_the_ranking() -> None:
    """Model ``steady`` is better on ordinary days, ``holiday`` on the over-represented event days."""
    rng = np.random.default_rng(0)
    n = 400
    events = np.zeros(n, dtype=bool)
    events[rng.choice(n, 80, replace=False)] = True  # 20 % of the backtest, 2 % of the year
    steady = np.where(events, 3.0, 0.5) * rng.uniform(0.8, 1.2, n)
    holiday = np.where(events, 0.5, 0.8) * rng.uniform(0.8, 1.2, n)
    plain = [_backtest("steady", steady, events), _backtest("holiday", holiday, events)]
    assert rank(plain)[0]["model"] == "holiday"
    weighted = []
    for b in plain:
        scored = b.rows
        weighted.append(Backtest(b.model, scored.with_columns(event_weights(scored, share=0.02))))
    board = rank(weighted)
    assert board[0]["model"] == "steady"
    assert board[0]["mase_events"] > board[1]["mase_events"]
    assert board[0]["mase_ordinary"] < board[1]["mase_ordinary"]
    assert choose(weighted, board, ensemble="ensemble").model == "steady"


def test_event_flags_are_rare_zero_one_columns() -> None:
    n = 100
    holiday = [1.0 if k % 25 == 0 else 0.0 for k in range(n)]  # 4 %
    canon = pl.DataFrame(
        {
            Y: [1.0] * (n - 1) + [None],
            "holiday": holiday,
            "weekend": [1.0 if k % 7 in (5, 6) else 0.0 for k in range(n)],  # 28 %: ordinary
            "promo": [None if k % 3 else float(k % 9 == 0) for k in range(n)],  # nulls ignored
            "never": [0.0] * n,
            "price": [1.0 + (k % 50 == 0) for k in range(n)],  # 1 and 2: not a flag
            "store": ["a"] * n,
        }
    )
    columns = ["holiday", "weekend", "promo", "never", "price", "store", "absent"]
    assert event_flags(canon, columns) == ("holiday",)
    assert event_flags(canon, ["promo"]) == ()  # set on a third of its known rows
    assert event_flags(canon.with_columns(pl.lit(None, pl.Float64).alias(Y)), columns) == ()


def test_event_flags_weight_the_backtest_like_a_calendar() -> None:
    """Flag rows get their long-run share whether the events come from a column or a calendar."""
    rng = np.random.default_rng(1)
    n = 400
    events = np.zeros(n, dtype=bool)
    events[rng.choice(n, 80, replace=False)] = True
    canon = pl.DataFrame(
        {
            SID: [f"s{k % 10}" for k in range(n)],
            IDX: list(range(n)),
            Y: [10.0] * n,
            "holiday": np.r_[events[:200], np.zeros(n - 200, dtype=bool)].astype(float),
        }
    )
    plain = _backtest("m", rng.uniform(0, 1, n), events).rows.drop(EVENT)
    (flagged,) = weigh_events([Backtest("m", plain)], canon, ("holiday",))
    long_run = float(canon.get_column("holiday").mean())  # type: ignore[arg-type]
    weight = flagged.rows.get_column("weight").to_numpy()
    on = flagged.rows.get_column(EVENT).to_numpy() > 0
    assert math.isclose(weight[on].sum() / weight.sum(), long_run)
    calendar = canon.rename({"holiday": EVENT})
    (same,) = weigh_events([Backtest("m", plain)], calendar)
    assert np.allclose(same.rows.get_column("weight").to_numpy(), weight)


def test_a_posted_holiday_flag_weights_training(flights: pl.DataFrame) -> None:
    deployment = tsengine.train(
        flights,
        target="delayed",
        datetime_column="date",
        series_id_column="series",
        known_in_advance=["scheduled", "holiday"],
        models=["seasonal_naive", "ets"],
    )
    assert deployment.metadata["training"]["event_flags"] == ["holiday"]
    board = deployment.metadata["leaderboard"]
    assert all(row["mase_events"] != row["mase_ordinary"] for row in board)


def test_an_event_name_column_blank_on_ordinary_days_is_posted_as_is(flights: pl.DataFrame) -> None:
    """A KIA event name, blank on most days (as in M5's calendar): posted blanks are "no event"."""
    named = flights.with_columns(
        pl.when(pl.col("holiday") == 1).then(pl.lit("Federal holiday")).alias("event_name")
    ).drop("holiday")
    deployment = tsengine.train(
        named,
        target="delayed",
        datetime_column="date",
        series_id_column="series",
        known_in_advance=["scheduled", "event_name"],
        models=["lightgbm"],
    )
    assert deployment.spec.kia_blank == ("event_name",)
    assert deployment.info()["known_in_advance_blank"] == ["event_name"]
    assert deployment.spec.kia_fill["event_name"] is None  # blank is the most common level
    request = named.with_columns(
        pl.when(pl.col("date") > "2013-12-01").then(None).otherwise(pl.col("delayed")).alias("delayed")
    )
    result = deployment.predict_result(request, PredictOptions(forecast_point="2013-12-01"))  # type: ignore[arg-type]
    assert result.frame.height == 2 * 28
    assert result.warnings == ()  # nothing imputed: the posted blanks are values
    with pytest.raises(KnownInAdvanceError, match="'event_name' missing on forecast rows"):
        deployment.predict(request.filter(pl.col("date") <= "2013-12-10"), forecast_point="2013-12-01")


# ---------------------------------------------------------------- training and prediction


@pytest.fixture(scope="module")
def elec() -> pl.DataFrame:
    frame = pl.read_csv(Path(__file__).resolve().parents[2] / "fixtures" / "elecdaily.csv")
    return frame.select("date", "demand").with_columns(pl.col("date").cast(pl.String))


@pytest.fixture(scope="module")
def flights() -> pl.DataFrame:
    """Two airports of the daily flights fixture: US federal holidays as a posted 0/1 column."""
    frame = pl.read_csv(Path(__file__).resolve().parents[2] / "fixtures" / "flights_daily.csv")
    return frame.filter(pl.col("series").is_in(["EWR-UA", "JFK-B6"]))


@pytest.fixture(scope="module")
def holiday_deployment(elec: pl.DataFrame) -> tsengine.Deployment:
    return tsengine.train(
        elec,
        target="demand",
        datetime_column="date",
        holidays="AU-VIC",
        models=["lightgbm", "arima", "seasonal_naive"],
    )


def test_training_stores_the_calendar_and_reports_event_scores(
    holiday_deployment: tsengine.Deployment,
) -> None:
    assert holiday_deployment.spec.calendar == EventCalendar(holidays="AU-VIC")
    assert holiday_deployment.spec.known_in_advance == ()  # clients post nothing new
    board = holiday_deployment.metadata["leaderboard"]
    assert all("mase_events" in row and "mase_ordinary" in row for row in board)
    assert holiday_deployment.info()["calendar"]["holidays"] == "AU-VIC"


def test_registry_round_trip_predicts_the_same(
    holiday_deployment: tsengine.Deployment, elec: pl.DataFrame, tmp_path: Path
) -> None:
    registry = tsengine.Registry(tmp_path)
    registry.save(holiday_deployment)
    loaded = registry.load(holiday_deployment.id)
    history = elec.filter(pl.col("date") <= "2014-12-20")
    a = holiday_deployment.predict(history)
    b = loaded.predict(history)
    assert a.equals(b)


def test_forecast_rows_read_the_holidays(holiday_deployment: tsengine.Deployment, elec: pl.DataFrame) -> None:
    """Generated forecast rows over Christmas get event features: the calendar changes the forecast there."""
    history = elec.filter(pl.col("date") <= "2014-12-20")
    with_cal = holiday_deployment.predict(history)
    assert with_cal.get_column("timestamp").dt.date().is_in([dt.date(2014, 12, 25)]).any()
    moved = EventCalendar(days=(_day("2014-12-22"),), names=("Moved",), series=(None,))
    import dataclasses

    other = dataclasses.replace(
        holiday_deployment, spec=dataclasses.replace(holiday_deployment.spec, calendar=moved)
    )
    without = other.predict(history)
    christmas = pl.col("timestamp").dt.date() == dt.date(2014, 12, 25)
    assert with_cal.filter(christmas)["prediction"][0] != without.filter(christmas)["prediction"][0]


@pytest.mark.parametrize("kind", ["lightgbm", "arima", "linear"])
def test_event_regressors_are_explained_and_add_up(
    kind: str, holiday_deployment: tsengine.Deployment, elec: pl.DataFrame
) -> None:
    """Every model that takes regressors reads the events, and its contributions sum to its prediction."""
    options = PredictOptions(
        start=dt.datetime(2014, 12, 1), end=dt.datetime(2014, 12, 31), max_explanations=3
    )
    window = holiday_deployment.window(elec, options)
    spec = model_spec(holiday_deployment.spec)
    step = spec.time_step
    history = with_events(window.history, spec.calendar, step)
    query = with_events(window.query, spec.calendar, step)
    model = MODELS[kind].fit(history, spec)
    found = model.explain(history, query, spec)
    assert found is not None
    np.testing.assert_allclose(found.prediction, model.predict(history, query, spec), rtol=1e-9, atol=1e-9)
    total = found.base + np.nansum(found.strengths, axis=1)
    np.testing.assert_allclose(total, found.prediction, rtol=1e-7, atol=1e-7)
    assert {EVENT, DAYS_TO, DAYS_SINCE} <= set(found.names), found.names


def test_feature_named_like_an_event_column_is_refused(elec: pl.DataFrame) -> None:
    frame = elec.with_columns(pl.lit(0.0).alias(EVENT))
    with pytest.raises(ParameterError, match="calendar"):
        tsengine.train(
            frame,
            target="demand",
            datetime_column="date",
            known_in_advance=[EVENT],
            holidays="AU",
            models=["lightgbm"],
        )


def test_lightgbm_codes_only_event_names_seen_on_three_dates(elec: pl.DataFrame) -> None:
    """A name on one date of the history is unknown to the trees; a recurring one is coded."""
    calendar = pl.DataFrame(
        {
            "date": ["2014-03-03", "2014-06-02", "2014-09-01", "2014-11-03", "2014-07-15"],
            "event": ["Sale", "Sale", "Sale", "Sale", "Gala"],
        }
    )
    deployment = tsengine.train(
        elec, target="demand", datetime_column="date", calendar=calendar, models=["lightgbm"]
    )
    assert deployment.model.kind == "lightgbm"
    assert list(deployment.model.maps.maps[EVENT_NAME]) == ["Sale"]  # type: ignore[attr-defined]


def test_a_calendar_unpickled_in_another_process_hashes_as_one_built_there(tmp_path: Path) -> None:
    """The hash is computed once per calendar; pickling rebuilds it (string hashes differ per process)."""
    import pickle  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    calendar = EventCalendar(days=(1, 2), names=("a", "b"), series=(None, "x"), holidays="US")
    path = tmp_path / "calendar.pkl"
    path.write_bytes(pickle.dumps(calendar))
    code = (
        "import pickle, sys; from tsengine.events import EventCalendar as C; "
        "c = pickle.loads(open(sys.argv[1], 'rb').read()); "
        "f = C(days=(1, 2), names=('a', 'b'), series=(None, 'x'), holidays='US'); "
        "print(c == f and hash(c) == hash(f))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
