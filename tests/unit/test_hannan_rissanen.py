"""Our Hannan-Rissanen equals statsmodels' on every order ARIMA's search uses.

Real series (the flights fixture, differenced as ARIMA would) and simulated
ARMA processes, for the AR x MA x seasonal subset orders of
:data:`tsengine.models.arima.ORDERS` and :data:`EXACT_ORDERS`.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.tsa.arima.estimators.hannan_rissanen import hannan_rissanen
from statsmodels.tsa.arima_process import arma_generate_sample

from tsengine.models.arima import EXACT_ORDERS, ORDERS, SEASONAL_ORDERS
from tsengine.models.hannan_rissanen import hannan_rissanen_orders

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "flights_daily.csv"


def _lag_orders(season: int) -> list[tuple[list[int], list[int]]]:
    out = []
    for p, q in {*ORDERS, *EXACT_ORDERS}:
        for sp, sq in SEASONAL_ORDERS:
            ar = [*range(1, p + 1), *([season] if sp else [])]
            ma = [*range(1, q + 1), *([season] if sq else [])]
            out.append((ar, ma))
    return out


def _reference(
    w: np.ndarray, ar: list[int], ma: list[int]
) -> tuple[np.ndarray, np.ndarray, float, bool] | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            params, _ = hannan_rissanen(w, ar_order=ar or 0, ma_order=ma or 0, demean=False)
    except (ValueError, np.linalg.LinAlgError):
        return None
    ok = bool(params.is_stationary and params.is_invertible)
    ar_poly = -params.reduced_ar_poly.coef[1:]
    ma_poly = params.reduced_ma_poly.coef[1:]
    return ar_poly, ma_poly, float(params.sigma2), ok


def _check(w: np.ndarray, season: int) -> None:
    orders = [o for o in _lag_orders(season) if o != ([], [])]
    ours = hannan_rissanen_orders(w, orders)
    for (ar, ma), fit in zip(orders, ours, strict=True):
        ref = _reference(w, ar, ma)
        if ref is None:
            assert fit is None, (ar, ma)
            continue
        assert fit is not None, (ar, ma)
        ref_ar, ref_ma, ref_sigma2, ref_ok = ref
        np.testing.assert_allclose(fit.ar[: ref_ar.size], ref_ar, rtol=1e-7, atol=1e-9, err_msg=str((ar, ma)))
        np.testing.assert_allclose(fit.ma[: ref_ma.size], ref_ma, rtol=1e-7, atol=1e-9, err_msg=str((ar, ma)))
        assert fit.sigma2 == pytest.approx(ref_sigma2, rel=1e-7), (ar, ma)
        assert fit.stationary_invertible == ref_ok, (ar, ma)


@pytest.mark.parametrize("series", ["EWR-EV", "JFK-B6", "LGA-DL"])
def test_equal_to_statsmodels_on_real_daily_series(series: str) -> None:
    frame = pl.read_csv(FIXTURE).filter(pl.col("series") == series).sort("date")
    y = frame.get_column("delayed").to_numpy().astype(np.float64)
    w = y[7:] - y[:-7]  # ARIMA's seasonal difference
    _check(w - w.mean(), 7)
    w = np.diff(y)
    _check(w - w.mean(), 7)


@settings(max_examples=10, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    phi=st.floats(-0.9, 0.9),
    theta=st.floats(-0.9, 0.9),
    n=st.integers(30, 300),
    season=st.sampled_from([4, 7, 12]),
)
def test_equal_to_statsmodels_on_simulated_arma(
    seed: int, phi: float, theta: float, n: int, season: int
) -> None:
    rng = np.random.default_rng(seed)
    w = arma_generate_sample([1, -phi], [1, theta], n, distrvs=rng.standard_normal)
    _check(w - w.mean(), season)
