"""Seasonal naive: the value one season before the target, as of the forecast point.

The baseline every forecaster must beat, and the fallback when a series is too
short or too odd for anything else.  Without a season (or when that value is
missing) it repeats the last observed value in the window.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import orjson
import polars as pl

from tsengine.contributions import Contributions, numeric_values
from tsengine.features import CategoryMaps, FeaturePlan, Layout, build_design
from tsengine.models.base import ForecastModel
from tsengine.spec import TimeSeriesSpec

__all__ = ["SeasonalNaiveModel", "seasonal_naive"]


def seasonal_naive(seasonal: np.ndarray, last: np.ndarray) -> np.ndarray:
    """The seasonal value where observed, else the last value."""
    return np.where(np.isfinite(seasonal), seasonal, last)


class SeasonalNaiveModel(ForecastModel):
    """``y[fp + d - m·season]``, the latest same-season value inside the window."""

    kind = "seasonal_naive"
    per_series = True

    def __init__(self, plan: FeaturePlan) -> None:
        self.plan = plan

    @classmethod
    def fit(cls, history: pl.DataFrame, spec: TimeSeriesSpec, *, seed: int = 0) -> Self:  # noqa: ARG003
        """Nothing to estimate: remember the window and season."""
        full = FeaturePlan.for_spec(spec)
        plan = FeaturePlan(
            fdw=full.fdw,
            lags=0,
            windows=(),
            season=full.season,
            calendar=(),
            known_in_advance=(),
            features=(),
            categorical=(),
            with_series=False,
        )
        return cls(plan)

    @classmethod
    def merge(cls, parts: list[Self]) -> Self:
        """Nothing is per series: any part is the model."""
        return parts[0]

    def predict(
        self,
        history: pl.DataFrame,
        query: pl.DataFrame,
        spec: TimeSeriesSpec,
        *,
        layout: Layout | None = None,
    ) -> np.ndarray:
        """Look the values up on the dense grid."""
        if query.height == 0:
            return np.empty(0)
        design = build_design(history, query, self.plan, spec.time_step, CategoryMaps(), layout=layout)
        return seasonal_naive(design.seasonal, design.last)

    def explain(
        self,
        history: pl.DataFrame,
        query: pl.DataFrame,
        spec: TimeSeriesSpec,
        *,
        layout: Layout | None = None,
    ) -> Contributions:
        """The one past value each forecast repeats, base 0.

        ``<target> (season, lag m)`` when the latest same-season value is
        observed, else ``<target> (last)``; without a season the first is
        ``<target> (lag 0)``.  The shown value is the value repeated.
        """
        season = self.plan.season
        same = f"{spec.target} (season, lag {season})" if season > 1 else f"{spec.target} (lag 0)"
        names = [same, f"{spec.target} (last)"]
        if query.height == 0:
            return Contributions.empty(names)
        design = build_design(history, query, self.plan, spec.time_step, CategoryMaps(), layout=layout)
        seen = np.isfinite(design.seasonal)
        strengths = np.column_stack([np.where(seen, design.seasonal, 0.0), np.where(seen, 0.0, design.last)])
        base = np.where(seen | np.isfinite(design.last), 0.0, np.nan)
        values = numeric_values([design.seasonal, np.where(seen, np.nan, design.last)], query.height)
        return Contributions(strengths, base, names, values)

    def to_bytes(self) -> bytes:
        """The plan as JSON."""
        return orjson.dumps({"plan": self.plan.to_dict()})

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Inverse of :meth:`to_bytes`."""
        return cls(FeaturePlan.from_dict(orjson.loads(data)["plan"]))

    def describe(self) -> dict[str, Any]:
        """Kind and season."""
        return {"kind": self.kind, "season": self.plan.season}
