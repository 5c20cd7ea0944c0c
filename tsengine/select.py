"""Model selection: rank backtests by mean MASE, the scale-free error, then choose.

Choosing the lowest mean MASE is noisy when few series and few origins back it
up: on a dozen series the order of the top candidates flips between runs with
one more origin.  Forecast combination is the safer default (the M3/M4
evidence), so :func:`choose` keeps the ensemble unless a single model beats it
by more than :data:`SIGNIFICANCE` standard errors of the paired difference in
per-(series, origin) MASE.  Without an ensemble the lowest mean MASE wins.

With a calendar of events, every row of a backtest is weighted so that event
periods count with their long-run share (:func:`tsengine.events.weigh_events`):
backtest windows that happen to hold the holidays do not decide alone.

Per-series selection (:func:`per_series_choice`) goes one step further: a
series keeps the ensemble unless one of its members beat the ensemble *on that
series* by :data:`PER_SERIES_SIGNIFICANCE` standard errors over at least
:data:`PER_SERIES_MIN_WINDOWS` backtest windows.  Whether that wins is itself
measured honestly: its backtest is prequential, each origin's choice made from
the earlier origins only, so it enters the leaderboard on the same footing as
any candidate and must beat the ensemble like one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from tsengine.backtest import Backtest, aligned_predictions, score
from tsengine.events import EVENT
from tsengine.features import FP
from tsengine.validate import SID

__all__ = [
    "PER_SERIES_MIN_WINDOWS",
    "PER_SERIES_SIGNIFICANCE",
    "SIGNIFICANCE",
    "UNTESTED_PREFERENCE",
    "Choice",
    "SeriesChoice",
    "choose",
    "paired_advantage",
    "per_series_choice",
    "rank",
]

# A single model must beat the ensemble by this many standard errors (one-sided,
# about 97.5 % for a normal mean) to replace it.
SIGNIFICANCE = 2.0
# A member replaces the ensemble for one series when its mean window MASE on
# that series is lower by this many standard errors [ours]: milder than the
# deployment-wide rule because the prequential backtest below judges the
# per-series choice as a whole before it is deployed.
PER_SERIES_SIGNIFICANCE = 1.0
# Windows (origins) of evidence a series needs before it may leave the ensemble.
PER_SERIES_MIN_WINDOWS = 2


# Without any backtest there is no evidence to rank on [ours]: ETS, the
# forecaster that did best alone on short single series (benchmarks/collection.md:
# statsforecast's AutoETS is the strongest single peer there), then the other
# per-series models; global learners need the most data, so they come last.
UNTESTED_PREFERENCE = ("ets", "theta", "arima", "seasonal_naive", "linear")


@dataclass(frozen=True, slots=True)
class Choice:
    """The selected model and why: ``reason`` is stored with the leaderboard."""

    model: str
    reason: str


def rank(results: list[Backtest]) -> list[dict[str, Any]]:
    """Leaderboard rows, best first; models without a finite MASE go last.

    Each row: ``model``, ``mase``, ``smape``, ``rmse``, ``n`` and the metrics by
    distance, so ``tsengine info`` can show where each model is good.  With
    calendar events (a ``weight`` column) also ``mase_events`` and
    ``mase_ordinary``: the MASE on event periods and on the others.
    """
    rows = []
    for result in results:
        m = result.metrics()
        row = {
            "model": result.model,
            "mase": m["mase"],
            "smape": m["smape"],
            "rmse": m["rmse"],
            "n": m["n"],
            "by_distance": m["by_distance"],
        }
        if "weight" in result.rows.columns:
            on_event = pl.col(EVENT) > 0
            for label, part in (("mase_events", on_event), ("mase_ordinary", ~on_event)):
                row[label] = score(result.rows.filter(part).drop("weight"))["mase"]
        rows.append(row)

    def key(row: dict[str, Any]) -> tuple[int, float]:
        value = row["mase"]
        return (0, value) if isinstance(value, float) and math.isfinite(value) else (1, math.inf)

    return sorted(rows, key=key)


def _window_mase(rows: pl.DataFrame, name: str) -> pl.DataFrame:
    """Mean scaled absolute error of each (series, origin) window."""
    scaled = (pl.col("y") - pl.col("yhat")).abs() / pl.col("mase_scale")
    if "weight" in rows.columns:  # calendar events (tsengine.events.weigh_events)
        scaled = scaled * pl.col("weight")  # averages 1 over the scored rows
    return (
        rows.filter(pl.col("y").is_not_null() & pl.col("yhat").is_finite())
        .group_by(SID, FP)
        .agg(scaled.mean().alias(name))
    )


def paired_advantage(a: Backtest, b: Backtest) -> tuple[float, float, int]:
    """Mean and standard error of ``MASE(b) - MASE(a)`` over windows both predicted.

    Positive means ``a`` is better.  A window is one series at one origin; its
    distances share shocks, so they count once.

    Returns:
        ``(mean, standard error, windows)``; the error is infinite below two windows.
    """
    both = _window_mase(a.rows, "__a").join(_window_mase(b.rows, "__b"), on=[SID, FP], how="inner")
    diff = (both.get_column("__b") - both.get_column("__a")).to_numpy()
    n = int(diff.size)
    if n == 0:
        return 0.0, math.inf, 0
    se = float(np.std(diff, ddof=1) / math.sqrt(n)) if n >= 2 else math.inf
    return float(diff.mean()), se, n


def choose(results: list[Backtest], leaderboard: list[dict[str, Any]], *, ensemble: str) -> Choice:
    """The model to deploy from ranked backtests (see the module docstring).

    Args:
        results: every candidate's backtest.
        leaderboard: :func:`rank` of ``results``.
        ensemble: the ensemble's name; preferred unless beaten significantly.
    """
    usable = [row["model"] for row in leaderboard if row["n"]]
    if not usable:
        trained = [row["model"] for row in leaderboard]
        model = next((k for k in UNTESTED_PREFERENCE if k in trained), trained[0])
        return Choice(model, f"no candidate could be backtested (too little history): {model} by default")
    best = usable[0]
    by_name = {r.model: r for r in results}
    if ensemble not in usable or best == ensemble:
        return Choice(best, "lowest backtest MASE")
    gain, se, n = paired_advantage(by_name[best], by_name[ensemble])
    if gain > SIGNIFICANCE * se:
        return Choice(
            best,
            f"beats the ensemble by {gain:.3f} MASE (> {SIGNIFICANCE:g} x standard error {se:.3f}, {n} windows)",
        )
    return Choice(
        ensemble,
        f"{best} leads the ensemble by {gain:.3f} MASE, within {SIGNIFICANCE:g} x standard error "
        f"{se:.3f} ({n} windows): the combination is kept",
    )


@dataclass(frozen=True, slots=True)
class SeriesChoice:
    """Per-series selection: the final pick per series and its prequential backtest.

    ``picks`` maps a series to the candidate it uses; series absent from it use
    the base (the ensemble).  ``backtest`` predicts each origin with the choice
    made from earlier origins only.
    """

    picks: dict[str, str]
    backtest: Backtest


def _window_table(results: list[Backtest]) -> pl.DataFrame:
    """One row per (series, origin) window, one window-MASE column per candidate."""
    table = _window_mase(results[0].rows, results[0].model)
    for other in results[1:]:
        table = table.join(_window_mase(other.rows, other.model), on=[SID, FP], how="full", coalesce=True)
    return table.sort(SID, FP)


def _picks(table: pl.DataFrame, base: str, names: list[str], *, prequential: bool) -> np.ndarray:
    """Index into ``names`` (or -1 for ``base``) chosen for each window of ``table``.

    Per series, each candidate's paired difference to the base over the
    windows seen so far (all of them, or only earlier ones when
    ``prequential``); the candidate with the lowest mean difference wins where
    that mean is below ``-PER_SERIES_SIGNIFICANCE`` standard errors.
    """
    means, bounds = [], []
    for name in names:
        diff = pl.col(name) - pl.col(base)
        ok = diff.is_not_null() & diff.is_not_nan()
        parts = [
            ok.cast(pl.Float64),
            pl.when(ok).then(diff).otherwise(0.0),
            pl.when(ok).then(diff**2).otherwise(0.0),
        ]
        cums = [p.cum_sum().over(SID) for p in parts]
        if prequential:  # drop each window's own term: only earlier windows count
            cums = [c - p for c, p in zip(cums, parts, strict=True)]
        stats = table.select([c.alias(f"__{k}") for k, c in enumerate(cums)]).to_numpy()
        n, s1, s2 = stats[:, 0], stats[:, 1], stats[:, 2]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(n > 0, s1 / np.maximum(n, 1), np.nan)
            var = np.maximum(s2 - n * mean**2, 0.0) / np.maximum(n - 1, 1)
            se = np.sqrt(var / np.maximum(n, 1))
        enough = n >= PER_SERIES_MIN_WINDOWS
        means.append(np.where(enough, mean, np.inf))
        bounds.append(np.where(enough, mean + PER_SERIES_SIGNIFICANCE * se, np.inf))
    if not names:
        return np.full(table.height, -1, dtype=np.int64)
    mean_m, bound_m = np.column_stack(means), np.column_stack(bounds)
    mean_m = np.where(bound_m < 0, mean_m, np.inf)
    best = np.argmin(mean_m, axis=1)
    return np.where(np.isfinite(mean_m[np.arange(table.height), best]), best, -1).astype(np.int64)


def per_series_choice(base: Backtest, members: list[Backtest], *, name: str) -> SeriesChoice:
    """Per-series picks among ``members`` against ``base``, with a prequential backtest.

    Args:
        base: the ensemble's backtest (every series starts on it).
        members: backtests of the ensemble's members, same origins.
        name: the name of the resulting backtest.
    """
    names = [m.model for m in members]
    table = _window_table([base, *members])
    final = _picks(table, base.model, names, prequential=False)
    last = (
        table.select(SID).with_columns(pl.Series("__pick", final)).group_by(SID).agg(pl.col("__pick").last())
    )
    picks = {s: names[k] for s, k in last.iter_rows() if k >= 0}
    early = _picks(table, base.model, names, prequential=True)
    chosen = table.select(SID, FP).with_columns(pl.Series("__pick", early, dtype=pl.Int64))
    rows = base.rows.join(chosen, on=[SID, FP], how="left", maintain_order="left")
    code = rows.get_column("__pick").fill_null(-1).to_numpy()
    yhat = rows.get_column("yhat").to_numpy().copy()
    theirs = aligned_predictions(rows, members)
    for k in range(len(members)):
        use = (code == k) & np.isfinite(theirs[k])
        yhat[use] = theirs[k][use]
    out = rows.drop("__pick").with_columns(pl.Series("yhat", yhat, dtype=pl.Float64))
    return SeriesChoice(picks, Backtest(name, out))
