"""Features: an oracle against a naive per-series computation, and no look-ahead."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tsengine import training_query as training_query_module
from tsengine.features import (
    FP,
    MIN_LEVEL_DATES,
    CategoryMaps,
    D,
    FeaturePlan,
    build_design,
    season_length,
    seasonal_steps,
    training_query,
)
from tsengine.spec import TimeSeriesSpec
from tsengine.timestep import TimeStep
from tsengine.training_query import TARGET_DISTANCES, THIN_KEEPS_PAIRS
from tsengine.validate import IDX, ROW, SID, Y

DAY = TimeStep("day")
SPEC = TimeSeriesSpec(
    datetime_column="date",
    target="y",
    series_id_column="s",
    time_step=DAY,
    feature_derivation_window=(-14, 0),
    forecast_window=(1, 9),
    known_in_advance=("promo",),
    features=("price",),
    min_history=3,
)
BASE = DAY.to_index_floor(dt.datetime(2020, 3, 1))


def _history(seed: int = 0) -> pl.DataFrame:
    """Three series on a daily grid with gaps (absent rows) and missing targets."""
    rng = np.random.default_rng(seed)
    rows = []
    for s, (start, n, level) in {"a": (0, 60, 10.0), "b": (5, 50, 1000.0), "c": (20, 40, 0.0)}.items():
        for k in range(n):
            if rng.random() < 0.1:
                continue  # a gap: no row at all
            y = None if rng.random() < 0.1 else float(level + rng.normal(0, 3) + (k % 7))
            price = None if rng.random() < 0.2 else float(rng.integers(1, 5))
            rows.append((s, BASE + start + k, y, float(rng.integers(0, 2)), price))
    frame = pl.DataFrame(rows, schema=[SID, IDX, Y, "promo", "price"], orient="row")
    return frame.with_row_index(ROW).with_columns(pl.col(ROW).cast(pl.Int64))


def _query(history: pl.DataFrame) -> pl.DataFrame:
    return training_query(history, SPEC).select(SID, FP, D, IDX, "promo")


nan = math.nan


def val(v: float | None) -> float:
    return nan if v is None else v


def _oracle(history: pl.DataFrame, query: pl.DataFrame, plan: FeaturePlan, maps: CategoryMaps) -> np.ndarray:
    """The slow obvious computation: per row, look values up in per-series dicts."""
    ys: dict[str, dict[int, float | None]] = {}
    prices: dict[str, dict[int, float | None]] = {}
    promos: dict[str, dict[int, float | None]] = {}
    for s, i, y, price, promo_then in history.select(SID, IDX, Y, "price", "promo").iter_rows():
        ys.setdefault(s, {})[i] = y
        prices.setdefault(s, {})[i] = price
        promos.setdefault(s, {})[i] = promo_then
    a, out = plan.fdw, []
    for s, fp, d, i, promo in query.select(SID, FP, D, IDX, "promo").iter_rows():
        y_at = ys[s].get
        window = [y_at(fp - k) for k in range(a)]  # fp, fp-1, ..., fp-a+1
        observed = [v for v in window if v is not None]
        scale = float(np.mean(np.abs(observed))) if observed else math.nan
        scale = scale if scale > 1e-9 else 1.0
        row = [float(d)]
        # a gap reads as the latest value before it inside the window
        carried = [next((v for v in window[j:] if v is not None), None) for j in range(a)]
        row += [val(carried[j]) / scale for j in range(plan.lags)]
        for w in plan.windows:
            part = [v for v in window[:w] if v is not None]
            mean = float(np.mean(part)) if part else nan
            std = float(np.std(part, ddof=1)) if len(part) >= 2 else nan
            row += [mean / scale, std / scale]
        last = next((v for v in window if v is not None), None)
        j = math.ceil(d / plan.season) * plan.season - d if plan.season > 1 else 0
        row += [val(last) / scale, val(carried[j]) / scale]
        if plan.seasonal_mean:  # the same seasonal position in every season of the window
            same = [v for v in window[j :: plan.season] if v is not None]
            row.append(float(np.mean(same)) / scale if same else nan)
        row.append(float(len(observed)))
        t = dt.datetime(1970, 1, 1) + dt.timedelta(days=i)
        calendar = {
            "weekday": t.isoweekday(),
            "monthday": t.day,
            "month": t.month,
            "yearday": t.timetuple().tm_yday,
        }
        row += [float(calendar[c]) for c in plan.calendar]
        row.append(val(promo))
        # promo relative to its window: (value - mean) / mean |value|, 0 without values or change, clipped at 50
        k_obs = [v for v in (promos[s].get(fp - k) for k in range(a)) if v is not None]
        size = float(np.mean(np.abs(k_obs))) if k_obs else nan
        change = val(promo) - float(np.mean(k_obs)) if k_obs else nan
        if math.isnan(change) or change == 0:
            rel = 0.0
        else:  # a window of zeros: an unbounded change, clipped
            rel = change / size if size > 1e-9 else math.copysign(math.inf, change)
        row.append(min(max(rel, -50.0), 50.0))
        p_window = [prices[s].get(fp - k) for k in range(a)]
        p_obs = [v for v in p_window if v is not None]
        row += [
            val(next((v for v in p_window if v is not None), None)),
            float(np.mean(p_obs)) if p_obs else nan,
        ]
        row.append(float(maps.maps[SID][s]))
        out.append(row)
    return np.asarray(out, dtype=np.float64)


def test_features_match_a_naive_per_series_computation() -> None:
    history = _history()
    query = _query(history)
    plan = FeaturePlan.for_spec(SPEC)
    assert plan.season == 7
    assert plan.windows == (7, 14)
    assert plan.seasonal_mean
    maps = CategoryMaps.learn(history, [SID])
    design = build_design(history, query, plan, DAY, maps)
    expected = _oracle(history, query, plan, maps)
    assert design.x.shape == (query.height, len(plan.names))
    np.testing.assert_allclose(design.x, expected, rtol=1e-9, atol=1e-9, equal_nan=True)


def test_design_scale_last_and_seasonal_columns_match_the_features() -> None:
    history = _history(1)
    query = _query(history)
    plan = FeaturePlan.for_spec(SPEC)
    design = build_design(history, query, plan, DAY, CategoryMaps.learn(history, [SID]), with_target=True)
    names = plan.names
    np.testing.assert_allclose(
        design.last / design.scale, design.x[:, names.index("target (last)")], equal_nan=True
    )
    # The input reads a gap as the latest value before it; the seasonal naive model's value does not.
    column = design.x[:, names.index("target (seasonal)")]
    seen = np.isfinite(design.seasonal)
    np.testing.assert_allclose(design.seasonal[seen] / design.scale[seen], column[seen])
    assert np.isfinite(column[~seen]).any()
    targets = dict(((s, i), y) for s, i, y in history.select(SID, IDX, Y).iter_rows())
    expected_y = [targets[(s, i)] for s, i in query.select(SID, IDX).iter_rows()]
    np.testing.assert_allclose(design.y, expected_y)


def test_changing_targets_after_the_forecast_point_changes_no_feature() -> None:
    history = _history(2)
    fp = BASE + 40
    query = _query(history).filter(pl.col(FP) == fp)
    assert query.height > 0
    plan = FeaturePlan.for_spec(SPEC)
    maps = CategoryMaps.learn(history, [SID])
    before = build_design(history, query, plan, DAY, maps)
    rng = np.random.default_rng(3)
    future = pl.col(IDX) > fp
    changed = history.with_columns(
        pl.when(future).then(pl.lit(rng.normal(1e6, 1.0))).otherwise(pl.col(Y)).alias(Y),
        pl.when(future).then(pl.lit(123.0)).otherwise(pl.col("price")).alias("price"),
    )
    after = build_design(changed, query, plan, DAY, maps)
    np.testing.assert_array_equal(before.x, after.x)
    np.testing.assert_array_equal(before.scale, after.scale)


def test_rows_older_than_the_window_change_no_feature() -> None:
    history = _history(4)
    fp = BASE + 45
    query = _query(history).filter(pl.col(FP) == fp)
    plan = FeaturePlan.for_spec(SPEC)
    maps = CategoryMaps.learn(history, [SID])
    recent = history.filter(pl.col(IDX) > fp - SPEC.fdw)
    np.testing.assert_array_equal(
        build_design(history, query, plan, DAY, maps).x, build_design(recent, query, plan, DAY, maps).x
    )


def test_features_of_one_origin_do_not_depend_on_other_origins_in_the_query() -> None:
    history = _history(5)
    query = _query(history)
    plan = FeaturePlan.for_spec(SPEC)
    maps = CategoryMaps.learn(history, [SID])
    full = build_design(history, query, plan, DAY, maps).x
    mask = (query[FP] == BASE + 50).to_numpy()
    alone = build_design(history, query.filter(pl.col(FP) == BASE + 50), plan, DAY, maps).x
    np.testing.assert_allclose(full[mask], alone, rtol=1e-12, atol=1e-12, equal_nan=True)


@pytest.mark.parametrize(
    ("season", "distances", "offsets"),
    [
        (7, [1, 2, 6, 7, 8, 14, 15], [6, 5, 1, 0, 6, 0, 6]),
        (12, [1, 12, 13], [11, 0, 11]),
        (1, [1, 5, 9], [0, 0, 0]),
        (0, [3], [0]),
    ],
)
def test_seasonal_offset_lands_on_the_same_season_at_or_before_the_forecast_point(
    season: int, distances: list[int], offsets: list[int]
) -> None:
    got = seasonal_steps(np.array(distances), season).tolist()
    assert got == offsets
    if season > 1:
        assert all((d + j) % season == 0 and j >= 0 for d, j in zip(distances, got, strict=True))


@pytest.mark.parametrize(
    ("step", "fdw", "season"),
    [
        (TimeStep("day"), 14, 7),
        (TimeStep("day"), 6, 1),
        (TimeStep("hour"), 168, 24),
        (TimeStep("minute", count=15), 120, 96),
        (TimeStep("minute", count=15), 50, 4),
        (TimeStep("minute", count=30), 96, 48),
        (TimeStep("minute", count=30), 8, 2),
        (TimeStep("hour"), 12, 1),
        (TimeStep("month"), 36, 12),
        (TimeStep("quarter"), 16, 4),
        (TimeStep("week"), 104, 52),
        (TimeStep("week"), 51, 1),
        (TimeStep("week", count=2), 52, 26),
        (TimeStep("year"), 10, 1),
        (TimeStep("day", count=2), 28, 1),
    ],
)
def test_season_length_per_step(step: TimeStep, fdw: int, season: int) -> None:
    assert season_length(step, fdw) == season


def test_feature_plan_dict_round_trip_and_names() -> None:
    plan = FeaturePlan.for_spec(SPEC)
    assert FeaturePlan.from_dict(plan.to_dict()) == plan
    assert plan.names[0] == "forecast distance"
    assert "promo" in plan.names
    assert plan.names[-1] == "series id"
    assert plan.categorical_names == ["series id"]


def test_unseen_categories_encode_as_missing() -> None:
    maps = CategoryMaps.learn(pl.DataFrame({"c": ["x", "y", None, "x"]}), ["c"])
    assert maps.to_dict() == {"c": {"x": 0, "y": 1}}
    codes = pl.select(maps.encode("c", pl.Series(["y", "new", None]))).to_series().to_list()
    assert codes == [1.0, None, None]


def test_training_query_pairs_have_observed_targets_and_enough_history() -> None:
    history = _history(6)
    pairs = training_query(history, SPEC)
    observed = history.filter(pl.col(Y).is_not_null()).select(SID, IDX)
    assert pairs.join(observed, on=[SID, IDX], how="anti").height == 0
    assert (pairs[FP] + pairs[D] == pairs[IDX]).all()
    assert set(pairs[D].unique().to_list()) <= set(SPEC.distances)
    counts = {
        (s, fp): n
        for s, fp, n in pairs.select(SID, FP)
        .unique()
        .join(observed, on=SID)
        .filter((pl.col(IDX) <= pl.col(FP)) & (pl.col(IDX) > pl.col(FP) - SPEC.fdw))
        .group_by(SID, FP)
        .len()
        .iter_rows()
    }
    assert min(counts.values()) >= SPEC.min_history


def test_training_query_respects_origin_and_target_cuts() -> None:
    history = _history(7)
    pairs = training_query(history, SPEC, origins_upto=BASE + 30, targets_upto=BASE + 35)
    assert pairs[FP].max() <= BASE + 30
    assert pairs[IDX].max() <= BASE + 35


@pytest.mark.parametrize("wanted", [2, 3, 7, 14])
def test_thinned_origins_keep_every_weekday(wanted: int) -> None:
    """A stride of 7 (or 14) would keep one weekday only; the next coprime stride keeps all."""
    t = np.arange(400)
    history = pl.DataFrame(
        {SID: ["a"] * 400, IDX: BASE + t, Y: np.sin(t).astype(float), ROW: t, "promo": 0.0}
    )
    full = training_query(history, SPEC)
    n_origins = full[FP].n_unique()
    thin = training_query(history, SPEC, max_rows=-(-n_origins * len(SPEC.distances) // wanted))
    kept = thin[FP].unique()
    assert kept.len() < n_origins
    assert set((kept % 7).to_list()) == set(range(7))


def test_thinned_origins_are_staggered_across_series_and_deterministic() -> None:
    """Series sharing a calendar keep different dates, so a global model sees every date."""
    t = np.arange(200)
    rows = [
        {SID: s, IDX: int(BASE + i), Y: float(np.sin(i + k)), ROW: k * 200 + int(i), "promo": 0.0}
        for k, s in enumerate(["a", "b", "c", "d"])
        for i in t
    ]
    history = pl.DataFrame(rows)
    full = training_query(history, SPEC)
    thin = training_query(history, SPEC, max_rows=full.height // 6)
    assert thin.height < full.height
    assert thin.equals(training_query(history, SPEC, max_rows=full.height // 6))
    per_series = [set(thin.filter(pl.col(SID) == s)[FP].to_list()) for s in ("a", "b", "c", "d")]
    assert all(per_series)
    assert all(not (x & y) for i, x in enumerate(per_series) for y in per_series[i + 1 :])  # disjoint dates
    assert thin.filter(pl.col(SID) == "a")[FP].max() == full.filter(pl.col(SID) == "a")[FP].max()


def test_origins_per_series_are_capped_keeping_the_newest() -> None:
    t = np.arange(400)
    history = pl.DataFrame(
        {SID: ["a"] * 400, IDX: BASE + t, Y: np.sin(t).astype(float), ROW: t, "promo": 0.0}
    )
    full = training_query(history, SPEC)
    capped = training_query(history, SPEC, max_origins=100)
    assert full[FP].n_unique() > 100 >= capped[FP].n_unique() > 50
    assert capped[FP].max() == full[FP].max()


def _days(n_series: int, n_days: int) -> pl.DataFrame:
    t = np.arange(n_days)
    return pl.DataFrame(
        {
            SID: np.repeat([f"s{k}" for k in range(n_series)], n_days),
            IDX: np.tile(BASE + t, n_series),
            Y: np.tile(np.sin(t), n_series),
            ROW: np.arange(n_series * n_days),
            "promo": 0.0,
        }
    )


def test_plentiful_pairs_learn_each_target_at_fewer_distances(monkeypatch: pytest.MonkeyPatch) -> None:
    """FW 1..28: every other origin once the halved pairs still number THIN_KEEPS_PAIRS; no target or distance lost."""
    spec = dataclasses.replace(SPEC, forecast_window=(1, 28))
    assert len(spec.distances) // TARGET_DISTANCES == 2
    few, more = _days(4, 800), _days(8, 800)
    thinned = {name: training_query(h, spec) for name, h in (("few", few), ("more", more))}
    monkeypatch.setattr(training_query_module, "THIN_KEEPS_PAIRS", 10**12)
    full = {name: training_query(h, spec) for name, h in (("few", few), ("more", more))}
    assert full["few"].height < 2 * THIN_KEEPS_PAIRS <= full["more"].height
    assert thinned["few"].equals(full["few"])  # below the floor: every pair
    thin, whole = thinned["more"], full["more"]
    assert 0.45 < thin.height / whole.height <= 0.55
    assert set(thin[D].unique().to_list()) == set(spec.distances)
    lost = whole.select(SID, IDX).unique().join(thin.select(SID, IDX), on=[SID, IDX], how="anti")
    first = whole.group_by(SID).agg(pl.col(IDX).min())
    assert lost.join(first, on=[SID, IDX], how="anti").height == 0  # only a series' first target, if any
    assert set((thin[FP].unique() % 7).to_list()) == set(range(7))
    monkeypatch.undo()
    # nine distances: each target is learnt at fewer than TARGET_DISTANCES already, so nothing is thinned
    nine = _days(60, 800)
    assert training_query(nine, SPEC).height == 60 * training_query(_days(1, 800), SPEC).height


def test_plans_stored_before_window_relative_kia_keep_their_columns() -> None:
    plan = FeaturePlan.for_spec(SPEC)
    assert plan.kia_relative
    assert "promo (vs window)" in plan.names
    stored = plan.to_dict()
    assert FeaturePlan.from_dict(stored) == plan
    del stored["kia_relative"]
    old = FeaturePlan.from_dict(stored)
    assert not old.kia_relative
    assert "promo (vs window)" not in old.names
    history = _history(6)
    design = build_design(history, _query(history), old, DAY, CategoryMaps.learn(history, [SID]))
    assert design.x.shape[1] == len(old.names) == len(plan.names) - 1


def test_plans_stored_before_the_seasonal_mean_keep_their_columns() -> None:
    plan = FeaturePlan.for_spec(SPEC)
    stored = plan.to_dict()
    del stored["seasonal_mean"]
    old = FeaturePlan.from_dict(stored)
    assert not old.seasonal_mean
    assert "target (seasonal mean)" in plan.names
    assert "target (seasonal mean)" not in old.names
    history = _history(7)
    design = build_design(history, _query(history), old, DAY, CategoryMaps.learn(history, [SID]))
    assert design.x.shape[1] == len(old.names) == len(plan.names) - 1


def test_without_a_season_there_is_no_seasonal_mean() -> None:
    """With no season the "seasonal mean" would be the window mean, already an input."""
    yearly = dataclasses.replace(SPEC, time_step=TimeStep("year"), feature_derivation_window=(-10, 0))
    plan = FeaturePlan.for_spec(yearly)
    assert plan.season == 1
    assert not plan.seasonal_mean
    assert "target (seasonal mean)" not in plan.names


def test_the_seasonal_mean_averages_the_same_weekday_over_the_window() -> None:
    """Eight weeks of a pure weekday profile plus a trend: the mean sits at the window's middle."""
    days = 56
    history = pl.DataFrame(
        {
            SID: ["a"] * days,
            IDX: [BASE + k for k in range(days)],
            Y: [float(100 + 10 * (k % 7) + k) for k in range(days)],
            "promo": [0.0] * days,
            "price": [1.0] * days,
        }
    ).with_row_index(ROW)
    spec = dataclasses.replace(SPEC, feature_derivation_window=(-days, 0), forecast_window=(1, 7))
    plan = FeaturePlan.for_spec(spec)
    fp = BASE + days - 1
    query = pl.DataFrame(
        {
            SID: ["a"] * 7,
            FP: [fp] * 7,
            D: list(range(1, 8)),
            IDX: [fp + d for d in range(1, 8)],
            "promo": [0.0] * 7,
        }
    )
    design = build_design(
        history.with_columns(pl.col(ROW).cast(pl.Int64)), query, plan, DAY, CategoryMaps.learn(history, [SID])
    )
    got = design.x[:, plan.names.index("target (seasonal mean)")] * design.scale
    # target day fp + d sits at weekday (days - 1 + d) % 7; its eight past values are k = that + 7m
    expected = [
        np.mean([100 + 10 * (k % 7) + k for k in range(days) if k % 7 == (days - 1 + d) % 7])
        for d in range(1, 8)
    ]
    np.testing.assert_allclose(got, expected)


