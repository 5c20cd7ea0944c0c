"""ETS forecasts as level, trend and season contributions (see :mod:`tsengine.models.components`).

Split from :mod:`tsengine.models.ets` (estimation and filtering): this module
only re-reads the components :func:`~tsengine.models.ets.filter_components`
returns, the very numbers whose sum (or product) is the prediction.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tsengine.contributions import Contributions
from tsengine.models._series import OriginWindows
from tsengine.models.components import component_contributions, sequential_product

__all__ = ["ets_contributions"]

# exp() of more than this overflows; the forecast caps its logarithm here too.
_MAX_LOG = 700.0


def ets_contributions(
    target: str,
    season: int,
    win: OriginWindows,
    phi: Sequence[float],
    parts: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> Contributions:
    """Each query row's level, trend and seasonal contribution, base 0.

    Args:
        target: the target column's name.
        season: the model's seasonal period.
        win: the origin windows the components were filtered on.
        phi: each origin's damping (1 for an undamped trend, 0 without a trend).
        parts: ``(level, trend, season, use_log)`` of
            :func:`~tsengine.models.ets.filter_components`: per origin and
            distance on the model's scale, and whether that is the logarithm.

    Shown values are the final level, the trend per step and the seasonal
    state in target units; for the models on the logarithm the level's value
    and the trend and season as factors (the forecast is their product,
    attributed by :func:`~tsengine.models.components.sequential_product`).
    """
    level, trend, sea, use_log = parts
    damping = np.asarray(phi, dtype=np.float64)
    slope = np.divide(trend[:, 0], damping, out=np.zeros_like(damping), where=damping > 0)[win.origin]
    lvl, trd, ssn = win.pick(level), win.pick(trend), win.pick(sea)
    log = use_log[win.origin]
    with np.errstate(over="ignore", invalid="ignore"):  # NaN rows stay NaN
        factor = np.exp(np.minimum(np.where(log, np.vstack([lvl, trd, ssn, slope]), 0.0), _MAX_LOG))
    shares = sequential_product(factor[0], factor[1], factor[2])
    additive = (lvl, trd, ssn)
    out = tuple(np.where(log, share, raw) for share, raw in zip(shares, additive, strict=True))
    shown = (np.where(log, factor[0], lvl), np.where(log, factor[3], slope), np.where(log, factor[2], ssn))
    return component_contributions(target, season, (out[0], out[1], out[2]), shown)
