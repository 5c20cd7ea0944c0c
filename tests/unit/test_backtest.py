"""Rolling-origin backtests: origins, no peeking, metrics, ensemble rows."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from tsengine.backtest import (
    Backtest,
    auto_origins,
    backtest_origins,
    ensemble_backtest,
    mase_scales,
    naive_scales,
    run_backtest,
    score,
    window_scale,
)
from tsengine.features import FP, D
from tsengine.models import SeasonalNaiveModel
from tsengine.models.base import ForecastModel
from tsengine.spec import TimeSeriesSpec
from tsengine.timestep import TimeStep
from tsengine.validate import IDX, ROW, SID, Y


def spec(fdw: int = 14, horizon: int = 7) -> TimeSeriesSpec:
    return TimeSeriesSpec(
        datetime_column="d",
        target="y",
        time_step=TimeStep("day"),
        feature_derivation_window=(-fdw, 0),
        forecast_window=(1, horizon),
        series_id_column="s",
        min_history=fdw // 2,
    )


def history(n: int = 80, series: int = 2, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(series):
        y = 50 + 10 * np.sin(np.arange(n) * 2 * np.pi / 7) + rng.normal(0, 1, n).cumsum()
        frames.append(pl.DataFrame({SID: [f"s{k}"] * n, IDX: np.arange(n), Y: y}))
    return pl.concat(frames).with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias(ROW))


def test_origins_step_back_one_window_and_leave_training_data() -> None:
    s = spec()
    origins = backtest_origins(history(), s, 3)
    assert origins == [79 - 7 - 14, 79 - 7 - 7, 79 - 7]
    short = backtest_origins(history(n=30), s, 5)
    assert short == [15, 22]  # older origins would leave less than min_history + c rows to fit on


def test_fit_and_predict_never_see_rows_after_the_origin() -> None:
    s = spec()
    hist = history()
    seen: list[tuple[int, int]] = []

    def fit(past: pl.DataFrame) -> ForecastModel:
        seen.append((int(past.get_column(IDX).max()), 0))  # type: ignore[arg-type]
        return SeasonalNaiveModel.fit(past, s)

    origins = backtest_origins(hist, s, 3)
    result = run_backtest(fit, hist, s, origins, name="naive")
    assert [m for m, _ in seen] == origins
    assert (result.rows.get_column(FP) < result.rows.get_column(IDX)).all()
    assert set(result.rows.get_column(D).unique().to_list()) == set(s.distances)


def test_score_reports_overall_distance_and_series_metrics() -> None:
    rows = pl.DataFrame(
        {
            SID: ["a", "a", "b", "b"],
            FP: [0, 0, 0, 0],
            D: [1, 2, 1, 2],
            IDX: [1, 2, 1, 2],
            "y": [10.0, 10.0, 20.0, 20.0],
            "yhat": [11.0, 8.0, 20.0, 24.0],
            "scale": [1.0] * 4,
            "mase_scale": [1.0, 1.0, 2.0, 2.0],
        }
    )
    m = score(rows)
    assert m["mase"] == pytest.approx(((1 + 2) / 2 + (0 + 2) / 2) / 2)
    assert m["rmse"] == pytest.approx(np.sqrt((1 + 4 + 0 + 16) / 4))
    assert [r["distance"] for r in m["by_distance"]] == [1, 2]
    assert [r["series"] for r in m["by_series"]] == ["a", "b"]
    assert score(rows.head(0))["n"] == 0


def test_score_reports_interval_coverage_and_counts_a_missing_interval_as_a_miss() -> None:
    rows = pl.DataFrame(
        {
            "item": ["a", "a", "b", "b"],
            "h": [1, 2, 1, 2],
            "y": [10.0, 10.0, 20.0, 20.0],
            "yhat": [10.0, 10.0, 20.0, 20.0],
            "mase_scale": [1.0] * 4,
            "low": [9.0, 11.0, 19.0, None],
            "high": [11.0, 12.0, 21.0, None],
        }
    )
    m = score(rows, series="item", distance="h")
    assert m["coverage"] == pytest.approx(50.0)
    assert [r["coverage"] for r in m["by_series"]] == pytest.approx([50.0, 50.0])
    assert [r["coverage"] for r in m["by_distance"]] == pytest.approx([100.0, 0.0])
    assert "coverage" not in score(rows.drop("low", "high"), series="item", distance="h")


def test_naive_scales_fall_back_from_season_to_lag_one_to_one() -> None:
    frame = pl.DataFrame(
        {
            "id": ["seasonal"] * 6 + ["flat_season"] * 6 + ["constant"] * 6,
            "v": [1.0, 5.0, 2.0, 7.0, 4.0, 8.0] + [1.0, 3.0] * 3 + [4.0] * 6,
        }
    )
    got = dict(naive_scales(frame, 2, series="id", target="v").iter_rows())
    # seasonal: |2-1|, |7-5|, |4-2|, |8-7| -> 1.5; flat_season repeats every 2 -> lag-1 MAE 2.
    assert got == pytest.approx({"seasonal": 1.5, "flat_season": 2.0, "constant": 1.0})


def test_mase_scales_lag_a_season_in_time_across_gaps() -> None:
    s = spec(fdw=14, horizon=7)  # daily: season 7
    idx = [i for i in range(30) if i not in (10, 11)]
    hist = pl.DataFrame({SID: ["a"] * len(idx), IDX: idx, Y: [float(i) for i in idx]})
    got = mase_scales(hist, s, 29).get_column("mase_scale").item()
    assert got == pytest.approx(7.0)  # y = i: every pair a week apart differs by 7, gap or not


def test_window_scale_follows_volatility_not_level() -> None:
    calm = pl.DataFrame({SID: ["calm"] * 10, IDX: range(10), Y: [1000.0 + (i % 2) for i in range(10)]})
    wild = pl.DataFrame({SID: ["wild"] * 10, IDX: range(10), Y: [10.0 + 5 * (i % 2) for i in range(10)]})
    hist = pl.concat([calm, wild])
    origins = pl.DataFrame({SID: ["calm", "wild"], FP: [9, 9]})
    scales = dict(window_scale(hist, origins, 5).select(SID, "scale").iter_rows())
    assert scales["calm"] == pytest.approx(1.0)
    assert scales["wild"] == pytest.approx(5.0)


def test_window_scale_falls_back_to_level_then_one() -> None:
    flat = pl.DataFrame({SID: ["f", "z"], IDX: [0, 0], Y: [4.0, 0.0]})
    scales = dict(
        window_scale(flat, pl.DataFrame({SID: ["f", "z"], FP: [0, 0]}), 5).select(SID, "scale").iter_rows()
    )
    assert scales == {"f": 4.0, "z": 1.0}


def test_ensemble_backtest_averages_members_row_by_row() -> None:
    base = pl.DataFrame(
        {SID: ["a", "a"], FP: [0, 0], D: [1, 2], IDX: [1, 2], "y": [1.0, 2.0], "yhat": [1.0, np.nan]}
    )
    other = base.with_columns(pl.Series("yhat", [3.0, 4.0])).reverse()
    out = ensemble_backtest([Backtest("x", base), Backtest("y", other)], name="ens")
    assert out.model == "ens"
    assert out.rows.get_column("yhat").to_list() == [2.0, 4.0]


def test_weighted_ensemble_backtest_renormalises_around_missing_members() -> None:
    base = pl.DataFrame(
        {SID: ["a", "a"], FP: [0, 0], D: [1, 2], IDX: [1, 2], "y": [1.0, 2.0], "yhat": [1.0, np.nan]}
    )
    other = base.with_columns(pl.Series("yhat", [4.0, 4.0]))
    out = ensemble_backtest([Backtest("x", base), Backtest("y", other)], name="ens", weights=[2.0, 1.0])
    assert out.rows.get_column("yhat").to_list() == [2.0, 4.0]


@pytest.mark.parametrize(("series", "expected"), [(1, 8), (8, 8), (12, 5), (20, 3), (500, 3)])
def test_automatic_origins_give_small_data_more_windows(series: int, expected: int) -> None:
    assert auto_origins(history(n=30, series=series)) == expected
