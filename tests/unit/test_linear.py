"""The pooled linear autoregression: what it recovers, what it reads, how it stores its tuning."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from test_lgbm import _train as train_flights
from test_models_stats import employment, last_origin_query, monthly_spec, query_at

from tsengine.errors import TrainingDataError
from tsengine.features import D
from tsengine.models import LinearModel
from tsengine.models.linear import RIDGES
from tsengine.validate import IDX, ROW, SID, Y


def _panel(values: dict[str, np.ndarray], **extra: dict[str, np.ndarray]) -> pl.DataFrame:
    frames = []
    for s, y in values.items():
        t = np.arange(len(y))
        cols = {
            SID: [s] * len(y),
            IDX: t,
            Y: y.astype(float),
            **{k: v[s][: len(y)] for k, v in extra.items()},
        }
        frames.append(pl.DataFrame(cols))
    return pl.concat(frames).with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias(ROW))


def test_extrapolates_straight_lines_of_any_magnitude_and_serves_unseen_series() -> None:
    """Scaled changes of a line are linear in the scaled lags, so the pooled fit is exact."""
    t = np.arange(60)
    hist = _panel({"a": 3.0 + 2.0 * t, "b": 500.0 - 7.0 * t, "c": 40.0 + 0.5 * t})
    spec = monthly_spec()
    model = LinearModel.fit(hist, spec)
    query = last_origin_query(hist, spec)
    yhat = model.predict(hist, query, spec)
    line = {"a": (3.0, 2.0), "b": (500.0, -7.0), "c": (40.0, 0.5)}
    sid, at = query.get_column(SID).to_list(), query.get_column(IDX).to_numpy()
    expected = np.array([line[s][0] + line[s][1] * i for s, i in zip(sid, at, strict=True)])
    np.testing.assert_allclose(yhat, expected, rtol=1e-3)
    ahead = 59 + np.arange(1, 13)
    new = _panel({"new": 1000.0 + 30.0 * t})
    np.testing.assert_allclose(
        model.predict(new, last_origin_query(new, spec), spec), 1000.0 + 30.0 * ahead, rtol=1e-3
    )


def test_forecasts_scale_with_the_posted_history() -> None:
    data = employment()
    spec = monthly_spec()
    model = LinearModel.fit(data, spec)
    query = last_origin_query(data, spec)
    base = model.predict(data, query, spec)
    tripled = model.predict(data.with_columns(pl.col(Y) * 3), query, spec)
    np.testing.assert_allclose(tripled, 3 * base, rtol=1e-9)


def test_repeats_a_seasonal_pattern_shared_by_the_panel() -> None:
    t = np.arange(96)
    pattern = np.array([5, 7, 9, 4, 3, 8, 10, 12, 6, 5, 4, 11], dtype=float)
    hist = _panel({s: level + level / 50 * pattern[t % 12] for s, level in (("a", 100.0), ("b", 20.0))})
    spec = monthly_spec()
    model = LinearModel.fit(hist, spec)
    query = last_origin_query(hist, spec)
    yhat = model.predict(hist, query, spec)
    level = {"a": 100.0, "b": 20.0}
    sid, at = query.get_column(SID).to_list(), query.get_column(IDX).to_numpy()
    expected = np.array([level[s] * (1 + pattern[i % 12] / 50) for s, i in zip(sid, at, strict=True)])
    np.testing.assert_allclose(yhat, expected, rtol=2e-3)


def test_uses_numeric_known_in_advance_values_at_the_target_time() -> None:
    rng = np.random.default_rng(0)
    n = 120
    promo = {s: (rng.random(n + 12) < 0.3).astype(float) for s in ("a", "b", "c")}
    values = {s: 50 + 20 * promo[s][:n] + rng.normal(0, 0.5, n) for s in promo}
    hist = _panel(values, promo=promo)
    spec = monthly_spec(("promo",))
    model = LinearModel.fit(hist, spec)
    query = query_at(hist, {"a": [n - 1]}, spec.distances).with_columns(pl.Series("promo", promo["a"][n:]))
    yhat = model.predict(hist, query, spec)
    np.testing.assert_allclose(yhat, 50 + 20 * promo["a"][n:], atol=3.0)
    assert model.describe()["known_in_advance"] == ["promo"]


def test_lags_and_ridge_are_searched_once_and_reused_by_backtest_refits() -> None:
    data = employment(8)
    spec = monthly_spec()
    model = LinearModel.fit(data, spec)
    assert model.ridge in RIDGES
    assert model.refit_kwargs() == {"ridge": model.ridge, "lags": model.lags}
    assert model.lags in (24, 36)
    again = LinearModel.fit(data, spec, **model.refit_kwargs())
    np.testing.assert_array_equal(again.coef, model.coef)
    forced = LinearModel.fit(data, spec, ridge=RIDGES[-1], lags=model.lags)
    assert forced.ridge == RIDGES[-1]
    assert model.ridge == RIDGES[-1] or not np.allclose(forced.coef, model.coef)


def test_a_window_without_targets_predicts_nan_not_garbage() -> None:
    data = employment(3)
    spec = monthly_spec()
    model = LinearModel.fit(data, spec)
    query = last_origin_query(data, spec)
    empty = data.with_columns(pl.lit(None, dtype=pl.Float64).alias(Y))
    assert np.isnan(model.predict(empty, query, spec)).all()
    assert model.predict(data, query.head(0), spec).shape == (0,)
    assert set(query.get_column(D).to_list()) == set(model.distances)


def test_too_short_data_is_a_training_error() -> None:
    hist = _panel({"a": np.arange(10.0)})
    with pytest.raises(TrainingDataError, match="feature derivation window"):
        LinearModel.fit(hist, monthly_spec())


def test_trains_and_serves_through_a_deployment(small_flights: pl.DataFrame) -> None:
    dep = train_flights(small_flights, "linear")
    assert dep.model.kind == "linear"
    out = dep.predict(small_flights.filter(pl.col("date") <= "2013-12-20"), relax_known_in_advance=True)
    n_series = small_flights.get_column("series").n_unique()
    assert out.height == 7 * n_series
    assert out.get_column("prediction").is_finite().all()
