"""Model selection: rank backtests by mean MASE, the scale-free error, then choose.

Choosing the lowest mean MASE is noisy when few series and few origins back it
up: on a dozen series the order of the top candidates flips between runs with
one more origin.  Forecast combination is the safer default (the M3/M4
evidence), so :func:`choose` keeps the ensemble unless a single model beats it
by more than :data:`SIGNIFICANCE` standard errors of the paired difference in
per-(series, origin) MASE.  Without an ensemble the lowest mean MASE wins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from tsengine.backtest import Backtest
from tsengine.features import FP
from tsengine.validate import SID

__all__ = ["SIGNIFICANCE", "Choice", "choose", "paired_advantage", "rank"]

# A single model must beat the ensemble by this many standard errors (one-sided,
# about 97.5 % for a normal mean) to replace it.
SIGNIFICANCE = 2.0


@dataclass(frozen=True, slots=True)
class Choice:
    """The selected model and why: ``reason`` is stored with the leaderboard."""

    model: str
    reason: str


def rank(results: list[Backtest]) -> list[dict[str, Any]]:
    """Leaderboard rows, best first; models without a finite MASE go last.

    Each row: ``model``, ``mase``, ``smape``, ``rmse``, ``n`` and the metrics by
    distance, so ``tsengine info`` can show where each model is good.
    """
    rows = []
    for result in results:
        m = result.metrics()
        rows.append(
            {
                "model": result.model,
                "mase": m["mase"],
                "smape": m["smape"],
                "rmse": m["rmse"],
                "n": m["n"],
                "by_distance": m["by_distance"],
            }
        )

    def key(row: dict[str, Any]) -> tuple[int, float]:
        value = row["mase"]
        return (0, value) if isinstance(value, float) and math.isfinite(value) else (1, math.inf)

    return sorted(rows, key=key)


def _window_mase(rows: pl.DataFrame, name: str) -> pl.DataFrame:
    """Mean scaled absolute error of each (series, origin) window."""
    return (
        rows.filter(pl.col("y").is_not_null() & pl.col("yhat").is_finite())
        .group_by(SID, FP)
        .agg(((pl.col("y") - pl.col("yhat")).abs() / pl.col("mase_scale")).mean().alias(name))
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
        return Choice(leaderboard[0]["model"], "no candidate could be backtested")
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
