"""Conformal intervals from backtest residuals."""

from __future__ import annotations

import json
from statistics import NormalDist
from typing import Any

import numpy as np
import polars as pl
import pytest

from tsengine.backtest import origin_scale
from tsengine.features import FP, D
from tsengine.intervals import (
    MIN_SERIES_WINDOWS,
    IntervalTable,
    SeriesCheck,
    _common_shocks,
    _conformal_bounds,
    _few_shocks_factor,
    _monotone,
    _running_median,
    fit_intervals,
    random_walk_intervals,
)
from tsengine.validate import IDX, SID, Y


def residual_rows(resid: np.ndarray, distances: np.ndarray, scale: float = 1.0) -> pl.DataFrame:
    return pl.DataFrame(
        {D: distances, "y": resid * scale, "yhat": np.zeros(resid.size), "scale": [scale] * resid.size}
    )


def test_quantiles_per_distance_never_shrink_with_distance() -> None:
    rng = np.random.default_rng(0)
    d = np.repeat(np.arange(1, 6), 200)
    resid = rng.normal(0, 1, d.size) * np.where(d == 3, 0.1, 1.0)  # a lucky middle distance
    table = fit_intervals(residual_rows(resid, d), range(1, 6), 80)
    assert table is not None
    assert list(table.high) == sorted(table.high)
    assert list(table.low) == sorted(table.low, reverse=True)


def test_empirical_coverage_is_close_to_nominal_on_fresh_residuals() -> None:
    rng = np.random.default_rng(1)
    d = np.repeat(np.arange(1, 4), 400)
    table = fit_intervals(residual_rows(rng.standard_t(5, d.size), d), range(1, 4), 80)
    assert table is not None
    fresh = rng.standard_t(5, 30_000)
    dist = rng.integers(1, 4, fresh.size)
    low, high = table.apply(np.zeros(fresh.size), np.ones(fresh.size), dist)
    coverage = np.mean((fresh >= low) & (fresh <= high))
    assert 0.77 <= coverage <= 0.85


def test_intervals_scale_with_the_series_scale_and_contain_the_prediction() -> None:
    table = IntervalTable(80, (1, 2), (-1.0, -2.0), (1.5, 2.5))
    low, high = table.apply(np.array([10.0, 10.0]), np.array([2.0, 2.0]), np.array([1, 5]))
    assert low.tolist() == [8.0, 6.0]
    assert high.tolist() == [13.0, 15.0]
    assert IntervalTable.from_dict(table.to_dict()) == table


def test_no_usable_residual_gives_no_table() -> None:
    rows = pl.DataFrame(
        {D: [1], "y": [None], "yhat": [1.0], "scale": [1.0]}, schema_overrides={"y": pl.Float64}
    )
    assert fit_intervals(rows, range(1, 2)) is None


@pytest.mark.parametrize("n", [5, 30, 1000])
def test_conformal_bounds_are_order_statistics_at_least_as_wide_as_nominal(n: int) -> None:
    r = np.random.default_rng(n).normal(size=n)
    lo, hi = _conformal_bounds(r, 0.1, 0.9)
    assert lo in r
    assert hi in r
    assert lo <= np.quantile(r, 0.1)
    assert hi >= np.quantile(r, 0.9)
    if n == 5:  # too few residuals: the interval is their range
        assert (lo, hi) == (r.min(), r.max())


def test_conformal_bounds_cover_a_fresh_draw_as_the_ranks_promise() -> None:
    """Exchangeable draws: a new one falls between the k_lo-th and k_hi-th smallest of n with
    probability (k_hi - k_lo) / (n + 1) exactly; for n = 20 at 50 % that is (16 - 5) / 21.

    Interpolating at the corrected levels (the rule before) gave 0.542 here."""
    rng = np.random.default_rng(7)
    normal = NormalDist()
    covered = []
    for _ in range(4000):
        lo, hi = _conformal_bounds(rng.normal(size=20), 0.25, 0.75)
        covered.append(normal.cdf(hi) - normal.cdf(lo))
    assert np.mean(covered) == pytest.approx(11 / 21, abs=0.006)


