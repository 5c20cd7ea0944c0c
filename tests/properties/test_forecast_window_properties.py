"""The invariants of ``spec/timeseries.md`` as hypothesis properties.

Each example is a random multiseries frame: 1-6 series (string, integer or no
ids), a step among 15 minutes, hours, days, weeks, months (first, 15th or last
day), quarters and years, random gaps that keep the data regular, a random
datetime format from the supported list, and a shuffled row order.  The
deployment is a seasonal naive model built directly (no training), so an
example costs milliseconds; one property reuses the session's LightGBM
deployment.  Expected timestamps come from plain ``datetime`` arithmetic here,
never from tsengine's own grid code.
"""

from __future__ import annotations

import calendar
import datetime as dt
import random
import re
from dataclasses import dataclass, field
from typing import Any

import holidays
import numpy as np
import polars as pl
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st
from polars.testing import assert_series_equal

import tsengine
from tsengine.deployment import Deployment
from tsengine.errors import (
    DatetimeParseError,
    DuplicateRowError,
    InsufficientHistoryError,
    MissingColumnError,
    OffGridError,
    ParameterError,
    TsEngineError,
    ValidationError,
)
from tsengine.models import SeasonalNaiveModel
from tsengine.spec import TimeSeriesSpec
from tsengine.timestep import MONTH_END, TimeStep, infer_time_step, parse_datetimes
from tsengine.validate import SID, TIME

# --- steps, formats and plain datetime arithmetic --------------------------------------


@dataclass(frozen=True)
class StepKind:
    name: str
    unit: str
    count: int = 1
    anchor: int = 1  # calendar steps: day of month or MONTH_END
    weekmask: str = ""  # business days: the weekdays on the grid, Monday first
    session: tuple[int, int] = (0, 0)  # business hours: (first minute of the day, steps per day)
    holidays: tuple[int, ...] = ()  # business days closed on their weekday: days since 1970

    @property
    def busdays(self) -> dict[str, Any]:
        """numpy's busday arguments for this grid's days."""
        return {"weekmask": self.weekmask, "holidays": np.array(self.holidays, dtype="datetime64[D]")}

    @property
    def months(self) -> int:
        return {"month": 1, "quarter": 3, "year": 12}.get(self.unit, 0) * self.count

    @property
    def delta(self) -> dt.timedelta:
        seconds = {"minute": 60, "hour": 3600, "day": 86400, "week": 604800}[self.unit]
        return dt.timedelta(seconds=seconds * self.count)


NYSE_HOLIDAYS = tuple(
    sorted(
        (d - dt.date(1970, 1, 1)).days
        for d in holidays.financial_holidays("NYSE", years=range(1985, 2046))
        if d.weekday() < 5
    )
)
STEPS = {
    s.name: s
    for s in (
        StepKind("15min", "minute", 15),
        StepKind("hour", "hour"),
        StepKind("day", "day"),
        StepKind("business-day", "day", weekmask="1111100"),
        StepKind("business-hours", "minute", 30, weekmask="1111100", session=(9 * 60, 16)),
        StepKind("weekday-hours", "hour", weekmask="1111100", session=(0, 24)),  # round the clock
        StepKind("exchange-days", "day", weekmask="1111100", holidays=NYSE_HOLIDAYS),
        StepKind("week", "week"),
        StepKind("month-start", "month"),
        StepKind("month-15", "month", anchor=15),
        StepKind("month-end", "month", anchor=MONTH_END),
        StepKind("quarter", "quarter"),
        StepKind("year", "year"),
    )
}


def plus(ts: dt.datetime, kind: StepKind, k: int) -> dt.datetime:
    """``ts + k·step`` by the calendar, independent of tsengine."""
    if kind.session[1]:  # slot by slot through the session, then on to the next business day's
        first, per_day = kind.session
        slot = (dt.timedelta(hours=ts.hour, minutes=ts.minute - first)) // kind.delta + k
        days, slot = divmod(slot, per_day)
        day = np.busday_offset(ts.date(), days, roll="raise", **kind.busdays).astype(dt.date)
        return dt.datetime.combine(day, dt.time()) + dt.timedelta(minutes=first) + slot * kind.delta
    if kind.weekmask:  # the k-th business day from ts (a business day itself)
        day = np.busday_offset(ts.date(), k, roll="raise", **kind.busdays).astype(dt.date)
        return dt.datetime.combine(day, ts.time())
    if not kind.months:
        return ts + k * kind.delta
    y, m = divmod(ts.month - 1 + k * kind.months, 12)
    y, m = ts.year + y, m + 1
    last = calendar.monthrange(y, m)[1]
    day = last if kind.anchor == MONTH_END else min(kind.anchor, last)
    return dt.datetime(y, m, day, ts.hour, ts.minute, ts.second, ts.microsecond)


