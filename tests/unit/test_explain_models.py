"""Every time series model kind explains its forecasts: contributions that add up to ``predict``."""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import polars as pl
import pytest
from test_models_stats import employment, monthly_spec, query_at

import tsengine
from tsengine.contributions import Contributions, format_values
from tsengine.explain import explanation_columns
from tsengine.models import MODELS, EnsembleModel, ETSModel, PerSeriesModel, ThetaModel
from tsengine.models.base import ForecastModel
from tsengine.options import PredictOptions
from tsengine.spec import TimeSeriesSpec
from tsengine.validate import IDX, SID

KINDS = (
    "ets",
    "theta",
    "arima",
    "linear",
    "seasonal_naive",
    "lightgbm",
    "lightgbm_diff",
    "lightgbm_log",
    "lightgbm_series_scale",
)
# Readable names: the target's or a column's name, then an optional "(...)" part.
NAME = re.compile(r"^[A-Za-z][\w ]*( \([\w ,]+\))?$")
HISTORICAL = PredictOptions(start=dt.datetime(2013, 12, 1), end=dt.datetime(2013, 12, 15), max_explanations=3)


@pytest.fixture(scope="module")
def flights(small_flights: pl.DataFrame) -> tsengine.Deployment:
    """The default deployment (every candidate, the winner served) of three flight series."""
    return tsengine.train(
        small_flights,
        target="delayed",
        datetime_column="date",
        series_id_column="series",
        known_in_advance=["scheduled", "holiday"],
        forecast_window=[1, 7],
        feature_derivation_window=[-28, 0],
        backtests=1,
        interval_percentile=None,
        deployment_id="explain-flights",
    )


@pytest.fixture(scope="module")
def flights_rows(
    flights: tsengine.Deployment, small_flights: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame, TimeSeriesSpec]:
    """Canonical history and a historical-mode query (many forecast points per series), with KIA values."""
    window = flights.window(small_flights, HISTORICAL)
    return window.history, window.query, flights.spec


@pytest.fixture(scope="module")
def monthly() -> tuple[pl.DataFrame, pl.DataFrame, TimeSeriesSpec]:
    """Five positive employment series (log ETS, multiplicative Theta), three origins each."""
    data = employment()
    last = data.group_by(SID).agg(pl.col(IDX).max())
    fps = {s: [int(i) - 24, int(i) - 7, int(i)] for s, i in last.iter_rows()}
    spec = monthly_spec()
    return data, query_at(data, fps, spec.distances), spec


def check(
    model: ForecastModel, history: pl.DataFrame, query: pl.DataFrame, spec: TimeSeriesSpec
) -> Contributions:
    """The model's contributions, checked against its own ``predict``."""
    found = model.explain(history, query, spec)
    assert found is not None
    predicted = model.predict(history, query, spec)
    rows = query.height
    assert found.strengths.shape == (rows, len(found.names)) == found.values.shape
    assert found.base.shape == (rows,)
    np.testing.assert_allclose(found.prediction, predicted, rtol=1e-9, atol=1e-9)
    assert np.isfinite(predicted).any()
    assert found.names
    assert len(set(found.names)) == len(found.names)
    assert all(NAME.match(n) and not n.startswith(("target", "calendar", "__")) for n in found.names), (
        found.names
    )
    assert format_values(found.values).shape == (rows, len(found.names))
    return found


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_adds_up_to_its_prediction_with_known_in_advance_features(
    kind: str, flights_rows: tuple[pl.DataFrame, pl.DataFrame, TimeSeriesSpec]
) -> None:
    history, query, spec = flights_rows
    found = check(MODELS[kind].fit(history, spec), history, query, spec)
    assert any(n.startswith("delayed (") for n in found.names)
    if kind in ("arima", "linear") or kind.startswith("lightgbm"):
        assert {"scheduled", "holiday"} <= set(found.names)  # KIA regressors by their column name


@pytest.mark.parametrize("kind", ["ets", "theta", "arima", "linear", "seasonal_naive"])
def test_every_kind_adds_up_on_positive_monthly_series(
    kind: str, monthly: tuple[pl.DataFrame, pl.DataFrame, TimeSeriesSpec]
) -> None:
    history, query, spec = monthly
    check(MODELS[kind].fit(history, spec), history, query, spec)


def test_multiplicative_components_add_up(monthly: tuple[pl.DataFrame, pl.DataFrame, TimeSeriesSpec]) -> None:
    history, query, spec = monthly
    sids = history.get_column(SID).unique().to_list()
    ets = ETSModel.fit(
        history, spec, configs={s: ["Ad", True, True] for s in sids}
    )  # damped, seasonal, on logs
    theta = ThetaModel.fit(history, spec)
    assert all(c.log and c.trend == "Ad" for c in ets.series.values())  # the product form is exercised
    assert any(st.mode == 1 for st in theta.series.values())
    for model in (ets, theta):
        found = check(model, history, query, spec)
        assert found.names == ["y (level)", "y (trend)", "y (season, lag 12)"]
        assert (found.base == 0).all()
        level = found.values[:, 0].astype(np.float64)
        np.testing.assert_allclose(found.strengths[:, 0], level)  # the level contributes its own value