def series_rows(
    sigma: dict[str, float], *, origins: int, horizon: int = 6, seed: int = 0, shared: float = 0.5
) -> pl.DataFrame:
    """Backtest rows whose scaled residuals have spread ``sigma[series]``; a window shares a shock."""
    rng = np.random.default_rng(seed)
    frames = []
    for sid, s in sigma.items():
        shock = rng.normal(0, shared, (origins, 1))
        resid = s * (shock + rng.normal(0, 1, (origins, horizon)))
        frames.append(
            pl.DataFrame(
                {
                    SID: [sid] * resid.size,
                    FP: np.repeat(np.arange(origins) * horizon, horizon),
                    D: np.tile(np.arange(1, horizon + 1), origins),
                    "y": resid.ravel(),
                    "yhat": np.zeros(resid.size),
                    "scale": np.ones(resid.size),
                }
            )
        )
    return pl.concat(frames)


def factor_of(table: IntervalTable, sid: str) -> float:
    return float(table.row_factors([sid], 1)[0])


def test_series_with_wider_residuals_than_the_pool_get_wider_intervals() -> None:
    sigma = {f"s{k}": 1.0 for k in range(10)} | {"wild": 3.0, "calm": 0.3}
    table = fit_intervals(series_rows(sigma, origins=6), range(1, 7), 80)
    assert table is not None
    assert factor_of(table, "wild") > 1.5
    assert factor_of(table, "calm") < 0.6
    assert all(0.6 < factor_of(table, f"s{k}") < 1.5 for k in range(10))
    # Earlier origins' factors evened out the later origins' coverage, so they are used.
    assert table.per_series
    assert table.check is not None
    assert table.check.spread[1] < table.check.spread[0]
    assert table.check.score[1] < table.check.score[0]
    assert table.check.origins == 6 - MIN_SERIES_WINDOWS


def test_apply_multiplies_half_widths_by_each_rows_factor() -> None:
    table = IntervalTable(80, (1, 2), (-1.0, -2.0), (1.5, 2.5), series=("a", "b"), factors=(2.0, 0.5))
    low, high = table.apply(
        np.full(3, 10.0), np.full(3, 2.0), np.array([1, 2, 2]), series=pl.Series(["a", "b", "zz"])
    )
    assert low.tolist() == [6.0, 8.0, 6.0]
    assert high.tolist() == [16.0, 12.5, 15.0]
    # Without ids, every row keeps the pooled width.
    pooled_low, _ = table.apply(np.full(3, 10.0), np.full(3, 2.0), np.array([1, 2, 2]))
    assert pooled_low.tolist() == [8.0, 6.0, 6.0]


def test_series_with_a_single_window_keeps_factor_one() -> None:
    rows = series_rows({f"s{k}": 1.0 for k in range(10)} | {"wild": 3.0}, origins=6)
    last = rows.get_column(FP).max()
    rows = rows.filter((pl.col(SID) != "wild") | (pl.col(FP) == last))  # "wild" only at the last origin
    table = fit_intervals(rows, range(1, 7), 80)
    assert table is not None
    assert "wild" not in table.series
    assert factor_of(table, "wild") == 1.0


def test_series_unseen_in_training_gets_factor_one() -> None:
    table = fit_intervals(series_rows({"a": 3.0, "b": 0.3, "c": 1.0}, origins=6), range(1, 7), 80)
    assert table is not None
    assert factor_of(table, "a") != 1.0
    low, high = table.apply(np.zeros(1), np.ones(1), np.array([3]), series=["new"])
    assert (low[0], high[0]) == (table.low[2], table.high[2])


def test_factors_are_not_used_when_no_later_origin_can_check_them() -> None:
    table = fit_intervals(series_rows({"a": 3.0, "b": 0.3, "c": 1.0}, origins=2), range(1, 7), 80)
    assert table is not None
    assert table.check is None
    assert not table.per_series
    assert factor_of(table, "a") == 1.0


def test_factors_are_not_used_when_the_check_finds_them_no_better() -> None:
    table = IntervalTable(
        80,
        (1,),
        (-1.0,),
        (1.0,),
        series=("a",),
        factors=(3.0,),
        per_series=False,
        check=SeriesCheck((5.0, 6.0), (3.0, 2.0), 1),
    )
    assert table.check is not None
    assert not table.check.passed
    low, _ = table.apply(np.zeros(1), np.ones(1), np.array([1]), series=["a"])
    assert low[0] == -1.0


