"""Conformal prediction intervals from backtest residuals.

Residuals of the selected model at the backtest origins, divided by each
origin's window scale, give per-distance empirical quantiles; a prediction's
interval is ``prediction + quantile · scale``.  Split-conformal in spirit: the
residuals come from forecasts the model made without seeing their targets.
Half-widths never shrink as the distance grows (a cumulative maximum): a
forecast further out is not more certain, and small samples should not say so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from tsengine.features import D

__all__ = ["DEFAULT_PERCENTILE", "IntervalTable", "fit_intervals"]

DEFAULT_PERCENTILE = 80
# Residuals wanted per distance; fewer pool the neighbouring distances.
MIN_RESIDUALS = 30


@dataclass(frozen=True, slots=True)
class IntervalTable:
    """Scaled residual quantiles per forecast distance."""

    percentile: int
    distances: tuple[int, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]

    def apply(
        self, prediction: np.ndarray, scale: np.ndarray, distance: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds for each prediction."""
        pos = np.searchsorted(np.asarray(self.distances), distance)
        pos = np.clip(pos, 0, len(self.distances) - 1)
        low = prediction + np.asarray(self.low)[pos] * scale
        high = prediction + np.asarray(self.high)[pos] * scale
        return np.minimum(low, prediction), np.maximum(high, prediction)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "percentile": self.percentile,
            "distances": list(self.distances),
            "low": list(self.low),
            "high": list(self.high),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IntervalTable:
        """Inverse of :meth:`to_dict`."""
        return cls(
            int(data["percentile"]),
            tuple(data["distances"]),
            tuple(data["low"]),
            tuple(data["high"]),
        )


def _conformal_levels(n: int, q_lo: float, q_hi: float) -> tuple[float, float]:
    """Split-conformal finite-sample levels: ``ceil((n + 1) q) / n``, clipped to [0, 1].

    The plain empirical quantile of n residuals covers a new one with
    probability slightly below the nominal level; this correction makes the
    guarantee hold for exchangeable residuals.
    """
    hi = min(1.0, np.ceil((n + 1) * q_hi) / n)
    lo = max(0.0, np.floor((n + 1) * q_lo) / n - 1 / n)
    return float(lo), float(hi)


def fit_intervals(
    rows: pl.DataFrame, distances: range, percentile: int = DEFAULT_PERCENTILE
) -> IntervalTable | None:
    """Quantiles of ``(y - yhat) / scale`` per distance from backtest rows.

    Returns None when the backtest has no usable residual.
    """
    valid = rows.filter(pl.col("y").is_not_null() & pl.col("yhat").is_finite())
    if valid.height == 0:
        return None
    resid = valid.select(pl.col(D), ((pl.col("y") - pl.col("yhat")) / pl.col("scale")).alias("r"))
    by_d = {int(d): g.get_column("r").to_numpy() for (d,), g in resid.group_by(D)}
    all_r = resid.get_column("r").to_numpy()
    q_lo, q_hi = (100 - percentile) / 200, (100 + percentile) / 200
    lows, highs = [], []
    ds = list(distances)
    for k, d in enumerate(ds):
        sample = by_d.get(d, np.empty(0))
        radius = 1
        while sample.size < MIN_RESIDUALS and radius < len(ds):
            near = ds[max(0, k - radius) : k + radius + 1]
            sample = np.concatenate([by_d.get(x, np.empty(0)) for x in near])
            radius += 1
        if sample.size == 0:
            sample = all_r
        lo, hi = _conformal_levels(sample.size, q_lo, q_hi)
        lows.append(float(np.quantile(sample, lo)))
        highs.append(float(np.quantile(sample, hi)))
    low = np.minimum.accumulate(np.minimum(lows, 0.0))
    high = np.maximum.accumulate(np.maximum(highs, 0.0))
    return IntervalTable(percentile, tuple(ds), tuple(map(float, low)), tuple(map(float, high)))
