"""Statistical models (ETS, Theta, ARIMA, linear, ensemble) behind the model contract."""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import polars as pl
import pytest
from statsmodels.tsa.arima_process import arma2ma

from tsengine.errors import TrainingDataError
from tsengine.features import FP, D
from tsengine.models import ARIMAModel, EnsembleModel, ETSModel, LinearModel, ThetaModel
from tsengine.models.base import ForecastModel
from tsengine.models.ets import SeriesEts, _regression_init
from tsengine.models.theta import ALPHA_GRID, DRIFT_FRACTIONS, ses_alpha, theta_forecast
from tsengine.spec import TimeSeriesSpec
from tsengine.timestep import TimeStep
from tsengine.validate import IDX, ROW, SID, Y

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
STATS: list[type[ForecastModel]] = [ETSModel, ThetaModel, ARIMAModel, LinearModel]


def monthly_spec(kia: tuple[str, ...] = ()) -> TimeSeriesSpec:
    return TimeSeriesSpec(
        datetime_column="month",
        target="y",
        time_step=TimeStep("month"),
        feature_derivation_window=(-36, 0),
        forecast_window=(1, 12),
        series_id_column="s",
        known_in_advance=kia,
        min_history=18,
    )


def stepped_spec(unit: str | TimeStep, *, fdw: int, horizon: int) -> TimeSeriesSpec:
    """:func:`monthly_spec` with another step (a unit name or a whole step) and windows."""
    return dataclasses.replace(
        monthly_spec(),
        time_step=unit if isinstance(unit, TimeStep) else TimeStep(unit),
        feature_derivation_window=(-fdw, 0),
        forecast_window=(1, horizon),
    )


def employment(n_series: int = 5) -> pl.DataFrame:
    df = pl.read_csv(FIXTURES / "us_employment_monthly.csv")
    keep = df.get_column("series_id").unique(maintain_order=True).head(n_series)
    df = df.filter(pl.col("series_id").is_in(keep.implode()))
    return df.select(
        pl.col("series_id").alias(SID),
        (pl.col("month").str.to_date().dt.year() * 12 + pl.col("month").str.to_date().dt.month() - 1)
        .cast(pl.Int64)
        .alias(IDX),
        pl.col("employed").cast(pl.Float64).alias(Y),
    ).with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias(ROW))


def query_at(history: pl.DataFrame, fps: dict[str, list[int]], distances: range) -> pl.DataFrame:
    rows = [(s, fp, d, fp + d) for s, lst in fps.items() for fp in lst for d in distances]
    return pl.DataFrame(rows, schema={SID: pl.String, FP: pl.Int64, D: pl.Int64, IDX: pl.Int64}, orient="row")


def last_origin_query(history: pl.DataFrame, spec: TimeSeriesSpec) -> pl.DataFrame:
    last = history.group_by(SID).agg(pl.col(IDX).max())
    return query_at(history, {s: [int(i)] for s, i in last.iter_rows()}, spec.distances)


@pytest.fixture(scope="module")
def data() -> pl.DataFrame:
    return employment()


@pytest.mark.parametrize("cls", STATS)
def test_model_predicts_finite_values_and_roundtrips_bytes(
    cls: type[ForecastModel], data: pl.DataFrame
) -> None:
    spec = monthly_spec()
    train = data.filter(pl.col(IDX) < pl.col(IDX).max() - 12)
    model = cls.fit(train, spec)
    query = last_origin_query(train, spec)
    yhat = model.predict(train, query, spec)
    assert yhat.shape == (query.height,)
    assert np.isfinite(yhat).all()
    again = type(model).from_bytes(model.to_bytes())
    np.testing.assert_array_equal(again.predict(train, query, spec), yhat)
    assert b"pickle" not in model.to_bytes()
    assert model.describe()["kind"] == cls.kind


@pytest.mark.parametrize("cls", STATS)
def test_same_data_gives_the_same_model(cls: type[ForecastModel], data: pl.DataFrame) -> None:
    spec = monthly_spec()
    assert cls.fit(data, spec, seed=1).to_bytes() == cls.fit(data, spec, seed=1).to_bytes()