def test_table_with_series_factors_round_trips_through_its_dict() -> None:
    table = fit_intervals(series_rows({"a": 3.0, "b": 0.3, "c": 1.0}, origins=6), range(1, 7), 80)
    assert table is not None
    assert table.series == ("a", "b", "c")
    again = IntervalTable.from_dict(json.loads(json.dumps(table.to_dict())))
    assert again == table


def test_dict_stored_before_series_factors_still_loads() -> None:
    old = {"percentile": 80, "distances": [1, 2], "low": [-1.0, -2.0], "high": [1.5, 2.5]}
    table = IntervalTable.from_dict(old)
    assert table.series == ()
    assert table.factors == ()
    low, high = table.apply(np.array([10.0]), np.array([2.0]), np.array([2]), series=["a"])
    assert (low[0], high[0]) == (6.0, 15.0)


def test_rows_without_series_columns_give_a_pooled_table() -> None:
    rng = np.random.default_rng(3)
    d = np.repeat(np.arange(1, 4), 50)
    table = fit_intervals(residual_rows(rng.normal(0, 1, d.size), d), range(1, 4), 80)
    assert table is not None
    assert table.series == ()


def test_factor_is_shrunk_more_toward_one_with_fewer_windows() -> None:
    others = series_rows({f"s{k}": 1.0 for k in range(20)}, origins=6, seed=4)
    wild = np.tile([-3.0, 3.0], 3)  # the same six scaled residuals in every window

    def factor_with(windows: int) -> float:
        rows = pl.DataFrame(
            {
                SID: ["wild"] * 6 * windows,
                FP: np.repeat(np.arange(windows) * 6, 6),
                D: np.tile(np.arange(1, 7), windows),
                "y": np.tile(wild, windows),
                "yhat": np.zeros(6 * windows),
                "scale": np.ones(6 * windows),
            }
        )
        table = fit_intervals(pl.concat([others, rows]), range(1, 7), 80)
        assert table is not None
        return float(table.factors[table.series.index("wild")])

    assert 1.0 < factor_with(2) < factor_with(6)


def test_identical_series_keep_the_pooled_width_when_the_check_finds_no_gain() -> None:
    table = fit_intervals(series_rows({f"s{k}": 1.0 for k in range(30)}, origins=6), range(1, 7), 80)
    assert table is not None
    assert table.check is not None
    assert not table.check.passed
    assert not table.per_series
    assert all(factor_of(table, f"s{k}") == 1.0 for k in range(30))


def test_check_passes_only_when_both_spread_and_interval_score_improve() -> None:
    assert SeriesCheck((20.0, 15.0), (8.0, 7.0), 2).passed
    assert not SeriesCheck((20.0, 15.0), (8.0, 8.5), 2).passed  # evener coverage bought with width
    assert not SeriesCheck((20.0, 21.0), (8.0, 7.0), 2).passed


def test_unused_factors_round_trip_as_unused() -> None:
    table = IntervalTable(
        80,
        (1, 2),
        (-1.0, -2.0),
        (1.5, 2.5),
        series=("a",),
        factors=(3.0,),
        per_series=False,
        check=SeriesCheck((10.0, 12.0), (5.0, 5.5), 1, (74.0, 76.5)),
    )
    again = IntervalTable.from_dict(json.loads(json.dumps(table.to_dict())))
    assert again == table
    unchecked = IntervalTable(80, (1,), (-1.0,), (1.0,), series=("a",), factors=(2.0,), per_series=False)
    assert IntervalTable.from_dict(unchecked.to_dict()) == unchecked


def test_the_check_measures_held_out_coverage_near_nominal_on_exchangeable_residuals() -> None:
    table = fit_intervals(series_rows({f"s{k}": 1.0 for k in range(20)}, origins=8, seed=5), range(1, 7), 80)
    assert table is not None
    assert table.check is not None
    pooled, factored = table.check.coverage
    assert 72.0 < pooled < 88.0
    assert 60.0 < factored < 95.0
    shown = table.describe()
    assert shown["check"]["origins"] == 8 - MIN_SERIES_WINDOWS
    assert shown["check"]["coverage"] == (factored if table.per_series else pooled)