def time_step(kind: StepKind, base: dt.datetime) -> TimeStep:
    """The grid of ``base + k·step`` written as tsengine's TimeStep (the spec's input)."""
    if kind.months:
        months = base.year * 12 + base.month - 1
        return TimeStep(kind.unit, count=kind.count, phase=months % kind.months, anchor_day=kind.anchor)  # type: ignore[arg-type]
    micros = int(kind.delta.total_seconds()) * 1_000_000
    epoch = (base - dt.datetime(1970, 1, 1)) // dt.timedelta(microseconds=1)
    first, per_day = kind.session
    return TimeStep(
        kind.unit,  # type: ignore[arg-type]
        count=kind.count,
        phase=epoch % micros,
        weekmask=kind.weekmask,
        session_start_us=first * 60_000_000 if per_day else 0,
        session_steps=per_day if per_day * micros < 86_400_000_000 else 0,  # else round the clock
        holidays=kind.holidays,
    )


@dataclass(frozen=True)
class Fmt:
    python: str  # strftime pattern used to write values (applied to local time)
    chrono: str  # the pattern tsengine records
    offset: dt.timedelta | None = None  # local = UTC + offset

    @property
    def utc_offset(self) -> str | None:
        if self.offset is None:
            return None
        minutes = int(self.offset.total_seconds() // 60)
        sign = "+" if minutes >= 0 else "-"
        return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"

    def write(self, ts: dt.datetime) -> str:
        return (ts + (self.offset or dt.timedelta())).strftime(self.python)


DATE_FORMATS = [
    Fmt("%Y-%m-%d", "%Y-%m-%d"),
    Fmt("%m/%d/%Y", "%m/%d/%Y"),
    Fmt("%d/%m/%Y", "%d/%m/%Y"),
    Fmt("%Y/%m/%d", "%Y/%m/%d"),
    Fmt("%d.%m.%Y", "%d.%m.%Y"),
    Fmt("%m-%d-%Y", "%m-%d-%Y"),
    Fmt("%d-%m-%Y", "%d-%m-%Y"),
    Fmt("%Y%m%d", "%Y%m%d"),
    Fmt("%d %b %Y", "%d %b %Y"),
    Fmt("%b %d %Y", "%b %d %Y"),
    Fmt("%d-%b-%Y", "%d-%b-%Y"),
    Fmt("%m/%d/%y", "%m/%d/%y"),
    Fmt("%d/%m/%y", "%d/%m/%y"),
]
MONTH_FORMATS = [Fmt("%Y-%m", "%Y-%m"), Fmt("%Y/%m", "%Y/%m")]
TIME_FORMATS = [
    Fmt("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S"),
    Fmt("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S"),
    Fmt("%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M"),
    Fmt("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%SZ"),
    Fmt("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%S%.fZ"),
    Fmt("%Y-%m-%dT%H:%MZ", "%Y-%m-%dT%H:%MZ"),
    Fmt("%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M:%S"),
    Fmt("%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M"),
    Fmt("%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M:%S"),
    Fmt("%d.%m.%Y %H:%M", "%d.%m.%Y %H:%M"),
    Fmt("%m/%d/%Y %I:%M %p", "%m/%d/%Y %I:%M %p"),
    Fmt("%Y-%m-%dT%H:%M:%S+02:00", "%Y-%m-%dT%H:%M:%S%:z", dt.timedelta(hours=2)),
    Fmt("%Y-%m-%d %H:%M:%S-0530", "%Y-%m-%d %H:%M:%S%z", -dt.timedelta(hours=5, minutes=30)),
]


def formats_for(kind: StepKind, base: dt.datetime) -> list[Fmt]:
    if kind.unit in {"minute", "hour"}:
        return TIME_FORMATS
    out = list(DATE_FORMATS)
    if kind.months and kind.anchor == 1:
        out += MONTH_FORMATS
        if kind.unit == "year" and base.month == 1:
            out.append(Fmt("%Y", "%Y"))
    return out


# --- a random case ---------------------------------------------------------------------


@dataclass
class Case:
    """A deployment and a posted frame, with everything the oracles need."""

    kind: StepKind
    fmt: Fmt
    deployment: Deployment
    frame: pl.DataFrame  # history rows, shuffled; column ``tag`` is the row's identity
    base: dt.datetime
    end: int  # grid position (k) of the latest history row: the inferred FP
    observed: dict[Any, dict[int, float | None]] = field(default_factory=dict)  # series → k → target
    seed: int = 0
    params: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:  # what hypothesis prints for a failing example: a runnable pin
        return f"pin({', '.join(f'{k}={v!r}' for k, v in self.params.items())})"

    @property
    def spec(self) -> TimeSeriesSpec:
        return self.deployment.spec

    @property
    def series_col(self) -> str | None:
        return self.spec.series_id_column

    def at(self, k: int) -> dt.datetime:
        return plus(self.base, self.kind, k)

    def rows(self, series: Any, ks: list[int], values: list[float | None], tags: list[int]) -> pl.DataFrame:
        data: dict[str, list[Any]] = {
            "when": [self.fmt.write(self.at(k)) for k in ks],
            "value": values,
            "tag": tags,
        }
        schema: dict[str, Any] = {"when": pl.String, "value": pl.Float64, "tag": pl.Int64}
        if self.series_col:
            data = {self.series_col: [series] * len(ks), **data}
            schema = {self.series_col: self.frame.schema[self.series_col], **schema}
        return pl.DataFrame(data, schema=schema)

    def forecast_rows(self, *, rng: random.Random, targets: bool = False) -> pl.DataFrame:
        """Posted forecast rows for every series, with negative tags.

        Targets are empty, as clients post them; with ``targets`` some carry junk
        values, which must be ignored when the forecast point is given (an
        inferred one would move to the latest row with a target).
        """
        b, c = self.spec.forecast_window
        parts = [
            self.rows(
                s,
                list(range(self.end + b, self.end + c + 1)),
                [rng.choice([None, 1e9, -3.0]) if targets else None for _ in range(b, c + 1)],
                [-(1 + n * 100 + d) for d in range(b, c + 1)],
            )
            for n, s in enumerate(self.observed)
        ]
        return pl.concat(parts).sample(fraction=1.0, shuffle=True, seed=rng.randrange(2**32))


def make_case(
    *,
    step: str,
    fmt: int,
    n_series: int,
    ids: str,
    lengths: tuple[int, ...],
    fdw: int,
    fw: tuple[int, int],
    year: int,
    seed: int,
) -> Case:
    """Build a case from a few plain numbers (``@example`` pins call this directly)."""
    kind = STEPS[step]
    rng = random.Random(seed)
    base = dt.datetime(year, 1 + seed % 12, 1)
    if kind.months:
        base = plus(dt.datetime(base.year, base.month, 1), kind, 0)
    elif kind.unit in {"minute", "hour"}:
        base += dt.timedelta(hours=seed % 24)
    else:
        base += dt.timedelta(days=seed % 28)
    if kind.weekmask:
        base = dt.datetime.combine(
            np.busday_offset(base.date(), 0, roll="forward", **kind.busdays).astype(dt.date),
            base.time(),
        )
    if kind.session[1]:  # a slot of the session
        first, per_day = kind.session
        base = (
            dt.datetime.combine(base.date(), dt.time())
            + dt.timedelta(minutes=first)
            + (seed % per_day) * kind.delta
        )
    formats = formats_for(kind, base)
    chosen = formats[fmt % len(formats)]
    names: list[Any] = (
        [None]
        if ids == "single"
        else rng.sample(range(-5, 1000), n_series)
        if ids == "int"
        else rng.sample(["A", "b-2", "JFK-B6", "ü ñ", "x y", "7", "store 12", "Z"], n_series)
    )
    end = max(lengths) + 3
    last_gap = min(2, fdw - 1)
    observed: dict[Any, dict[int, float | None]] = {}
    parts = []
    tag = 0
    for name, n in zip(names, lengths, strict=False):
        stop = end - rng.randint(0, last_gap) if name != names[0] else end
        ks = list(range(stop - n + 1, stop + 1))
        kept, dropped_prev = [], False
        # Interior gaps, never two in a row, and the first two rows kept (one step
        # is seen): the data stays regular and its step recoverable.
        for i, k in enumerate(ks):
            if 1 < i < len(ks) - 1 and not dropped_prev and rng.random() < 0.2:
                dropped_prev = True
                continue
            dropped_prev = False
            kept.append(k)
        values: list[float | None] = [
            None if 0 < i < len(kept) - 1 and rng.random() < 0.1 else round(rng.uniform(-50, 500), 3)
            for i, _ in enumerate(kept)
        ]
        observed[name] = dict(zip(kept, values, strict=True))
        parts.append((name, kept, values, list(range(tag, tag + len(kept)))))
        tag += len(kept)
    series_col = None if ids == "single" else "sid"
    spec = TimeSeriesSpec(
        datetime_column="when",
        target="value",
        series_id_column=series_col,
        time_step=time_step(kind, base),
        feature_derivation_window=(-fdw, 0),
        forecast_window=fw,
        datetime_format=chosen.chrono,
        min_history=1,
        series_id_type="int" if ids == "int" else "str",
        utc_offset=chosen.utc_offset,
    )
    deployment = Deployment(id="prop", spec=spec, model=SeasonalNaiveModel.fit(pl.DataFrame(), spec))
    empty_schema: dict[str, Any] = {"when": pl.String, "value": pl.Float64, "tag": pl.Int64}
    if series_col:
        empty_schema = {series_col: pl.Int64 if ids == "int" else pl.String, **empty_schema}
    params = {"step": step, "fmt": fmt, "n_series": n_series, "ids": ids, "lengths": lengths}
    params |= {"fdw": fdw, "fw": fw, "year": year, "seed": seed}
    case = Case(
        kind, chosen, deployment, pl.DataFrame(schema=empty_schema), base, end, observed, seed, params
    )
    frame = pl.concat([case.rows(*p) for p in parts])
    case.frame = frame.sample(fraction=1.0, shuffle=True, seed=seed)
    return case


@st.composite
def cases(draw: st.DrawFn, *, max_series: int = 6) -> Case:
    ids = draw(st.sampled_from(["str", "int", "single"]))
    n_series = 1 if ids == "single" else draw(st.integers(1, max_series))
    fdw = draw(st.integers(2, 10))
    b = draw(st.integers(1, 3))
    c = draw(st.integers(b, b + 3))
    return make_case(
        step=draw(st.sampled_from(sorted(STEPS))),
        fmt=draw(st.integers(0, 50)),
        n_series=n_series,
        ids=ids,
        lengths=tuple(draw(st.lists(st.integers(1, 14), min_size=n_series, max_size=n_series))),
        fdw=fdw,
        fw=(b, c),
        year=draw(st.integers(1990, 2035)),
        seed=draw(st.integers(0, 2**16)),
    )


def pin(**overrides: Any) -> Case:
    options: dict[str, Any] = {
        "step": "day",
        "fmt": 0,
        "n_series": 1,
        "ids": "single",
        "lengths": (1,),
        "fdw": 3,
        "fw": (1, 1),
        "year": 2018,
        "seed": 0,
    }
    options.update(overrides)
    return make_case(**options)


ONE_ROW = pin()
MONTH_END_INTS = pin(step="month-end", ids="int", n_series=3, lengths=(5, 1, 9), fw=(2, 5), fdw=6, seed=1)
OFFSET_HOURS = pin(step="hour", fmt=11, ids="str", n_series=2, lengths=(6, 6), fw=(1, 3), seed=5)
LEAP_QUARTERS = pin(
    step="quarter", fmt=0, ids="str", n_series=2, lengths=(8, 3), fdw=4, fw=(1, 4), year=2019, seed=2
)
YEAR_ONLY = pin(step="year", fmt=15, ids="str", n_series=1, lengths=(4,), year=2001, seed=12)


def _predict(case: Case, frame: pl.DataFrame, **options: Any) -> pl.DataFrame:
    return case.deployment.predict(frame, **options)


def _by_key(out: pl.DataFrame) -> pl.DataFrame:
    return out.sort("seriesId", "forecastPoint", "forecastDistance", nulls_last=True)


# --- forecast mode ---------------------------------------------------------------------


@given(cases())
@example(ONE_ROW)
@example(MONTH_END_INTS)
@example(OFFSET_HOURS)
@example(LEAP_QUARTERS)
@example(YEAR_ONLY)
def test_forecast_mode_returns_series_times_horizon_rows_at_fp_plus_d_steps(case: Case) -> None:
    out = _predict(case, case.frame)
    b, c = case.spec.forecast_window
    assert out.height == len(case.observed) * (c - b + 1)
    fp = case.at(case.end)
    assert (out["forecastPoint"] == fp).all()
    expected_ids = list(case.observed)
    first_seen = list(dict.fromkeys(case.frame[case.series_col].to_list())) if case.series_col else [None]
    assert out["seriesId"].to_list() == [s for s in first_seen for _ in range(b, c + 1)]
    assert sorted(map(str, expected_ids)) == sorted(map(str, first_seen))
    assert out["forecastDistance"].to_list() == list(range(b, c + 1)) * len(first_seen)
    assert out["timestamp"].to_list() == [case.at(case.end + d) for d in range(b, c + 1)] * len(first_seen)
    assert all(out["timestamp"] > out["forecastPoint"])
    assert out["rowId"].to_list() == list(range(case.frame.height, case.frame.height + out.height))


@given(cases(), st.randoms(use_true_random=False))
@example(ONE_ROW, random.Random(0))
@example(MONTH_END_INTS, random.Random(1))
@example(OFFSET_HOURS, random.Random(2))
def test_posted_forecast_rows_and_autoexpansion_give_identical_predictions(
    case: Case, rng: random.Random
) -> None:
    auto = _predict(case, case.frame)
    future = case.forecast_rows(rng=rng)
    posted = pl.concat([case.frame, future]).sample(fraction=1.0, shuffle=True, seed=rng.randrange(2**32))
    explicit = _predict(case, posted)
    assert _by_key(explicit).drop("rowId").equals(_by_key(auto).drop("rowId"))
    tags = posted["tag"].to_list()
    assert all(tags[r] < 0 for r in explicit["rowId"].to_list())  # each row is a posted forecast row


@given(cases(), st.randoms(use_true_random=False))
@example(MONTH_END_INTS, random.Random(1))
def test_targets_on_forecast_rows_are_ignored_at_a_given_forecast_point(
    case: Case, rng: random.Random
) -> None:
    fp = case.at(case.end)
    auto = _predict(case, case.frame, forecast_point=fp)
    future = case.forecast_rows(rng=rng, targets=True)
    posted = pl.concat([case.frame, future]).sample(fraction=1.0, shuffle=True, seed=rng.randrange(2**32))
    explicit = _predict(case, posted, forecast_point=fp)
    assert _by_key(explicit).drop("rowId").equals(_by_key(auto).drop("rowId"))
    tags = posted["tag"].to_list()
    assert all(tags[r] < 0 for r in explicit["rowId"].to_list())  # each row is a posted forecast row


@given(cases(), st.randoms(use_true_random=False))
@example(MONTH_END_INTS, random.Random(0))
def test_row_order_changes_no_prediction(case: Case, rng: random.Random) -> None:
    future = case.forecast_rows(rng=rng)
    half = future.sample(n=future.height // 2, seed=rng.randrange(2**32))
    ordered = pl.concat([case.frame.sort("tag"), half])
    reshuffled = ordered.sample(fraction=1.0, shuffle=True, seed=rng.randrange(2**32))
    first, second = _by_key(_predict(case, ordered)), _by_key(_predict(case, reshuffled))
    assert first.drop("rowId").equals(second.drop("rowId"))

    def tags_of(out: pl.DataFrame, frame: pl.DataFrame) -> list[int | None]:
        tags = frame["tag"].to_list()
        return [tags[r] if r < frame.height else None for r in out["rowId"].to_list()]

    assert tags_of(first, ordered) == tags_of(second, reshuffled)  # rowIds point at the same rows
    assert sum(t is not None for t in tags_of(first, ordered)) == half.height


@given(cases())
@example(MONTH_END_INTS)
@example(LEAP_QUARTERS)
def test_rows_older_than_the_fdw_change_no_prediction(case: Case) -> None:
    a = case.spec.fdw
    recent_tags = [
        t
        for t, when in zip(case.frame["tag"].to_list(), case.frame["when"].to_list(), strict=True)
        if _k_of(case, when) > case.end - a
    ]
    recent = case.frame.filter(pl.col("tag").is_in(recent_tags))
    full, cut = _predict(case, case.frame), _predict(case, recent)
    assert _by_key(full).drop("rowId").equals(_by_key(cut).drop("rowId"))


def _k_of(case: Case, text: str) -> int:
    lookup = {case.fmt.write(case.at(k)): k for k in range(case.end - 40, case.end + 40)}
    return lookup[text]


@given(cases())
@example(OFFSET_HOURS)
@example(YEAR_ONLY)
@example(pin(step="hour", fmt=12, ids="int", n_series=2, lengths=(3, 4), fw=(1, 4), seed=9))
def test_original_format_timestamp_reparses_to_timestamp(case: Case) -> None:
    rng = random.Random(case.seed)
    half = case.forecast_rows(rng=rng).sample(fraction=0.5, seed=case.seed)
    out = _predict(case, pl.concat([case.frame, half]))
    parsed, fmt = parse_datetimes(
        out["originalFormatTimestamp"], column="when", preferred_format=case.spec.datetime_format
    )
    assert fmt == case.spec.datetime_format
    assert parsed.to_list() == out["timestamp"].to_list()
    written = [case.fmt.write(t) for t in out["timestamp"].to_list()]
    if "%.f" not in fmt:  # chrono writes fractions its own way; the value still re-parses
        assert out["originalFormatTimestamp"].to_list() == written


# --- historical mode -------------------------------------------------------------------


@given(cases(), st.integers(-20, 20), st.integers(1, 25))
@example(MONTH_END_INTS, -6, 8)
@example(ONE_ROW, -3, 5)
def test_historical_mode_stays_in_range_and_fp_plus_d_is_the_timestamp(
    case: Case, lo: int, width: int
) -> None:
    start_k, end_k = case.end + lo, case.end + lo + width
    start, end = case.at(start_k), case.at(end_k)
    expected = _historical_oracle(case, start_k, end_k)
    if not expected:
        with pytest.raises(ValidationError, match=re.escape(start.isoformat())) as info:
            _predict(case, case.frame, start=start, end=end)
        assert info.value.status == 422
        return
    out = _predict(case, case.frame, start=start, end=end)
    assert all(start <= t < end for t in out["timestamp"].to_list())
    for fp, d, t in out.select("forecastPoint", "forecastDistance", "timestamp").iter_rows():
        assert plus(fp, case.kind, d) == t
    whens = case.frame["when"].to_list()
    series = case.frame[case.series_col].to_list() if case.series_col else [None] * case.frame.height
    assert all(0 <= r < case.frame.height for r in out["rowId"].to_list())
    got = {(series[r], whens[r], d) for r, d in out.select("rowId", "forecastDistance").iter_rows()}
    assert len(got) == out.height
    assert got == {(s, case.fmt.write(case.at(k)), d) for s, k, d in expected}
    assert out["seriesId"].to_list() == [series[r] for r in out["rowId"].to_list()]


def _historical_oracle(case: Case, start_k: int, end_k: int) -> set[tuple[Any, int, int]]:
    """(series, k, d) triples the spec says historical mode predicts, by brute force."""
    a, triples = case.spec.fdw, set()
    for name, rows in case.observed.items():
        for k in rows:
            if start_k <= k < end_k:
                for d in case.spec.distances:
                    fp = k - d
                    if any(rows.get(j) is not None for j in range(fp - a + 1, fp + 1)):
                        triples.add((name, k, d))
    return triples


def test_historical_mode_with_client_default_bounds_covers_every_row() -> None:
    case = MONTH_END_INTS
    out = _predict(
        case, case.frame, start="1900-01-01T00:00:00.000000Z", end="2262-04-11T23:47:16.854775+00:00"
    )
    expected = _historical_oracle(case, -10_000, 10_000)
    assert out.height == len(expected)


# --- inference on the generated grids --------------------------------------------------


@given(cases())
def test_time_step_inference_recovers_the_generating_step(case: Case) -> None:
    longest = max(len(rows) for rows in case.observed.values())
    # A business-day grid is inferred from four weeks of data (test_business_days.py); cases span two.
    assume(longest >= 4 and not case.kind.weekmask)
    parsed, fmt = parse_datetimes(
        case.frame["when"], column="when", preferred_format=case.spec.datetime_format
    )
    sid = (
        case.frame[case.series_col].cast(pl.String)
        if case.series_col
        else pl.repeat("", case.frame.height, eager=True)
    )
    frame = pl.DataFrame({TIME: parsed, SID: sid})
    assert infer_time_step(frame, ts_col=TIME, series_col=SID) == case.spec.time_step


@given(cases())
def test_training_on_the_generated_frame_infers_its_step_and_format(case: Case) -> None:
    longest = max(len(rows) for rows in case.observed.values())
    # Day-first columns whose days are all <= 12 read month-first without a training format.
    assume(
        longest >= 4
        and not case.kind.weekmask
        and case.fmt.chrono not in {"%d/%m/%Y", "%d/%m/%y", "%d-%m-%Y", "%d/%m/%Y %H:%M:%S"}
    )
    trained = tsengine.train(
        case.frame,
        target="value",
        datetime_column="when",
        series_id_column=case.series_col,
        models=["seasonal_naive"],
        feature_derivation_window=list(case.spec.feature_derivation_window),
        forecast_window=list(case.spec.forecast_window),
        allow_partial_history=True,
        backtests=1,
        interval_percentile=None,
    )
    assert trained.spec.time_step == case.spec.time_step
    assert trained.spec.datetime_format == case.spec.datetime_format
    assert_series_equal(
        _by_key(trained.predict(case.frame))["prediction"], _by_key(_predict(case, case.frame))["prediction"]
    )


# --- invalid input ---------------------------------------------------------------------

MUTATIONS = [
    "drop_datetime",
    "drop_target",
    "drop_series",
    "bad_datetime",
    "empty_datetime",
    "duplicate",
    "off_grid",
    "non_numeric_target",
    "empty_series_id",
    "empty_frame",
    "no_target_at_all",
    "fp_and_range",
    "start_not_before_end",
    "start_without_end",
    "unparseable_fp",
    "off_grid_fp",
    "fp_far_after_history",
]


def _expect(
    case: Case, mutation: str, row: int
) -> tuple[pl.DataFrame, dict[str, Any], type[TsEngineError], list[str]]:
    """Mutated input, options, the error type and the texts its message must contain."""
    frame, options = case.frame, {}
    r = row % frame.height
    when = frame["when"].to_list()
    col = case.series_col
    if mutation == "drop_datetime":
        return frame.drop("when"), options, MissingColumnError, ["'when'"]
    if mutation == "drop_target":
        return frame.drop("value"), options, MissingColumnError, ["'value'"]
    if mutation == "drop_series" and col:
        return frame.drop(col), options, MissingColumnError, [f"'{col}'"]
    if mutation == "bad_datetime":
        when[r] = "not a date"
        return (
            frame.with_columns(pl.Series("when", when)),
            options,
            DatetimeParseError,
            [f"row {r}", "'when'"],
        )
    if mutation == "empty_datetime":
        when[r] = "  "
        return (
            frame.with_columns(pl.Series("when", when)),
            options,
            DatetimeParseError,
            [f"rows {r}", "'when'"],
        )
    if mutation == "duplicate":
        dup = pl.concat([frame, frame[r]])
        return dup, options, DuplicateRowError, [f"rows {r}, {frame.height}", repr(when[r])]
    if mutation == "off_grid":
        k = _k_of(case, when[r])
        shifted = case.at(k) + (
            dt.timedelta(days=1) if case.kind.months or case.kind.unit == "week" else dt.timedelta(0)
        )
        if case.kind.unit in {"minute", "hour"} and "%M" in case.fmt.python:
            shifted = case.at(k) + dt.timedelta(minutes=5)
        if case.kind.weekmask:  # the Saturday after it: a day, but not a business day
            shifted = case.at(k) + dt.timedelta(days=6 - case.at(k).weekday())
        if shifted != case.at(k) and case.fmt.write(shifted) != when[r]:
            when[r] = case.fmt.write(shifted)
            # with a value: an empty row on a business grid's closed day is left out, not refused
            values = frame["value"].clone().scatter(r, 0.0) if frame["value"][r] is None else frame["value"]
            return (
                frame.with_columns(pl.Series("when", when), values),
                options,
                OffGridError,
                [f"row {r}: {when[r]!r}"],
            )
    if mutation == "non_numeric_target":
        values = frame["value"].cast(pl.String).to_list()
        values[r] = "many"
        return (
            frame.with_columns(pl.Series("value", values)),
            options,
            ValidationError,
            [f"row {r}: 'many'", "'value'"],
        )
    if mutation == "empty_series_id" and col:
        ids = frame[col].to_list()
        ids[r] = None
        mutated = frame.with_columns(pl.Series(col, ids, dtype=frame.schema[col]))
        return mutated, options, ValidationError, [f"'{col}'", f"rows {r}"]
    if mutation == "empty_frame":
        return frame.clear(), options, ValidationError, ["no rows"]
    if mutation == "no_target_at_all":
        return (
            frame.with_columns(pl.lit(None, pl.Float64).alias("value")),
            options,
            InsufficientHistoryError,
            ["'value'"],
        )
    if mutation == "fp_and_range":
        options = {"forecast_point": case.at(case.end), "start": case.at(0), "end": case.at(case.end)}
        return frame, options, ParameterError, ["forecastPoint", "predictionsStartDate"]
    if mutation == "start_not_before_end":
        options = {"start": case.at(case.end), "end": case.at(case.end - (row % 3))}
        return frame, options, ParameterError, ["predictionsStartDate", case.at(case.end).isoformat()]
    if mutation == "start_without_end":
        return frame, {"start": case.at(case.end)}, ParameterError, ["predictionsStartDate was given without"]
    if mutation == "unparseable_fp":
        return (
            frame,
            {"forecast_point": "the day after"},
            ParameterError,
            ["forecastPoint", "'the day after'"],
        )
    if mutation == "off_grid_fp":
        fp = case.at(case.end) + dt.timedelta(seconds=1)
        return frame, {"forecast_point": fp}, OffGridError, ["forecastPoint", fp.isoformat()]
    if mutation == "fp_far_after_history":
        fp = case.at(case.end + case.spec.fdw + row % 5)
        label = "series" if col else "the series"
        return frame, {"forecast_point": fp}, InsufficientHistoryError, [fp.isoformat(), label, "has 0"]
    return frame.drop("when"), options, MissingColumnError, ["'when'"]  # mutation not applicable: any error


@given(cases(), st.sampled_from(MUTATIONS), st.integers(0, 1000))
@example(ONE_ROW, "empty_frame", 0)
@example(ONE_ROW, "duplicate", 0)
@example(ONE_ROW, "bad_datetime", 0)
@example(MONTH_END_INTS, "off_grid", 3)
@example(MONTH_END_INTS, "empty_series_id", 2)
@example(OFFSET_HOURS, "off_grid", 1)
@example(LEAP_QUARTERS, "fp_far_after_history", 0)
def test_every_invalid_input_is_a_422_naming_the_problem(case: Case, mutation: str, row: int) -> None:
    frame, options, error, culprits = _expect(case, mutation, row)
    with pytest.raises(TsEngineError) as info:
        _predict(case, frame, **options)
    assert isinstance(info.value, error), f"{mutation}: {type(info.value).__name__}: {info.value.message}"
    assert info.value.status == 422
    for culprit in culprits:
        assert culprit in info.value.message, f"{mutation}: {culprit!r} not in {info.value.message!r}"


# --- the trained LightGBM deployment ---------------------------------------------------


@given(st.randoms(use_true_random=False), st.integers(0, 40))
def test_lightgbm_predictions_ignore_row_order_and_rows_older_than_the_fdw(
    small_deployment: tsengine.Deployment, small_flights: pl.DataFrame, rng: random.Random, older: int
) -> None:
    history = small_flights.filter(pl.col("date") <= "2013-12-20")
    expected = _by_key(small_deployment.predict(history, relax_known_in_advance=True))
    fdw_start = (dt.date(2013, 12, 20) - dt.timedelta(days=small_deployment.spec.fdw - 1)).isoformat()
    oldest = (dt.date.fromisoformat(fdw_start) - dt.timedelta(days=older)).isoformat()
    posted = history.filter(pl.col("date") >= oldest).sample(
        fraction=1.0, shuffle=True, seed=rng.randrange(2**32)
    )
    got = _by_key(small_deployment.predict(posted, relax_known_in_advance=True))
    assert got.drop("rowId").equals(expected.drop("rowId"))
