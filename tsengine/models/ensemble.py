"""A simple ensemble: the weighted mean of a few fitted models' forecasts.

Forecast combination is among the most reliable ways to gain accuracy (the M4
competition's top entries combined models).  Training builds it from the best
few backtested candidates it already fitted (those the best one does not beat
by a clear margin over the backtest windows, see
``tsengine.candidates.ensemble_board``), weighted by their inverse backtest
MASE: a smooth rule with no free parameter, so it cannot overfit the weights
to a handful of origins the way optimised (stacking) weights do, yet it leans
away from a member that backtests clearly worse.  Its backtest is the weighted
mean of the members' backtest predictions (no refit).

Where a member cannot predict a row (NaN), the others' weighted mean is used.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Self

import numpy as np
import orjson
import polars as pl

from tsengine.contributions import Contributions, pick_rows, weighted_sum
from tsengine.errors import TrainingDataError
from tsengine.features import Layout
from tsengine.models.base import ForecastModel, predict_on
from tsengine.models.registry import model_class
from tsengine.spec import TimeSeriesSpec
from tsengine.validate import SID

__all__ = ["DEFAULT_MEMBERS", "EnsembleModel", "PerSeriesModel", "combine", "row_weights"]

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
        kinds = list(members or DEFAULT_MEMBERS)
        kwargs = member_kwargs or [{} for _ in kinds]
        fitted = [
            model_class(k).fit(history, spec, seed=seed, **kw) for k, kw in zip(kinds, kwargs, strict=True)
        ]
        return cls(fitted, weights)

    def refit_kwargs(self) -> dict[str, Any]:
        """Members, each member's own tuning and the weights."""
        return {
            "members": [m.kind for m in self.members],
            "member_kwargs": [m.refit_kwargs() for m in self.members],
            "weights": list(self.weights),
        }

    def predict(
        self,
        history: pl.DataFrame,
        query: pl.DataFrame,
        spec: TimeSeriesSpec,
        *,
        layout: Layout | None = None,
    ) -> np.ndarray:
        """NaN-aware weighted mean of the members' predictions."""
        if query.height == 0:
            return np.empty(0)
        preds = np.vstack([predict_on(m, history, query, spec, layout) for m in self.members])
        return combine(preds, self.weights)

    def explain(
        self,
        history: pl.DataFrame,
        query: pl.DataFrame,
        spec: TimeSeriesSpec,
        *,
        layout: Layout | None = None,
    ) -> Contributions | None:
        """The members' contributions weighted as :meth:`predict` weights their forecasts.

        Features of the same name (``sales (lag 0)`` of two members) are merged;
        the base is the weighted sum of the members' bases.  A member that
        cannot predict a row drops out of that row as it does from the
        forecast.  None when a member has no contributions.
        """
        parts = self._member_contributions(history, query, spec, layout)
        if parts is None:
            return None
        return weighted_sum(parts, row_weights(np.vstack([p.prediction for p in parts]), self.weights))

    def _member_contributions(
        self, history: pl.DataFrame, query: pl.DataFrame, spec: TimeSeriesSpec, layout: Layout | None
    ) -> list[Contributions] | None:
        """Each member's contributions, or None when one has none."""
        parts = []
        for m in self.members:
            part = m.explain(history, query, spec, layout=layout)
            if part is None:
                return None
            parts.append(part)
        return parts

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
        state = orjson.loads(data)
        return cls(_members(state), state.get("weights"))

    def describe(self) -> dict[str, Any]:
        """The members' own descriptions and weights."""
        return {
            "kind": self.kind,
            "members": [m.describe() for m in self.members],
            "weights": [round(w, 4) for w in self.weights],
        }