def test_the_check_sees_a_shift_the_earlier_origins_never_had() -> None:
    rows = series_rows({f"s{k}": 1.0 for k in range(20)}, origins=6, seed=2)
    last = rows.get_column(FP).max()
    shifted = rows.with_columns(pl.when(pl.col(FP) == last).then(pl.col("y") + 6.0).otherwise(pl.col("y")))
    calm, hit = fit_intervals(rows, range(1, 7), 80), fit_intervals(shifted, range(1, 7), 80)
    assert calm is not None
    assert calm.check is not None
    assert hit is not None
    assert hit.check is not None
    # The last origin is a quarter of the checked rows; shifted by six sigmas, it is nearly all missed.
    assert hit.check.coverage[0] < calm.check.coverage[0] - 15.0


def test_a_check_stored_before_coverage_was_recorded_loads_with_nan() -> None:
    old = {"spread": [10.0, 12.0], "score": [5.0, 5.5], "origins": 2}
    check = SeriesCheck.from_dict(old)
    assert check.origins == 2
    assert all(np.isnan(check.coverage))
    table = IntervalTable(80, (1,), (-1.0,), (1.0,), series=("a",), factors=(2.0,), check=check)
    assert np.isnan(table.describe()["check"]["coverage"])


def test_random_walk_intervals_cover_a_random_walk_at_every_distance() -> None:
    """The no-backtest fallback: 80 % of random-walk outcomes at each distance, scale read from the window."""
    rng = np.random.default_rng(7)
    n_series, fdw, horizon = 4000, 40, 6
    y = rng.normal(0, 3, (n_series, fdw + horizon)).cumsum(axis=1) + 100
    sids = [f"s{k}" for k in range(n_series)]
    history = pl.DataFrame(
        {SID: np.repeat(sids, fdw), IDX: np.tile(np.arange(fdw), n_series), Y: y[:, :fdw].ravel()}
    )
    scale = origin_scale(history, pl.Series(sids), np.full(n_series, fdw - 1), fdw)
    table = random_walk_intervals(range(1, horizon + 1), 80)
    distance = np.tile(np.arange(1, horizon + 1), n_series)
    low, high = table.apply(np.repeat(y[:, fdw - 1], horizon), np.repeat(scale, horizon), distance)
    actual = y[:, fdw:].ravel()
    covered = ((actual >= low) & (actual <= high)).reshape(n_series, horizon).mean(axis=0)
    assert np.all((covered > 0.76) & (covered < 0.84)), covered
    assert np.all(np.diff(np.asarray(table.high) - np.asarray(table.low)) > 0)


def shock_panel(
    rng: np.random.Generator, *, origins: int, series: int, horizon: int, common: float, persistent: bool
) -> pl.DataFrame:
    """Backtest rows ``r = common * shock + N(0, 1)``; the shock is one per origin or one per (origin, distance)."""
    shape = (origins, 1, 1) if persistent else (origins, 1, horizon)
    r = common * rng.normal(0, 1, shape) + rng.normal(0, 1, (origins, series, horizon))
    o, s, d = np.meshgrid(np.arange(origins), np.arange(series), np.arange(1, horizon + 1), indexing="ij")
    return pl.DataFrame(
        {
            SID: s.ravel().astype(str),
            FP: o.ravel() * horizon,
            D: d.ravel(),
            "y": r.ravel(),
            "yhat": np.zeros(r.size),
            "scale": np.ones(r.size),
        }
    )


def new_window_coverage(reps: int, seed: int = 0, **panel: Any) -> float:
    """Mean coverage of a fresh window by tables fitted on ``reps`` simulated backtests."""
    rng = np.random.default_rng(seed)
    horizon = panel["horizon"]
    hits = []
    for _ in range(reps):
        table = fit_intervals(shock_panel(rng, **panel), range(1, horizon + 1), 80)
        assert table is not None
        new = shock_panel(rng, **{**panel, "origins": 1})
        low, high = table.apply(np.zeros(new.height), np.ones(new.height), new[D].to_numpy(), series=new[SID])
        y = new.get_column("y").to_numpy()
        hits.append(np.mean((y >= low) & (y <= high)))
    return float(np.mean(hits))


def scaled(rows: pl.DataFrame) -> pl.DataFrame:
    return rows.with_columns(((pl.col("y") - pl.col("yhat")) / pl.col("scale")).alias("r"))


