"""A simple ensemble: the mean of a few fitted models' forecasts.

Forecast combination is among the most reliable ways to gain accuracy (the M4
competition's top entries combined models); the plain mean of the best few
backtested candidates is hard to beat and cannot overfit weights to three
backtest origins.  Training builds it from the candidates it already fitted,
and its backtest is the mean of their backtest predictions (no refit).

Where a member cannot predict a row (NaN), the others' mean is used.
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
    """Equal-weight mean of member models."""

    kind = "ensemble"

    def __init__(self, members: list[ForecastModel]) -> None:
        if not members:
            msg = "an ensemble needs at least one member model"
            raise TrainingDataError(msg)
        self.members = members

    @classmethod
    def fit(
        cls,
        history: pl.DataFrame,
        spec: TimeSeriesSpec,
        *,
        seed: int = 0,
        members: list[str] | None = None,
        member_kwargs: list[dict[str, Any]] | None = None,
    ) -> Self:
        """Fit each member kind (default :data:`DEFAULT_MEMBERS`) on the same rows."""
        from tsengine.models import MODELS

        kinds = list(members or DEFAULT_MEMBERS)
        kwargs = member_kwargs or [{} for _ in kinds]
        fitted = [MODELS[k].fit(history, spec, seed=seed, **kw) for k, kw in zip(kinds, kwargs, strict=True)]
        return cls(fitted)

    def refit_kwargs(self) -> dict[str, Any]:
        """Members and each member's own tuning."""
        return {
            "members": [m.kind for m in self.members],
            "member_kwargs": [m.refit_kwargs() for m in self.members],
        }

    def predict(self, history: pl.DataFrame, query: pl.DataFrame, spec: TimeSeriesSpec) -> np.ndarray:
        """NaN-aware mean of the members' predictions."""
        if query.height == 0:
            return np.empty(0)
        preds = np.vstack([m.predict(history, query, spec) for m in self.members])
        return combine(preds)

    def to_bytes(self) -> bytes:
        """Each member's own bytes (all are UTF-8 JSON) inside one JSON document."""
        return orjson.dumps(
            {"members": [{"kind": m.kind, "state": m.to_bytes().decode()} for m in self.members]}
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Inverse of :meth:`to_bytes`."""
        from tsengine.models import MODELS

        state = orjson.loads(data)
        return cls([MODELS[m["kind"]].from_bytes(m["state"].encode()) for m in state["members"]])

    def describe(self) -> dict[str, Any]:
        """The members' own descriptions."""
        return {"kind": self.kind, "members": [m.describe() for m in self.members]}


def combine(preds: np.ndarray) -> np.ndarray:
    """Column means ignoring NaN (NaN where every member is NaN)."""
    finite = np.isfinite(preds)
    count = finite.sum(axis=0)
    total = np.where(finite, preds, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.where(count > 0, total / np.maximum(count, 1), np.nan))
