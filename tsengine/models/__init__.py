"""Forecasting models behind one contract (:class:`ForecastModel`)."""

from __future__ import annotations

from tsengine.models.arima import ARIMAModel
from tsengine.models.base import ForecastModel
from tsengine.models.ensemble import EnsembleModel, PerSeriesModel
from tsengine.models.ets import ETSModel
from tsengine.models.lgbm import LightGBMDiffModel, LightGBMLogModel, LightGBMModel
from tsengine.models.linear import LinearModel
from tsengine.models.naive import SeasonalNaiveModel
from tsengine.models.theta import ThetaModel

__all__ = [
    "MODELS",
    "ARIMAModel",
    "ETSModel",
    "EnsembleModel",
    "ForecastModel",
    "LightGBMDiffModel",
    "LightGBMLogModel",
    "LightGBMModel",
    "LinearModel",
    "PerSeriesModel",
    "SeasonalNaiveModel",
    "ThetaModel",
    "model_class",
]

MODELS: dict[str, type[ForecastModel]] = {
    ARIMAModel.kind: ARIMAModel,
    ETSModel.kind: ETSModel,
    EnsembleModel.kind: EnsembleModel,
    LightGBMModel.kind: LightGBMModel,
    LightGBMDiffModel.kind: LightGBMDiffModel,
    LightGBMLogModel.kind: LightGBMLogModel,
    LinearModel.kind: LinearModel,
    PerSeriesModel.kind: PerSeriesModel,
    SeasonalNaiveModel.kind: SeasonalNaiveModel,
    ThetaModel.kind: ThetaModel,
}


def model_class(kind: str) -> type[ForecastModel]:
    """The class for a stored model kind.

    Raises:
        KeyError: unknown kind (the registry turns this into a store error).
    """
    return MODELS[kind]