def origin_codes(rows: pl.DataFrame) -> np.ndarray:
    return np.unique(rows.get_column(FP).to_numpy(), return_inverse=True)[1]


def shocks_of(rows: pl.DataFrame) -> float:
    """:func:`_common_shocks` of scaled backtest rows."""
    return _common_shocks(origin_codes(rows), rows.get_column(D).to_numpy(), rows.get_column("r").to_numpy())


def first_distance_factor(rows: pl.DataFrame) -> float:
    """The common-shock widening at distance 1 of scaled backtest rows."""
    near = rows.filter(pl.col(D) == 1)
    return _few_shocks_factor(origin_codes(near), near.get_column("r").to_numpy(), shocks_of(rows), 0.9)


def test_a_common_shock_seen_at_two_origins_is_widened_to_nominal_coverage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Eight series share one level shock per window; two backtest origins have seen two shocks.
    panel = {"origins": 2, "series": 8, "horizon": 4, "common": 1.0, "persistent": True}
    widened = new_window_coverage(100, **panel)
    monkeypatch.setattr("tsengine.intervals._few_shocks_factor", lambda *_: 1.0)
    plain = new_window_coverage(100, **panel)
    assert plain <= 0.76  # the empirical quantile of two shocks under-covers a third
    assert 0.78 <= widened <= 0.88


def test_residuals_without_a_common_part_are_not_widened() -> None:
    rows = scaled(
        shock_panel(np.random.default_rng(3), origins=3, series=30, horizon=4, common=0.0, persistent=True)
    )
    assert 1.0 <= first_distance_factor(rows) < 1.05


def test_a_common_shock_at_few_origins_widens_more_than_at_many() -> None:
    rng = np.random.default_rng(4)
    factors = []
    for origins in (2, 4, 8):
        rows = scaled(shock_panel(rng, origins=origins, series=10, horizon=4, common=2.0, persistent=True))
        factors.append(first_distance_factor(rows))
    assert factors[0] > factors[1] > factors[2] > 1.0


def test_persistent_shocks_count_once_per_origin_transient_ones_once_per_distance() -> None:
    rng = np.random.default_rng(5)
    persistent = scaled(shock_panel(rng, origins=4, series=10, horizon=12, common=2.0, persistent=True))
    transient = scaled(shock_panel(rng, origins=4, series=10, horizon=12, common=2.0, persistent=False))
    assert shocks_of(persistent) < 4 * 1.5
    assert shocks_of(transient) > 4 * 6


def test_running_median_drops_a_lone_blip_and_keeps_a_lasting_rise() -> None:
    assert _running_median([1.0, 1.0, 5.0, 1.0, 1.0]).tolist() == [1.0] * 5
    assert _running_median([1.0, 1.0, 5.0, 5.0, 5.0]).tolist() == [1.0, 1.0, 5.0, 5.0, 5.0]
    assert _running_median([1.0, 2.0, 3.0, 4.0]).tolist() == [1.0, 2.0, 3.0, 4.0]
    assert _running_median([2.0, 1.0]).tolist() == [2.0, 1.0]


def test_long_horizons_of_identical_residuals_are_not_over_covered_by_the_monotone_fit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 28 daily distances, 60 residuals each: a running maximum of 28 noisy quantiles overstates them
    # (measured 87 % at a nominal 80 %); the isotonic fit pools them instead (81 %).
    panel = {"origins": 5, "series": 12, "horizon": 28, "common": 0.0, "persistent": False}
    isotonic = new_window_coverage(30, **panel)
    assert 0.77 <= isotonic <= 0.84
    monkeypatch.setattr(
        "tsengine.intervals._monotone",
        lambda v, increasing: np.maximum.accumulate(v) if increasing else np.minimum.accumulate(v),
    )
    running_max = new_window_coverage(30, **panel)
    assert running_max - isotonic >= 0.03


def test_monotone_fit_pools_violators_and_keeps_monotone_input() -> None:
    assert _monotone(np.array([1.0, 3.0, 2.0, 4.0]), increasing=True).tolist() == [1.0, 2.5, 2.5, 4.0]
    assert _monotone(np.array([-1.0, -3.0, -2.0]), increasing=False).tolist() == [-1.0, -2.5, -2.5]
    assert _monotone(np.array([1.0, 2.0, 3.0]), increasing=True).tolist() == [1.0, 2.0, 3.0]
