"""Forecasting models behind one contract (:class:`ForecastModel`)."""

from __future__ import annotations

from tsengine.models.arima import ARIMAModel
from tsengine.models.base import ForecastModel
from tsengine.models.ensemble import EnsembleModel, PerSeriesModel
from tsengine.models.ets import ETSModel
from tsengine.models.lgbm import (
    LightGBMDiffModel,
    LightGBMLogModel,
    LightGBMModel,
    LightGBMSeriesScaleModel,
)
from tsengine.models.linear import LinearModel
from tsengine.models.naive import SeasonalNaiveModel
from tsengine.models.registry import MODELS, model_class, register
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
    "LightGBMSeriesScaleModel",
    "LinearModel",
    "PerSeriesModel",
    "SeasonalNaiveModel",
    "ThetaModel",
    "model_class",
]

register(
    ARIMAModel,
    ETSModel,
    EnsembleModel,
    LightGBMModel,
    LightGBMDiffModel,
    LightGBMLogModel,
    LightGBMSeriesScaleModel,
    LinearModel,
    PerSeriesModel,
    SeasonalNaiveModel,
    ThetaModel,
)
