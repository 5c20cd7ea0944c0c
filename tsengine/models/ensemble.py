"""A simple ensemble: the weighted mean of a few fitted models' forecasts.

Forecast combination is among the most reliable ways to gain accuracy (the M4
competition's top entries combined models).  Training builds it from the best
few backtested candidates it already fitted, weighted by their inverse backtest
MASE: a smooth rule with no free parameter, so it cannot overfit the weights
to a handful of origins the way optimised (stacking) weights do, yet it leans
away from a member that backtests clearly worse.  Its backtest is the weighted
mean of the members' backtest predictions (no refit).

Where a member cannot predict a row (NaN), the others' weighted mean is used.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import orjson
import polars as pl

from tsengine.errors import TrainingDataError
from tsengine.models.base import ForecastModel
from tsengine.spec import TimeSeriesSpec

__all__ = ["DEFAULT_MEMBERS", "EnsembleModel"]

DEFAULT_MEMBERS = ("ets", "theta", "arima")


class EnsembleModel(ForecastModel):
    """Weighted mean of member models (equal weights by default)."""

    kind = "ensemble"

    def __init__(self, members: list[ForecastModel], weights: list[float] | None = None) -> None:
        if not members:
            msg = "an ensemble needs at least one member model"
            raise TrainingDataError(msg)
        w = [1.0] * len(members) if weights is None else [float(x) for x in weights]
        if len(w) != len(members) or not all(np.isfinite(x) and x > 0 for x in w):
            msg = f"ensemble weights must be {len(members)} positive numbers, got {weights!r}"
            raise TrainingDataError(msg)
        total = sum(w)
        self.members = members
        self.weights = [x / total for x in w]

    @classmethod
    def fit(
        cls,
        history: pl.DataFrame,
        spec: TimeSeriesSpec,
        *,
        seed: int = 0,
        members: list[str] | None = None,
        member_kwargs: list[dict[str, Any]] | None = None,
        weights: list[float] | None = None,
    ) -> Self:
        """Fit each member kind (default :data:`DEFAULT_MEMBERS`) on the same rows."""
        from tsengine.models import MODELS

        kinds = list(members or DEFAULT_MEMBERS)
        kwargs = member_kwargs or [{} for _ in kinds]
        fitted = [MODELS[k].fit(history, spec, seed=seed, **kw) for k, kw in zip(kinds, kwargs, strict=True)]
        return cls(fitted, weights)

    def refit_kwargs(self) -> dict[str, Any]:
        """Members, each member's own tuning and the weights."""
        return {
            "members": [m.kind for m in self.members],
            "member_kwargs": [m.refit_kwargs() for m in self.members],
            "weights": list(self.weights),
        }

    def predict(self, history: pl.DataFrame, query: pl.DataFrame, spec: TimeSeriesSpec) -> np.ndarray:
        """NaN-aware weighted mean of the members' predictions."""
        if query.height == 0:
            return np.empty(0)
        preds = np.vstack([m.predict(history, query, spec) for m in self.members])
        return combine(preds, self.weights)

    def to_bytes(self) -> bytes:
        """Each member's own bytes (all are UTF-8 JSON) inside one JSON document."""
        return orjson.dumps(
            {
                "members": [{"kind": m.kind, "state": m.to_bytes().decode()} for m in self.members],
                "weights": self.weights,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Inverse of :meth:`to_bytes` (ensembles stored before weights existed are equal-weight)."""
        from tsengine.models import MODELS

        state = orjson.loads(data)
        members = [MODELS[m["kind"]].from_bytes(m["state"].encode()) for m in state["members"]]
        return cls(members, state.get("weights"))

    def describe(self) -> dict[str, Any]:
        """The members' own descriptions and weights."""
        return {
            "kind": self.kind,
            "members": [m.describe() for m in self.members],
            "weights": [round(w, 4) for w in self.weights],
        }


def combine(preds: np.ndarray, weights: list[float] | None = None) -> np.ndarray:
    """Column (weighted) means ignoring NaN (NaN where every member is NaN).

    Args:
        preds: one row per member.
        weights: one positive weight per member; equal when None.  A NaN
            member's weight is dropped and the others renormalised.
    """
    w = np.ones(preds.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
    finite = np.isfinite(preds)
    mass = (finite * w[:, None]).sum(axis=0)
    total = (np.where(finite, preds, 0.0) * w[:, None]).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.where(mass > 0, total / np.where(mass > 0, mass, 1.0), np.nan))
