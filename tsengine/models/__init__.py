"""Forecasting models behind one contract (:class:`ForecastModel`)."""

from __future__ import annotations

from tsengine.models.base import ForecastModel
from tsengine.models.lgbm import LightGBMModel
from tsengine.models.naive import SeasonalNaiveModel

__all__ = ["MODELS", "ForecastModel", "LightGBMModel", "SeasonalNaiveModel", "model_class"]

MODELS: dict[str, type[ForecastModel]] = {
    LightGBMModel.kind: LightGBMModel,
    SeasonalNaiveModel.kind: SeasonalNaiveModel,
}


def model_class(kind: str) -> type[ForecastModel]:
    """The class for a stored model kind.

    Raises:
        KeyError: unknown kind (the registry turns this into a store error).
    """
    return MODELS[kind]
