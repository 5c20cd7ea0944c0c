"""Our vectorised ETS recursion against statsmodels' ``ETSModel`` as an oracle.

tsengine estimates ETS with its own grid search (statsmodels' optimiser costs
0.15-0.7 s per series), but the model is the same state-space model: with the
same parameters and initial states, one-step predictions and forecasts must
equal statsmodels' to rounding.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from statsmodels.tsa.exponential_smoothing.ets import ETSModel as StatsmodelsETS

from tsengine.models.ets import EtsParams, ets_filter, ets_forecast

SEASON = 4
HORIZON = 8


@pytest.mark.parametrize(
    ("trend", "damped", "seasonal"),
    [
        (None, False, None),
        ("add", False, None),
        ("add", True, None),
        (None, False, "add"),
        ("add", True, "add"),
    ],
)
def test_ets_recursion_matches_statsmodels(trend: str | None, damped: bool, seasonal: str | None) -> None:
    rng = np.random.default_rng(7)
    n = 41
    y = 50 + 0.5 * np.arange(n) + np.tile([5.0, -3.0, 2.0, -4.0], 11)[:n] + rng.normal(0, 1, n)
    alpha, beta, gamma, phi = 0.3, 0.05, 0.1, 0.9
    level0, slope0 = 48.0, 0.4
    pattern = np.array([4.0, -2.5, 1.5, -3.0])
    known: dict[str, object] = {"initial_level": level0}
    params = [alpha]
    if trend:
        known["initial_trend"] = slope0
        params.append(beta)
    if seasonal:
        known["initial_seasonal"] = pattern
        params.append(gamma)
    if damped:
        params.append(phi)
    oracle = StatsmodelsETS(
        pd.Series(y),
        error="add",
        trend=trend,
        damped_trend=damped,
        seasonal=seasonal,
        seasonal_periods=SEASON if seasonal else None,
        initialization_method="known",
        **known,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = oracle.smooth(params)
        expected_forecast = result.forecast(HORIZON).to_numpy()
    m = SEASON if seasonal else 0
    ours = EtsParams(
        np.array([alpha]),
        np.array([beta if trend else 0.0]),
        np.array([gamma if seasonal else 0.0]),
        np.array([phi if damped else 1.0]),
    )
    states = np.zeros((1, max(m, 1), 1))
    if seasonal:
        states[0, :, 0] = pattern
    level, slope, season_states, fitted = ets_filter(
        y[None, :],
        ours,
        np.array([0]),
        m,
        np.array([[level0]]),
        np.array([[slope0 if trend else 0.0]]),
        states,
    )
    np.testing.assert_allclose(fitted[0, :, 0], result.fittedvalues.to_numpy(), atol=1e-9)
    forecast = ets_forecast(
        level[:, 0], slope[:, 0], season_states[:, :, 0], ours.phi, np.array([n % max(m, 1)]), m, HORIZON
    )
    np.testing.assert_allclose(forecast[0], expected_forecast, atol=1e-9)
