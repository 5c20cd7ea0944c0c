"""A global linear autoregression: one ridge regression per forecast distance, pooled over series.

Montero-Manso and Hyndman (2021, "Principles and algorithms for forecasting
groups of time series: locality and globality", IJF) showed that a single
linear autoregression fitted across all series of a panel, on normalised
lags, forecasts as well as per-series ETS or ARIMA on the M1, M3 and tourism
collections, with far fewer parameters per series.  It also errs differently
from both the per-series models (no per-series state) and the trees (it
extrapolates), which is what an ensemble member should do.

Each query row ``(s, fp, d)`` is described by its window ``(fp - a, fp]``: the
lags as changes from the last value, divided by the window's mean absolute
value, so series of any magnitude share the coefficients; and for each numeric
known-in-advance feature its value at the target time and its change from the
window's mean (relative to the window's mean absolute value: "20 % more
flights scheduled than lately").  The target is the scaled change
``(y[fp + d] - last) / scale``; the ridge penalty therefore shrinks towards the
random walk, the safe forecast when the data says little.  Distances get their
own coefficients (the direct strategy): no recursion, so no compounding of
one-step errors.  The number of lags and the ridge weight are chosen once on a
time-ordered validation fold (the latest forecast window of the panel), as
LightGBM's boosting rounds are, and reused when backtests refit.

Prediction costs one matrix product: it reads only the posted window, so it
serves series unseen at training like any other (the model has no per-series
parameter).  Categorical KIA features and non-KIA features are not used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import orjson
import polars as pl

from tsengine.contributions import Contributions, numeric_values
from tsengine.features import (
    FP,
    MAX_LAGS,
    SCALE_FLOOR,
    D,
    FeaturePlan,
    Layout,
    relative_to_window,
)
from tsengine.grid import OriginGrid
from tsengine.models.base import ForecastModel
from tsengine.spec import TimeSeriesSpec
from tsengine.training_query import targets_at, too_short, training_query
from tsengine.validate import IDX, SID

__all__ = ["LinearModel"]

# Ridge weights per row (features are standardised), searched on the validation fold.
RIDGES = (1e-5, 1e-4, 1e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0)
DEFAULT_RIDGE = 0.1
# Below this many validation rows the search is noise: keep the default.
MIN_VALID_ROWS = 50
# Scaled changes beyond this are clipped: a window whose mean absolute value is
# near zero (a series waking up) would otherwise give one row enormous leverage.
CLIP = 50.0


@dataclass(frozen=True, slots=True)
class _Rows:
    """Features, last value and scale per query row."""

    x: np.ndarray
    last: np.ndarray
    scale: np.ndarray
    lag_values: np.ndarray | None = None


def _rows(
    history: pl.DataFrame,
    query: pl.DataFrame,
    fdw: int,
    lags: int,
    kia: tuple[str, ...],
    *,
    layout: Layout | None = None,
    with_lags: bool = False,
) -> _Rows:
    """The design of :class:`LinearModel` for each query row, in query order (on ``layout`` when it fits).

    ``with_lags`` also keeps the observed lags 1.. ``lags - 1`` (explanations show them).
    """
    if layout is not None and layout.fits(history, query, fdw):
        grid = layout.grid(kia)
    else:
        grid = OriginGrid.build(history, query.get_column(SID), query.get_column(FP).to_numpy(), fdw, kia)
    level = grid.mean(absolute=True)
    scale = np.where(level > SCALE_FLOOR, level, 1.0)
    last = grid.last()
    observed = [grid.lag(j) for j in range(1, lags)]
    cols = [(lag - last) / scale for lag in observed]
    x = np.column_stack(cols) if cols else np.empty((query.height, 0))
    x = np.clip(np.nan_to_num(x, nan=0.0), -CLIP, CLIP)
    if kia:
        known = query.select(pl.col(k).cast(pl.Float64) for k in kia).to_numpy()
        rel = [relative_to_window(grid, k, known[:, n]) for n, k in enumerate(kia)]
        x = np.hstack([x, known, np.column_stack(rel)])
    lag_values = (
        (np.column_stack(observed) if observed else np.empty((query.height, 0))) if with_lags else None
    )
    return _Rows(x=x, last=last, scale=scale, lag_values=lag_values)


def _target(history: pl.DataFrame, query: pl.DataFrame, rows: _Rows) -> np.ndarray:
    """The scaled change ``(y[fp + d] - last) / scale`` of each training row, clipped."""
    y = targets_at(history, query)
    return np.asarray(np.clip((y - rows.last) / rows.scale, -CLIP, CLIP))


def _solve(x: np.ndarray, z: np.ndarray, ridges: tuple[float, ...]) -> list[tuple[float, np.ndarray]]:
    """Intercept and slopes of a ridge fit of ``z`` on standardised ``x``, per ridge weight.

    One eigendecomposition of the Gram matrix serves every weight.
    """
    n = x.shape[0]
    mx, mz = x.mean(axis=0), float(z.mean())
    xc = x - mx
    gram = xc.T @ xc
    evals, evecs = np.linalg.eigh(gram)
    proj = evecs.T @ (xc.T @ (z - mz))
    out = []
    for r in ridges:
        beta = evecs @ (proj / (np.maximum(evals, 0.0) + r * n))
        out.append((mz - float(mx @ beta), beta))
    return out


class LinearModel(ForecastModel):
    """Pooled ridge autoregression on scaled changes, direct per distance."""

    kind = "linear"

    def __init__(
        self,
        *,
        fdw: int,
        lags: int,
        kia: tuple[str, ...],
        distances: tuple[int, ...],
        mean: np.ndarray,
        std: np.ndarray,
        intercept: np.ndarray,
        coef: np.ndarray,
        ridge: float,
    ) -> None:
        self.fdw, self.lags, self.kia = fdw, lags, kia
        self.distances = distances
        self.mean, self.std = mean, std
        self.intercept, self.coef = intercept, coef
        self.ridge = ridge

    @classmethod
    def fit(
        cls,
        history: pl.DataFrame,
        spec: TimeSeriesSpec,
        *,
        seed: int = 0,  # noqa: ARG003 (deterministic: nothing is random)
        ridge: float | None = None,
        lags: int | None = None,
    ) -> Self:
        """Search the lag count and ridge weight on the latest forecast window (unless given), then fit on all rows.

        Lag counts tried: two seasons (the LightGBM plan's) and the whole window
        (up to :data:`~tsengine.features.MAX_LAGS`).  Long noisy daily windows
        favour the short one, smooth monthly panels the long one [measured on the
        accuracy benchmark's sets: flights backtest MASE 0.79 with 55 lags, 0.71
        with 14; employment 0.48 with 35, 0.49 with 24].

        Raises:
            TrainingDataError: no (origin, distance) pair with enough history.
        """
        plan = FeaturePlan.for_spec(spec)
        kia = plan.numeric_known_in_advance
        longest = min(spec.fdw, MAX_LAGS)
        options = sorted({lags} if lags is not None else {min(plan.lags, longest), longest})
        pairs = training_query(history, spec)
        rows = _rows(history, pairs, spec.fdw, max(options), kia)
        z = _target(history, pairs, rows)
        d = pairs.get_column(D).to_numpy()
        keep = np.isfinite(z) & np.isfinite(rows.last) & np.isfinite(rows.x).all(axis=1)
        if not keep.any():
            raise too_short(spec)
        x = rows.x[keep]
        mean, std = x.mean(axis=0), x.std(axis=0)
        std = np.where(std > 1e-12, std, 1.0)
        xs, z, d = (x - mean) / std, z[keep], d[keep]
        target_idx = pairs.get_column(IDX).to_numpy()[keep]
        valid = target_idx > target_idx.max() - len(spec.distances)
        n_kia = 2 * len(kia)  # each KIA feature: its value and its change from the window mean
        columns = {n: [*range(n - 1), *range(xs.shape[1] - n_kia, xs.shape[1])] for n in options}
        ridges = RIDGES if ridge is None else (ridge,)
        lags, ridge = _search(xs, z, d, valid, spec.distances, columns, ridges)
        use = columns[lags]
        xs, mean, std = xs[:, use], mean[use], std[use]
        distances = tuple(spec.distances)
        intercept = np.zeros(len(distances))
        coef = np.zeros((len(distances), xs.shape[1]))
        for k, dist in enumerate(distances):
            at = d == dist
            if at.sum() >= 2:
                intercept[k], coef[k] = _solve(xs[at], z[at], (ridge,))[0]
        return cls(
            fdw=spec.fdw,
            lags=lags,
            kia=kia,
            distances=distances,
            mean=mean,
            std=std,
            intercept=intercept,
            coef=coef,
            ridge=ridge,
        )

    def refit_kwargs(self) -> dict[str, Any]:
        """Backtests refit with the searched lag count and ridge weight."""
        return {"ridge": self.ridge, "lags": self.lags}

    def predict(
        self,
        history: pl.DataFrame,
        query: pl.DataFrame,
        spec: TimeSeriesSpec,  # noqa: ARG002
        *,
        layout: Layout | None = None,
    ) -> np.ndarray:
        """``last + scale * (intercept[d] + x · coef[d])``; NaN where the window holds no target."""
        if query.height == 0:
            return np.empty(0)
        rows = _rows(history, query, self.fdw, self.lags, self.kia, layout=layout)
        xs = np.nan_to_num((rows.x - self.mean) / self.std, nan=0.0)
        k = np.searchsorted(np.asarray(self.distances), query.get_column(D).to_numpy())
        k = np.clip(k, 0, len(self.distances) - 1)
        z = self.intercept[k] + np.einsum("ij,ij->i", xs, self.coef[k])
        return np.asarray(rows.last + rows.scale * z)

    def explain(
        self,
        history: pl.DataFrame,
        query: pl.DataFrame,
        spec: TimeSeriesSpec,
        *,
        layout: Layout | None = None,
    ) -> Contributions:
        """``<target> (last)`` plus coefficient x standardised input x scale per input; base ``scale * intercept[d]``.

        The forecast is ``last + scale * (intercept[d] + xs · coef[d])`` with
        ``xs`` the inputs standardised by their training mean and deviation, so
        each input's contribution is its effect against a training-average
        window, and the base the scaled change an average window forecasts.
        Inputs are named as LightGBM's (``sales (lag 3)``, ``scheduled``,
        ``scheduled (vs window)``); shown values are the observed lag, the
        known-in-advance value and its window-relative change.
        """
        lag_names = [f"{spec.target} (lag {j})" for j in range(1, self.lags)]
        names = [f"{spec.target} (last)", *lag_names, *self.kia, *(f"{k} (vs window)" for k in self.kia)]
        if query.height == 0:
            return Contributions.empty(names)
        rows = _rows(history, query, self.fdw, self.lags, self.kia, layout=layout, with_lags=True)
        assert rows.lag_values is not None
        xs = np.nan_to_num((rows.x - self.mean) / self.std, nan=0.0)
        k = np.searchsorted(np.asarray(self.distances), query.get_column(D).to_numpy())
        k = np.clip(k, 0, len(self.distances) - 1)
        terms = rows.scale[:, None] * (xs * self.coef[k])
        strengths = np.column_stack([rows.last, terms])
        base = rows.scale * self.intercept[k]
        shown = [rows.last, *rows.lag_values.T, *rows.x[:, rows.lag_values.shape[1] :].T]
        return Contributions(strengths, base, names, numeric_values(shown, query.height))

    def to_bytes(self) -> bytes:
        """Coefficients and standardisation as JSON."""
        return orjson.dumps(
            {
                "fdw": self.fdw,
                "lags": self.lags,
                "kia": list(self.kia),
                "distances": list(self.distances),
                "mean": self.mean.tolist(),
                "std": self.std.tolist(),
                "intercept": self.intercept.tolist(),
                "coef": self.coef.tolist(),
                "ridge": self.ridge,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Inverse of :meth:`to_bytes`."""
        s = orjson.loads(data)
        n = len(s["mean"])
        return cls(
            fdw=int(s["fdw"]),
            lags=int(s["lags"]),
            kia=tuple(s["kia"]),
            distances=tuple(int(v) for v in s["distances"]),
            mean=np.asarray(s["mean"], dtype=np.float64),
            std=np.asarray(s["std"], dtype=np.float64),
            intercept=np.asarray(s["intercept"], dtype=np.float64),
            coef=np.asarray(s["coef"], dtype=np.float64).reshape(-1, n),
            ridge=float(s["ridge"]),
        )

    def describe(self) -> dict[str, Any]:
        """Kind, lags, KIA regressors and the ridge weight."""
        return {
            "kind": self.kind,
            "lags": self.lags,
            "known_in_advance": list(self.kia),
            "ridge": self.ridge,
        }


