"""Hannan-Rissanen ARMA estimation for many orders of one series, as statsmodels computes it.

Why our own: ARIMA's order search calls statsmodels'
``hannan_rissanen(w, ar_order=lags, ma_order=lags, demean=False)`` for 14
orders per series; each call builds specification and parameter objects and
runs its bias-correction recursion as a Python loop over every observation,
about 3 ms a call, 45 ms a series: 450 s of a 10,000-series training.  This
module computes the same three steps (Brockwell & Davis 2016, 5.1.4) with
numpy and ``scipy.signal.lfilter``, and shares the long autoregression of
step 1 between the orders that use the same initial order:

1. a long AR(``K``) by Yule-Walker (``mle``, demeaned), ``K = max(floor(log(n)^2),
   2 max(p, q))`` (Gomez & Maravall), and its residuals on the raw series;
2. least squares of the series on its lags and the lagged residuals (pure AR
   orders stop here);
3. when step 2 is stationary and invertible, the bias correction: the
   innovations ``Z`` of the fitted ARMA, filtered by the AR and MA polynomials,
   regressed to correct the coefficients; ``sigma2`` from the corrected residuals.

Equal to statsmodels (0.14) to floating-point rounding on every order the
search uses (``tests/unit/test_hannan_rissanen.py``), including which fits are
stationary and invertible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.linalg import toeplitz
from scipy.signal import lfilter

__all__ = ["ArmaFit", "hannan_rissanen_orders", "is_invertible"]

_ROOT_THRESHOLD = 1 - 1e-10  # statsmodels.tsa.statespace.tools.is_invertible


@dataclass(frozen=True, slots=True)
class ArmaFit:
    """One estimated order: lag polynomials as ``1 - sum ar_i L^i`` and ``1 + sum ma_j L^j``.

    Attributes:
        ar: AR coefficients by lag 1..p (zeros at lags not in the order).
        ma: MA coefficients by lag 1..q, likewise.
        sigma2: innovation variance.
        stationary_invertible: both polynomials have every root outside the
            unit circle (statsmodels' rule).
    """

    ar: np.ndarray
    ma: np.ndarray
    sigma2: float
    stationary_invertible: bool

    @classmethod
    def of(cls, ar: np.ndarray, ma: np.ndarray, sigma2: float) -> ArmaFit:
        """The fit, its roots checked."""
        ok = is_invertible(np.r_[1.0, -ar]) and is_invertible(np.r_[1.0, ma])
        return cls(ar, ma, sigma2, ok)


def is_invertible(polynomial: np.ndarray) -> bool:
    """Whether ``c_0 + c_1 L + ... + c_n L^n`` is invertible: companion eigenvalues inside the circle."""
    nonzero = np.flatnonzero(polynomial)
    if nonzero.size == 0 or nonzero[-1] == 0:
        return True
    coef = np.asarray(polynomial[: nonzero[-1] + 1], dtype=np.float64)
    companion = np.zeros((coef.size - 1, coef.size - 1))
    companion[:, 0] = -coef[1:] / coef[0]
    companion[np.arange(coef.size - 2), np.arange(1, coef.size - 1)] = 1.0
    return bool(np.all(np.abs(np.linalg.eigvals(companion)) < _ROOT_THRESHOLD))


def _lags(x: np.ndarray, order: int) -> np.ndarray:
    """``statsmodels.tsa.lagmat(x, order, trim="both")``: row ``i`` holds ``x[order+i-1], ..., x[i]``."""
    n = x.size
    if order >= n:
        msg = f"{order} lags of {n} values"  # statsmodels' lagmat refuses these too
        raise ValueError(msg)
    if order == 0:
        return np.empty((n, 0))
    return np.column_stack([x[order - j : n - j] for j in range(1, order + 1)])


def _ols(y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Least-squares coefficients, residuals and the design's rank (statsmodels' OLS, pinv)."""
    coef, _, rank, _ = np.linalg.lstsq(x, y, rcond=None)
    return coef, y - x @ coef, int(rank)


def _variance(resid: np.ndarray, dof: int) -> float:
    """``ssr / dof``; statsmodels refuses a variance that is not finite (no degrees of freedom), so do we."""
    ssr = float(resid @ resid)
    if dof <= 0 or not math.isfinite(ssr):
        msg = "the innovation variance is not finite"
        raise ValueError(msg)
    return ssr / dof


def _long_ar_residuals(w: np.ndarray, order: int) -> np.ndarray:
    """Step 1: residuals of the Yule-Walker AR(``order``) (estimated on the demeaned series)."""
    x = w - w.mean()
    n = x.size
    r = np.empty(order + 1)
    r[0] = (x * x).sum() / n
    for k in range(1, order + 1):
        r[k] = (x[:-k] * x[k:]).sum() / n
    big_r = toeplitz(r[:-1])
    try:
        rho = np.linalg.solve(big_r, r[1:])
    except np.linalg.LinAlgError:
        rho = np.linalg.pinv(big_r) @ r[1:]
    resid: np.ndarray = w[order:] - _lags(w, order) @ rho
    return resid


def hannan_rissanen_orders(w: np.ndarray, orders: list[tuple[list[int], list[int]]]) -> list[ArmaFit | None]:
    """Estimate each ``(ar lags, ma lags)`` on ``w`` (not demeaned); None where statsmodels raises.

    Args:
        w: the stationary (differenced, de-meaned by the caller) series.
        orders: AR and MA lag lists per order, e.g. ``([1, 7], [1])``.
    """
    n = w.size
    long_resid: dict[int, np.ndarray] = {}
    fits: list[ArmaFit | None] = []
    for ar_lags, ma_lags in orders:
        p, q = max(ar_lags, default=0), max(ma_lags, default=0)
        k = max(math.floor(math.log(n) ** 2), 2 * max(p, q)) if n > 0 else 0
        repeated = len(set(ar_lags)) < len(ar_lags) or len(set(ma_lags)) < len(ma_lags)
        if p >= n or q >= n or k >= n or k <= max(p, q) or p == q == 0 or repeated:
            fits.append(None)
            continue
        try:
            if k not in long_resid:
                long_resid[k] = _long_ar_residuals(w, k)
            fits.append(_estimate(w, ar_lags, ma_lags, long_resid[k], k))
        except (ValueError, np.linalg.LinAlgError):
            fits.append(None)
    return fits


def _estimate(w: np.ndarray, ar_lags: list[int], ma_lags: list[int], resid: np.ndarray, k: int) -> ArmaFit:
    """Steps 2 and 3 for one order, given step 1's residuals."""
    p, q = max(ar_lags, default=0), max(ma_lags, default=0)
    ar_ix, ma_ix = [lag - 1 for lag in ar_lags], [lag - 1 for lag in ma_lags]
    lagged_w = _lags(w, p)
    if q == 0:
        coef, res, rank = _ols(w[p:], lagged_w[:, ar_ix])
        ar = np.zeros(p)
        ar[ar_ix] = coef
        return ArmaFit.of(ar, np.zeros(0), _variance(res, res.size - rank))
    design = np.column_stack([lagged_w[k + q - p :, ar_ix], _lags(resid, q)[:, ma_ix]])
    target = w[k + q :]
    coef, res, rank = _ols(target, design)
    ar, ma = np.zeros(p), np.zeros(q)
    ar[ar_ix], ma[ma_ix] = coef[: len(ar_ix)], coef[len(ar_ix) :]
    fit = ArmaFit.of(ar, ma, _variance(res, res.size - rank))
    if not fit.stationary_invertible:
        return fit
    # Step 3: the bias correction, on the innovations of the step-2 model.
    ar_poly, ma_poly = np.r_[1.0, -ar], np.r_[1.0, ma]
    start = max(p, q)
    z = np.zeros(w.size)
    z[start:] = lfilter([1.0], ma_poly, np.convolve(w, ar_poly)[start : w.size])
    v = lfilter([1.0], ar_poly, z)
    u = lfilter(np.r_[1.0, -ma], [1.0], z)
    correction_design = np.column_stack(
        [_lags(v, p)[max(q - p, 0) :, ar_ix], _lags(u, q)[max(p - q, 0) :, ma_ix]]
    )
    delta, _, _ = _ols(z[start:], correction_design)
    ar[ar_ix] += delta[: len(ar_ix)]
    ma[ma_ix] += delta[len(ar_ix) :]
    res = target - design @ np.r_[ar[ar_ix], ma[ma_ix]]
    return ArmaFit.of(ar, ma, _variance(res, res.size))
