"""ARIMA forecasts as contributions of the posted window's values.

The forecast of :class:`~tsengine.models.arima.ARIMAModel` is linear in what it
reads: the regression-free window ``u = y - x'beta`` and the constant (the
differencing, the conditional ARMA recursion and the integration are all
linear maps), then ``x'beta`` at the target time is added.  So for each origin
there are weights ``a`` (one per window position and distance) and ``b`` with

``forecast = a · y - sum_k beta_k (a · x_k) + b · constant + sum_k beta_k x_k(target)``

and the contributions are exactly those terms:

* ``<target> (lag j)``: ``a_j y[fp - j]``, the weight of the value ``j`` steps
  before the forecast point times that value (shown: the value observed, none
  for an interpolated gap, which still contributes its interpolated value);
* ``<target> (constant)``: ``b`` times the stored constant (the mean of an
  undifferenced model, the drift per step of a differenced one; shown: it);
* ``<known-in-advance column>``: ``beta_k (x_k(target) - a · x_k)``, the
  regression at the target time less what the window's own regression
  effect passed on (shown: the value at the target time).

The base is 0.  The weights are found by running the model's own forecast
recursion (:func:`~tsengine.models.arima.arima_forecast`) on unit windows, all
origins and window positions in one vectorised batch, so the contributions add
up to the prediction by construction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from tsengine.contributions import Contributions, numeric_values
from tsengine.models.arima import arima_forecast, arima_groups
from tsengine.spec import TimeSeriesSpec

if TYPE_CHECKING:
    from tsengine.models.arima import ARIMAModel

__all__ = ["arima_contributions", "forecast_weights"]

# Origins whose unit windows run through the recursion at once: each brings
# window + 1 rows, so this bounds the batch at a few MB for daily windows.
_ORIGINS_PER_BATCH = 512


def forecast_weights(
    ar: np.ndarray,
    ma: np.ndarray,
    d: int,
    big_d: int,
    season: int,
    width: int,
    horizon: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The linear map of :func:`~tsengine.models.arima.arima_forecast`, per origin.

    Args:
        ar: ``(B, la)`` AR polynomials of the origins.
        ma: ``(B, lm)`` MA polynomials.
        d: ordinary differences.
        big_d: seasonal differences.
        season: the seasonal period.
        width: the window length.
        horizon: distances 1..horizon.

    Returns:
        ``(a (B, width, horizon), b (B, horizon))`` with
        ``arima_forecast(u, ar, ma, mean, ...) == einsum("bw,bwh->bh", u, a) + b * mean``.
    """
    n = ar.shape[0]
    a = np.empty((n, width, horizon))
    b = np.empty((n, horizon))
    for lo in range(0, n, _ORIGINS_PER_BATCH):
        rows = slice(lo, min(n, lo + _ORIGINS_PER_BATCH))
        k = rows.stop - rows.start
        unit = np.vstack([np.eye(width), np.zeros((1, width))])  # each position, then the constant
        u = np.tile(unit, (k, 1))
        mean = np.tile(np.r_[np.zeros(width), 1.0], k)
        out = arima_forecast(
            u,
            np.repeat(ar[rows], width + 1, axis=0),
            np.repeat(ma[rows], width + 1, axis=0),
            mean,
            d,
            big_d,
            season,
            horizon,
        ).reshape(k, width + 1, horizon)
        a[rows], b[rows] = out[:, :width], out[:, width]
    return a, b


def arima_contributions(
    model: ARIMAModel, history: pl.DataFrame, query: pl.DataFrame, spec: TimeSeriesSpec
) -> Contributions:
    """Each query row's forecast split over the window's values, the constant and the regressors; base 0."""
    width = model.window
    lags = [f"{spec.target} (lag {j})" for j in range(width)]  # column c of a window is lag width - 1 - c
    names = [*lags, f"{spec.target} (constant)", *model.regressors]
    if query.height == 0:
        return Contributions.empty(names)
    w = model.windows(history, query)
    win = w.win
    horizon = win.horizon
    n = len(w.specs)
    a = np.full((n, width, horizon), np.nan)
    b = np.full((n, horizon), np.nan)
    for (d, big_d), (rows, ar, ma, _) in arima_groups(w.specs).items():
        ok = rows[np.isfinite(w.u[rows]).all(axis=1)]
        if ok.size:
            pos = np.searchsorted(rows, ok)
            a[ok], b[ok] = forecast_weights(ar[pos], ma[pos], d, big_d, model.season, width, horizon)
    origin, step = win.origin, win.distance - 1
    weights = a[origin, :, step]  # (rows, width): window column c
    mean = np.asarray([float(sp["mean"]) for sp in w.specs])
    lag_parts = (weights * w.y[origin])[:, ::-1]
    constant = b[origin, step] * mean[origin]
    known = model.known(query)
    regression = [
        w.beta[origin, j] * (known[:, j] - (weights * w.x[k][origin]).sum(axis=1))
        for j, k in enumerate(model.regressors)
    ]
    strengths = np.column_stack([lag_parts, constant, *regression])
    base = np.where(np.isfinite(strengths).all(axis=1), 0.0, np.nan)
    shown = [*win.y[origin][:, ::-1].T, mean[origin], *known.T]
    return Contributions(strengths, base, names, numeric_values(shown, query.height))