def renamed(data: pl.DataFrame, fresh: bool) -> pl.DataFrame:
    """``data``, or with ``fresh`` its series renamed so a model trained on ``data`` has never seen them."""
    return data.with_columns(("fresh-" + pl.col(SID)).alias(SID)) if fresh else data


@pytest.mark.parametrize("fresh", [False, True], ids=["seen", "unseen"])
@pytest.mark.parametrize("cls", STATS)
def test_predictions_ignore_rows_after_the_forecast_point(
    cls: type[ForecastModel], data: pl.DataFrame, fresh: bool
) -> None:
    spec = monthly_spec()
    model = cls.fit(data, spec)
    data = renamed(data, fresh)
    sid = data.get_column(SID)[0]
    lo = int(data.get_column(IDX).min())  # type: ignore[arg-type]
    query = query_at(data, {sid: [lo + 50, lo + 70]}, spec.distances)
    base = model.predict(data, query, spec)
    tampered = data.with_columns(
        pl.when(pl.col(IDX) > lo + 50).then(pl.col(Y) * 10).otherwise(pl.col(Y)).alias(Y)
    )
    changed = model.predict(tampered, query, spec)
    first = query.get_column(FP).to_numpy() == lo + 50
    np.testing.assert_allclose(changed[first], base[first])
    assert not np.allclose(changed[~first], base[~first])


@pytest.mark.parametrize("fresh", [False, True], ids=["seen", "unseen"])
@pytest.mark.parametrize("cls", STATS)
def test_rows_older_than_the_window_change_nothing(
    cls: type[ForecastModel], data: pl.DataFrame, fresh: bool
) -> None:
    spec = monthly_spec()
    model = cls.fit(data, spec)
    data = renamed(data, fresh)
    query = last_origin_query(data, spec)
    recent = data.filter(pl.col(IDX) > pl.col(IDX).max() - spec.fdw)
    np.testing.assert_allclose(model.predict(recent, query, spec), model.predict(data, query, spec))


@pytest.mark.parametrize("cls", STATS)
def test_gaps_in_history_are_tolerated(cls: type[ForecastModel], data: pl.DataFrame) -> None:
    spec = monthly_spec()
    model = cls.fit(data, spec)
    holes = data.filter(pl.col(ROW) % 7 != 3)
    yhat = model.predict(holes, last_origin_query(data, spec), spec)
    assert np.isfinite(yhat).all()


@pytest.mark.parametrize("cls", STATS)
def test_unseen_series_are_served(cls: type[ForecastModel], data: pl.DataFrame) -> None:
    spec = monthly_spec()
    model = cls.fit(data, spec)
    new = data.filter(pl.col(SID) == data.get_column(SID)[0]).with_columns(pl.lit("brand-new").alias(SID))
    yhat = model.predict(new, last_origin_query(new, spec), spec)
    assert np.isfinite(yhat).all()
    short = new.tail(3)  # too little for the window's estimator: still an answer
    assert np.isfinite(model.predict(short, last_origin_query(short, spec), spec)).all()


def test_arima_fits_an_unseen_series_on_its_window_as_training_would(data: pl.DataFrame) -> None:
    """Cold start: an unseen series gets what training on its posted window alone, with the panel's
    differencing, would give it."""
    spec = monthly_spec()
    model = ARIMAModel.fit(data, spec)
    new = data.filter(pl.col(SID) == data.get_column(SID)[1]).with_columns(pl.lit("brand-new").alias(SID))
    window = new.filter(pl.col(IDX) > pl.col(IDX).max() - spec.fdw)
    query = last_origin_query(new, spec)
    counts = [Counter(v[k] for v in model.series.values()).most_common() for k in "dD"]
    assert all(len(c) == 1 or c[0][1] > c[1][1] for c in counts)  # an unambiguous panel majority
    panel = [c[0][0] for c in counts]
    alone = ARIMAModel.fit(window, spec, exact=False, orders={"brand-new": panel})
    np.testing.assert_allclose(model.predict(new, query, spec), alone.predict(window, query, spec), rtol=1e-9)


