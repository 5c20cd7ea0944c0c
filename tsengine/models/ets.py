"""Exponential smoothing (ETS) per series, re-filtered on posted history.

Training estimates, per series, an additive-error ETS model: trend none,
additive or damped; seasonality none or additive; on the raw target or on its
logarithm (the log model is ETS with multiplicative error, trend and season in
disguise, and is only tried on positive series, with no trend or a damped one:
see :func:`_configs`).  The configuration with the
lowest AIC wins; its smoothing parameters are stored.

Prediction never refits.  For each forecast origin it takes the posted window
``(fp - a, fp]`` and runs the stored recursion over it.  The initial state at
the window's start is the least-squares one given the stored parameters: the
one-step predictions are linear in the initial state, so we carry the response
to each initial-state component through the recursion alongside the data and
solve a small ridge-regularised normal equation per origin (Hyndman et al.
call this the "optimal initial state").  Gaps are Kalman-skipped: a missing
target contributes no innovation.  All of it runs vectorised over origins, one
numpy step per window position, so 1,000 series x 28 steps cost milliseconds.

Estimation is ours, not statsmodels' ``ETSModel``: a per-series ``ETSModel``
fit costs 0.15-0.7 s (seasonal, damped), far beyond the training budget for a
few hundred series and rolling-origin refits.  We minimise the same Gaussian
one-step SSE over a parameter grid evaluated for every series and grid point
at once, from the classical heuristic initial state (a static regression on
the first three seasons), then refine the best grid point once on a finer
local grid.

Unseen series (cold start) use the deployment's fallback: the most common
configuration among training series with the median of its parameters.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import orjson
import polars as pl

from tsengine.contributions import Contributions
from tsengine.errors import TrainingDataError
from tsengine.features import Layout, season_length
from tsengine.models._series import origin_windows, training_matrix
from tsengine.models.base import ForecastModel
from tsengine.models.components import component_names
from tsengine.models.ets_explain import ets_contributions
from tsengine.spec import TimeSeriesSpec

__all__ = [
    "ETSModel",
    "EtsParams",
    "ets_filter",
    "ets_forecast",
    "filter_components",
    "filter_least_squares",
    "fit_ets_grid",
]

TRENDS = ("N", "A", "Ad")
# Coarse grid [ours]: smoothing weights spread over (0, 1); beta and gamma as
# fractions of their admissible range, so every point is a stable model.
ALPHAS = (0.03, 0.1, 0.2, 0.35, 0.5, 0.7, 0.9)
BETA_FRACTIONS = (0.02, 0.1, 0.3)
GAMMA_FRACTIONS = (0.02, 0.1, 0.3)
PHIS = (0.85, 0.92, 0.98)
# Local refinement multipliers around the best coarse point.
REFINE = (0.75, 1.0, 1.3)
# Ridge weight on the initial-state normal equations (relative to their trace):
# level and seasonal states are collinear (only their sum is identified), the
# ridge picks the smallest-norm split, which leaves fitted values unchanged.
RIDGE = 1e-6
# Initial states for estimation [Hyndman et al. 2008, sec. 2.6.1; R forecast::ets]:
# a regression on the first three seasons, and at least ten points.
INIT_SEASONS = 3
INIT_MIN_POINTS = 10


@dataclass(frozen=True, slots=True)
class EtsParams:
    """Per-row ETS parameters (arrays of equal length)."""

    alpha: np.ndarray
    beta: np.ndarray
    gamma: np.ndarray
    phi: np.ndarray


def ets_filter(
    y: np.ndarray,
    params: EtsParams,
    phase0: np.ndarray,
    season: int,
    level: np.ndarray,
    trend: np.ndarray,
    seasonal: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Run the additive ETS recursion over ``y`` (rows × time), NaN = skip.

    States carry a trailing axis of ``C`` columns: column 0 is driven by the
    data; the others see an observation of 0, so they hold the (linear) response
    to a unit initial state.  With ``C = 1`` this is the plain filter.

    Args:
        y: targets, shape ``(B, T)``.
        params: smoothing parameters per row.
        phase0: ``grid index mod season`` of column 0 per row.
        season: seasonal period (0 or 1: none).
        level: initial level ``(B, C)``.
        trend: initial trend ``(B, C)``.
        seasonal: initial seasonal states by phase ``(B, season, C)``.

    Returns:
        Final level, trend and seasonal states, and the one-step predictions
        ``(B, T, C)``.
    """
    b_rows, t_len = y.shape
    c = level.shape[1]
    lvl, trd = level.copy(), trend.copy()
    sea = seasonal.copy()
    alpha, beta = params.alpha[:, None], params.beta[:, None]
    gamma, phi = params.gamma[:, None], params.phi[:, None]
    obs_mask = np.zeros((1, c))
    obs_mask[0, 0] = 1.0
    rows = np.arange(b_rows)
    fitted = np.empty((b_rows, t_len, c))
    has_season = season > 1
    observed = ~np.isnan(y)  # once, not per step
    filled = np.where(observed, y, 0.0)
    for t in range(t_len):
        base = lvl + phi * trd
        if has_season:
            p = (phase0 + t) % season
            s_now = sea[rows, p]
            pred = base + s_now
        else:
            pred = base
        fitted[:, t] = pred
        e = np.where(observed[:, t, None], filled[:, t, None] * obs_mask - pred, 0.0)
        lvl = base + alpha * e
        trd = phi * trd + beta * e
        if has_season:
            sea[rows, p] = s_now + gamma * e
    return lvl, trd, sea, fitted


