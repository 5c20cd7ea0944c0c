"""The Theta method per series (Assimakopoulos & Nikolopoulos), re-filtered on posted history.

Theta is simple exponential smoothing plus half the slope of a linear trend
(Hyndman & Billah 2003), applied to seasonally adjusted data.  Training
stores, per series: whether it is seasonal (the classical 90 % autocorrelation
test at the seasonal lag), the seasonal indices by calendar phase
(``grid index mod season``; multiplicative for positive series, additive
otherwise) and the smoothing weight alpha (least one-step SSE, the grid search
shared with :mod:`tsengine.models.ets`).

Prediction adjusts each origin's window ``(fp - a, fp]`` with the stored
indices, runs SES from the least-squares initial level, takes the slope of the
adjusted window by least squares (the drift is a property of the recent
history, so it is re-estimated from what was posted, like the level) and
re-seasonalises.  Gaps are skipped by the filter and by the slope fit.

Unseen series: non-seasonal SES with the median alpha of the training series.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import orjson
import polars as pl

from tsengine.errors import TrainingDataError
from tsengine.features import D, season_length
from tsengine.models._series import origin_windows, training_matrix
from tsengine.models.base import ForecastModel
from tsengine.models.ets import EtsParams, filter_least_squares, fit_ets_grid
from tsengine.spec import TimeSeriesSpec

__all__ = ["ThetaModel", "seasonal_indices", "theta_forecast"]

# z-value of the two-sided 90 % seasonality test used by the classical Theta method.
SEASONALITY_Z = 1.645


def _acf(y: np.ndarray, lags: int) -> np.ndarray:
    """Autocorrelations 1..lags of one series (NaNs dropped first)."""
    x = y[np.isfinite(y)]
    x = x - x.mean()
    denom = float(np.sum(x * x))
    if denom <= 0 or x.size <= lags:
        return np.zeros(lags)
    return np.asarray([float(np.sum(x[k:] * x[:-k])) / denom for k in range(1, lags + 1)])


def is_seasonal(y: np.ndarray, season: int) -> bool:
    """The Theta method's seasonality test at lag ``season``."""
    n = int(np.isfinite(y).sum())
    if season <= 1 or n < 3 * season:
        return False
    r = _acf(y, season)
    bound = SEASONALITY_Z * np.sqrt((1 + 2 * np.sum(r[:-1] ** 2)) / n)
    return bool(abs(r[-1]) > bound)


def seasonal_indices(y: np.ndarray, start: int, season: int, multiplicative: bool) -> np.ndarray:
    """Classical decomposition: mean detrended value per phase ``index mod season``."""
    n = y.size
    kernel = np.ones(season + 1) / season if season % 2 == 0 else np.ones(season) / season
    if season % 2 == 0:
        kernel[0] = kernel[-1] = 0.5 / season
    filled = np.where(np.isfinite(y), y, np.nanmean(y))
    trend = np.convolve(filled, kernel, mode="same")
    half = len(kernel) // 2
    valid = np.zeros(n, dtype=bool)
    valid[half : n - half] = True
    valid &= np.isfinite(y)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = y / trend if multiplicative else y - trend
    phase = (start + np.arange(n)) % season
    idx = np.asarray(
        [
            np.mean(ratio[valid & (phase == p)]) if np.any(valid & (phase == p)) else np.nan
            for p in range(season)
        ]
    )
    neutral = 1.0 if multiplicative else 0.0
    idx = np.where(np.isfinite(idx), idx, neutral)
    if multiplicative:
        idx = idx / idx.mean() if idx.mean() > 0 else np.ones(season)
        return np.asarray(np.where(idx > 0, idx, 1.0))
    return np.asarray(idx - idx.mean())


def _slopes(y: np.ndarray) -> np.ndarray:
    """Least-squares slope per row over observed points (0 with fewer than two)."""
    t = np.arange(y.shape[1], dtype=np.float64)[None, :]
    ok = np.isfinite(y)
    n = ok.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        tm = np.where(ok, t, 0.0).sum(axis=1) / n
        ym = np.where(ok, y, 0.0).sum(axis=1) / n
        dt = np.where(ok, t - tm[:, None], 0.0)
        cov = (dt * np.where(ok, y - ym[:, None], 0.0)).sum(axis=1)
        var = (dt * dt).sum(axis=1)
        slope = cov / var
    return np.where((n >= 2) & (var > 0), slope, 0.0)


def theta_forecast(adjusted: np.ndarray, alpha: np.ndarray, horizon: int) -> np.ndarray:
    """Theta forecasts of seasonally adjusted windows, shape ``(B, horizon)``."""
    zeros = np.zeros_like(alpha)
    params = EtsParams(alpha, zeros, zeros, zeros)
    level, _, _ = filter_least_squares(adjusted, params, np.zeros(len(alpha), dtype=np.int64), 0, "N")
    b0 = _slopes(adjusted)
    n = np.isfinite(adjusted).sum(axis=1)
    h = np.arange(1, horizon + 1, dtype=np.float64)[None, :]
    a = alpha[:, None]
    drift = 0.5 * b0[:, None] * (h - 1 + 1 / a - (1 - a) ** n[:, None] / a)
    return np.asarray(level[:, None] + drift)