@pytest.mark.parametrize("seasonal", [True, False], ids=["seasonal", "not-seasonal"])
def test_theta_finds_the_season_of_an_unseen_series_in_its_window(data: pl.DataFrame, seasonal: bool) -> None:
    """Three seasons are enough for the window fit to see a season (the old rule forecast it flat)."""
    spec = monthly_spec()
    model = ThetaModel.fit(data, spec)
    t = np.arange(48)
    amplitude = 0.3 if seasonal else 0.0
    noise = np.random.default_rng(3).normal(0, 0.002, t.size)
    new = pl.DataFrame(
        {
            SID: ["brand-new"] * t.size,
            IDX: 24_000 + t,
            Y: 500 * (1 + amplitude * np.sin(2 * np.pi * t / 12) + noise),
            ROW: t,
        }
    )
    yhat = model.predict(new, last_origin_query(new, spec), spec)
    truth = 500 * (1 + amplitude * np.sin(2 * np.pi * (t[-1] + np.arange(1, 13)) / 12))
    np.testing.assert_allclose(yhat, truth, rtol=0.02)
    if not seasonal:  # no season found: SES with a drift, a straight line
        assert np.ptp(np.diff(yhat)) < 1e-9


def test_ets_extrapolates_a_straight_line_exactly() -> None:
    spec = monthly_spec()
    t = np.arange(60)
    hist = pl.DataFrame({SID: ["a"] * 60, IDX: t, Y: 3.0 + 2.0 * t, ROW: t})
    model = ETSModel.fit(hist, spec)
    yhat = model.predict(hist, last_origin_query(hist, spec), spec)
    np.testing.assert_allclose(yhat, 3.0 + 2.0 * (59 + np.arange(1, 13)), rtol=1e-4)


def test_ets_on_the_log_scale_never_extrapolates_an_exponential_trend() -> None:
    """Exponential growth is fitted, on the log scale, with a damped trend at most (as R's ets)."""
    rng = np.random.default_rng(11)
    t = np.arange(120)
    y = 100 * np.exp(0.02 * t) * (1 + 0.1 * np.sin(2 * np.pi * t / 12)) * np.exp(rng.normal(0, 0.01, t.size))
    hist = pl.DataFrame({SID: ["a"] * t.size, IDX: t, Y: y, ROW: t})
    chosen = ETSModel.fit(hist, monthly_spec()).series["a"]
    assert not (chosen.log and chosen.trend == "A")
    # Backtest refits keep a given configuration even outside the search set.
    refit = ETSModel.fit(hist, monthly_spec(), configs={"a": ["A", True, True]}).series["a"]
    assert (refit.trend, refit.seasonal, refit.log) == ("A", True, True)
    # A deployment stored before keeps its exponential trend when served.
    old = ETSModel(12, 36, {"a": SeriesEts("A", True, True, 0.3, 0.01, 0.1, 1.0)}, chosen)
    yhat = old.predict(hist, last_origin_query(hist, monthly_spec()), monthly_spec())
    assert np.all(np.isfinite(yhat))
    assert yhat[-1] > yhat[0]


def test_ets_repeats_a_pure_seasonal_pattern() -> None:
    spec = monthly_spec()
    t = np.arange(72)
    pattern = np.array([5, 7, 9, 4, 3, 8, 10, 12, 6, 5, 4, 11], dtype=float)
    hist = pl.DataFrame({SID: ["a"] * 72, IDX: t, Y: 100 + pattern[t % 12], ROW: t})
    model = ETSModel.fit(hist, spec)
    yhat = model.predict(hist, last_origin_query(hist, spec), spec)
    np.testing.assert_allclose(yhat, 100 + pattern[(72 + np.arange(12)) % 12], atol=1e-3)


