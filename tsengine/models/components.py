"""Contributions of a forecast made of a level, a trend and a season (ETS, Theta).

The statistical models' forecasts are sums of components, or products of
them for the multiplicative (log-scale) variants; the explanation of such a
forecast is its components, named after the target:

* ``<target> (level)``: the smoothed level at the forecast point;
* ``<target> (trend)``: what the trend (drift) adds by the forecast distance;
* ``<target> (season, lag m)``: what the seasonal index of the target's phase
  adds, ``m`` the seasonal period (absent without a season).

The base is 0: the components are the whole forecast.  A product
``level x trend x season`` (ETS on the logarithm, Theta's multiplicative
indices) is attributed in that order: the level keeps its own value, the trend
what it multiplies onto the level, the season what it multiplies onto both, so
the three still add up exactly and keep their signs (a season below its mean
subtracts).
"""

from __future__ import annotations

import numpy as np

from tsengine.contributions import Contributions, numeric_values

__all__ = ["component_contributions", "component_names", "sequential_product"]


def component_names(target: str, season: int) -> list[str]:
    """``<target> (level)``, ``(trend)`` and, with a season, ``(season, lag m)``."""
    names = [f"{target} (level)", f"{target} (trend)"]
    if season > 1:
        names.append(f"{target} (season, lag {season})")
    return names


def sequential_product(
    level: np.ndarray, trend: np.ndarray, season: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Additive shares of ``level * trend * season`` (factors): level, then trend, then season.

    ``level + level (trend - 1) + level trend (season - 1)`` is the product.
    """
    with_trend = level * trend
    return level, with_trend - level, with_trend * season - with_trend


def component_contributions(
    target: str,
    season: int,
    parts: tuple[np.ndarray, np.ndarray, np.ndarray],
    shown: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> Contributions:
    """Contributions (base 0) of forecasts that are ``level + trend + season`` in target units.

    Args:
        target: the target column's name.
        season: the seasonal period (1: none, the season column is left out).
        parts: per query row, the level, trend and seasonal contributions.
        shown: per query row, their display values (the level, the slope per
            step, the seasonal index; factors for the multiplicative models).
    """
    names = component_names(target, season)
    k = len(names)
    strengths = np.column_stack(parts[:k])
    rows = strengths.shape[0]
    base = np.where(np.isfinite(strengths).all(axis=1), 0.0, np.nan)
    return Contributions(strengths, base, names, numeric_values(shown[:k], rows))
