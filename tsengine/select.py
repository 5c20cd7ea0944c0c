"""Model selection: rank backtests by mean MASE, the scale-free error."""

from __future__ import annotations

import math
from typing import Any

from tsengine.backtest import Backtest

__all__ = ["rank"]


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