@settings(max_examples=25, deadline=None)
@given(factor=st.floats(0.01, 1000.0), seed=st.integers(0, 1000))
def test_window_relative_kia_is_unchanged_when_the_kia_unit_changes(factor: float, seed: int) -> None:
    """A KIA in thousands or in units gives the same relative column (only the raw one moves)."""
    history = _history(seed)
    query = _query(history)
    plan = FeaturePlan.for_spec(SPEC)
    maps = CategoryMaps.learn(history, [SID])
    col = plan.names.index("promo (vs window)")
    base = build_design(history, query, plan, DAY, maps).x[:, col]
    scaled = build_design(
        history.with_columns(pl.col("promo") * factor),
        query.with_columns(pl.col("promo") * factor),
        plan,
        DAY,
        maps,
    ).x[:, col]
    np.testing.assert_allclose(scaled, base, rtol=1e-9, atol=1e-12)


def test_a_known_in_advance_level_seen_on_few_dates_gets_no_code() -> None:
    """A name on fewer than MIN_LEVEL_DATES dates is unseen however many series repeat it."""
    days = {"Christmas": [10, 375, 740], "Independence Day": [100, 465], "Fourth": [200]}
    rows = [(s, i, name) for name, idx in days.items() for i in idx for s in ("a", "b", "c", "d")]
    frame = pl.DataFrame(rows, schema=[SID, IDX, "event"], orient="row")
    dated = CategoryMaps.learn(frame, ["event"], dated=("event",))
    assert MIN_LEVEL_DATES == 3
    assert list(dated.maps["event"]) == ["Christmas"]
    codes = dated.codes("event", pl.Series(["Christmas", "Independence Day", "Fourth", None]))
    np.testing.assert_array_equal(np.isnan(codes), [False, True, True, True])
    plain = CategoryMaps.learn(frame, ["event"])
    assert list(plain.maps["event"]) == ["Christmas", "Independence Day", "Fourth"]