def test_arima_uses_known_in_advance_regressors() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(96)
    promo = (rng.random(96 + 12) < 0.3).astype(float)
    y = 50 + 20 * promo[:96] + rng.normal(0, 0.5, 96)
    hist = pl.DataFrame({SID: ["a"] * 96, IDX: t, Y: y, ROW: t, "promo": promo[:96]})
    spec = monthly_spec(("promo",))
    model = ARIMAModel.fit(hist, spec)
    query = query_at(hist, {"a": [95]}, spec.distances).with_columns(pl.Series("promo", promo[96:]))
    yhat = model.predict(hist, query, spec)
    np.testing.assert_allclose(yhat, 50 + 20 * promo[96:], atol=2.5)


def test_ensemble_is_the_mean_of_its_members(data: pl.DataFrame) -> None:
    spec = monthly_spec()
    members = [ETSModel.fit(data, spec), ThetaModel.fit(data, spec)]
    ens = EnsembleModel(members)
    query = last_origin_query(data, spec)
    expected = (members[0].predict(data, query, spec) + members[1].predict(data, query, spec)) / 2
    np.testing.assert_allclose(ens.predict(data, query, spec), expected)
    again = EnsembleModel.from_bytes(ens.to_bytes())
    np.testing.assert_allclose(again.predict(data, query, spec), expected)
    refit = EnsembleModel.fit(data, spec, **ens.refit_kwargs())
    assert [m.kind for m in refit.members] == ["ets", "theta"]


def test_weighted_ensemble_roundtrips_and_reads_unweighted_bytes(data: pl.DataFrame) -> None:
    spec = monthly_spec()
    members = [ETSModel.fit(data, spec), ThetaModel.fit(data, spec)]
    ens = EnsembleModel(members, [3.0, 1.0])
    assert ens.weights == [0.75, 0.25]
    query = last_origin_query(data, spec)
    expected = 0.75 * members[0].predict(data, query, spec) + 0.25 * members[1].predict(data, query, spec)
    np.testing.assert_allclose(ens.predict(data, query, spec), expected)
    np.testing.assert_allclose(EnsembleModel.from_bytes(ens.to_bytes()).predict(data, query, spec), expected)
    assert EnsembleModel.fit(data, spec, **ens.refit_kwargs()).weights == [0.75, 0.25]
    legacy = orjson.loads(ens.to_bytes())
    del legacy["weights"]
    assert EnsembleModel.from_bytes(orjson.dumps(legacy)).weights == [0.5, 0.5]
    with pytest.raises(TrainingDataError, match="positive"):
        EnsembleModel(members, [1.0, -1.0])


def test_ets_filters_a_thousand_series_fast() -> None:
    rng = np.random.default_rng(1)
    n, a = 1000, 56
    spec = TimeSeriesSpec(
        datetime_column="d",
        target="y",
        time_step=TimeStep("day"),
        feature_derivation_window=(-a, 0),
        forecast_window=(1, 28),
        series_id_column="s",
    )
    sids = np.repeat([f"s{i}" for i in range(n)], 120)
    idx = np.tile(np.arange(120), n)
    y = 100 + np.tile(10 * np.sin(np.arange(120) * 2 * np.pi / 7), n) + rng.normal(0, 1, n * 120)
    hist = pl.DataFrame({SID: sids, IDX: idx, Y: y, ROW: np.arange(n * 120)})
    # Stored parameters (fitting 1,000 series is a training cost, not under test).
    params = SeriesEts("Ad", True, False, 0.3, 0.05, 0.1, 0.95)
    model = ETSModel(7, a, {f"s{i}": params for i in range(n)}, params)
    query = last_origin_query(hist, spec)
    start = time.perf_counter()
    yhat = model.predict(hist, query, spec)
    elapsed = time.perf_counter() - start
    assert np.isfinite(yhat).all()
    assert elapsed < 1.5, f"{elapsed:.2f}s for 1,000 series x 28 steps"


