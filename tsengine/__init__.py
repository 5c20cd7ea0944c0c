"""tsengine: forecasts for fresh history from a stored model, with DataRobot's wire shapes.

The Python API::

    import tsengine
    dep = tsengine.train(frame, target="sales", datetime_column="date", series_id_column="store")
    tsengine.Registry("registry").save(dep)
    forecast = dep.predict(history)            # one row per series × distance
"""

from __future__ import annotations

__version__ = "0.1.0"

from tsengine.deployment import Deployment, Prediction
from tsengine.errors import TsEngineError
from tsengine.options import PredictOptions
from tsengine.registry import Registry
from tsengine.spec import TimeSeriesSpec
from tsengine.timestep import TimeStep
from tsengine.train import train

__all__ = [
    "Deployment",
    "PredictOptions",
    "Prediction",
    "Registry",
    "TimeSeriesSpec",
    "TimeStep",
    "TsEngineError",
    "__version__",
    "train",
]
