"""The seasonal period of a time step, and where each seasonal value lies.

Split from :mod:`tsengine.features` because more than the features need the
season: the statistical models (ETS, Theta, ARIMA), training and backtests pick
their seasonal period with :func:`season_length`, and thinning the training
origins keeps their stride coprime with it (:mod:`tsengine.training_query`).
"""

from __future__ import annotations

import numpy as np

from tsengine.timestep import TimeStep

__all__ = ["season_length", "seasonal_steps"]

# Seasonal cycles to look for, longest first [ours]: a day, an hour or a minute
# for sub-daily data, a week of days, a year of months or quarters.  Weekly and
# yearly data get none (52.18 weeks is not a whole number of steps).
_SEASON_SECONDS: tuple[float, ...] = (86_400.0, 3_600.0, 60.0)
_SEASON_MONTHS: dict[str, int] = {"month": 12, "quarter": 12}
_WEEKS_PER_YEAR = 52


def season_length(step: TimeStep, fdw: int) -> int:
    """The longest seasonal period (in steps) that fits in the window, or 1.

    A period must be a whole number of at least two steps and no longer than
    the feature derivation window, since every seasonal value is read inside it:
    half-hourly data with a two-day window gets a daily season (48), with a
    four-hour window an hourly one (2).
    """
    if step.is_calendar:
        months = _SEASON_MONTHS.get(step.unit)
        candidates = [months / step.months] if months else []
    elif step.unit == "day":  # a week: of business days on a grid that skips weekdays
        candidates = [step.business_days / step.count]
    elif step.unit == "week":
        # A year is 52.18 weeks; 52 is the usual approximation (R's ts, statsforecast).
        candidates = [_WEEKS_PER_YEAR / step.count]
    elif step.session_steps:  # business hours: a day is the session's steps
        candidates = [step.session_steps, *(s / step.seconds_approx for s in _SEASON_SECONDS[1:])]
    else:
        candidates = [seconds / step.seconds_approx for seconds in _SEASON_SECONDS]
    for period in candidates:
        if period >= 2 and period == int(period) and int(period) <= fdw:
            return int(period)
    return 1


def seasonal_steps(distances: np.ndarray, season: int) -> np.ndarray:
    """Steps back from the forecast point to the same season as ``fp + d``.

    ``j = m·season - d`` with ``m = ceil(d / season)``, so ``fp - j`` is the last
    observation inside ``(.., fp]`` that sits at the target's seasonal position.
    With no season this is 0: the last value.
    """
    if season <= 1:
        return np.zeros_like(distances)
    m = (distances + season - 1) // season
    return np.asarray(m * season - distances)