def _search(
    xs: np.ndarray,
    z: np.ndarray,
    d: np.ndarray,
    valid: np.ndarray,
    distances: Sequence[int],
    columns: dict[int, list[int]],
    ridges: tuple[float, ...],
) -> tuple[int, float]:
    """The (lag count, ridge weight) with the lowest absolute validation error over all distances.

    Ties and too small a fold keep the fewest lags and :data:`DEFAULT_RIDGE`
    (or the only ridge given).
    """
    options = sorted(columns)
    fallback = DEFAULT_RIDGE if DEFAULT_RIDGE in ridges else ridges[0]
    if len(options) * len(ridges) == 1 or valid.sum() < MIN_VALID_ROWS or (~valid).sum() < MIN_VALID_ROWS:
        return options[0], fallback
    errors = np.zeros((len(options), len(ridges)))
    for dist in distances:
        fit, check = (d == dist) & ~valid, (d == dist) & valid
        if fit.sum() < 2 or not check.any():
            continue
        for i, n in enumerate(options):
            cols = columns[n]
            for j, (c, beta) in enumerate(_solve(xs[fit][:, cols], z[fit], ridges)):
                errors[i, j] += np.abs(z[check] - c - xs[check][:, cols] @ beta).sum()
    best = int(np.argmin(errors))
    return options[best // len(ridges)], float(ridges[best % len(ridges)])