class PerSeriesModel(EnsembleModel):
    """The ensemble, except for series whose backtest chose one of its members alone.

    ``picks`` maps a series to a member kind; every other series, including
    series unseen at training, gets the weighted ensemble.  Training decides
    the picks and whether this beats the plain ensemble
    (:func:`tsengine.select.per_series_choice`).
    """

    kind = "per_series"

    def __init__(
        self,
        members: list[ForecastModel],
        weights: list[float] | None = None,
        picks: dict[str, str] | None = None,
    ) -> None:
        super().__init__(members, weights)
        kinds = [m.kind for m in members]
        unknown = sorted({k for k in (picks or {}).values() if k not in kinds})
        if unknown:
            msg = f"per-series picks name models that are not members: {unknown}"
            raise TrainingDataError(msg)
        self.picks = dict(picks or {})
        self._codes = {s: kinds.index(k) for s, k in self.picks.items()}

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
        picks: dict[str, str] | None = None,
    ) -> Self:
        """Fit each member on the same rows; ``picks`` as decided at training (none: the ensemble)."""
        base = EnsembleModel.fit(history, spec, seed=seed, members=members, member_kwargs=member_kwargs)
        return cls(base.members, weights, picks)

    def refit_kwargs(self) -> dict[str, Any]:
        """The ensemble's tuning and the picks."""
        return {**super().refit_kwargs(), "picks": dict(self.picks)}

    def predict(
        self,
        history: pl.DataFrame,
        query: pl.DataFrame,
        spec: TimeSeriesSpec,
        *,
        layout: Layout | None = None,
    ) -> np.ndarray:
        """Each row from its series' pick; the ensemble where there is none or the pick is NaN."""
        if query.height == 0:
            return np.empty(0)
        preds = np.vstack([predict_on(m, history, query, spec, layout) for m in self.members])
        mixed = combine(preds, self.weights)
        if not self._codes:
            return mixed
        code = query.get_column(SID).replace_strict(self._codes, default=-1, return_dtype=pl.Int64).to_numpy()
        own = preds[np.maximum(code, 0), np.arange(query.height)]
        return np.asarray(np.where((code >= 0) & np.isfinite(own), own, mixed))

    def explain(
        self,
        history: pl.DataFrame,
        query: pl.DataFrame,
        spec: TimeSeriesSpec,
        *,
        layout: Layout | None = None,
    ) -> Contributions | None:
        """Per row, the picked member's contributions; the ensemble's where :meth:`predict` uses it."""
        parts = self._member_contributions(history, query, spec, layout)
        if parts is None:
            return None
        preds = np.vstack([p.prediction for p in parts])
        mixed = weighted_sum(parts, row_weights(preds, self.weights))
        if not self._codes or query.height == 0:
            return mixed
        code = query.get_column(SID).replace_strict(self._codes, default=-1, return_dtype=pl.Int64).to_numpy()
        own = preds[np.maximum(code, 0), np.arange(query.height)]
        choice = np.where((code >= 0) & np.isfinite(own), code, len(parts))
        return pick_rows([*parts, mixed], choice)

    def to_bytes(self) -> bytes:
        """The ensemble's document plus the picks."""
        state = orjson.loads(super().to_bytes())
        return orjson.dumps({**state, "picks": self.picks})

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Inverse of :meth:`to_bytes`."""
        state = orjson.loads(data)
        return cls(_members(state), state.get("weights"), state.get("picks"))

    def describe(self) -> dict[str, Any]:
        """The ensemble's description, how many series use each pick, and the picks."""
        counts = Counter(self.picks.values())
        return {
            **super().describe(),
            "kind": self.kind,
            "series_picks": dict(sorted(counts.items())),
            "picks": self.picks,
        }


def _members(state: dict[str, Any]) -> list[ForecastModel]:
    """Member models from an ensemble document (each member's own bytes inside)."""
    return [model_class(m["kind"]).from_bytes(m["state"].encode()) for m in state["members"]]


def row_weights(preds: np.ndarray, weights: list[float] | None = None) -> np.ndarray:
    """Each member's weight in each column's :func:`combine` (0 where it is NaN; columns sum to 1 or 0)."""
    w = np.ones(preds.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
    live = np.isfinite(preds) * w[:, None]
    mass = live.sum(axis=0)
    return np.asarray(live / np.where(mass > 0, mass, 1.0))


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