class ThetaModel(ForecastModel):
    """Seasonally adjusted SES with half-slope drift, per series."""

    kind = "theta"

    def __init__(
        self,
        season: int,
        window: int,
        series: dict[str, tuple[float, int, list[float]]],
        fallback_alpha: float,
    ) -> None:
        # series: sid -> (alpha, mode 0 none / 1 multiplicative / 2 additive, indices by phase)
        self.season = season
        self.window = window
        self.series = series
        self.fallback_alpha = fallback_alpha

    @classmethod
    def fit(cls, history: pl.DataFrame, spec: TimeSeriesSpec, *, seed: int = 0) -> Self:  # noqa: ARG003
        """Test seasonality, decompose and estimate alpha per series.

        Raises:
            TrainingDataError: no series has an observed target.
        """
        season = season_length(spec.time_step, spec.fdw)
        mat = training_matrix(history)
        if not mat.sids:
            msg = "the training data has no observed target values to fit Theta on"
            raise TrainingDataError(msg)
        adjusted = mat.y.copy()
        modes: list[int] = []
        indices: list[list[float]] = []
        for r in range(len(mat.sids)):
            y = mat.y[r, : mat.length[r]]
            mode = 0
            idx = np.ones(max(season, 1))
            if is_seasonal(y, season):
                positive = bool(np.all(y[np.isfinite(y)] > 0))
                mode = 1 if positive else 2
                idx = seasonal_indices(y, int(mat.start[r]), season, positive)
                phase = (mat.start[r] + np.arange(mat.y.shape[1])) % season
                adjusted[r] = mat.y[r] / idx[phase] if positive else mat.y[r] - idx[phase]
            modes.append(mode)
            indices.append([float(v) for v in idx] if mode else [])
        params, _, _ = fit_ets_grid(adjusted, np.zeros(len(mat.sids), dtype=np.int64), 0, "N", False)
        alphas = [float(a) for a in params[:, 0]]
        series = {s: (alphas[r], modes[r], indices[r]) for r, s in enumerate(mat.sids)}
        return cls(season, spec.fdw, series, float(np.median(alphas)))

    def _adjust(self, sids: list[str], fp: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, ...]:
        """Seasonally adjusted windows plus per-row alpha, mode and indices."""
        n, width = y.shape
        m = max(self.season, 1)
        alpha = np.empty(n)
        mode = np.zeros(n, dtype=np.int64)
        table = np.ones((n, m))
        for r, s in enumerate(sids):
            a, md, idx = self.series.get(s, (self.fallback_alpha, 0, []))
            alpha[r], mode[r] = a, md
            if md:
                table[r] = idx
        phase = (fp[:, None] - width + 1 + np.arange(width)[None, :]) % m
        factors = np.take_along_axis(table, phase, axis=1)
        adjusted = np.where(mode[:, None] == 1, y / factors, np.where(mode[:, None] == 2, y - factors, y))
        return adjusted, alpha, mode, table

    def predict(self, history: pl.DataFrame, query: pl.DataFrame, spec: TimeSeriesSpec) -> np.ndarray:  # noqa: ARG002
        """Adjust, smooth, add the drift, re-seasonalise; vectorised over origins."""
        if query.height == 0:
            return np.empty(0)
        win = origin_windows(history, query, self.window)
        horizon = int(query.get_column(D).max())  # type: ignore[arg-type]
        adjusted, alpha, mode, table = self._adjust(win.sids, win.fp, win.y)
        fc = theta_forecast(adjusted, alpha, horizon)
        m = max(self.season, 1)
        phase = (win.fp[:, None] + np.arange(1, horizon + 1)[None, :]) % m
        factors = np.take_along_axis(table, phase, axis=1)
        fc = np.where(mode[:, None] == 1, fc * factors, np.where(mode[:, None] == 2, fc + factors, fc))
        fc[~np.isfinite(win.y).any(axis=1)] = np.nan
        d = query.get_column(D).to_numpy().astype(np.int64)
        return np.asarray(fc[win.origin, d - 1])

    def to_bytes(self) -> bytes:
        """Parameters as JSON."""
        return orjson.dumps(
            {
                "season": self.season,
                "window": self.window,
                "series": {s: list(v) for s, v in self.series.items()},
                "fallback_alpha": self.fallback_alpha,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Inverse of :meth:`to_bytes`."""
        state = orjson.loads(data)
        series = {s: (float(v[0]), int(v[1]), [float(x) for x in v[2]]) for s, v in state["series"].items()}
        return cls(int(state["season"]), int(state["window"]), series, float(state["fallback_alpha"]))

    def describe(self) -> dict[str, Any]:
        """Season and how many series were seasonally adjusted."""
        seasonal = sum(1 for v in self.series.values() if v[1])
        return {"kind": self.kind, "season": self.season, "seasonal_series": seasonal}