def test_series_unseen_at_training_are_explained(
    flights_rows: tuple[pl.DataFrame, pl.DataFrame, TimeSeriesSpec],
) -> None:
    history, query, spec = flights_rows
    seen = history.filter(pl.col(SID) != history.item(0, SID))
    for kind in ("ets", "theta", "arima", "linear"):
        check(MODELS[kind].fit(seen, spec), history, query, spec)


def test_arima_splits_the_forecast_over_lags_constant_and_regressors(
    flights_rows: tuple[pl.DataFrame, pl.DataFrame, TimeSeriesSpec],
) -> None:
    history, query, spec = flights_rows
    found = check(MODELS["arima"].fit(history, spec), history, query, spec)
    assert found.names[:2] == ["delayed (lag 0)", "delayed (lag 1)"]
    assert found.names[-3:] == ["delayed (constant)", "scheduled", "holiday"]
    assert (found.base == 0).all()
    lag0 = found.values[:, 0].astype(np.float64)  # the value at the forecast point, as posted
    assert np.isfinite(lag0).all()


def test_ensemble_is_the_weighted_sum_of_its_members(
    flights_rows: tuple[pl.DataFrame, pl.DataFrame, TimeSeriesSpec],
) -> None:
    history, query, spec = flights_rows
    members = [MODELS[k].fit(history, spec) for k in ("ets", "arima", "linear", "lightgbm")]
    ensemble = EnsembleModel(members, [1.0, 2.0, 3.0, 4.0])
    found = check(ensemble, history, query, spec)
    parts = [m.explain(history, query, spec) for m in members]
    expected: dict[str, np.ndarray] = {}
    base = np.zeros(query.height)
    for w, part in zip(ensemble.weights, parts, strict=True):
        assert part is not None
        base += w * part.base
        for j, name in enumerate(part.names):
            expected[name] = expected.get(name, 0.0) + w * part.strengths[:, j]
    assert found.names == list(expected)  # merged by name, in order of first appearance
    np.testing.assert_allclose(found.base, base)
    for j, name in enumerate(found.names):
        np.testing.assert_allclose(found.strengths[:, j], expected[name], atol=1e-12)


def test_per_series_rows_are_the_picked_members(
    flights_rows: tuple[pl.DataFrame, pl.DataFrame, TimeSeriesSpec],
) -> None:
    history, query, spec = flights_rows
    members = [MODELS[k].fit(history, spec) for k in ("ets", "theta", "seasonal_naive")]
    sids = query.get_column(SID).unique(maintain_order=True).to_list()
    model = PerSeriesModel(members, [1.0, 1.0, 2.0], {sids[0]: "theta", sids[1]: "seasonal_naive"})
    found = check(model, history, query, spec)
    for sid, member in ((sids[0], members[1]), (sids[1], members[2])):
        rows = (query.get_column(SID) == sid).to_numpy()
        own = member.explain(history, query.filter(pl.col(SID) == sid), spec)
        assert own is not None
        cols = [found.names.index(n) for n in own.names]
        np.testing.assert_allclose(found.strengths[np.ix_(rows, cols)], own.strengths)
        others = np.setdiff1d(np.arange(len(found.names)), cols)
        assert (found.strengths[np.ix_(rows, others)] == 0).all()


def test_empty_query_has_no_rows(flights_rows: tuple[pl.DataFrame, pl.DataFrame, TimeSeriesSpec]) -> None:
    history, query, spec = flights_rows
    for kind in (*KINDS, "ensemble"):
        model = MODELS[kind].fit(
            history, spec, **({"members": ["ets", "theta"]} if kind == "ensemble" else {})
        )
        found = model.explain(history, query.head(0), spec)
        assert found is not None
        assert found.strengths.shape == (0, len(found.names))


def test_historical_mode_explains_the_default_deployment(
    flights: tsengine.Deployment, small_flights: pl.DataFrame
) -> None:
    result = flights.predict_result(small_flights, HISTORICAL)
    frame = result.frame
    assert not any("explanations" in w for w in result.warnings)
    assert frame.get_column("forecastPoint").n_unique() > 1  # historical: many forecast points
    feature, strength, _, value = explanation_columns(1)
    assert frame.get_column(feature).null_count() == 0
    assert frame.get_column(strength).null_count() == 0
    assert frame.get_column(value).null_count() < frame.height
    window = flights.window(small_flights, HISTORICAL)
    found = flights.model.explain(window.history, window.query, flights.spec)
    assert found is not None  # they add up to the served forecast (floored at 0: counts)
    served = frame.get_column("prediction").to_numpy()
    np.testing.assert_allclose(np.maximum(found.prediction, 0.0), served, rtol=1e-9)