def test_ets_initial_state_is_a_regression_on_the_first_seasons() -> None:
    # Level, slope and seasonal dummies come back exactly from noiseless data, even with a
    # gap in the first season, indexed by phase (column 0 is phase 5 here).
    pattern = np.array([3.0, -1.0, 4.0, -6.0])
    phase0 = np.array([5 % 4])
    t = np.arange(20)
    y = (10.0 + 0.5 * t + pattern[(5 + t) % 4])[None, :]
    y[0, 2] = np.nan
    level, slope, seasonal = _regression_init(y, phase0, 4, with_trend=True)
    np.testing.assert_allclose([level[0], slope[0]], [10.0, 0.5], atol=1e-3)
    np.testing.assert_allclose(seasonal[0], pattern - pattern.mean(), atol=1e-3)


def test_ets_initial_seasonal_states_average_out_noise() -> None:
    # Averaging three seasons, not reading one, is what keeps the grid search from
    # buying a large gamma to repair noisy initial states.
    rng = np.random.default_rng(3)
    pattern = np.array([5, 7, 9, 4, 3, 8, 10, 12, 6, 5, 4, 11], dtype=float)
    t = np.arange(60)
    y = 100 + pattern[t % 12][None, :] + rng.normal(0, 2, (200, 60))
    _, _, seasonal = _regression_init(y, np.zeros(200, dtype=np.int64), 12, with_trend=False)
    rms = np.sqrt(np.mean((seasonal - (pattern - pattern.mean())) ** 2))
    assert rms < 1.4  # one season's deviations would be off by the noise, about 2


def trending(n: int = 96, slope: float = 2.0) -> pl.DataFrame:
    rng = np.random.default_rng(7)
    t = np.arange(n)
    y = 50.0 + slope * t + rng.normal(0, 1.0, n)
    return pl.DataFrame({SID: ["a"] * n, IDX: t, Y: y, ROW: t})


def with_series_rows(model: ThetaModel, edit: Any) -> ThetaModel:
    state = orjson.loads(model.to_bytes())
    state["series"] = {s: edit(row) for s, row in state["series"].items()}
    return ThetaModel.from_bytes(orjson.dumps(state))


def _ses_sse(row: np.ndarray, alpha: float) -> float:
    """One-step SSE of SES on ``row`` (NaNs skipped) with its least-squares initial level, by a plain loop."""

    def sse(level0: float) -> float:
        level, total = level0, 0.0
        for value in row:
            if np.isfinite(value):
                total += (value - level) ** 2
                level += alpha * (value - level)
        return total

    # SSE is quadratic in the initial level: three evaluations give its minimum.
    f0, f1, f2 = sse(0.0), sse(1.0), sse(2.0)
    a, b = (f2 - 2 * f1 + f0) / 2, f1 - f0 - (f2 - 2 * f1 + f0) / 2
    return sse(-b / (2 * a)) if a > 0 else f0


