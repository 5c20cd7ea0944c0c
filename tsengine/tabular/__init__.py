"""Non-time-series deployments: regression and classification on tabular rows.

They share the registry, the prediction URL, the options, explanations and
humility rules with time series deployments; only training, the feature schema
and the output shape differ.
"""

from __future__ import annotations

from tsengine.tabular.deployment import TabularDeployment
from tsengine.tabular.train import train_tabular

__all__ = ["TabularDeployment", "train_tabular"]
