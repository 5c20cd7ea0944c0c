"""Rolling-origin backtests: the one place accuracy is measured.

Each origin is a forecast point ``T`` on the grid: models are fitted on rows up to
``T`` only and predict distances b..c from ``T``, exactly as a deployment would
serve a request whose history ends at ``T``.  Origins step back one forecast
window at a time from the end of the data, so their windows do not overlap.
Training (model selection, intervals), ``tsengine info`` and the accuracy
benchmark all read these numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from tsengine.features import FP, D, dense_history, season_length
from tsengine.grid import OriginGrid
from tsengine.models.base import ForecastModel
from tsengine.models.ensemble import combine
from tsengine.spec import TimeSeriesSpec, min_history_for
from tsengine.training_query import query_at
from tsengine.validate import IDX, SID, Y

__all__ = [
    "ROWS_SCHEMA",
    "Backtest",
    "BacktestPlan",
    "aligned_predictions",
    "auto_origins",
    "backtest_origins",
    "ensemble_backtest",
    "mase_scales",
    "naive_scales",
    "run_backtest",
    "score",
    "origin_scale",
    "refitter",
    "window_scale",
    "window_that_fits",
]

DEFAULT_ORIGINS = 3
# [ours] Automatic origin count: enough that series x origins reaches this many
# forecast windows, between DEFAULT_ORIGINS and MAX_ORIGINS.  Errors within one
# window are strongly correlated (one shock moves every distance), so a window,
# not a row, is the unit of evidence; with a dozen series three origins give a
# leaderboard whose order flips from one run to the next.  Many series already
# give many windows per origin, and each origin costs one refit per candidate,
# so large data keep the minimum.
MIN_WINDOWS = 60
MAX_ORIGINS = 8


# Columns of :attr:`Backtest.rows`, in order.
ROWS_SCHEMA: dict[str, pl.DataType] = {
    SID: pl.String(),
    FP: pl.Int64(),
    D: pl.Int64(),
    IDX: pl.Int64(),
    "y": pl.Float64(),
    "yhat": pl.Float64(),
    "scale": pl.Float64(),
    "mase_scale": pl.Float64(),
}


@dataclass(frozen=True, slots=True)
class Backtest:
    """Predictions of one model at every backtest origin.

    ``rows`` has ``__sid``, ``__fp``, ``__d``, ``__i``, ``y``, ``yhat``,
    ``scale`` (the window scale used by intervals) and ``mase_scale``.
    """

    model: str
    rows: pl.DataFrame

    def metrics(self) -> dict[str, Any]:
        """Overall, per-distance and per-series MASE, sMAPE and RMSE."""
        return score(self.rows)


def backtest_origins(
    history: pl.DataFrame, spec: TimeSeriesSpec, n_origins: int = DEFAULT_ORIGINS
) -> list[int]:
    """Origins ``T_k = last - c - k·(c - b + 1)``, oldest first, that leave training data.

    An origin is kept when some series has at least ``min_history + c`` observed
    rows before it, so the model fitted there has something to learn from.
    """
    observed = history.filter(pl.col(Y).is_not_null())
    last = int(observed.get_column(IDX).max())  # type: ignore[arg-type]
    width = len(spec.distances)
    need = spec.min_history + spec.forecast_window[1]
    firsts = observed.group_by(SID).agg(pl.col(IDX).min()).get_column(IDX)
    earliest = int(firsts.min()) + need  # type: ignore[arg-type]
    origins = [last - spec.forecast_window[1] - k * width for k in range(n_origins)]
    return sorted(o for o in origins if o >= earliest)


def window_that_fits(history: pl.DataFrame, a: int, forecast_window: tuple[int, int], floor: int) -> int:
    """The longest feature derivation window up to ``a`` that leaves one backtest origin.

    :func:`backtest_origins` keeps the newest origin ``last - c`` when a series
    has ``min_history + c`` observed rows before it; 36 monthly points with the
    default 36-month window (min history 18) and a 12-month horizon leave none,
    and without a backtest there is nothing to select a model or calibrate
    intervals on.  A default window is therefore shrunk (never below ``floor``)
    until the newest origin fits: on such short data the statistical models
    re-filter a shorter window, which costs less than choosing blind.
    """
    observed = history.filter(pl.col(Y).is_not_null())
    if observed.height == 0:
        return a
    c = forecast_window[1]
    room = int(observed.get_column(IDX).max()) - int(observed.get_column(IDX).min()) - 2 * c  # type: ignore[arg-type]
    for w in range(a, min(floor, a), -1):
        if min_history_for(w) <= room:
            return w
    return min(floor, a)


def auto_origins(history: pl.DataFrame) -> int:
    """Origins for a backtest of ``history``: ``ceil(MIN_WINDOWS / series)`` clipped to [3, 8]."""
    n_series = max(1, history.filter(pl.col(Y).is_not_null()).get_column(SID).n_unique())
    return int(np.clip(-(-MIN_WINDOWS // n_series), DEFAULT_ORIGINS, MAX_ORIGINS))


def mase_scales(history: pl.DataFrame, spec: TimeSeriesSpec, upto: int) -> pl.DataFrame:
    """Per-series in-sample seasonal-naive MAE on rows up to ``upto`` (MASE's denominator).

    Gaps are filled with nulls on the grid first, so a lag of one season is one
    season of time, not one season of rows.
    """
    season = season_length(spec.time_step, spec.fdw)
    part = history.filter(pl.col(IDX) <= upto)
    ends = part.group_by(SID).agg(pl.col(IDX).max().alias(FP))
    span = upto - int(part.get_column(IDX).min()) + 1  # type: ignore[arg-type]
    return naive_scales(dense_history(part, ends, span, []), season)


def naive_scales(dense: pl.DataFrame, season: int, *, series: str = SID, target: str = Y) -> pl.DataFrame:
    """Per-series in-sample seasonal-naive MAE of time-ordered rows on a complete grid.

    The one MASE denominator: backtests use it through :func:`mase_scales`, the
    accuracy benchmark calls it on its training split for every method it
    scores.  Falls back to the lag-1 MAE when the seasonal one is zero or
    undefined, and to 1 for constant series, so MASE is always finite.

    Returns:
        ``series`` and ``mase_scale``, one row per series.
    """
    y = pl.col(target)
    return (
        dense.group_by(series, maintain_order=True)
        .agg(
            (y - y.shift(season)).abs().mean().alias("__ms"),
            (y - y.shift(1)).abs().mean().alias("__m1"),
        )
        .select(
            series,
            pl.when(pl.col("__ms") > 0)
            .then(pl.col("__ms"))
            .when(pl.col("__m1") > 0)
            .then(pl.col("__m1"))
            .otherwise(1.0)
            .alias("mase_scale"),
        )
    )


@dataclass(frozen=True, slots=True)
class BacktestPlan:
    """What every candidate's backtest shares: each origin's training cut and query, and the truth.

    Built once per training and handed to each candidate's :func:`run_backtest`,
    so that the cuts, the queries (:func:`~tsengine.training_query.query_at`)
    and the scales are computed once, not once per candidate.

    Attributes:
        cuts: ``(origin, rows up to it, its query)`` for origins with a query.
        truth: the queries' rows in order with ``y`` (the actual), ``scale``
            (:func:`window_scale`) and ``mase_scale`` (:func:`mase_scales`).
    """

    cuts: list[tuple[int, pl.DataFrame, pl.DataFrame]]
    truth: pl.DataFrame

    @classmethod
    def build(cls, history: pl.DataFrame, spec: TimeSeriesSpec, origins: list[int]) -> BacktestPlan:
        """The plan for ``origins`` over the canonical training rows."""
        cuts = []
        for origin in origins:
            query = query_at(history, spec, origin)
            if query.height:
                cuts.append((origin, history.filter(pl.col(IDX) <= origin), query))
        if not cuts:
            return cls([], pl.DataFrame(schema={k: v for k, v in ROWS_SCHEMA.items() if k != "yhat"}))
        queries = pl.concat([query.select(SID, FP, D, IDX) for _, _, query in cuts])
        truth = queries.join(
            history.select(SID, IDX, pl.col(Y).alias("y")), on=[SID, IDX], how="left", maintain_order="left"
        )
        truth = truth.join(
            window_scale(history, truth, spec.fdw), on=[SID, FP], how="left", maintain_order="left"
        )
        truth = truth.join(mase_scales(history, spec, origins[0]), on=SID, how="left", maintain_order="left")
        return cls(cuts, truth.with_columns(pl.col("mase_scale").fill_null(1.0)))


def refitter(
    cls: type[ForecastModel], final: ForecastModel, spec: TimeSeriesSpec, seed: int
) -> Callable[[pl.DataFrame], ForecastModel]:
    """Refit ``cls`` at a backtest origin with the final model's tuning (:meth:`ForecastModel.refit_kwargs`)."""
    refit = final.refit_kwargs()

    def fit(past: pl.DataFrame) -> ForecastModel:
        return cls.fit(past, spec, seed=seed, **refit)

    return fit


def run_backtest(
    fit: Callable[[pl.DataFrame], ForecastModel],
    history: pl.DataFrame,
    spec: TimeSeriesSpec,
    origins: list[int],
    *,
    name: str,
    plan: BacktestPlan | None = None,
) -> Backtest:
    """Fit at each origin on rows up to it and predict its forecast window.

    Args:
        fit: fits a model on canonical training rows.
        history: all canonical training rows.
        spec: the deployment spec.
        origins: grid indices to use as forecast points.
        name: the model's name for the leaderboard.
        plan: :meth:`BacktestPlan.build` of the same history, spec and origins
            (built here when not given).
    """
    plan = plan or BacktestPlan.build(history, spec, origins)
    if not plan.cuts:
        return Backtest(name, pl.DataFrame(schema=ROWS_SCHEMA))
    predictions = []
    for _, past, query in plan.cuts:
        model = fit(past)
        predictions.append(np.asarray(model.predict(past, query, spec), dtype=np.float64))
    yhat = pl.Series("yhat", np.concatenate(predictions), dtype=pl.Float64)
    return Backtest(name, plan.truth.with_columns(yhat).select(list(ROWS_SCHEMA)))


def origin_scale(
    history: pl.DataFrame, sids: pl.Series, origins: np.ndarray, fdw: int, *, grid: OriginGrid | None = None
) -> np.ndarray:
    """Per-origin volatility over ``(fp - fdw, fp]``: the mean absolute one-step change.

    Intervals are stored in these units, so one table serves series of any size
    *and* any noise level: a smooth series with a large level gets narrow
    intervals, a noisy one wide ones.  (The mean absolute level, used before,
    made intervals of smooth high-level series far too wide and of noisy
    low-level series far too narrow.)  Falls back to the mean absolute level
    when the window has no consecutive pair or no change, then to 1.

    ``grid``: the request's grid of ``history`` around these very origins with
    windows of ``fdw`` (:meth:`tsengine.features.Layout.grid`), so the windows
    the model's features already read are not laid out again.
    """
    if origins.size == 0:
        return np.empty(0)
    if grid is None or grid.fdw != fdw:
        grid = OriginGrid.build(history, sids, origins, fdw)
    change = grid.mean_abs_change(max(fdw - 1, 1))
    level = grid.mean(absolute=True)
    return np.asarray(np.where(change > 1e-9, change, np.where(level > 1e-9, level, 1.0)))


def window_scale(history: pl.DataFrame, origins: pl.DataFrame, fdw: int) -> pl.DataFrame:
    """:func:`origin_scale` for each distinct ``(__sid, __fp)`` of ``origins``, as a frame."""
    pairs = origins.select(SID, FP).unique(maintain_order=True)
    scale = origin_scale(history, pairs.get_column(SID), pairs.get_column(FP).to_numpy(), fdw)
    return pairs.with_columns(pl.Series("scale", scale, dtype=pl.Float64))


def ensemble_backtest(members: list[Backtest], *, name: str, weights: list[float] | None = None) -> Backtest:
    """The backtest of the (weighted) mean of ``members``' predictions (same origins and rows).

    Rows a member could not predict (NaN) are averaged over the others, with
    their weights renormalised.
    """
    base = members[0].rows
    mean = combine(aligned_predictions(base, members), weights)
    return Backtest(name, base.with_columns(pl.Series("yhat", mean, dtype=pl.Float64)))


def aligned_predictions(rows: pl.DataFrame, results: list[Backtest]) -> np.ndarray:
    """Each backtest's ``yhat`` on the (series, origin, distance) keys of ``rows``, NaN where absent.

    Returns:
        One row per backtest, one column per row of ``rows``.
    """
    keys = [SID, FP, D]
    on = rows.select(keys)
    preds = [
        on.join(r.rows.select(*keys, "yhat"), on=keys, how="left", maintain_order="left")
        .get_column("yhat")
        .fill_null(np.nan)
        .to_numpy()
        for r in results
    ]
    return np.vstack(preds) if preds else np.empty((0, rows.height))


def _metric_exprs(interval: bool, weighted: bool = False) -> list[pl.Expr]:
    err = pl.col("y") - pl.col("yhat")
    denom = pl.col("y").abs() + pl.col("yhat").abs()
    scaled = err.abs() / pl.col("mase_scale")
    exprs = [
        ((scaled * pl.col("weight")).sum() / pl.col("weight").sum() if weighted else scaled.mean()).alias(
            "mase"
        ),
        pl.when(denom > 0).then(200 * err.abs() / denom).otherwise(0.0).mean().alias("smape"),
        (err**2).mean().sqrt().alias("rmse"),
        pl.len().alias("n"),
    ]
    if interval:
        inside = ((pl.col("y") >= pl.col("low")) & (pl.col("y") <= pl.col("high"))).fill_null(False)
        exprs.append((100 * inside.cast(pl.Float64).mean()).alias("coverage"))  # no interval covers nothing
    return exprs


def score(rows: pl.DataFrame, *, series: str = SID, distance: str = D) -> dict[str, Any]:
    """MASE, sMAPE and RMSE overall (MASE: mean over series), by distance and by series.

    The one scorer: training's leaderboard, ``tsengine info`` and the accuracy
    benchmark (tsengine and every peer on the held-out window) all call it.
    ``rows`` needs ``series``, ``distance``, ``y``, ``yhat`` and ``mase_scale``;
    with ``low`` and ``high`` it also reports ``coverage``, the percentage of
    actuals inside the interval.  Rows without an actual or a finite forecast
    are not scored; ``n`` counts the rows that were.  A ``weight`` column
    (calendar events, :func:`tsengine.events.weigh_events`) weights the MASE.
    """
    interval = "low" in rows.columns and "high" in rows.columns
    valid = rows.filter(pl.col("y").is_not_null() & pl.col("yhat").is_finite())
    if valid.height == 0:
        empty: dict[str, Any] = {"mase": float("nan"), "smape": float("nan"), "rmse": float("nan"), "n": 0}
        if interval:
            empty["coverage"] = float("nan")
        return {**empty, "by_distance": [], "by_series": []}
    exprs = _metric_exprs(interval, "weight" in rows.columns)
    by_series = valid.group_by(series, maintain_order=True).agg(exprs).sort(series)
    by_distance = valid.group_by(distance).agg(exprs).sort(distance)
    overall = valid.select(exprs).row(0, named=True)
    overall["mase"] = float(by_series.get_column("mase").mean())  # type: ignore[arg-type]
    return {
        **{k: (float(v) if k != "n" else int(v)) for k, v in overall.items()},
        "by_distance": by_distance.rename({distance: "distance"}).to_dicts(),
        "by_series": by_series.rename({series: "series"}).to_dicts(),
    }
