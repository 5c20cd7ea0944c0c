"""Oracle tests of the monitoring accuracy core.

Every metric is checked against a slow, obvious pure-Python computation over the
rows as dicts.  scikit-learn is not a dependency, so AUC is checked against a
brute-force count of (positive, negative) pairs, ties counting one half.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter, defaultdict
from typing import Any

import polars as pl
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tsengine.errors import MissingColumnError, ParameterError
from tsengine.monitoring import accuracy as acc

BASE = dt.datetime(2024, 3, 1)
SCHEMA: dict[str, pl.DataType] = {
    "created": pl.Float64(),
    "timestamp": pl.Datetime("us"),
    "series_id": pl.String(),
    "distance": pl.Int64(),
    "prediction": pl.Float64(),
    "low": pl.Float64(),
    "high": pl.Float64(),
    "actual": pl.Float64(),
}
SERIES = ["a", "b", "c", None]
# rounded so MAPE never divides by a subnormal and values tie often
VALUES = st.one_of(st.sampled_from([0.0, 1.0, -2.5]), st.floats(-1e3, 1e3).map(lambda x: round(x, 3)))
PROBS = st.one_of(st.sampled_from([0.0, 0.25, 0.5, 1.0]), st.floats(0.0, 1.0))


def frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=SCHEMA)


@st.composite
def joined_rows(draw: st.DrawFn, *, binary: bool = False, max_size: int = 40) -> list[dict[str, Any]]:
    """Joined rows; one actual per (series, timestamp), as the store would join them."""
    n = draw(st.integers(0, max_size))
    truth: dict[tuple[str | None, dt.datetime], float] = {}
    rows = []
    for _ in range(n):
        sid = draw(st.sampled_from(SERIES))
        hours = draw(st.one_of(st.none(), st.integers(0, 48)))
        ts = None if hours is None else BASE + dt.timedelta(hours=hours)
        actual = float(draw(st.integers(0, 1))) if binary else draw(VALUES)
        if ts is not None:
            actual = truth.setdefault((sid, ts), actual)
        low = draw(st.one_of(st.none(), VALUES))
        high = None if low is None else low + draw(st.sampled_from([0.0, 1.0, 50.0]))
        if draw(st.booleans()):
            high = None
        rows.append(
            {
                "created": (BASE - acc._EPOCH).total_seconds() + draw(st.integers(0, 48 * 3600)) + 0.25,
                "timestamp": ts,
                "series_id": sid,
                "distance": draw(st.one_of(st.none(), st.integers(1, 3))),
                "prediction": draw(PROBS if binary else VALUES),
                "low": low,
                "high": high,
                "actual": actual,
            }
        )
    return rows


# ---- slow references -------------------------------------------------------


def mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def ref_scales(rows: list[dict[str, Any]]) -> dict[str | None, float | None]:
    """Per series: mean |a_t - a_{t-1}| over its distinct timestamps in time order."""
    by_series: dict[str | None, dict[dt.datetime, float]] = defaultdict(dict)
    for r in rows:
        if r["timestamp"] is not None:
            by_series[r["series_id"]][r["timestamp"]] = r["actual"]
    out: dict[str | None, float | None] = {}
    for sid, points in by_series.items():
        values = [points[t] for t in sorted(points)]
        out[sid] = mean([abs(b - a) for a, b in zip(values, values[1:], strict=False)])
    return out


def ref_regression(rows: list[dict[str, Any]], scales: dict[str | None, float | None]) -> dict[str, Any]:
    if not rows:
        return dict.fromkeys(acc.REGRESSION_METRICS)
    errs = [r["prediction"] - r["actual"] for r in rows]
    mae = sum(abs(e) for e in errs) / len(errs)
    apes = [100 * abs(e) / abs(r["actual"]) for e, r in zip(errs, rows, strict=True) if r["actual"] != 0]
    # the group's scale: mean of the scales of the series present in it
    scale = mean([s for sid in {r["series_id"] for r in rows} if (s := scales.get(sid)) is not None])
    bounded = [r for r in rows if r["low"] is not None and r["high"] is not None]
    return {
        "RMSE": math.sqrt(sum(e * e for e in errs) / len(errs)),
        "MAE": mae,
        "MAPE": mean(apes),
        "MASE": mae / scale if scale else None,
        "Coverage": mean([float(r["low"] <= r["actual"] <= r["high"]) for r in bounded]),
    }


def ref_binary(rows: list[dict[str, Any]], threshold: float = 0.5) -> dict[str, Any]:
    if not rows:
        return dict.fromkeys(acc.BINARY_METRICS)
    eps = 1e-15
    losses = []
    for r in rows:
        p = min(max(r["prediction"], eps), 1 - eps)
        losses.append(-math.log(p) if r["actual"] == 1.0 else -math.log(1 - p))
    pos = [r["prediction"] for r in rows if r["actual"] == 1.0]
    neg = [r["prediction"] for r in rows if r["actual"] != 1.0]
    wins = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p in pos for q in neg)
    return {
        "LogLoss": mean(losses),
        "AUC": wins / (len(pos) * len(neg)) if pos and neg else None,
        "Accuracy": mean([float((r["prediction"] > threshold) == (r["actual"] == 1.0)) for r in rows]),
    }


def assert_metrics(got: dict[str, Any], expected: dict[str, Any]) -> None:
    assert list(got) == list(expected)
    for name, value in expected.items():
        if value is None:
            assert got[name] is None, name
        else:
            assert got[name] == pytest.approx(value, rel=1e-9), name


def at_us(row: dict[str, Any], by: str) -> int:
    made = int(row["created"] * 1_000_000)  # created ends in .25 s: exact in microseconds
    if by == "created" or row["timestamp"] is None:
        return made
    return (row["timestamp"] - acc._EPOCH) // dt.timedelta(microseconds=1)


# ---- whole-table metrics ----------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(rows=joined_rows())
@example(rows=[])
def test_regression_metrics_match_reference(rows: list[dict[str, Any]]) -> None:
    assert_metrics(acc.regression_metrics(frame(rows)), ref_regression(rows, ref_scales(rows)))


@settings(max_examples=50, deadline=None)
@given(rows=joined_rows(binary=True), threshold=st.sampled_from([0.5, 0.25, 0.9]))
@example(rows=[], threshold=0.5)
def test_binary_metrics_match_reference_with_ties(rows: list[dict[str, Any]], threshold: float) -> None:
    assert_metrics(acc.binary_metrics(frame(rows), threshold=threshold), ref_binary(rows, threshold))
    assert_metrics(acc.metrics(frame(rows), kind="binary", threshold=threshold), ref_binary(rows, threshold))


def test_mase_scales_by_distinct_timestamps_and_pools_series() -> None:
    t = [BASE + dt.timedelta(days=i) for i in range(3)]
    rows = [
        # series a: actuals 10, 14, 11 at three days (day 1 predicted twice) -> scale (4 + 3) / 2
        {"timestamp": t[2], "series_id": "a", "distance": 1, "prediction": 12.0, "actual": 11.0},
        {"timestamp": t[0], "series_id": "a", "distance": 1, "prediction": 10.0, "actual": 10.0},
        {"timestamp": t[1], "series_id": "a", "distance": 1, "prediction": 13.0, "actual": 14.0},
        {"timestamp": t[1], "series_id": "a", "distance": 2, "prediction": 16.0, "actual": 14.0},
        # series b: 0 then 1 -> scale 1; series c: one timestamp -> no scale
        {"timestamp": t[0], "series_id": "b", "distance": 1, "prediction": 1.0, "actual": 0.0},
        {"timestamp": t[1], "series_id": "b", "distance": 1, "prediction": 1.0, "actual": 1.0},
        {"timestamp": t[0], "series_id": "c", "distance": 1, "prediction": 5.0, "actual": 7.0},
    ]
    rows = [{"created": 0.0, "low": None, "high": None, **r} for r in rows]
    mae = (0 + 1 + 1 + 2 + 1 + 0 + 2) / 7
    got = acc.regression_metrics(frame(rows))
    assert got["MASE"] == pytest.approx(mae / ((3.5 + 1.0) / 2), rel=1e-9)
    assert got["MAPE"] == pytest.approx(100 * (1 / 11 + 0 + 1 / 14 + 2 / 14 + 0 + 2 / 7) / 6, rel=1e-9)
    by = acc.by_series(frame(rows), kind="regression")
    assert by.get_column("MASE").to_list() == pytest.approx([(1 + 0 + 1 + 2) / 4 / 3.5, 0.5, None])


def test_mase_is_none_without_two_timestamps_or_with_a_flat_series() -> None:
    one = [
        {"created": 0.0, "timestamp": BASE, "series_id": "a", "distance": 1, "prediction": 1.0, "actual": 2.0}
    ]
    assert acc.regression_metrics(pl.DataFrame(one))["MASE"] is None
    flat = [{**one[0], "timestamp": BASE + dt.timedelta(days=i)} for i in range(3)]
    assert acc.regression_metrics(pl.DataFrame(flat))["MASE"] is None
    tabular = [{**one[0], "timestamp": None}]
    assert acc.regression_metrics(pl.DataFrame(tabular, schema_overrides=SCHEMA))["MASE"] is None


def test_coverage_counts_bounds_inclusive_and_skips_rows_without_interval() -> None:
    rows = [
        {"prediction": 1.0, "actual": 1.0, "low": 1.0, "high": 2.0},  # on the low bound: inside
        {"prediction": 1.0, "actual": 2.0, "low": 1.0, "high": 2.0},  # on the high bound: inside
        {"prediction": 1.0, "actual": 3.0, "low": 1.0, "high": 2.0},  # outside
        {"prediction": 1.0, "actual": 3.0, "low": None, "high": 2.0},  # no interval: not counted
    ]
    assert acc.regression_metrics(pl.DataFrame(rows))["Coverage"] == pytest.approx(2 / 3, rel=1e-9)
    assert acc.regression_metrics(pl.DataFrame(rows[3:]))["Coverage"] is None


def test_further_percentiles_are_scored_like_the_own_interval() -> None:
    """``low_<p>``/``high_<p>`` columns (a deployment serving 50 and 95 beside 80) give ``Coverage<p>``."""
    rows = [
        {
            "prediction": 1.0,
            "actual": a,
            "low": 0.0,
            "high": 2.0,
            "low_50": 0.5,
            "high_50": 1.5,
            "low_95": lo95,
            "high_95": 3.0,
        }
        for a, lo95 in ((1.0, -1.0), (1.6, -1.0), (2.5, -1.0), (-0.5, None))
    ]
    frame = pl.DataFrame(rows, schema_overrides={"low_95": pl.Float64})
    got = acc.regression_metrics(frame)
    assert list(got)[-3:] == ["Coverage", "Coverage50", "Coverage95"]
    assert got["Coverage"] == pytest.approx(2 / 4)
    assert got["Coverage50"] == pytest.approx(1 / 4)
    assert got["Coverage95"] == pytest.approx(3 / 3)  # the row without a 95 % bound is not counted
    by_distance = acc.by_distance(frame.with_columns(distance=pl.Series([1, 1, 2, 2])), kind="regression")
    assert by_distance.get_column("Coverage50").to_list() == [0.5, 0.0]
    buckets = acc.over_time(
        frame.with_columns(created=pl.lit(0.0), timestamp=pl.lit(BASE)),
        kind="regression",
        bucket=dt.timedelta(hours=1),
        start=BASE,
        end=BASE + dt.timedelta(hours=1),
    )
    assert buckets.get_column("Coverage50").to_list() == [0.25]
    assert acc.further_percentiles(frame) == (50, 95)
    assert acc.further_percentiles(frame.drop("high_50")) == (95,)  # a lone bound is no interval


def test_empty_input_gives_none_for_every_metric() -> None:
    empty = frame([])
    assert acc.metrics(empty, kind="regression") == dict.fromkeys(acc.REGRESSION_METRICS)
    assert acc.metrics(empty, kind="binary") == dict.fromkeys(acc.BINARY_METRICS)
    assert acc.metrics(empty, kind="multiclass") == {"Accuracy": None}


def test_single_class_auc_is_none_but_logloss_and_accuracy_are_not() -> None:
    rows = [{"prediction": p, "actual": 1.0} for p in (0.2, 0.7, 0.9)]
    got = acc.binary_metrics(pl.DataFrame(rows))
    assert got["AUC"] is None
    assert got["Accuracy"] == pytest.approx(2 / 3, rel=1e-9)
    assert got["LogLoss"] == pytest.approx(-(math.log(0.2) + math.log(0.7) + math.log(0.9)) / 3, rel=1e-9)


def test_logloss_clips_certain_wrong_answers() -> None:
    rows = [{"prediction": 0.0, "actual": 1.0}, {"prediction": 1.0, "actual": 0.0}]
    got = acc.binary_metrics(pl.DataFrame(rows))
    clipped = (-math.log(1e-15) - math.log(1 - (1 - 1e-15))) / 2  # 1 - 1e-15 rounds in binary
    assert got["LogLoss"] == pytest.approx(clipped, rel=1e-9)
    assert got["AUC"] == 0.0


def test_accuracy_threshold_is_strict_like_the_deployment() -> None:
    rows = [{"prediction": 0.5, "actual": 0.0}, {"prediction": 0.5, "actual": 1.0}]
    assert acc.binary_metrics(pl.DataFrame(rows))["Accuracy"] == 0.5
    assert acc.binary_metrics(pl.DataFrame(rows), threshold=0.4)["Accuracy"] == 0.5
    assert acc.binary_metrics(pl.DataFrame(rows[:1]), threshold=0.4)["Accuracy"] == 0.0


def test_multiclass_accuracy_ignores_rows_without_both_labels() -> None:
    joined = pl.DataFrame(
        {
            "prediction": [0.9, 0.8, 0.7, 0.6],
            "actual": [0.0, 0.0, 0.0, 0.0],
            "label": ["x", "y", "z", None],
            "actual_label": ["x", "x", "z", "z"],
        }
    )
    assert acc.multiclass_metrics(joined) == {"Accuracy": pytest.approx(2 / 3, rel=1e-9)}
    assert acc.multiclass_metrics(joined.drop("label", "actual_label")) == {"Accuracy": None}


def test_rows_without_a_finite_prediction_or_actual_are_not_scored() -> None:
    joined = pl.DataFrame({"prediction": [1.0, None, float("nan"), 2.0], "actual": [2.0, 1.0, 1.0, None]})
    assert acc.regression_metrics(joined)["MAE"] == 1.0
    assert acc.by_series(joined, kind="regression").get_column("sampleSize").to_list() == [1]


def test_unknown_kind_and_missing_columns_are_named() -> None:
    with pytest.raises(ParameterError, match="kind must be one of regression, binary, multiclass"):
        acc.metrics(frame([]), kind="ranking")  # type: ignore[arg-type]
    with pytest.raises(MissingColumnError, match="'actual'"):
        acc.metrics(pl.DataFrame({"prediction": [1.0]}), kind="regression")


# ---- breakdowns -------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(rows=joined_rows(), binary=st.booleans())
@example(rows=[], binary=False)
def test_by_distance_and_by_series_match_reference_per_group(
    rows: list[dict[str, Any]], binary: bool
) -> None:
    if binary:
        rows = [
            {**r, "prediction": abs(r["prediction"]) % 1.0, "actual": float(r["actual"] > 0)} for r in rows
        ]
    kind = "binary" if binary else "regression"
    scales = ref_scales(rows)

    def reference(
        group: list[dict[str, Any]], group_scales: dict[str | None, float | None]
    ) -> dict[str, Any]:
        return ref_binary(group) if binary else ref_regression(group, group_scales)

    for fn, col, name in (
        (acc.by_distance, "distance", "forecastDistance"),
        (acc.by_series, "series_id", "seriesId"),
    ):
        table = fn(frame(rows), kind=kind)
        names = acc.BINARY_METRICS if binary else acc.REGRESSION_METRICS
        assert table.columns == [name, "sampleSize", *names]
        keys = table.get_column(name).to_list()
        assert keys == sorted({r[col] for r in rows}, key=lambda k: (k is None, k or 0))
        sizes = Counter(r[col] for r in rows)
        assert dict(zip(keys, table.get_column("sampleSize").to_list(), strict=True)) == sizes
        for got in table.to_dicts():
            group = [r for r in rows if r[col] == got[name]]
            expected = reference(group, scales)
            assert_metrics({n: got[n] for n in names}, expected)


# ---- over time --------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(
    rows=joined_rows(),
    offset=st.integers(-6, 30),
    hours=st.integers(1, 12),
    span=st.integers(0, 60),
    by=st.sampled_from(["timestamp", "created"]),
)
@example(rows=[], offset=0, hours=1, span=5, by="timestamp")
def test_over_time_matches_reference_per_bucket(
    rows: list[dict[str, Any]], offset: int, hours: int, span: int, by: str
) -> None:
    start = BASE + dt.timedelta(hours=offset)
    end = start + dt.timedelta(hours=span)
    bucket = dt.timedelta(hours=hours)
    table = acc.over_time(frame(rows), kind="regression", bucket=bucket, start=start, end=end, by=by)  # type: ignore[arg-type]

    n = -(-span // hours)
    assert table.columns == ["bucketStart", "bucketEnd", "sampleSize", *acc.REGRESSION_METRICS]
    assert table.height == n
    assert table.get_column("bucketStart").to_list() == [start + k * bucket for k in range(n)]
    assert table.get_column("bucketEnd").to_list() == [start + (k + 1) * bucket for k in range(n)]
    lo = (start - acc._EPOCH) // dt.timedelta(microseconds=1)
    hi = (end - acc._EPOCH) // dt.timedelta(microseconds=1)
    step = bucket // dt.timedelta(microseconds=1)
    buckets: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        t = at_us(r, by)
        if lo <= t < hi:
            buckets[(t - lo) // step].append(r)
    assert table.get_column("sampleSize").sum() == sum(len(b) for b in buckets.values())
    scales = ref_scales(rows)
    for k, got in enumerate(table.to_dicts()):
        assert got["sampleSize"] == len(buckets[k])
        assert_metrics({m: got[m] for m in acc.REGRESSION_METRICS}, ref_regression(buckets[k], scales))


def test_over_time_buckets_are_half_open_and_empty_ones_are_listed() -> None:
    stamps = [BASE, BASE + dt.timedelta(hours=1), BASE + dt.timedelta(hours=4)]
    rows = [
        {"created": 0.0, "timestamp": t, "series_id": None, "distance": 1, "prediction": 1.0, "actual": 0.0}
        for t in [*stamps, BASE - dt.timedelta(microseconds=1)]
    ]
    table = acc.over_time(
        pl.DataFrame(rows),
        kind="regression",
        bucket=dt.timedelta(hours=1),
        start=BASE,
        end=BASE + dt.timedelta(hours=4),
    )
    # the row at `start` opens bucket 0, the one on a boundary opens bucket 1, the one at `end` is out
    assert table.get_column("sampleSize").to_list() == [1, 1, 0, 0]
    assert table.get_column("MAE").to_list() == [1.0, 1.0, None, None]
    assert table.schema["sampleSize"] == pl.Int64
    assert table.schema["bucketStart"] == pl.Datetime("us")


def test_over_time_falls_back_to_created_for_tabular_rows() -> None:
    created = (BASE - acc._EPOCH).total_seconds() + 90 * 60  # 01:30
    rows = [{"created": created, "timestamp": None, "prediction": 0.9, "actual": 1.0}]
    table = acc.over_time(
        pl.DataFrame(rows, schema_overrides=SCHEMA),
        kind="binary",
        bucket=dt.timedelta(hours=1),
        start=BASE,
        end=BASE + dt.timedelta(hours=3),
    )
    assert table.get_column("sampleSize").to_list() == [0, 1, 0]
    assert table.get_column("Accuracy").to_list() == [None, 1.0, None]


def test_over_time_accepts_aware_bounds_as_utc() -> None:
    aware = BASE.replace(tzinfo=dt.timezone(dt.timedelta(hours=2)))  # 22:00 UTC the day before
    table = acc.over_time(
        frame([]),
        kind="regression",
        bucket=dt.timedelta(hours=1),
        start=aware,
        end=aware + dt.timedelta(hours=1),
    )
    assert table.get_column("bucketStart").to_list() == [BASE - dt.timedelta(hours=2)]


@pytest.mark.parametrize(
    ("bucket", "end", "message"),
    [
        (dt.timedelta(0), BASE, "bucket must be a positive duration"),
        (dt.timedelta(hours=1), BASE - dt.timedelta(hours=1), "must not be before start"),
        (dt.timedelta(seconds=1), BASE + dt.timedelta(days=1), "use a larger bucket"),
    ],
)
def test_over_time_rejects_bad_buckets(bucket: dt.timedelta, end: dt.datetime, message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        acc.over_time(frame([]), kind="regression", bucket=bucket, start=BASE, end=end)


@pytest.mark.parametrize(
    ("span", "bucket"),
    [
        (dt.timedelta(hours=1), dt.timedelta(hours=1)),
        (dt.timedelta(days=2), dt.timedelta(hours=1)),
        (dt.timedelta(days=2, seconds=1), dt.timedelta(days=1)),
        (dt.timedelta(days=90), dt.timedelta(days=1)),
        (dt.timedelta(days=91), dt.timedelta(weeks=1)),
        (dt.timedelta(days=730), dt.timedelta(weeks=1)),
        (dt.timedelta(days=731), dt.timedelta(days=30)),
    ],
)
def test_choose_bucket_by_span(span: dt.timedelta, bucket: dt.timedelta) -> None:
    assert acc.choose_bucket(BASE, BASE + span) == bucket
