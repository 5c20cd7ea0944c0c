"""The small contract every forecasting model keeps.

The window logic decides *what* to predict (a query of series, forecast point,
distance, target index and KIA values); a model only turns ``(history, query)``
into numbers.  So a statsmodels ETS, a global LightGBM and a seasonal naive
model plug in alike, and none of them knows about HTTP, formats or validation.

Contract for :meth:`ForecastModel.predict`: for each query row, read only history
rows of that series at or before the row's forecast point (``__i <= __fp``).
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np
import polars as pl

from tsengine.spec import TimeSeriesSpec

if TYPE_CHECKING:
    from tsengine.contributions import Contributions
    from tsengine.features import Layout

__all__ = ["ForecastModel", "predict_on"]


class ForecastModel(ABC):
    """A fitted forecasting model.

    Subclasses are immutable after :meth:`fit`; they serialise to bytes without
    pickle, so a stored deployment cannot execute code when loaded.
    """

    kind: ClassVar[str]
    per_series: ClassVar[bool] = False
    """Whether each series' fit is independent of the others' (statistical models):
    such a model can be fitted on parts of the panel and the parts merged
    (:meth:`merge`), which is how training runs it on a Dask cluster."""

    @classmethod
    @abstractmethod
    def fit(cls, history: pl.DataFrame, spec: TimeSeriesSpec, *, seed: int = 0) -> Self:
        """Fit on canonical training rows (see :mod:`tsengine.validate`)."""

    @abstractmethod
    def predict(
        self,
        history: pl.DataFrame,
        query: pl.DataFrame,
        spec: TimeSeriesSpec,
        *,
        layout: Layout | None = None,
    ) -> np.ndarray:
        """One prediction per query row, in query order (NaN where impossible).

        ``layout`` is the request's window layout of ``history`` around
        ``query`` (:class:`~tsengine.features.Layout`), built once by the
        deployment so the model, the interval scale and the explanations share
        it; models that read windows another way ignore it.
        """

    def explain(
        self,
        history: pl.DataFrame,
        query: pl.DataFrame,
        spec: TimeSeriesSpec,
        *,
        layout: Layout | None = None,
    ) -> Contributions | None:
        """Additive contributions of each query row's prediction, or None when the model has none.

        When given, ``base + strengths.sum(axis=1)`` equals :meth:`predict`'s
        numbers for the same arguments (up to float rounding); see
        :mod:`tsengine.contributions`.  The default (a model written against the
        contract before explanations existed) has none: the deployment then
        answers without explanations and says so in a warning.
        """
        del history, query, spec, layout
        return None

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

    @classmethod
    def panel_kwargs(cls, history: pl.DataFrame, spec: TimeSeriesSpec) -> dict[str, Any]:  # noqa: ARG003
        """:meth:`fit` arguments decided on the whole panel, for fits of parts of it (none by default)."""
        return {}

    @classmethod
    def merge(cls, parts: list[Self]) -> Self:
        """One model from models fitted on disjoint sets of series (``per_series`` models only).

        What the parts share (season, window) is taken from the first; what is
        computed over every series (the cold-start fallback) is recomputed
        from all of them, so the result equals a fit on the whole panel.
        """
        msg = f"{cls.kind} is fitted on the whole panel; it cannot merge parts"
        raise NotImplementedError(msg)


_TAKES_LAYOUT: dict[type, bool] = {}


def predict_on(
    model: ForecastModel,
    history: pl.DataFrame,
    query: pl.DataFrame,
    spec: TimeSeriesSpec,
    layout: Layout | None,
) -> np.ndarray:
    """``model.predict``, with the request's layout when its ``predict`` takes one.

    Models written against the contract before the layout existed (a user's
    own, a test's stub) define ``predict(history, query, spec)``; they are
    called that way, and lay out their windows themselves.
    """
    kind = type(model)
    takes = _TAKES_LAYOUT.get(kind)
    if takes is None:
        takes = "layout" in inspect.signature(kind.predict).parameters
        _TAKES_LAYOUT[kind] = takes
    if takes and layout is not None:
        return model.predict(history, query, spec, layout=layout)
    return model.predict(history, query, spec)