@pytest.mark.parametrize("seed", [0, 1])
def test_ses_alpha_matches_a_plain_loop_with_missing_values(seed: int) -> None:
    """Rows with leading gaps and scattered NaNs: the grid alpha and SSE of a scalar SES loop."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(4, 60)).cumsum(axis=1)
    z[1, :15] = np.nan
    z[2, rng.random(60) < 0.2] = np.nan
    z[3, ::7] = np.nan
    alpha, sse = ses_alpha(z)
    for row, a, s in zip(z, alpha, sse, strict=True):
        expected = [_ses_sse(row, float(g)) for g in ALPHA_GRID]
        assert a == ALPHA_GRID[int(np.argmin(expected))]
        assert s == pytest.approx(min(expected), rel=1e-9, abs=1e-9)


def test_theta_drift_uses_the_stored_training_slope() -> None:
    spec = monthly_spec()
    hist = trending()
    model = ThetaModel.fit(hist, spec)
    stored = model.series["a"]
    assert stored.fraction is not None
    assert stored.fraction > 0
    assert stored.slope == pytest.approx(2.0, abs=0.05)
    query = last_origin_query(hist, spec)
    base = model.predict(hist, query, spec)
    steeper = with_series_rows(model, lambda row: [*row[:4], row[4] + 4.0])
    lifted = steeper.predict(hist, query, spec) - base
    # Half of the +4 stored slope enters the drift, scaled by the fraction, at every step.
    np.testing.assert_allclose(np.diff(lifted), 0.5 * 4.0 * stored.fraction, rtol=0.05)
    assert lifted[0] > 0


def test_theta_stored_slope_is_a_training_constant_not_a_window_read() -> None:
    spec = monthly_spec()
    hist = trending()
    model = ThetaModel.fit(hist, spec)
    query = last_origin_query(hist, spec)
    # Older rows, even ones that would reverse the trend, change nothing.
    older = pl.DataFrame(
        {SID: ["a"] * 40, IDX: np.arange(-40, 0), Y: np.linspace(2000.0, 50.0, 40), ROW: -1 - np.arange(40)}
    )
    np.testing.assert_allclose(
        model.predict(pl.concat([older, hist]), query, spec), model.predict(hist, query, spec)
    )


def test_theta_reads_old_payloads_and_keeps_their_window_slope_rule() -> None:
    spec = monthly_spec()
    hist = trending()
    model = ThetaModel.fit(hist, spec)
    legacy = with_series_rows(model, lambda row: row[:3])
    assert legacy.series["a"].fraction is None
    query = last_origin_query(hist, spec)
    window = hist.filter(pl.col(IDX) > pl.col(IDX).max() - spec.fdw).get_column(Y).to_numpy()[None, :]
    expected = theta_forecast(window, np.array([legacy.series["a"].alpha]), 12)[0]
    np.testing.assert_allclose(legacy.predict(hist, query, spec), expected)
    assert not np.allclose(model.predict(hist, query, spec), expected)
    assert ThetaModel.from_bytes(legacy.to_bytes()).to_bytes() == legacy.to_bytes()


def test_theta_optimises_the_drift_fraction_on_a_straight_line() -> None:
    # Standard Theta (fraction 1/2) lags a clean trend; the optimised fraction does not.
    spec = monthly_spec()
    t = np.arange(72)
    hist = pl.DataFrame({SID: ["a"] * 72, IDX: t, Y: 3.0 + 2.0 * t, ROW: t})
    model = ThetaModel.fit(hist, spec)
    assert model.series["a"].fraction == max(DRIFT_FRACTIONS)
    yhat = model.predict(hist, last_origin_query(hist, spec), spec)
    np.testing.assert_allclose(np.diff(yhat), 2.0 * max(DRIFT_FRACTIONS), rtol=1e-6)


def test_arima_drops_a_season_the_window_cannot_hold_twice() -> None:
    """Weekly data with a 52-week window: a seasonal difference would leave nothing to forecast from."""
    rng = np.random.default_rng(4)
    t = np.arange(260)
    hist = pl.DataFrame(
        {SID: ["a"] * 260, IDX: t, Y: 100 + 10 * np.sin(2 * np.pi * t / 52) + rng.normal(0, 1, 260), ROW: t}
    )
    spec = stepped_spec("week", fdw=52, horizon=13)
    model = ARIMAModel.fit(hist, spec)
    assert model.season == 1
    yhat = model.predict(hist, query_at(hist, {"a": [259]}, spec.distances), spec)
    assert np.isfinite(yhat).all()
    two_years = dataclasses.replace(spec, feature_derivation_window=(-104, 0))
    assert ARIMAModel.fit(hist, two_years).season == 52


def test_arima_differences_a_season_whose_amplitude_grows_with_the_level() -> None:
    """Quarterly sales growing 5 % a quarter with a ±40 % season: the season is strong, so D = 1.

    A fixed-index (classical) decomposition called this season weak, because its
    amplitude grows tenfold over the sample; STL lets the seasonal component
    evolve, as R's ``nsdiffs`` does.  White noise and a random walk stay undifferenced
    seasonally.
    """
    rng = np.random.default_rng(11)
    t = np.arange(96)
    season = np.array([1.0, 1.4, 0.8, 0.6])[t % 4]
    series = {
        "growing": np.exp(0.05 * t) * season * np.exp(rng.normal(0, 0.03, t.size)),
        "noise": rng.normal(100, 5, t.size),
        "walk": 100 + rng.normal(0, 1, t.size).cumsum(),
    }
    hist = pl.DataFrame(
        {
            SID: np.repeat(list(series), t.size),
            IDX: np.tile(t, len(series)),
            Y: np.concatenate(list(series.values())),
        }
    ).with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias(ROW))
    model = ARIMAModel.fit(hist, stepped_spec("quarter", fdw=16, horizon=8))
    assert model.season == 4
    assert {sid: model.series[sid]["D"] for sid in series} == {"growing": 1, "noise": 0, "walk": 0}


def test_arima_on_a_single_series_estimates_by_exact_likelihood_and_keeps_it_in_backtests() -> None:
    """One series is within the exact-MLE budget: an ARMA(1, 1) is recovered, and refits stay exact."""
    rng = np.random.default_rng(5)
    n = 400
    e = rng.normal(0, 1, n)
    u = np.zeros(n)
    for t in range(1, n):
        u[t] = 0.7 * u[t - 1] + e[t] + 0.4 * e[t - 1]
    hist = pl.DataFrame({SID: ["a"] * n, IDX: np.arange(n), Y: 50 + u, ROW: np.arange(n)})
    spec = stepped_spec("year", fdw=40, horizon=5)
    model = ARIMAModel.fit(hist, spec)
    assert model.exact
    assert model.describe()["estimator"] == "exact MLE"
    fitted = model.series["a"]
    assert fitted["d"] == 0
    # The same dynamics whatever order AICc settles on (on this sample an AR(4) beats
    # the true ARMA(1, 1) by AICc): the first impulse responses match.
    psi = arma2ma(np.r_[1, -np.asarray(fitted["ar"])], np.r_[1, fitted["ma"]], lags=4)
    true = arma2ma(np.r_[1, -0.7], np.r_[1, 0.4], lags=4)
    np.testing.assert_allclose(psi, true, atol=0.1)
    assert model.refit_kwargs()["exact"] is True
    restored = ARIMAModel.from_bytes(model.to_bytes())
    assert restored.exact
    refit = ARIMAModel.fit(hist.head(300), spec, **model.refit_kwargs())
    assert refit.exact
    assert refit.series["a"]["orders"] == fitted["orders"]


@pytest.mark.parametrize(
    ("step", "season", "n"),
    [(TimeStep("minute", 30), 48, 960), (TimeStep("week"), 52, 600), (TimeStep("month"), 12, 2400)],
)
def test_arima_on_a_single_series_keeps_hannan_rissanen_where_exact_fits_cost_seconds(
    step: TimeStep, season: int, n: int
) -> None:
    """A long season (a state-space fit per order takes seconds) or long data stay on Hannan-Rissanen."""
    rng = np.random.default_rng(3)
    t = np.arange(n)
    y = 100 + 10 * np.sin(2 * np.pi * t / season) + rng.normal(0, 1, n).cumsum() * 0.3
    hist = pl.DataFrame({SID: ["a"] * n, IDX: t, Y: y, ROW: t})
    model = ARIMAModel.fit(hist, stepped_spec(step, fdw=3 * season, horizon=6))
    assert model.season == season
    assert not model.exact
    assert model.describe()["estimator"] == "Hannan-Rissanen"


def test_arima_on_a_panel_beyond_the_budget_keeps_hannan_rissanen() -> None:
    model = ARIMAModel.fit(employment(5), monthly_spec())
    assert not model.exact
    assert model.describe()["estimator"] == "Hannan-Rissanen"
    assert ARIMAModel.from_bytes(model.to_bytes()).exact is False
