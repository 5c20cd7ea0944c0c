"""The small contract every forecasting model keeps.

The window logic decides *what* to predict (a query of series, forecast point,
distance, target index and KIA values); a model only turns ``(history, query)``
into numbers.  So a statsmodels ETS, a global LightGBM and a seasonal naive
model plug in alike, and none of them knows about HTTP, formats or validation.

Contract for :meth:`ForecastModel.predict`: for each query row, read only history
rows of that series at or before the row's forecast point (``__i <= __fp``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Self

import numpy as np
import polars as pl

from tsengine.spec import TimeSeriesSpec

__all__ = ["ForecastModel"]


class ForecastModel(ABC):
    """A fitted forecasting model.

    Subclasses are immutable after :meth:`fit`; they serialise to bytes without
    pickle, so a stored deployment cannot execute code when loaded.
    """

    kind: ClassVar[str]

    @classmethod
    @abstractmethod
    def fit(cls, history: pl.DataFrame, spec: TimeSeriesSpec, *, seed: int = 0) -> Self:
        """Fit on canonical training rows (see :mod:`tsengine.validate`)."""

    @abstractmethod
    def predict(self, history: pl.DataFrame, query: pl.DataFrame, spec: TimeSeriesSpec) -> np.ndarray:
        """One prediction per query row, in query order (NaN where impossible)."""

    @abstractmethod
    def to_bytes(self) -> bytes:
        """Serialise the fitted state."""

    @classmethod
    @abstractmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Inverse of :meth:`to_bytes`."""

    def refit_kwargs(self) -> dict[str, Any]:
        """Keyword arguments that make :meth:`fit` repeat this model's tuning.

        Backtests refit at each origin with these, so tuning (e.g. boosting
        rounds) is searched once, on the full data, not once per origin.
        """
        return {}

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary for ``tsengine info``."""
        return {"kind": self.kind}