def _damped(phi: np.ndarray, horizon: int) -> np.ndarray:
    """``sum_{j=1..h} phi^j`` for h = 1..horizon, shape ``(B, horizon)``."""
    powers = phi[:, None] ** np.arange(1, horizon + 1)[None, :]
    return np.cumsum(powers, axis=1)


def ets_forecast(
    level: np.ndarray,
    trend: np.ndarray,
    seasonal: np.ndarray,
    phi: np.ndarray,
    phase_next: np.ndarray,
    season: int,
    horizon: int,
) -> np.ndarray:
    """Point forecasts for h = 1..horizon from final states, shape ``(B, horizon)``."""
    out = level[:, None] + _damped(phi, horizon) * trend[:, None]
    if season > 1:
        idx = (phase_next[:, None] + np.arange(horizon)[None, :]) % season
        out = out + np.take_along_axis(seasonal, idx, axis=1)
    return np.asarray(out)


def _regression_init(
    y: np.ndarray, phase0: np.ndarray, season: int, with_trend: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Level, slope and seasonal states of a static regression on the first seasons.

    Hyndman et al.'s heuristic (R ``forecast::ets``): fit level + slope · t +
    seasonal dummies by least squares to the first ``INIT_SEASONS`` seasons (at
    least ``INIT_MIN_POINTS`` points).  One season's deviations, the previous
    heuristic, are so noisy that the grid search then prefers a large gamma to
    repair the seasonal states quickly, and that gamma makes the forecasts from
    a short posted window chase noise.

    Args:
        y: targets ``(B, T)``, NaN where missing.
        phase0: ``grid index mod season`` of column 0 per row.
        season: seasonal period (1: none).
        with_trend: whether the slope is free (else pinned to 0).

    Returns:
        ``(level (B,), slope (B,), seasonal (B, max(season, 1)))``, seasonal
        states indexed by phase and summing to (nearly) zero.
    """
    b_rows = y.shape[0]
    m = max(season, 1)
    span = min(y.shape[1], max(INIT_SEASONS * m, INIT_MIN_POINTS))
    ok = np.isfinite(y[:, :span])
    k = 2 + (m if m > 1 else 0)
    t = np.arange(span)
    design = np.zeros((b_rows, span, k))
    design[:, :, 0] = 1.0
    if with_trend:
        design[:, :, 1] = t[None, :]
    if m > 1:
        phase = (phase0[:, None] + t[None, :]) % m
        design[np.arange(b_rows)[:, None], t[None, :], 2 + phase] = 1.0
    design = np.where(ok[:, :, None], design, 0.0)
    gram = np.einsum("btk,btj->bkj", design, design)
    rhs = np.einsum("btk,bt->bk", design, np.where(ok, y[:, :span], 0.0))
    scale = np.trace(gram, axis1=1, axis2=2) / k + 1.0
    penalty = RIDGE * np.eye(k)
    if not with_trend:
        penalty[1, 1] = 1.0  # the slope column is empty: pin it to 0
    if m > 1:
        # Seasonal states sum to zero (level and dummies are otherwise collinear).
        penalty[2:, 2:] += 1.0
    coef = np.linalg.solve(gram + scale[:, None, None] * penalty[None], rhs[:, :, None])[:, :, 0]
    seasonal = coef[:, 2:] if m > 1 else np.zeros((b_rows, 1))
    return coef[:, 0], coef[:, 1], seasonal


def _grid(trend: str, seasonal: bool) -> list[tuple[float, float, float, float]]:
    """Coarse parameter combinations ``(alpha, beta, gamma, phi)`` for one configuration."""
    betas = BETA_FRACTIONS if trend != "N" else (0.0,)
    gammas = GAMMA_FRACTIONS if seasonal else (0.0,)
    phis = PHIS if trend == "Ad" else ((1.0,) if trend == "A" else (0.0,))
    return [(a, a * bf, (1 - a) * gf, ph) for a, bf, gf, ph in itertools.product(ALPHAS, betas, gammas, phis)]


_CHUNK_CELLS = 32_768
"""Series x grid points filtered at once: the states of one chunk stay in cache,
and memory no longer grows with the series count (one batch of every series at
189 grid points held 5.9 GB for 1,000 series x 730 days)."""


def _grid_sse(
    y: np.ndarray,
    phase0: np.ndarray,
    season: int,
    grid: np.ndarray,
    init: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> np.ndarray:
    """One-step SSE of every series (rows of ``y``) at each of its grid points ``(S, G, 4)``.

    The recursion of :func:`ets_filter` with ``C = 1``, specialised for the
    search: states are ``(series, grid point)`` planes, so one series' data is
    broadcast to all its grid points instead of copied; seasonal states are
    rotated so that every row reads the same phase at each step (a slice, not
    a gather); the SSE is summed as the filter runs instead of keeping the
    fitted values; and series go in chunks of :data:`_CHUNK_CELLS` cells.
    """
    n, g = grid.shape[0], grid.shape[1]
    m = season if season > 1 else 0
    level, slope, sea = init
    sse = np.empty((n, g))
    per_chunk = max(1, _CHUNK_CELLS // g)
    for lo in range(0, n, per_chunk):
        rows = slice(lo, min(n, lo + per_chunk))
        seasonal = None
        if m:
            turn = (phase0[rows, None] + np.arange(m)[None, :]) % m  # phase read at step k
            seasonal = np.take_along_axis(sea[rows], turn, axis=1)
        sse[rows] = _chunk_sse(y[rows], grid[rows], level[rows], slope[rows], seasonal)
    return sse


def _chunk_sse(
    y: np.ndarray, grid: np.ndarray, level: np.ndarray, slope: np.ndarray, seasonal: np.ndarray | None
) -> np.ndarray:
    """:func:`_grid_sse` for one chunk; ``seasonal`` is ``(rows, m)`` rotated to step 0, or None."""
    n_rows, g = grid.shape[0], grid.shape[1]
    alpha, beta, gamma, phi = (np.ascontiguousarray(grid[:, :, i]) for i in range(4))
    trended = bool(beta.any()) or bool(slope.any())
    lvl = np.repeat(level[:, None], g, axis=1)
    trd = np.repeat(slope[:, None], g, axis=1)
    m = 0 if seasonal is None else seasonal.shape[1]
    sea = None if seasonal is None else np.repeat(seasonal.T[:, :, None], g, axis=2)  # (m, rows, g)
    ys = np.ascontiguousarray(y.T)  # (T, rows): one step is contiguous
    observed = np.isfinite(ys)
    gaps = ~observed.all(axis=1)
    sse = np.zeros((n_rows, g))
    base = np.empty((n_rows, g))
    e = np.empty((n_rows, g))
    step = np.empty((n_rows, g))
    for t in range(ys.shape[0]):
        if trended:
            np.multiply(phi, trd, out=base)
            base += lvl
        else:
            base[:] = lvl
        s_now = sea[t % m] if sea is not None else None
        # e = y - prediction, 0 where y is missing (a skipped step)
        np.subtract(ys[t][:, None], base, out=e)
        if s_now is not None:
            e -= s_now
        if gaps[t]:
            e[~observed[t]] = 0.0
        np.multiply(e, e, out=step)
        sse += step
        np.multiply(alpha, e, out=lvl)
        lvl += base
        if trended:
            trd *= phi
            np.multiply(beta, e, out=step)
            trd += step
        if s_now is not None:
            np.multiply(gamma, e, out=step)
            s_now += step
    return sse


def _search(
    y: np.ndarray, phase0: np.ndarray, season: int, trend: str, grid: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best grid row per series: ``grid`` is ``(S, G, 4)`` per-series candidates."""
    n = grid.shape[0]
    init = _regression_init(y, phase0, max(season, 1), trend != "N")
    sse = _grid_sse(y, phase0, season, grid, init)
    best = np.argmin(np.where(np.isfinite(sse), sse, np.inf), axis=1)
    count = np.isfinite(y).sum(axis=1)
    return grid[np.arange(n), best], sse[np.arange(n), best], count


def fit_ets_grid(
    y: np.ndarray, phase0: np.ndarray, season: int, trend: str, seasonal: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least-SSE parameters per series for one configuration.

    Returns:
        ``(params (S, 4), sse (S,), n_obs (S,))``.
    """
    m = season if seasonal else 0
    coarse = np.asarray(_grid(trend, seasonal), dtype=np.float64)
    grid = np.broadcast_to(coarse, (y.shape[0], *coarse.shape))
    best, _, _ = _search(y, phase0, m, trend, grid)
    # One local refinement: scale each free parameter around the coarse optimum.
    mults = np.asarray(list(itertools.product(REFINE, REFINE, REFINE)), dtype=np.float64)
    local = best[:, None, :].repeat(len(mults), axis=1).copy()
    local[:, :, 0] = np.clip(local[:, :, 0] * mults[None, :, 0], 0.01, 0.99)
    local[:, :, 1] = np.minimum(local[:, :, 1] * mults[None, :, 1], local[:, :, 0])
    local[:, :, 2] = np.minimum(local[:, :, 2] * mults[None, :, 2], 1 - local[:, :, 0])
    return _search(y, phase0, m, trend, local)


@dataclass(frozen=True, slots=True)
class SeriesEts:
    """Stored per-series choice: configuration and parameters."""

    trend: str
    seasonal: bool
    log: bool
    alpha: float
    beta: float
    gamma: float
    phi: float

    def to_list(self) -> list[Any]:
        """Compact JSON row."""
        return [self.trend, self.seasonal, self.log, self.alpha, self.beta, self.gamma, self.phi]

    @classmethod
    def from_list(cls, row: list[Any]) -> SeriesEts:
        """Inverse of :meth:`to_list`."""
        return cls(str(row[0]), bool(row[1]), bool(row[2]), *(float(v) for v in row[3:7]))


def _configs(season: int, allow_log: bool) -> list[tuple[str, bool, bool]]:
    """Candidate ``(trend, seasonal, log)``; on the log scale the trend is none or damped.

    A linear trend in the logarithm is a multiplicative (exponential) trend,
    which R's ``ets`` leaves out by default because its forecasts explode
    (Hyndman et al. 2008); a damped one levels off.  Measured, mean held-out
    MASE over three horizons: ETS alone, geometric mean over
    ``benchmarks/collection.py``'s 26 series 0.981 of before (auscafe
    0.912 -> 0.603), tourism_quarterly 1.506 -> 1.494, us_employment_monthly
    0.464 -> 0.463, flights unchanged; the default deployment 0.996 on the
    collection (better on 20 of 26), tourism 1.352 -> 1.340, employment
    0.427 -> 0.426.
    """
    seasonal = (False, True) if season > 1 else (False,)
    logs = (False, True) if allow_log else (False,)
    return [(t, s, lg) for t, s, lg in itertools.product(TRENDS, seasonal, logs) if not (lg and t == "A")]


def estimate_series(
    y: np.ndarray,
    start: np.ndarray,
    season: int,
    *,
    only: list[tuple[str, bool, bool]] | None = None,
) -> list[SeriesEts]:
    """AIC-best ETS per row of ``y`` (rows left-aligned at ``start``).

    Args:
        y: training targets per series (NaN gaps and padding).
        start: grid index of column 0 per row.
        season: the seasonal period.
        only: a fixed configuration per row (backtests reuse the final choice).
    """
    n = y.shape[0]
    phase0 = start % max(season, 1)
    observed = np.isfinite(y).sum(axis=1)
    positive = np.all(np.where(np.isfinite(y), y > 0, True), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        logy = np.where(positive[:, None], np.log(np.where(y > 0, y, np.nan)), np.nan)
        log_jac = 2 * np.nansum(np.where(np.isfinite(logy), logy, 0.0), axis=1)
    best_aic = np.full(n, np.inf)
    chosen: list[SeriesEts | None] = [None] * n
    # Refits honour the given configurations even outside today's search set.
    configs = _configs(season, allow_log=bool(positive.any())) if only is None else sorted(set(only))
    for trend, seasonal, use_log in configs:
        rows = np.arange(n)
        if only is not None:
            rows = np.asarray([r for r in rows if only[r] == (trend, seasonal, use_log)], dtype=np.int64)
        if use_log:
            rows = rows[positive[rows]]
        if seasonal:
            rows = rows[observed[rows] >= 2 * season + 2]
        if rows.size == 0:
            continue
        data = logy[rows] if use_log else y[rows]
        params, sse, count = fit_ets_grid(data, phase0[rows], season, trend, seasonal)
        k = 1 + (trend != "N") + (trend == "Ad") + seasonal
        k += 1 + (trend != "N") + (season - 1 if seasonal else 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            aic = count * np.log(np.maximum(sse, 1e-12) / np.maximum(count, 1)) + 2 * k
        if use_log:
            aic = aic + log_jac[rows]
        for j, r in enumerate(rows):
            if np.isfinite(aic[j]) and (aic[j] < best_aic[r] or chosen[r] is None):
                best_aic[r] = aic[j]
                a, b, g, ph = (float(v) for v in params[j])
                chosen[r] = SeriesEts(trend, seasonal, use_log, a, b, g, ph)
    fallback = SeriesEts("N", False, False, 0.3, 0.0, 0.0, 0.0)
    return [c if c is not None else fallback for c in chosen]


def common_choice(choices: list[SeriesEts]) -> SeriesEts:
    """Cold-start rule: the most common configuration, median parameters."""
    if not choices:
        return SeriesEts("N", False, False, 0.3, 0.0, 0.0, 0.0)
    counts = Counter((c.trend, c.seasonal, c.log) for c in choices)
    (trend, seasonal, use_log), _ = min(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    same = [c for c in choices if (c.trend, c.seasonal, c.log) == (trend, seasonal, use_log)]
    med = [float(np.median([getattr(c, f) for c in same])) for f in ("alpha", "beta", "gamma", "phi")]
    return SeriesEts(trend, seasonal, use_log, *med)


def filter_and_forecast(
    y: np.ndarray,
    fp: np.ndarray,
    choices: list[SeriesEts],
    season: int,
    horizon: int,
) -> np.ndarray:
    """Forecasts h = 1..horizon per window row (window ends at ``fp``): the sum of :func:`filter_components`."""
    level, trend, seasonal, use_log = filter_components(y, fp, choices, season, horizon)
    out = level + trend + seasonal
    with np.errstate(over="ignore"):
        return np.asarray(np.where(use_log[:, None], np.exp(np.minimum(out, 700.0)), out))


def filter_components(
    y: np.ndarray,
    fp: np.ndarray,
    choices: list[SeriesEts],
    season: int,
    horizon: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Level, trend and seasonal parts of the forecasts h = 1..horizon per window row.

    Rows are grouped by configuration (at most 12 groups), each group runs one
    vectorised recursion with the least-squares initial state.  The parts are
    on the model's scale (the logarithm where ``use_log``, the last array);
    each is ``(rows, horizon)``, NaN for a window without any target.
    """
    n, width = y.shape
    level, trend, sea = (np.full((n, horizon), np.nan) for _ in range(3))
    keys = [(c.trend, c.seasonal) for c in choices]
    use_log = np.asarray([c.log for c in choices], dtype=bool)
    bad_log = use_log & np.any(np.where(np.isfinite(y), y <= 0, False), axis=1)
    use_log &= ~bad_log  # a non-positive value in the window: filter on the raw scale
    with np.errstate(divide="ignore", invalid="ignore"):
        data = np.where(use_log[:, None], np.log(np.where(y > 0, y, np.nan)), y)
    for key in sorted(set(keys)):
        rows = np.asarray([r for r in range(n) if keys[r] == key], dtype=np.int64)
        trend_kind, seasonal = key
        m = season if seasonal and season > 1 else 0
        sub = data[rows]
        picked = [choices[r] for r in rows]
        params = EtsParams(
            np.asarray([c.alpha for c in picked]),
            np.asarray([c.beta for c in picked]),
            np.asarray([c.gamma for c in picked]),
            np.asarray([c.phi for c in picked]),
        )
        phase0 = (fp[rows] - width + 1) % max(m, 1)
        lvl, trd, s_fin = filter_least_squares(sub, params, phase0, m, trend_kind)
        level[rows] = lvl[:, None]
        trend[rows] = _damped(params.phi, horizon) * trd[:, None]
        sea[rows] = 0.0
        if m > 1:
            idx = ((fp[rows] + 1) % m)[:, None] + np.arange(horizon)[None, :]
            sea[rows] = np.take_along_axis(s_fin, idx % m, axis=1)
        empty = rows[~np.isfinite(sub).any(axis=1)]
        level[empty] = trend[empty] = sea[empty] = np.nan
    return level, trend, sea, use_log


def filter_least_squares(
    y: np.ndarray, params: EtsParams, phase0: np.ndarray, season: int, trend: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Final states after filtering from the least-squares initial state."""
    b_rows = y.shape[0]
    m = max(season, 1)
    k = 2 + (season if season > 1 else 0)
    c = 1 + k
    level = np.zeros((b_rows, c))
    slope = np.zeros((b_rows, c))
    sea = np.zeros((b_rows, m, c))
    level[:, 1] = 1.0
    slope[:, 2] = 1.0
    if season > 1:
        sea[:, np.arange(m), 3 + np.arange(m)] = 1.0
    lvl, trd, s_fin, fitted = ets_filter(y, params, phase0, season, level, slope, sea)
    ok = np.isfinite(y)
    h = np.where(ok[:, :, None], fitted[:, :, 1:], 0.0)
    r = np.where(ok, y - fitted[:, :, 0], 0.0)
    gram = np.einsum("btk,btj->bkj", h, h)
    rhs = np.einsum("btk,bt->bk", h, r)
    if trend == "N":
        gram[:, 1, 1] += 1.0  # the slope state is unused: pin it to 0
    lam = RIDGE * (np.trace(gram, axis1=1, axis2=2) / k + 1.0)
    gram = gram + lam[:, None, None] * np.eye(k)[None]
    x0 = np.linalg.solve(gram, rhs[:, :, None])[:, :, 0]
    weights = np.concatenate([np.ones((b_rows, 1)), x0], axis=1)
    return (
        np.einsum("bc,bc->b", lvl, weights),
        np.einsum("bc,bc->b", trd, weights),
        np.einsum("bmc,bc->bm", s_fin, weights),
    )


class ETSModel(ForecastModel):
    """Per-series AIC-selected exponential smoothing with stored parameters."""

    kind = "ets"
    per_series = True

    def __init__(self, season: int, window: int, series: dict[str, SeriesEts], fallback: SeriesEts) -> None:
        self.season = season
        self.window = window
        self.series = series
        self.fallback = fallback

    @classmethod
    def fit(
        cls,
        history: pl.DataFrame,
        spec: TimeSeriesSpec,
        *,
        seed: int = 0,  # noqa: ARG003 - deterministic
        configs: dict[str, list[Any]] | None = None,
    ) -> Self:
        """Estimate per series; ``configs`` (from :meth:`refit_kwargs`) fixes each choice.

        Raises:
            TrainingDataError: no series has an observed target.
        """
        season = season_length(spec.time_step, spec.fdw)
        mat = training_matrix(history)
        if not mat.sids:
            msg = "the training data has no observed target values to fit ETS on"
            raise TrainingDataError(msg)
        only = None
        if configs is not None:
            default = ["N", False, False]
            only = [tuple(configs.get(s, default)) for s in mat.sids]
        chosen = estimate_series(mat.y, mat.start, season, only=only)
        series = dict(zip(mat.sids, chosen, strict=True))
        return cls(season, spec.fdw, series, common_choice(chosen))

    @classmethod
    def merge(cls, parts: list[Self]) -> Self:
        """Series of every part (in id order, as :meth:`fit` stores them); the fallback from all."""
        series = dict(
            sorted(((s, c) for part in parts for s, c in part.series.items()), key=lambda kv: kv[0])
        )
        return cls(parts[0].season, parts[0].window, series, common_choice(list(series.values())))

    def refit_kwargs(self) -> dict[str, Any]:
        """Backtests re-estimate parameters but keep each series' configuration."""
        return {"configs": {s: [c.trend, c.seasonal, c.log] for s, c in self.series.items()}}

    def predict(
        self,
        history: pl.DataFrame,
        query: pl.DataFrame,
        spec: TimeSeriesSpec,  # noqa: ARG002
        *,
        layout: Layout | None = None,  # noqa: ARG002 (windows come from origin_windows)
    ) -> np.ndarray:
        """Re-filter each origin's posted window with the stored parameters."""
        if query.height == 0:
            return np.empty(0)
        win = origin_windows(history, query, self.window)
        choices = [self.series.get(s, self.fallback) for s in win.sids]
        return win.pick(filter_and_forecast(win.y, win.fp, choices, self.season, win.horizon))

    def explain(
        self,
        history: pl.DataFrame,
        query: pl.DataFrame,
        spec: TimeSeriesSpec,
        *,
        layout: Layout | None = None,  # noqa: ARG002 (windows come from origin_windows)
    ) -> Contributions:
        """Level, trend and season of each forecast, base 0 (:func:`~tsengine.models.ets_explain.ets_contributions`)."""
        if query.height == 0:
            return Contributions.empty(component_names(spec.target, self.season))
        win = origin_windows(history, query, self.window)
        choices = [self.series.get(s, self.fallback) for s in win.sids]
        parts = filter_components(win.y, win.fp, choices, self.season, win.horizon)
        return ets_contributions(spec.target, self.season, win, [c.phi for c in choices], parts)

    def to_bytes(self) -> bytes:
        """Parameters as JSON."""
        return orjson.dumps(
            {
                "season": self.season,
                "window": self.window,
                "series": {s: c.to_list() for s, c in self.series.items()},
                "fallback": self.fallback.to_list(),
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Inverse of :meth:`to_bytes`."""
        state = orjson.loads(data)
        return cls(
            int(state["season"]),
            int(state["window"]),
            {s: SeriesEts.from_list(r) for s, r in state["series"].items()},
            SeriesEts.from_list(state["fallback"]),
        )

    def describe(self) -> dict[str, Any]:
        """Season and how many series chose each configuration."""
        counts = Counter(
            f"{'log ' if c.log else ''}{c.trend}{'+A' if c.seasonal else ''}" for c in self.series.values()
        )
        return {"kind": self.kind, "season": self.season, "configurations": dict(sorted(counts.items()))}
